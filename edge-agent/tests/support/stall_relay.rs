//! A TCP relay to the broker that can *stall*: stop forwarding in both directions while keeping
//! every connection open (and accepting new ones), as a cab in a coverage hole or a NAT that lost
//! its state does; and then forward again. It can also delay what it forwards, as a slow link
//! does. Shared by the stall tests and the stall benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The relay; dropping it stops it.
pub struct StallRelay {
    /// Where agents connect instead of the broker.
    pub port: u16,
    forwarding: watch::Sender<bool>,
    latency: watch::Sender<Duration>,
    task: JoinHandle<()>,
}

impl StallRelay {
    /// Relays a fresh local port to `upstream`; forwarding.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let (forwarding, forwarding_rx) = watch::channel(true);
        let (latency, latency_rx) = watch::channel(Duration::ZERO);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let forwarding = forwarding_rx.clone();
                let latency = latency_rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::select! {
                        _ = pump(in_read, out_write, forwarding.clone(), latency.clone()) => {}
                        _ = pump(out_read, in_write, forwarding, latency) => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            forwarding,
            latency,
            task,
        })
    }

    /// Stops forwarding; connections stay open.
    pub fn stall(&self) {
        self.forwarding.send_replace(false);
    }

    /// Forwards again, on every connection.
    pub fn resume(&self) {
        self.forwarding.send_replace(true);
    }

    /// Holds each chunk this long before forwarding it, each way.
    #[allow(dead_code)] // Not every user of this module delays.
    pub fn set_latency(&self, latency: Duration) {
        self.latency.send_replace(latency);
    }
}

impl Drop for StallRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies from `from` to `to`, holding whatever it has read while forwarding is off.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut forwarding: watch::Receiver<bool>,
    latency: watch::Receiver<Duration>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // Stalled while waiting to read: stop reading too.
            _ = forwarding.wait_for(|on| !*on) => continue,
        };
        let delay = *latency.borrow();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
