//! Counters of what a source read, skipped and produced, shared between the source's task and
//! whoever reports on it (the agent's health records and metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::otgw::Skip;

/// A cheap, clonable handle on one source's counters; every clone sees the same numbers.
#[derive(Debug, Clone, Default)]
pub struct SourceStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    lines: AtomicU64,
    lines_rejected: AtomicU64,
    lines_ignored: AtomicU64,
    gateway_errors: AtomicU64,
    frames_decoded: AtomicU64,
    skip_parity: AtomicU64,
    skip_message_type: AtomicU64,
    skip_not_boiler: AtomicU64,
    skip_data_invalid: AtomicU64,
    skip_unsupported: AtomicU64,
    skip_not_read_ack: AtomicU64,
    skip_unused_id: AtomicU64,
    skip_out_of_range: AtomicU64,
    readings: AtomicU64,
    readings_invalid: AtomicU64,
    samples: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    disconnects: AtomicU64,
}

/// One counter, for [`SourceStats::bump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Line,
    LineRejected,
    LineIgnored,
    GatewayError,
    FrameDecoded,
    Skipped(Skip),
    Reading,
    ReadingInvalid,
    Sample,
    Connect,
    ConnectFailure,
    Disconnect,
}

/// The counters at one moment. All count from the source's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Lines read (JSON and OTGW sources).
    pub lines: u64,
    /// JSON lines refused: not JSON, an unknown field, a value proto refuses, too long.
    pub lines_rejected: u64,
    /// Lines that carry nothing and are skipped without complaint: blank lines, and OTGW lines
    /// that are not frames (command responses, the banner, noise).
    pub lines_ignored: u64,
    /// `Error NN` lines from an OTGW: frames it could not receive from the OpenTherm wire.
    pub gateway_errors: u64,
    /// OTGW frames that became readings.
    pub frames_decoded: u64,
    /// OTGW frames skipped, by reason.
    pub frames_skipped: FrameSkips,
    /// Readings accepted into the sampler.
    pub readings: u64,
    /// Readings refused by proto's validation (only a channel source can produce them; the other
    /// sources check first).
    pub readings_invalid: u64,
    /// Telemetry samples handed to the sink.
    pub samples: u64,
    /// TCP connections made (an OTGW over TCP).
    pub connects: u64,
    /// TCP connection attempts that failed or timed out.
    pub connect_failures: u64,
    /// TCP connections lost: closed, failed or idle too long.
    pub disconnects: u64,
}

/// OTGW frames skipped, one counter per [`Skip`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameSkips {
    /// [`Skip::Parity`].
    pub parity: u64,
    /// [`Skip::MessageType`].
    pub message_type: u64,
    /// [`Skip::NotBoiler`].
    pub not_boiler: u64,
    /// [`Skip::DataInvalid`].
    pub data_invalid: u64,
    /// [`Skip::Unsupported`].
    pub unsupported: u64,
    /// [`Skip::NotReadAck`].
    pub not_read_ack: u64,
    /// [`Skip::UnusedId`].
    pub unused_id: u64,
    /// [`Skip::OutOfRange`].
    pub out_of_range: u64,
}

impl SourceStats {
    /// Adds one to a counter.
    pub(crate) fn bump(&self, counter: Counter) {
        let c = &self.0;
        let cell = match counter {
            Counter::Line => &c.lines,
            Counter::LineRejected => &c.lines_rejected,
            Counter::LineIgnored => &c.lines_ignored,
            Counter::GatewayError => &c.gateway_errors,
            Counter::FrameDecoded => &c.frames_decoded,
            Counter::Skipped(Skip::Parity) => &c.skip_parity,
            Counter::Skipped(Skip::MessageType) => &c.skip_message_type,
            Counter::Skipped(Skip::NotBoiler) => &c.skip_not_boiler,
            Counter::Skipped(Skip::DataInvalid) => &c.skip_data_invalid,
            Counter::Skipped(Skip::Unsupported) => &c.skip_unsupported,
            Counter::Skipped(Skip::NotReadAck) => &c.skip_not_read_ack,
            Counter::Skipped(Skip::UnusedId) => &c.skip_unused_id,
            Counter::Skipped(Skip::OutOfRange) => &c.skip_out_of_range,
            Counter::Reading => &c.readings,
            Counter::ReadingInvalid => &c.readings_invalid,
            Counter::Sample => &c.samples,
            Counter::Connect => &c.connects,
            Counter::ConnectFailure => &c.connect_failures,
            Counter::Disconnect => &c.disconnects,
        };
        // Counters are independent; no ordering between them is promised or needed.
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        StatsSnapshot {
            lines: get(&c.lines),
            lines_rejected: get(&c.lines_rejected),
            lines_ignored: get(&c.lines_ignored),
            gateway_errors: get(&c.gateway_errors),
            frames_decoded: get(&c.frames_decoded),
            frames_skipped: FrameSkips {
                parity: get(&c.skip_parity),
                message_type: get(&c.skip_message_type),
                not_boiler: get(&c.skip_not_boiler),
                data_invalid: get(&c.skip_data_invalid),
                unsupported: get(&c.skip_unsupported),
                not_read_ack: get(&c.skip_not_read_ack),
                unused_id: get(&c.skip_unused_id),
                out_of_range: get(&c.skip_out_of_range),
            },
            readings: get(&c.readings),
            readings_invalid: get(&c.readings_invalid),
            samples: get(&c.samples),
            connects: get(&c.connects),
            connect_failures: get(&c.connect_failures),
            disconnects: get(&c.disconnects),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters() {
        let stats = SourceStats::default();
        let other = stats.clone();
        stats.bump(Counter::Line);
        other.bump(Counter::Skipped(Skip::OutOfRange));
        other.bump(Counter::Skipped(Skip::OutOfRange));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.lines, 1);
        assert_eq!(snapshot.frames_skipped.out_of_range, 2);
        assert_eq!(snapshot.frames_skipped.parity, 0);
    }
}
