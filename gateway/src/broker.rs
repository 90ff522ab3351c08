//! The embedded MQTT broker (rumqttd), so that one binary runs a whole site with nothing else to
//! install. rumqttd keeps nothing on disk and acks a publish once its router has it; the agents'
//! resend-until-acked covers that (see `docs/ARCHITECTURE.md`, delivery).
//!
//! Every connection is authenticated against the device registry ([`crate::devices::auth`])
//! unless the gateway is configured to let anyone connect (`mqtt.allow_anonymous`, for tests).
//! Checking a secret is an argon2 hash, so it runs on the blocking pool, a few at a time.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use proto::topic::{MAX_DEVICE_ID_LEN, TOPIC_PREFIX};
use proto::TopicKind;
use rumqttd::{
    Broker, Config, ConnectionSettings, PublishRate, RouterConfig, SegmentConfig, ServerSettings,
};
use tokio::sync::Semaphore;

use crate::devices::Authenticator;

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not ours.
    #[error(
        "cannot listen for MQTT on {addr}: {source}; another broker (Mosquitto?) may hold it. \
         Choose another address with --mqtt-listen (mqtt.listen), or use that broker with --mqtt-url"
    )]
    AddressUnavailable {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The broker's thread could not be started.
    #[error("could not start the embedded broker's thread: {0}")]
    Thread(std::io::Error),
}

/// The longest topic a device publishes on: the prefix, the longest device id and the longest
/// kind (`state`).
pub fn longest_topic_len() -> usize {
    let kinds = [
        TopicKind::Up,
        TopicKind::Ack,
        TopicKind::Down,
        TopicKind::State,
    ];
    let longest_kind = kinds.iter().map(|k| k.as_str().len()).max().unwrap_or(0);
    TOPIC_PREFIX.len() + 1 + MAX_DEVICE_ID_LEN + 1 + longest_kind
}

/// The MQTT remaining length (variable header and payload, the part after the fixed header) of a
/// QoS 1 PUBLISH carrying `max_payload` bytes on the longest topic: the topic's two-byte length,
/// the topic, the two-byte packet id, then the payload. This is what rumqttd's
/// `max_payload_size` (despite its name) and rumqttc's `max_incoming_packet_size` bound, so
/// that a payload of exactly `max_payload` bytes always passes and one byte more on the longest
/// topic does not.
pub fn max_publish_remaining_length(max_payload: usize) -> usize {
    2 + longest_topic_len() + 2 + max_payload
}

/// rumqttd keeps every message in an in-memory log per subscription filter, read or not, until the
/// log's segments are full and the oldest is dropped: what a log may hold stays allocated for the
/// broker's life. Its default for every filter (four segments of 16 MiB, which we had) would let
/// each of up to 10,000 devices' `ack` and `down` logs keep 64 MiB, and the gateway's `up` log
/// 64 MiB of batches plus the read buffers they were cut from (`Bytes` shares allocations). The
/// logs are sized instead for what must wait in them: a device's acks and jobs, which the device
/// reads at once (and a job the gateway resends until it is acknowledged); and the devices'
/// batches until the gateway reads them. A subscriber that falls further behind than its log
/// jumps ahead (rumqttd logs a warning): the devices resend what the gateway never acked, so
/// nothing is lost, only delayed.
const DEVICE_LOG_SEGMENTS: usize = 4;
/// A segment of a device's own `ack` or `down` log: some 2,000 acks.
const DEVICE_LOG_SEGMENT_BYTES: usize = 64 * 1024;
/// Segments of the gateway's `up` and `state` logs.
const INGEST_LOG_SEGMENTS: usize = 8;

/// A segment of the gateway's `up` and `state` logs: sixteen of the largest messages, so the log
/// holds 128 of them (32 MiB) or some 500 of the agents' default 64 KiB batches. Smaller (a
/// quarter of this) made the gateway fall behind its log in the burst benchmark, and the resends
/// took the drain from 6 s to 34 s.
fn ingest_segment_bytes(max_payload: usize) -> usize {
    16 * max_publish_remaining_length(max_payload)
}

/// The broker's configuration: one MQTT 3.1.1 listener, payloads up to `max_payload`, and memory
/// kept small (rumqttd's segment defaults are sized for a server of its own).
fn broker_config(
    listen: SocketAddr,
    max_payload: usize,
    auth: Option<(Arc<Authenticator>, f64)>,
) -> Config {
    let mut connections = ConnectionSettings {
        // A client has this long after its TCP connection to send CONNECT (and pass the
        // credential check), so that idle sockets cannot pile up.
        connection_timeout_ms: 10_000,
        // A packet over this closes the sender's connection (MQTT 3.1.1 has no reason code); a
        // payload over `max_payload` on a shorter topic still reaches the gateway, which
        // quarantines it with its reason.
        max_payload_size: max_publish_remaining_length(max_payload),
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
        publish_rate: None,
        publish_rate_exempt: Vec::new(),
    };
    if let Some((auth, publishes_per_s)) = auth {
        // Each device within its rate, so that one flooding cannot crowd out the rest; the
        // gateway's own clients (acks and jobs for every device) are not limited.
        connections.publish_rate = Some(PublishRate {
            per_second: publishes_per_s,
            burst: 2.0 * publishes_per_s,
        });
        connections.publish_rate_exempt = auth.internal_clients().to_vec();
        set_auth(&mut connections, auth);
    }
    let server = ServerSettings {
        name: "v4".to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 1000,
            max_segment_size: DEVICE_LOG_SEGMENT_BYTES,
            max_segment_count: DEVICE_LOG_SEGMENTS,
            custom_segment: Some(
                [TopicKind::Up, TopicKind::State]
                    .map(|kind| {
                        let segment = SegmentConfig {
                            max_segment_size: ingest_segment_bytes(max_payload),
                            max_segment_count: INGEST_LOG_SEGMENTS,
                        };
                        (kind.filter_all_devices(), segment)
                    })
                    .into(),
            ),
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Config::default()
    }
}

/// Connections the broker takes at most: 10,000 devices and the gateway's own.
pub const MAX_CONNECTIONS: usize = 10_010;

/// How many secrets are checked at once: each argon2 check takes 19 MiB and tens of
/// milliseconds of a core, so a crowd of connections (a fleet back after an outage, or someone
/// guessing) queues here rather than taking every core and a gigabyte.
const CONCURRENT_CHECKS: usize = 2;

/// Has rumqttd ask `auth` about every connection. rumqttd refuses a CONNECT without username
/// and password itself, before asking, whenever a handler is set.
fn set_auth(connections: &mut ConnectionSettings, auth: Arc<Authenticator>) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_CHECKS));
    connections.set_auth_handler(
        move |client_id: String, username: String, password: String| {
            let auth = auth.clone();
            let permits = permits.clone();
            async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return false;
                };
                tokio::task::spawn_blocking(move || {
                    auth.authenticate(&client_id, &username, &password)
                })
                .await
                .unwrap_or(false)
            }
        },
    );
}

/// Starts the embedded broker on `listen` with every connection checked by `auth`: the
/// gateway's broker.
pub fn start_authenticated(
    listen: SocketAddr,
    max_payload: usize,
    auth: Arc<Authenticator>,
    device_publishes_per_s: f64,
) -> Result<(), BrokerError> {
    start(listen, max_payload, Some((auth, device_publishes_per_s)))
}

/// Starts the embedded broker on `listen` for anyone to connect to, unauthenticated: for tests
/// and benchmarks of agents, and a gateway configured with `mqtt.allow_anonymous`.
pub fn start_embedded(listen: SocketAddr, max_payload: usize) -> Result<(), BrokerError> {
    start(listen, max_payload, None)
}

/// Starts the embedded broker on `listen`, on a thread of its own (rumqttd's `start` blocks and has
/// no shutdown: the process's exit ends it). Checks first that the address is free, because
/// rumqttd only logs a failed bind. With `auth`, every connection must pass it; without, anyone
/// may connect.
fn start(
    listen: SocketAddr,
    max_payload: usize,
    auth: Option<(Arc<Authenticator>, f64)>,
) -> Result<(), BrokerError> {
    let probe = TcpListener::bind(listen).map_err(|source| BrokerError::AddressUnavailable {
        addr: listen,
        source,
    })?;
    drop(probe);
    let probe_password = auth
        .as_ref()
        .map(|(auth, _)| auth.internal_secret().reveal().to_owned());
    let mut broker = Broker::new(broker_config(listen, max_payload, auth));
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    wait_listening(listen, probe_password.as_deref());
    tracing::info!(%listen, "embedded MQTT broker listening");
    Ok(())
}

/// Waits (briefly) until the broker's thread accepts connections, so that the gateway's own client
/// does not begin with a refused connection and a backoff.
///
/// The probe is an MQTT session (CONNECT, CONNACK, then the socket closed), not a bare TCP
/// connect: rumqttd logs a connection closed before its CONNECT as an ERROR ("Error while
/// handling MQTT connect packet"), which a bare probe made appear at every start-up. Closing
/// without a DISCONNECT is on purpose too: rumqttd logs a DISCONNECT's end of link as an ERROR
/// ("router-drop"), a peer's close as INFO ("disconnected").
fn wait_listening(listen: SocketAddr, password: Option<&str>) {
    let target = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        _ => listen,
    };
    for _ in 0..100 {
        if let Ok(stream) =
            std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_millis(50))
        {
            if let Err(e) = probe_session(stream, password) {
                tracing::debug!(error = %e, "embedded broker probe session failed");
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(%listen, "the embedded broker is slow to start listening");
}

/// The client id of the start-up probe, one of the gateway's own clients: it authenticates with
/// the gateway's secret, as its username.
pub const PROBE_CLIENT_ID: &str = "fieldsync-broker-probe";

/// One MQTT 3.1.1 session on `stream`: CONNECT with a clean session (nothing is kept after it),
/// with the gateway's own secret when the broker authenticates, wait for the CONNACK, close.
fn probe_session(mut stream: std::net::TcpStream, password: Option<&str>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    let client_id = PROBE_CLIENT_ID.as_bytes();
    // Protocol name "MQTT", level 4 (3.1.1), clean session, keep-alive 60 s; with a password,
    // the username and password flags too.
    let flags = match password {
        Some(_) => 0xC2,
        None => 0x02,
    };
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, flags, 0x00, 0x3C];
    let mut field = |bytes: &[u8]| {
        body.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        body.extend_from_slice(bytes);
    };
    field(client_id);
    if let Some(password) = password {
        field(client_id);
        field(password.as_bytes());
    }
    // One byte of remaining length holds up to 127, which the probe's fixed fields and a
    // 64-character secret fit in.
    let length = u8::try_from(body.len())
        .ok()
        .filter(|length| *length < 0x80)
        .ok_or_else(|| std::io::Error::other("probe CONNECT too long"))?;
    let mut connect = vec![0x10, length];
    connect.extend_from_slice(&body);
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)
}

/// A free TCP port on 127.0.0.1, for tests and demos that must not assume 1883 is free.
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_limit_is_exactly_a_full_payload_on_the_longest_topic() {
        let longest = format!("{TOPIC_PREFIX}/{}/state", "d".repeat(MAX_DEVICE_ID_LEN));
        assert_eq!(longest_topic_len(), longest.len());
        let mut publish = rumqttc::Publish::new(
            longest,
            rumqttc::QoS::AtLeastOnce,
            vec![0; proto::MAX_MESSAGE_BYTES],
        );
        publish.pkid = 1;
        // The fixed header: one byte of type and flags, three of remaining length at this size.
        assert_eq!(
            publish.size() - 1 - 3,
            max_publish_remaining_length(proto::MAX_MESSAGE_BYTES)
        );
    }

    #[test]
    fn a_taken_port_names_the_address_and_the_flag() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = start_embedded(addr, 1024).unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("--mqtt-listen"), "{err}");
    }
}
