//! What an operator can tune about the outbox, with defaults sized for a small device.

use std::time::Duration;

/// The outbox's settings. `OutboxConfig::default()` suits a boiler hub or a cab box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// The most bytes of encoded records the outbox holds. Beyond it the oldest telemetry and
    /// health records are dropped (and reported in a gap record); critical records are refused
    /// rather than dropped. sled's files take a small multiple of this on disk.
    ///
    /// Default 16 MiB: about two months of one-minute boiler samples.
    pub budget_bytes: u64,
    /// sled's page cache. Default 4 MiB; sled's own default (1 GiB) is larger than these devices'
    /// memory.
    pub cache_bytes: u64,
    /// How long a sent record waits for the gateway's ack before it may be sent again.
    ///
    /// Default 30 s: several round trips over a slow 4G link, so that a batch still on its way is
    /// not sent twice.
    pub resend_after: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            budget_bytes: 16 * 1024 * 1024,
            cache_bytes: 4 * 1024 * 1024,
            resend_after: Duration::from_secs(30),
        }
    }
}
