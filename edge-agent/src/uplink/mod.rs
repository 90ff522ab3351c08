//! The uplink: one MQTT connection to the gateway's broker that carries batches up and acks, jobs
//! and configuration down (see `docs/ARCHITECTURE.md`, delivery).
//!
//! - `connection`: polls the MQTT event loop, reconnects with [`backoff`], and on each connect
//!   resubscribes, announces the device online and makes unacked records eligible again.
//! - `sender`: publishes batches from the outbox while the link is up ([`batcher`] decides when).
//! - `receiver`: acknowledges the gateway's acks at once and applies them, coalesced, in its
//!   `AckApplier` (only they delete records); hands jobs and configuration to the
//!   [`crate::downlink`], acknowledging each once it is on disk.
//! - [`signing`]: batches signed with the device's key; acks and downlink acted on only if the
//!   gateway signed them for their topic (others are ignored and counted in the status).
//! - [`intake`]: how records enter the outbox and wake the sender.
//! - `options` and `tls`: the MQTT client's settings; [`status`]: the link's state for the API.
//!
//! The device's presence is the retained `State` on `…/state`: online when connected, offline as
//! the MQTT Last Will, and offline again on a clean shutdown.

pub mod backoff;
pub mod batcher;
mod connection;
pub mod intake;
pub mod options;
mod receiver;
mod sender;
pub mod signing;
pub mod stall;
pub mod status;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::clock::SharedClock;
use proto::{DeviceId, TopicKind};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use batcher::Batching;
pub use intake::Intake;
pub use options::OptionsError;
pub use status::{LastAck, LinkStatus};

use crate::config::AgentConfig;
use crate::downlink::Downlink;
use crate::outbox::Outbox;
use crate::stamp::Stamp;
use backoff::Backoff;
use connection::Connection;
use receiver::{AckApplier, Receiver};
use sender::Sender;
use signing::Signing;
use stall::StallDetector;

/// Requests the MQTT client queues beyond its in-flight window: room for acknowledgements and
/// subscriptions beside a batch or two. Kept small, because the outbox, not memory, is where
/// records should wait.
const REQUEST_QUEUE: usize = 8;
/// How long a connection attempt may take, TCP, TLS and CONNACK together (rumqttc's default is
/// 5 s). A link that accepts the connection but forwards nothing holds the attempt this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long closing waits for the offline state and the DISCONNECT to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The running uplink.
pub struct Uplink {
    client: AsyncClient,
    outbox: Outbox,
    device: DeviceId,
    boot: u64,
    clock: SharedClock,
    status: Arc<watch::Sender<LinkStatus>>,
    hurry: watch::Sender<bool>,
    wake: Arc<tokio::sync::Notify>,
    stop_sending: CancellationToken,
    stop_link: CancellationToken,
    sender: JoinSet<()>,
    link: JoinSet<()>,
}

impl Uplink {
    /// Starts the connection, the sender and the receiver. Returns at once: the connection comes
    /// up (or not) in the background, and [`Self::status`] says which.
    pub fn start(
        config: &AgentConfig,
        device: DeviceId,
        stamp: Stamp,
        intake: &Intake,
        downlink: Downlink,
        batching: watch::Receiver<Batching>,
    ) -> Result<Self, OptionsError> {
        let boot = stamp.boot;
        let signing = Signing::from_config(device.clone(), &config.signing)
            .map_err(|e| OptionsError::Signing(e.to_string()))?;
        let clock = intake.clock().clone();
        let options = options::mqtt_options(config, &device, boot, clock.now_ms())?;
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        eventloop
            .network_options
            .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
        let stall = Arc::new(Mutex::new(StallDetector::new(Duration::from_millis(
            config.uplink.stall_min_ms,
        ))));
        let outbox = intake.outbox().clone();
        let status = Arc::new(watch::channel(LinkStatus::default()).0);
        let (hurry, hurry_rx) = watch::channel(false);
        let (incoming_tx, incoming_rx) = tokio::sync::mpsc::unbounded_channel();
        let stop_sending = CancellationToken::new();
        let stop_link = CancellationToken::new();
        let wake = intake.wake();

        let mut link = JoinSet::new();
        link.spawn(
            Connection {
                eventloop,
                client: client.clone(),
                device: device.clone(),
                boot,
                clock: clock.clone(),
                outbox: outbox.clone(),
                status: Arc::clone(&status),
                incoming: incoming_tx,
                subacks: watch::channel(0).0,
                backoff: Backoff::new(
                    Duration::from_millis(config.mqtt.reconnect_min_ms),
                    Duration::from_millis(config.mqtt.reconnect_max_ms),
                ),
                stall: Arc::clone(&stall),
                stop: stop_link.clone(),
            }
            .run(),
        );
        let (acks_tx, acks_rx) = tokio::sync::mpsc::unbounded_channel();
        link.spawn(
            Receiver {
                client: client.clone(),
                device: device.clone(),
                downlink,
                acks: acks_tx,
                stall: Arc::clone(&stall),
                signing: signing.clone(),
                status: Arc::clone(&status),
            }
            .run(incoming_rx),
        );
        link.spawn(
            AckApplier {
                outbox: outbox.clone(),
                clock: clock.clone(),
                status: Arc::clone(&status),
            }
            .run(acks_rx),
        );
        let mut sender = JoinSet::new();
        sender.spawn(
            Sender {
                client: client.clone(),
                outbox: outbox.clone(),
                device: device.clone(),
                stamp,
                clock: clock.clone(),
                batching,
                wake: Arc::clone(&wake),
                link: status.subscribe(),
                hurry: hurry_rx,
                stall,
                signing,
                stop: stop_sending.clone(),
            }
            .run(),
        );
        Ok(Self {
            client,
            outbox,
            device,
            boot,
            clock,
            status,
            hurry,
            wake,
            stop_sending,
            stop_link,
            sender,
            link,
        })
    }

    /// The link's state, updated as it changes.
    pub fn status(&self) -> watch::Receiver<LinkStatus> {
        self.status.subscribe()
    }

    /// Sends whatever is unacked without lingering, and waits until the gateway has acked it all,
    /// the link is down, or `deadline` passes. Returns whether everything was acked.
    pub async fn drain(&self, deadline: Instant) -> bool {
        self.hurry.send_replace(true);
        self.wake.notify_one();
        let mut status = self.status.subscribe();
        loop {
            match self.outbox.stats() {
                Ok(stats) if stats.depth == 0 => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return false;
                }
            }
            if !status.borrow_and_update().connected {
                return false;
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Stops sending, announces the device offline (retained), disconnects cleanly (so the broker
    /// does not publish the Last Will too) and waits, briefly, for all of it to go out.
    pub async fn close(mut self) {
        self.stop_sending.cancel();
        while self.sender.join_next().await.is_some() {}
        let connected = self.status.borrow().connected;
        if connected {
            self.announce_offline().await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.client.disconnect()).await;
        } else {
            // Nothing to say goodbye over: stop retrying now.
            self.stop_link.cancel();
        }
        let link = &mut self.link;
        let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while link.join_next().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            tracing::warn!("the MQTT connection did not close in time");
            self.stop_link.cancel();
            self.link.abort_all();
        }
    }

    async fn announce_offline(&self) {
        let payload = match options::state_payload(false, self.boot, self.clock.now_ms()) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the offline state");
                return;
            }
        };
        let topic = self.device.topic(TopicKind::State);
        let published = self.client.publish(topic, QoS::AtLeastOnce, true, payload);
        if tokio::time::timeout(CLOSE_TIMEOUT, published)
            .await
            .is_err()
        {
            tracing::warn!("cannot publish the offline state in time");
        }
    }
}
