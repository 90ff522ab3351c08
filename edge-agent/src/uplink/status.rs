//! What the link is doing, for the local API's status, the shutdown drain and the sender: shared
//! through a `watch` channel that the connection and the ack handling update.

use proto::TimestampMs;
use serde::Serialize;

/// The link's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// Connected, subscribed and announced online: batches may go.
    pub connected: bool,
    /// Connections made since the agent started; a change tells the sender a reconnect happened.
    pub connections: u64,
    /// Connections lost (or attempts failed) since the agent started.
    pub drops: u64,
    /// When `connected` last changed (device clock, UTC ms).
    pub since: Option<TimestampMs>,
    /// Why the last connection attempt or connection failed, if one did.
    pub last_error: Option<String>,
    /// The gateway's latest ack.
    pub last_ack: Option<LastAck>,
    /// The last connection was dropped because the gateway's acks stopped coming, and no new one
    /// has been made since: the link is stalled rather than merely connecting.
    pub stalled: bool,
    /// Connections dropped because acks stopped coming while batches were in flight.
    pub stalls: u64,
    /// The smoothed round trip from publishing a batch to its ack, in milliseconds.
    pub ack_rtt_ms: Option<u64>,
    /// How long a batch may wait for its ack before the link counts as stalled, in milliseconds.
    pub stall_after_ms: u64,
    /// Acks and downlink messages ignored since the agent started because the gateway did not
    /// sign them for their topic (unsigned, badly signed, or signed for another topic).
    pub unverified: u64,
}

impl LinkStatus {
    /// `connected`, `stalled` or `connecting`, for people reading the status.
    pub fn state(&self) -> &'static str {
        if self.connected {
            "connected"
        } else if self.stalled {
            "stalled"
        } else {
            "connecting"
        }
    }
}

/// The gateway's latest ack, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LastAck {
    /// "Stored through this sequence number."
    pub thru: u64,
    /// When it arrived (device clock, UTC ms).
    pub at: TimestampMs,
}
