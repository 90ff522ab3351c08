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
fn wait_listening(listen: SocketAddr) {
    let target = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        _ => listen,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_millis(50))
            .is_ok()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(%listen, "the embedded broker is slow to start listening");
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
