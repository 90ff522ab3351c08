//! Counters of what a source read, skipped and produced, shared between the source's task and
//! whoever reports on it (the agent's health records and metrics).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
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
    summary_lines: AtomicU64,
    summary_unread: AtomicU64,
    polls_sent: AtomicU64,
    /// A [`Link`] as its number; 0 until a connection-based source sets it.
    link: AtomicU8,
    /// The OTGW prints `PS=1` summary lines instead of frames.
    summary_mode: AtomicBool,
}

/// Whether a source's connection (a serial port, a TCP connection) is up. Sources without one
/// (a file, stdin, a channel) stay [`Link::Unknown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// No connection to speak of, or none tried yet.
    #[default]
    Unknown,
    /// Connected or open, and being read.
    Up,
    /// Lost or not yet (re)opened: the source is waiting to try again.
    Down,
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
    SummaryLine,
    SummaryUnread,
    PollSent,
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
    /// OTGW `PS=1` summary lines: the gateway is in summary mode and prints no frames. Each is
    /// read for the values it holds.
    pub summary_lines: u64,
    /// Summary lines that could not be read (a field count no firmware prints, a garbled status).
    pub summary_unread: u64,
    /// `PM=` commands sent, asking the OTGW to poll an id the thermostat does not.
    pub polls_sent: u64,
    /// Whether the connection (serial port or TCP) is up.
    pub link: Link,
    /// The OTGW was last seen in `PS=1` summary mode (cleared by the next frame).
    pub summary_mode: bool,
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
            Counter::SummaryLine => &c.summary_lines,
            Counter::SummaryUnread => &c.summary_unread,
            Counter::PollSent => &c.polls_sent,
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
            summary_lines: get(&c.summary_lines),
            summary_unread: get(&c.summary_unread),
            polls_sent: get(&c.polls_sent),
            link: self.link(),
            summary_mode: self.summary_mode(),
        }
    }

    /// Records whether the connection is up.
    pub(crate) fn set_link(&self, link: Link) {
        let code = match link {
            Link::Unknown => 0,
            Link::Up => 1,
            Link::Down => 2,
        };
        self.0.link.store(code, Ordering::Relaxed);
    }

    /// Whether the connection is up.
    pub fn link(&self) -> Link {
        match self.0.link.load(Ordering::Relaxed) {
            1 => Link::Up,
            2 => Link::Down,
            _ => Link::Unknown,
        }
    }

    /// Records whether the OTGW is in `PS=1` summary mode; returns whether it was before.
    pub(crate) fn set_summary_mode(&self, on: bool) -> bool {
        self.0.summary_mode.swap(on, Ordering::Relaxed)
    }

    /// Whether the OTGW was last seen in `PS=1` summary mode.
    pub fn summary_mode(&self) -> bool {
        self.0.summary_mode.load(Ordering::Relaxed)
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
