//! The one way records enter the agent: into the outbox, durably, then a nudge to the uplink's
//! sender so that it need not poll. The API, the sensors and the health reporter share it.

use std::sync::Arc;

use proto::clock::SharedClock;
use proto::{RecordBody, TimestampMs};
use tokio::sync::Notify;

use crate::outbox::{Accepted, IdempotencyKey, Once, Outbox, OutboxError};

/// Accepts records into the outbox and wakes the sender; clones share both.
#[derive(Debug, Clone)]
pub struct Intake {
    outbox: Outbox,
    wake: Arc<Notify>,
    clock: SharedClock,
}

impl Intake {
    /// An intake into `outbox`, whose records are stamped by `clock`.
    pub fn new(outbox: Outbox, clock: SharedClock) -> Self {
        Self {
            outbox,
            wake: Arc::new(Notify::new()),
            clock,
        }
    }

    /// The agent's clock: every timestamp the agent makes. Device clocks can be wrong; the
    /// gateway records its own time beside it.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Now, by the agent's clock.
    pub fn now_ms(&self) -> TimestampMs {
        self.clock.now_ms()
    }

    /// Stores the record durably (see [`Outbox::accept`]) and tells the sender.
    pub async fn accept(&self, ts: TimestampMs, body: RecordBody) -> Result<Accepted, OutboxError> {
        let accepted = self.outbox.accept(ts, body).await?;
        // A permit is kept if the sender is busy, so no record is overlooked.
        self.wake.notify_one();
        Ok(accepted)
    }

    /// Stores the record once per idempotency key (see [`Outbox::accept_once`]) and tells the
    /// sender if it is new.
    pub async fn accept_once(
        &self,
        key: &IdempotencyKey,
        ts: TimestampMs,
        body: RecordBody,
    ) -> Result<Once, OutboxError> {
        let once = self.outbox.accept_once(key, ts, body).await?;
        if let Once::Stored(_) = once {
            self.wake.notify_one();
        }
        Ok(once)
    }

    /// The outbox, for its stats.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// What the sender waits on.
    pub(super) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }
}
