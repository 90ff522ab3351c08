//! Patchy 4G: a TCP proxy between an agent and the broker that the simulation cuts and restores,
//! since the embedded broker cannot drop one client on request. While cut, every connection
//! through it is closed and new ones are refused at once, as when a cab drives out of coverage.
//!
//! [`outages`] decides when the link drops and for how long (pure, seeded); [`flap`] applies
//! that schedule to a proxy in simulated time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SimClock;

/// A proxy from a local port to the broker.
#[derive(Debug)]
pub struct LinkProxy {
    /// Where agents connect instead of the broker.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    outages: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a fresh port of 127.0.0.1 and forwards each connection to `upstream`; starts up.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (up, up_rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(error) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "link proxy cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut up = up_rx.clone();
                if !*up.borrow_and_update() {
                    // Out of coverage: the connection is closed at once.
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            up,
            outages: Arc::new(AtomicU64::new(0)),
            task,
        })
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        if self.up.send_replace(false) {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Whether connections go through.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// How many times the link has been cut.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.up.send_replace(false);
        self.task.abort();
    }
}

/// One stretch of coverage followed by one outage, in simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// How long the link stays up first.
    pub after: Duration,
    /// How long it then stays down.
    pub lasting: Duration,
}

/// A cab's coverage on a patchy round: minutes of signal (on average 25, exponentially
/// distributed) between outages of half a minute to six minutes.
pub fn outages(seed: u64) -> impl Iterator<Item = Outage> {
    let mut rng = StdRng::seed_from_u64(seed);
    std::iter::repeat_with(move || {
        let up_s = -(25.0 * 60.0) * (1.0 - rng.gen::<f64>()).ln();
        let down_s = rng.gen_range(30.0..360.0);
        Outage {
            after: Duration::from_secs_f64(up_s.clamp(60.0, 3600.0)),
            lasting: Duration::from_secs_f64(down_s),
        }
    })
}

/// Cuts and restores `proxy` on the [`outages`] schedule from `seed` until `stop`, then leaves it
/// up (so that what waited can drain at shutdown).
pub async fn flap(proxy: Arc<LinkProxy>, seed: u64, clock: SimClock, stop: CancellationToken) {
    for outage in outages(seed) {
        if !clock.sleep(outage.after, &stop).await {
            break;
        }
        proxy.cut();
        tracing::info!(proxy = %proxy.addr, lasting_s = outage.lasting.as_secs(), "link down");
        let carried_on = clock.sleep(outage.lasting, &stop).await;
        proxy.restore();
        tracing::info!(proxy = %proxy.addr, "link up");
        if !carried_on {
            break;
        }
    }
    proxy.restore();
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn outages_are_reproducible_and_plausible() {
        let a: Vec<Outage> = outages(1).take(200).collect();
        let b: Vec<Outage> = outages(1).take(200).collect();
        assert_eq!(a, b);
        assert_ne!(a, outages(2).take(200).collect::<Vec<_>>());
        for o in &a {
            assert!((60..=3600).contains(&o.after.as_secs()));
            assert!((30..=360).contains(&o.lasting.as_secs()));
        }
        let mean_up = a.iter().map(|o| o.after.as_secs_f64()).sum::<f64>() / 200.0;
        assert!((1200.0..1800.0).contains(&mean_up), "{mean_up}");
    }

    #[tokio::test]
    async fn forwards_until_cut_and_again_once_restored() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(n @ 1..) = socket.read(&mut buffer).await {
                        if socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = LinkProxy::start(upstream).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ping");

        proxy.cut();
        assert!(!proxy.is_up());
        // The open connection is closed...
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut reply))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
        // ...and a new one is closed at once.
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut reply))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);

        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        again.write_all(b"pong").await.unwrap();
        again.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong");
        assert_eq!(proxy.outages(), 1);
    }
}
