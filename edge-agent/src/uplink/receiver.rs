//! The receiving half of the uplink: applies the gateway's acks to the outbox (deleting what they
//! cover) and hands jobs and configuration to the downlink, then acknowledges each MQTT message,
//! only once it is handled, so that a crash before that gets it redelivered.

use std::sync::Arc;

use proto::{Ack, DeviceId, TopicKind, MAX_MESSAGE_BYTES};
use rumqttc::{AsyncClient, Publish};
use tokio::sync::{mpsc, watch};

use super::status::{LastAck, LinkStatus};
use crate::agent::now_ms;
use crate::downlink::Downlink;
use crate::outbox::{Outbox, OutboxError};

/// Everything the receiver needs.
pub(super) struct Receiver {
    pub client: AsyncClient,
    pub outbox: Outbox,
    pub device: DeviceId,
    pub downlink: Downlink,
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
            let handled = if publish.topic == ack_topic {
                self.on_ack(&publish.payload).await
            } else if publish.topic == down_topic {
                self.on_down(&publish.payload).await
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

    async fn on_ack(&self, payload: &[u8]) -> Handled {
        let ack: Ack = match proto::decode(payload, MAX_MESSAGE_BYTES) {
            Ok(ack) => ack,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed ack");
                return Handled::Ack;
            }
        };
        match self.outbox.ack(ack.thru).await {
            Ok(acked) => {
                tracing::debug!(thru = ack.thru, removed = acked.removed, "gateway ack");
                self.status.send_modify(|status| {
                    status.last_ack = Some(LastAck {
                        thru: ack.thru,
                        at: now_ms(),
                    });
                });
                Handled::Ack
            }
            Err(e @ OutboxError::AckAhead { .. }) => {
                // The gateway remembers an earlier life of this device id; deleting would lose
                // records. An operator must look: say so loudly, and keep everything.
                tracing::error!(error = %e, "the gateway acked records this device never sent");
                self.status
                    .send_modify(|status| status.last_error = Some(e.to_string()));
                Handled::Ack
            }
            Err(e) => {
                // Acks are cumulative: the next one repairs a lost one.
                tracing::error!(error = %e, "cannot apply an ack");
                Handled::Ack
            }
        }
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
