//! The MQTT client's settings: a persistent session, packets large enough for the largest batch,
//! manual acknowledgement of what the gateway sends, credentials, TLS, and the offline [`State`] as
//! the Last Will.

use std::time::Duration;

use proto::{
    DeviceId, EncodeError, State, TimestampMs, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};
use rumqttc::{LastWill, MqttOptions, QoS};

use super::tls::{self, TlsError};
use crate::config::AgentConfig;

/// Room for the topic and MQTT headers around the largest payload.
const PACKET_OVERHEAD: usize = 1024;

/// The client's settings for `config`, with the Last Will saying this boot went offline.
pub fn mqtt_options(
    config: &AgentConfig,
    device: &DeviceId,
    boot: u64,
    now: TimestampMs,
) -> Result<MqttOptions, OptionsError> {
    let mqtt = &config.mqtt;
    let mut options = MqttOptions::new(config.client_id(), mqtt.host.as_str(), mqtt.port);
    let packet = MAX_MESSAGE_BYTES + PACKET_OVERHEAD;
    options
        // At least a second (validated): rumqttc panics below that.
        .set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.max(1)))
        // rumqttc's default of 10 KiB would refuse full batches, and drop the connection over it.
        .set_max_packet_size(packet, packet)
        // A persistent session: the broker queues jobs sent down while the device is away.
        .set_clean_session(false)
        // The gateway's messages are acknowledged once handled (a job only once it is on disk),
        // so that a crash before that gets them redelivered.
        .set_manual_acks(true)
        .set_inflight(config.uplink.max_inflight_batches.max(1))
        .set_last_will(last_will(device, boot, now)?);
    if let Some(username) = &mqtt.username {
        options.set_credentials(username, mqtt.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &mqtt.tls {
        options.set_transport(tls::transport(tls)?);
    }
    Ok(options)
}

/// The retained offline state, for the Last Will and a clean shutdown.
pub fn last_will(device: &DeviceId, boot: u64, ts: TimestampMs) -> Result<LastWill, OptionsError> {
    Ok(LastWill::new(
        device.topic(TopicKind::State),
        state_payload(false, boot, ts)?,
        QoS::AtLeastOnce,
        true,
    ))
}

/// An encoded [`State`].
pub fn state_payload(online: bool, boot: u64, ts: TimestampMs) -> Result<Vec<u8>, EncodeError> {
    let state = State {
        v: SCHEMA_VERSION,
        online,
        boot,
        ts,
    };
    proto::encode(&state, MAX_MESSAGE_BYTES)
}

/// Why the client's settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The state message could not be encoded (a negative clock, say).
    #[error("cannot encode the device state: {0}")]
    State(#[from] EncodeError),
    /// The signing keys are unusable (the message names the option).
    #[error("{0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fit_the_largest_batch_and_keep_the_session() {
        let config = AgentConfig {
            device_id: "cab-0042".into(),
            ..AgentConfig::default()
        };
        let device = config.device().unwrap();
        let options = mqtt_options(&config, &device, 3, 1_764_000_000_000).unwrap();
        assert!(options.max_packet_size() > MAX_MESSAGE_BYTES);
        assert!(!options.clean_session());
        assert_eq!(options.client_id(), "cab-0042");
        let will = options.last_will().unwrap();
        assert_eq!(will.topic, "fieldsync/v1/cab-0042/state");
        assert!(will.retain);
        let state: State = proto::decode(&will.message, MAX_MESSAGE_BYTES).unwrap();
        assert!(!state.online);
        assert_eq!(state.boot, 3);
    }
}
