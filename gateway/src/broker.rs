//! The embedded MQTT broker (rumqttd), so that one binary runs a whole site with nothing else to
//! install. rumqttd keeps nothing on disk and acks a publish once its router has it; the agents'
//! resend-until-acked covers that (see `docs/ARCHITECTURE.md`, delivery).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

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

/// The broker's configuration: one MQTT 3.1.1 listener, payloads up to `max_payload`, and memory
/// kept small (rumqttd's segment defaults are sized for a server of its own).
fn broker_config(listen: SocketAddr, max_payload: usize) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Room for the topic and MQTT headers around the largest payload.
        max_payload_size: max_payload + 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
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
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Config::default()
    }
}

/// Starts the embedded broker on `listen`, on a thread of its own (rumqttd's `start` blocks and has
/// no shutdown: the process's exit ends it). Checks first that the address is free, because
/// rumqttd only logs a failed bind.
pub fn start_embedded(listen: SocketAddr, max_payload: usize) -> Result<(), BrokerError> {
    let probe = TcpListener::bind(listen).map_err(|source| BrokerError::AddressUnavailable {
        addr: listen,
        source,
    })?;
    drop(probe);
    let mut broker = Broker::new(broker_config(listen, max_payload));
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    wait_listening(listen);
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
fn wait_listening(listen: SocketAddr) {
    let target = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        _ => listen,
    };
    for _ in 0..100 {
        if let Ok(stream) =
            std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_millis(50))
        {
            if let Err(e) = probe_session(stream) {
                tracing::debug!(error = %e, "embedded broker probe session failed");
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(%listen, "the embedded broker is slow to start listening");
}

/// The client id of the start-up probe.
const PROBE_CLIENT_ID: &[u8] = b"fieldsync-broker-probe";

/// One MQTT 3.1.1 session on `stream`: CONNECT with a clean session (nothing is kept after it),
/// wait for the CONNACK, close.
fn probe_session(mut stream: std::net::TcpStream) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    let mut connect = vec![0x10, 0];
    // Protocol name "MQTT", level 4 (3.1.1), clean session, keep-alive 60 s.
    connect.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C]);
    connect.extend_from_slice(&[0x00, PROBE_CLIENT_ID.len() as u8]);
    connect.extend_from_slice(PROBE_CLIENT_ID);
    connect[1] = (connect.len() - 2) as u8;
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
    fn a_taken_port_names_the_address_and_the_flag() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = start_embedded(addr, 1024).unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("--mqtt-listen"), "{err}");
    }
}
