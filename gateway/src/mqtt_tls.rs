//! The embedded broker's TLS listener (MQTT over TLS, port 8883 by custom). The gateway ends TLS
//! itself and relays each connection, decrypted, to the broker's plain listener on this machine:
//! rumqttd 0.20's own TLS does each handshake inside its accept loop with no deadline (one client
//! that never finishes its handshake would hold back every other) on an older rustls than the
//! rest of the build. Here each handshake runs on its own task within a deadline, and the number
//! of connections is bounded; the broker then checks every client's credentials as on plain TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::log_throttle::Throttle;

/// How long a client may take over its TLS handshake (a device on a slow 4G link takes a few
/// round trips of a second or so).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays `listener`'s TLS connections to the plain broker at `broker` until `shutdown`, at most
/// `max_connections` at once (more are closed as they arrive, logged at most once a minute by
/// `clock`).
pub async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    broker: SocketAddr,
    max_connections: usize,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut full = Throttle::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept an MQTT TLS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(suppressed) = full.hit(clock.now_ms(), 60_000) {
                tracing::warn!(
                    max_connections,
                    refused_before = suppressed,
                    "MQTT TLS connections at their limit: closing new ones"
                );
            }
            continue;
        };
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = relay(stream, acceptor, broker) => {}
            }
        });
    }
}

/// One connection: the handshake within its deadline, then bytes both ways until either side
/// closes.
async fn relay(stream: TcpStream, acceptor: TlsAcceptor, broker: SocketAddr) {
    // Small MQTT packets (PUBACKs, acks) must leave at once, as on the broker's own sockets.
    let _ = stream.set_nodelay(true);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "MQTT TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("MQTT TLS handshake timed out");
            return;
        }
    };
    let mut plain = match TcpStream::connect(broker).await {
        Ok(plain) => plain,
        Err(e) => {
            tracing::error!(error = %e, %broker, "cannot reach the embedded broker behind TLS");
            return;
        }
    };
    let _ = plain.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut tls, &mut plain).await {
        tracing::debug!(error = %e, "MQTT TLS connection ended");
    }
}
