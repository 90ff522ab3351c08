//! The sending half of the uplink: takes batches from the outbox and publishes them (QoS 1) while
//! the link is up, lingering over part-filled batches and resending what the gateway has not acked
//! in time. It never deletes anything: only the gateway's ack does (the receiver).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::clock::SharedClock;
use proto::{DeviceId, TopicKind};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::batcher::{self, Batching, Decision, Linger};
use super::signing::Signing;
use super::stall::StallDetector;
use super::status::LinkStatus;
use crate::outbox::{Outbox, OutboxError};
use crate::stamp::Stamp;

/// How often the sender looks for batches whose ack is overdue (the outbox decides which are).
const RESEND_CHECK: Duration = Duration::from_secs(1);

/// Everything the sender needs.
pub(super) struct Sender {
    pub client: AsyncClient,
    pub outbox: Outbox,
    pub device: DeviceId,
    /// Boot and monotonic time, stamped on each envelope as it is sent.
    pub stamp: Stamp,
    /// Dates each envelope as it is sent.
    pub clock: SharedClock,
    pub batching: watch::Receiver<Batching>,
    pub wake: Arc<Notify>,
    pub link: watch::Receiver<LinkStatus>,
    /// The gateway's ack timing: told of each batch published.
    pub stall: Arc<Mutex<StallDetector>>,
    /// Set at shutdown: send without lingering.
    pub hurry: watch::Receiver<bool>,
    /// Signs each batch.
    pub signing: Signing,
    pub stop: CancellationToken,
}

/// Why a round of sending ended early.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("the MQTT client has stopped")]
    ClientGone,
}

impl Sender {
    /// Runs until `stop` is cancelled.
    pub(super) async fn run(mut self) {
        let mut linger = Linger::default();
        // The connection the outbox's in-flight marks belong to.
        let mut connection = 0;
        let mut wait_until: Option<Instant> = None;
        let mut resend_check = tokio::time::interval(RESEND_CHECK);
        resend_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let lingering = async {
                match wait_until {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let mut resend_due = false;
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = resend_check.tick() => resend_due = true,
                changed = self.link.changed() => if changed.is_err() { break },
                changed = self.hurry.changed() => if changed.is_err() { break },
                _ = lingering => {}
            }
            wait_until = None;
            let (connected, connections) = {
                let link = self.link.borrow();
                (link.connected, link.connections)
            };
            if !connected {
                continue;
            }
            if connections != connection {
                // A new connection: whatever was sent on the old one may be lost, so it all goes
                // again now, not after the resend timeout. Done here rather than by the
                // connection task, so that no batch published across the reconnect is marked
                // in flight after the reset.
                connection = connections;
                if let Err(e) = self.outbox.reset_in_flight() {
                    tracing::error!(error = %e, "cannot reset the outbox's in-flight records");
                }
                if let Ok(mut detector) = self.stall.lock() {
                    detector.reset();
                }
            }
            match self.decide(&mut linger, resend_due) {
                Ok(Decision::Send) => {}
                Ok(Decision::WaitUntil(at)) => {
                    wait_until = Some(at);
                    continue;
                }
                Ok(Decision::Idle) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    continue;
                }
            }
            match self.send_all().await {
                // The outbox logs its storage outages once; sending resumes when it recovers.
                Ok(()) | Err(SendError::Outbox(OutboxError::StorageDown(_))) => {}
                Err(e) => tracing::error!(error = %e, "sending stopped"),
            }
        }
    }

    /// Whether to send now. Overdue records are offered only by `next_batch`, so when resends may
    /// be due and nothing new waits, a round of sending is how to find out.
    fn decide(&self, linger: &mut Linger, resend_due: bool) -> Result<Decision, OutboxError> {
        let stats = self.outbox.stats()?;
        let unsent = stats.depth.saturating_sub(stats.in_flight);
        let batching = *self.batching.borrow();
        let hurry = *self.hurry.borrow();
        let decision = linger.decide(Instant::now(), unsent, &batching, hurry);
        if decision == Decision::Idle && resend_due && stats.in_flight > 0 {
            return Ok(Decision::Send);
        }
        Ok(decision)
    }

    /// Publishes batches until the outbox has none to offer, the link drops or sending stops.
    /// `publish` waits while MQTT's in-flight window is full, which paces this loop to the link.
    async fn send_all(&mut self) -> Result<(), SendError> {
        let topic = self.device.topic(TopicKind::Up);
        loop {
            if self.stop.is_cancelled() || !self.link.borrow().connected {
                return Ok(());
            }
            let limits = self.batching.borrow().limits();
            let batch = self.outbox.next_batch(Instant::now(), limits)?;
            if batch.is_empty() {
                return Ok(());
            }
            let sending = Some((&self.stamp, Instant::now()));
            let split =
                batcher::encode_within_limit(&self.device, self.clock.now_ms(), sending, batch);
            if !split.unsendable.is_empty() {
                // The outbox validated each record, so this is a bug; marking them sent retries
                // them after the resend timeout instead of in a tight loop.
                let seqs: Vec<u64> = split.unsendable.iter().map(|(seq, _)| *seq).collect();
                for (seq, error) in &split.unsendable {
                    tracing::error!(seq, %error, "cannot encode a record");
                }
                self.outbox.mark_sent(&seqs, Instant::now())?;
            }
            for message in split.messages {
                let payload = match self.signing.seal(&topic, message.payload) {
                    Ok(payload) => payload,
                    Err(error) => {
                        // The envelope leaves room for its signature, so this is a bug; as for
                        // an unencodable record, retried after the resend timeout.
                        tracing::error!(%error, "cannot sign a batch");
                        self.outbox.mark_sent(&message.seqs, Instant::now())?;
                        continue;
                    }
                };
                tokio::select! {
                    _ = self.stop.cancelled() => return Ok(()),
                    published = self.client.publish(
                        topic.as_str(), QoS::AtLeastOnce, false, payload,
                    ) => {
                        published.map_err(|_| SendError::ClientGone)?;
                    }
                }
                let now = Instant::now();
                self.outbox.mark_sent(&message.seqs, now)?;
                if let (Some(&last), Ok(mut detector)) = (message.seqs.last(), self.stall.lock()) {
                    detector.on_published(last, now);
                }
                self.note_published(&message.seqs);
            }
        }
    }

    fn note_published(&self, seqs: &[u64]) {
        tracing::debug!(
            records = seqs.len(),
            first = seqs.first(),
            last = seqs.last(),
            "batch published"
        );
    }
}
