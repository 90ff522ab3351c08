//! The receiving half of the uplink: hands the gateway's acks to the [`AckApplier`] (only they
//! delete records) and jobs and configuration to the downlink, and acknowledges each MQTT message.
//! Only what the gateway signed for its topic gets that far ([`Signing::open`]); anything else is
//! acknowledged to the broker, ignored and counted (`LinkStatus::unverified`).
//!
//! A job or a configuration is acknowledged only once it is on disk, so that a crash before that
//! gets it redelivered. An ack is acknowledged at once, before it is applied: acks are cumulative
//! and repeatable, so one lost in a crash is repaired by the next (or by the resend it causes).
//! Acknowledging at once matters: applying an ack waits for a flush, and a broker stops sending
//! (and answering pings) to a client that holds too many of its messages unacknowledged, while
//! rumqttc sends no acknowledgement while its own window of publishes is full. Waiting for each
//! flush, a fast drain could hold about a hundred acks and stall the connection for good.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use proto::clock::SharedClock;
use proto::{Ack, DeviceId, Refusal, TopicKind, MAX_MESSAGE_BYTES};
use rumqttc::{AsyncClient, Publish};
use tokio::sync::{mpsc, watch};

use super::signing::{Ignored, Signing};
use super::stall::StallDetector;
use super::status::{LastAck, LinkStatus};
use crate::downlink::Downlink;
use crate::outbox::{Outbox, OutboxError};

/// Refusals kept while the acks naming them cannot be applied: ten full batches' worth.
const MAX_PENDING_REFUSALS: usize = 10 * proto::MAX_BATCH_RECORDS;

/// Everything the receiver needs.
pub(super) struct Receiver {
    pub client: AsyncClient,
    pub device: DeviceId,
    pub downlink: Downlink,
    /// Where the acks go, to the [`AckApplier`].
    pub acks: mpsc::UnboundedSender<Ack>,
    /// Told when each ack arrives, for the round trip and stalls.
    pub stall: Arc<Mutex<StallDetector>>,
    /// Opens what the gateway signed.
    pub signing: Signing,
    /// Where ignored messages are counted.
    pub status: Arc<watch::Sender<LinkStatus>>,
}

/// What to do with the MQTT message once handled.
enum Handled {
    /// Acknowledge it: done, or never usable (malformed), so redelivery would not help.
    Ack,
    /// Leave it unacknowledged, so that the broker redelivers it after a reconnect.
    Retry,
}

impl Receiver {
    /// Runs until the connection task stops.
    pub(super) async fn run(self, mut incoming: mpsc::UnboundedReceiver<Publish>) {
        let ack_topic = self.device.topic(TopicKind::Ack);
        let down_topic = self.device.topic(TopicKind::Down);
        while let Some(publish) = incoming.recv().await {
            let is_ack = publish.topic == ack_topic;
            let handled = if is_ack || publish.topic == down_topic {
                match self.signing.open(&publish.topic, &publish.payload) {
                    Ok(payload) if is_ack => self.on_ack(&payload),
                    Ok(payload) => self.on_down(&payload).await,
                    Err(why) => {
                        self.ignore(&publish.topic, &why);
                        Handled::Ack
                    }
                }
            } else {
                tracing::warn!(topic = %publish.topic, "message on a topic not subscribed to");
                Handled::Ack
            };
            if let Handled::Ack = handled {
                if let Err(e) = self.client.ack(&publish).await {
                    tracing::debug!(error = %e, "cannot acknowledge a message");
                }
            }
        }
    }

    /// Counts a message the gateway did not sign, and says so: the first, then at every power of
    /// two, since whoever sends them can send them without end.
    fn ignore(&self, topic: &str, why: &Ignored) {
        let mut count = 0;
        self.status.send_modify(|status| {
            status.unverified += 1;
            count = status.unverified;
        });
        if count.is_power_of_two() {
            tracing::warn!(
                topic,
                reason = %why,
                ignored_so_far = count,
                "ignored a message the gateway did not sign (nothing acted on)"
            );
        }
    }

    fn on_ack(&self, payload: &[u8]) -> Handled {
        match proto::decode::<Ack>(payload, MAX_MESSAGE_BYTES) {
            Ok(ack) => {
                if let Ok(mut detector) = self.stall.lock() {
                    detector.on_ack(ack.thru, Instant::now());
                }
                if self.acks.send(ack).is_err() {
                    tracing::debug!("the ack applier has stopped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed ack"),
        }
        Handled::Ack
    }

    async fn on_down(&self, payload: &[u8]) -> Handled {
        match self.downlink.handle(payload).await {
            Ok(applied) => {
                tracing::info!(?applied, "downlink message");
                Handled::Ack
            }
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, "ignoring a downlink message");
                Handled::Ack
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a downlink message; it will be redelivered");
                Handled::Retry
            }
        }
    }
}

/// Applies the gateway's acks to the outbox, one at a time; acks that arrive meanwhile are
/// coalesced into the highest valid one, since each covers everything below it, carrying every
/// refusal any of them named (so that no refused record is deleted without its dead letter).
pub(super) struct AckApplier {
    pub outbox: Outbox,
    /// Dates the acks.
    pub clock: SharedClock,
    pub status: Arc<watch::Sender<LinkStatus>>,
}

impl AckApplier {
    /// Runs until the receiver stops.
    pub(super) async fn run(self, mut acks: mpsc::UnboundedReceiver<Ack>) {
        let mut waiting = Vec::new();
        let mut refused: Vec<Refusal> = Vec::new();
        while let Some(first) = acks.recv().await {
            let mut next = Some(first);
            while let Some(ack) = next {
                waiting.push(ack.thru);
                refused.extend(ack.rej);
                next = acks.try_recv().ok();
            }
            let (valid, ahead) = coalesce(&waiting, self.next_seq());
            waiting.clear();
            for thru in valid.into_iter().chain(ahead) {
                self.apply(thru, &refused).await;
            }
            // A refusal whose ack could not be applied (storage down) is kept for the next ack:
            // the gateway names each refusal once, and the next ack would delete the record.
            let acked_through = self.outbox.stats().map_or(0, |stats| stats.acked_through);
            refused.retain(|refusal| refusal.seq > acked_through);
            if refused.len() > MAX_PENDING_REFUSALS {
                tracing::warn!(
                    dropped = refused.len() - MAX_PENDING_REFUSALS,
                    "too many refusals waiting for an ack to apply; the gateway names them again \
                     when their records are resent"
                );
                refused.drain(..refused.len() - MAX_PENDING_REFUSALS);
            }
        }
    }

    fn next_seq(&self) -> u64 {
        // Without stats, every ack counts as valid and the outbox judges each.
        self.outbox.stats().map_or(u64::MAX, |stats| stats.next_seq)
    }

    async fn apply(&self, thru: u64, refused: &[Refusal]) {
        match self
            .outbox
            .ack_refusing(thru, refused, self.clock.now_ms())
            .await
        {
            Ok(acked) => {
                tracing::debug!(
                    thru,
                    removed = acked.removed,
                    dead_lettered = acked.dead_lettered,
                    "gateway ack"
                );
                self.status.send_modify(|status| {
                    status.last_ack = Some(LastAck {
                        thru,
                        at: self.clock.now_ms(),
                    });
                });
            }
            Err(e @ OutboxError::AckAhead { .. }) => {
                // The gateway remembers an earlier life of this device id; deleting would lose
                // records. An operator must look: say so loudly, and keep everything.
                tracing::error!(error = %e, "the gateway acked records this device never sent");
                self.status
                    .send_modify(|status| status.last_error = Some(e.to_string()));
            }
            // Logged by the outbox once per outage; the gateway's next ack repairs this one.
            Err(OutboxError::StorageDown(_)) => {}
            Err(e) => {
                // Acks are cumulative: the next one repairs a lost one.
                tracing::error!(error = %e, "cannot apply an ack");
            }
        }
    }
}

/// Of the watermarks `waiting`, the highest below `next_seq` (the only one worth applying), and
/// the highest at or beyond it (which the outbox refuses, loudly); each `None` if there is none.
/// Keeping them apart stops one bogus ack from hiding the good ones that follow it.
fn coalesce(waiting: &[u64], next_seq: u64) -> (Option<u64>, Option<u64>) {
    let valid = waiting
        .iter()
        .copied()
        .filter(|thru| *thru < next_seq)
        .max();
    let ahead = waiting
        .iter()
        .copied()
        .filter(|thru| *thru >= next_seq)
        .max();
    (valid, ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_keeps_the_highest_valid_ack_apart_from_bogus_ones() {
        assert_eq!(coalesce(&[3, 9, 5], 20), (Some(9), None));
        assert_eq!(coalesce(&[3, 900, 5], 20), (Some(5), Some(900)));
        assert_eq!(coalesce(&[20, 21], 20), (None, Some(21)));
        assert_eq!(coalesce(&[], 20), (None, None));
    }
}
