//! Serving the HTTP router on a listener, over plain TCP or TLS (rustls), one task per connection:
//! a TLS handshake and a request's headers each have a deadline, connections are bounded in
//! number, in all and per client address (so that one client cannot take every place), and each
//! request carries its peer's address (`ConnectInfo`) for per-address limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (a slow-headers client holds a
/// connection for no more than this).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; more are closed as they arrive.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64) at most.
    pub max_connections_per_address: usize,
}

/// Open connections per client address; an address is in the map only while it has one, so the
/// map is no larger than the connections.
#[derive(Clone, Default)]
struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerAddress {
    /// A place for one more connection from `ip`, if it has fewer than `max`.
    fn take(&self, ip: IpAddr, max: usize) -> Option<AddressPlace> {
        let key = super::rate_limit::client_key(ip);
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            map: self.clone(),
            key,
        })
    }
}

/// One connection's place in its address's count, given back when dropped.
struct AddressPlace {
    map: PerAddress,
    key: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self
            .map
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`, then lets open connections
/// finish their requests, within a grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::default();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = per_address.take(peer.ip(), limits.max_connections_per_address) else {
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let _places = (permit, place);
            connection(stream, peer, app, tls, shutdown).await;
        });
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        connections.abort_all();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http1(stream, peer, app, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http1(stream, peer, app, shutdown).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "HTTP TLS handshake failed"),
                Err(_) => tracing::debug!("HTTP TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/1.1 on one connection, each request told its peer's address.
async fn http1<S>(stream: S, peer: SocketAddr, app: Router, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { app.oneshot(request).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
