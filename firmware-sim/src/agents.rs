//! The agents' settings for simulated devices: one data directory each under a common root, the
//! local API on a free loopback port, quick reconnects, and short intervals for compressed time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use edge_agent::agent::Agent;
use edge_agent::config::{AgentConfig, SigningConfig};
use gateway::devices::{DeviceRegistry, Issued};
use proto::clock::SharedClock;
use proto::signed::key_hex;
use proto::DeviceId;

use crate::SimError;

/// What every simulated device's agent shares.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Each agent's database goes in `{data_root}/{device}`.
    pub data_root: PathBuf,
    /// The broker's host.
    pub mqtt_host: String,
    /// The broker's port.
    pub mqtt_port: u16,
    /// Seconds between a hub's telemetry samples (real time).
    pub sample_s: u32,
    /// Seconds between health records (real time).
    pub health_s: u32,
    /// Seconds shutdown may spend sending what is unacked.
    pub shutdown_deadline_s: u64,
    /// Each device's credential, by device id, as the gateway issued it: its broker secret and
    /// its signing keys. A device without one connects without credentials and does not sign
    /// (an external broker that wants none, before a gateway that does not require signing).
    pub credentials: BTreeMap<String, Issued>,
}

/// Issues each of `devices` a fresh secret and signing key from the gateway's `registry`, as
/// `gateway devices add --replace` does (the demo's data directory may hold credentials of an
/// earlier run, which its agents no longer have). Each is an argon2 hash, about a millisecond of
/// a core: on the blocking pool, so that a load of a thousand hubs does not hold up the runtime.
pub async fn issue_credentials(
    registry: &DeviceRegistry,
    devices: &[String],
) -> Result<BTreeMap<String, Issued>, SimError> {
    let (registry, devices) = (registry.clone(), devices.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut credentials = BTreeMap::new();
        for device in devices {
            let id = DeviceId::new(device.as_str())
                .map_err(|e| SimError::Invalid(format!("device id {device:?}: {e}")))?;
            credentials.insert(device, registry.add(&id, true)?);
        }
        Ok(credentials)
    })
    .await
    .map_err(|e| SimError::Invalid(format!("issuing the devices' credentials stopped: {e}")))?
}

impl AgentSettings {
    /// The configuration of `device`'s agent, connecting to the broker through `via` if given
    /// (a link proxy) instead of directly.
    pub fn config(&self, device: &str, via: Option<SocketAddr>) -> AgentConfig {
        let mut config = AgentConfig {
            device_id: device.to_owned(),
            data_dir: self.data_root.join(device),
            shutdown_deadline_s: self.shutdown_deadline_s,
            ..AgentConfig::default()
        };
        match via {
            Some(addr) => {
                config.mqtt.host = addr.ip().to_string();
                config.mqtt.port = addr.port();
            }
            None => {
                config.mqtt.host = self.mqtt_host.clone();
                config.mqtt.port = self.mqtt_port;
            }
        }
        match self.credentials.get(device) {
            Some(issued) => {
                config.mqtt.username = Some(device.to_owned());
                config.mqtt.password = Some(issued.secret.reveal().to_owned());
                config.signing = SigningConfig::with_keys(
                    key_hex(&issued.signing_key.to_bytes()),
                    key_hex(&issued.gateway_key.to_bytes()),
                );
            }
            None => config.signing.required = false,
        }
        // A dead link is noticed, and a restored one used, within seconds.
        config.mqtt.keep_alive_s = 10;
        config.mqtt.reconnect_min_ms = 200;
        config.mqtt.reconnect_max_ms = 3000;
        config.uplink.resend_after_s = 10;
        config.outbox.cache_bytes = 1024 * 1024;
        config.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.intervals.sample_s = self.sample_s.max(1);
        config.intervals.health_s = self.health_s.max(1);
        config
    }

    /// Starts `device`'s agent on `clock`.
    pub async fn start(
        &self,
        device: &str,
        via: Option<SocketAddr>,
        clock: SharedClock,
    ) -> Result<Agent, SimError> {
        Agent::start_with_clock(self.config(device, via), clock)
            .await
            .map_err(|source| SimError::Agent {
                device: device.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_gets_a_valid_config_of_its_own() {
        let settings = AgentSettings {
            data_root: "data/demo/agents".into(),
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: 41883,
            sample_s: 1,
            health_s: 30,
            shutdown_deadline_s: 5,
            credentials: BTreeMap::from([(
                "hub-01".to_owned(),
                Issued {
                    device: DeviceId::new("hub-01").unwrap(),
                    secret: gateway::devices::Secret::generate().unwrap(),
                    signing_key: proto::signed::SigningKey::from_bytes(&[1; 32]),
                    gateway_key: proto::signed::SigningKey::from_bytes(&[2; 32]).verifying_key(),
                    replaced: false,
                },
            )]),
        };
        let hub = settings.config("hub-01", None);
        assert_eq!(hub.mqtt.username.as_deref(), Some("hub-01"));
        assert_eq!(
            hub.mqtt.password.as_deref(),
            settings
                .credentials
                .get("hub-01")
                .map(|c| c.secret.reveal())
        );
        assert!(hub.signing.required && hub.signing.key.is_some());
        hub.validate().unwrap();
        assert_eq!(hub.data_dir, PathBuf::from("data/demo/agents/hub-01"));
        assert_eq!(hub.mqtt.port, 41883);
        assert_eq!(hub.api.listen.port(), 0);
        let cab = settings.config("cab-01", Some(([127, 0, 0, 1], 50000).into()));
        assert_eq!(cab.mqtt.port, 50000);
        assert_eq!(cab.mqtt.username, None);
        cab.validate().unwrap();
    }
}
