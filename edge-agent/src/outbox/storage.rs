//! Whether the outbox's storage can take writes, and what to say when it cannot. No I/O.
//!
//! sled 0.34 keeps the first I/O error of its write-out as a "global error" and returns it from
//! every later write and flush until the database is opened again: a disk that filled up once
//! would refuse every record for the life of the process, even after space returns. So the outbox
//! treats any storage error as *down*: it refuses writes at once with the reason (a full disk is
//! HTTP 507 to the app), and its flusher thread reopens the database once there is room again
//! (see the parent module). [`StorageHealth`] is that state machine, with the counters for the
//! status API and the log's rate-limited summary while down.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use proto::TimestampMs;

/// How often, at most, the log says how many records a down storage has refused.
pub(super) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Whether the outbox can store records now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageState {
    /// Writes are taken.
    Ok,
    /// Writes are refused until the outbox has reopened its database.
    Down(StorageFault),
}

/// Why the outbox's storage is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFault {
    /// The file system is full (ENOSPC or a quota): it recovers once space is freed.
    pub disk_full: bool,
    /// The error as the operating system or sled gave it.
    pub error: String,
    /// When the storage went down (device clock, UTC ms).
    pub since: TimestampMs,
}

impl fmt::Display for StorageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disk_full {
            write!(
                f,
                "the device's disk is full: the record was not stored; the agent stores again by \
                 itself once space is freed ({})",
                self.error
            )
        } else {
            write!(
                f,
                "the device's storage failed: the record was not stored; the agent is reopening \
                 it ({})",
                self.error
            )
        }
    }
}

impl StorageFault {
    /// The fault an I/O error means, noticed at `now`.
    pub(super) fn of(error: &io::Error, now: TimestampMs) -> Self {
        Self {
            disk_full: is_disk_full(error),
            error: error.to_string(),
            since: now,
        }
    }
}

/// Whether `error` says the file system is out of space (or of quota). sled clones its global
/// error keeping only the kind, so the kind is what counts; the raw code covers errors that
/// reach here unwrapped.
pub(super) fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// Linux's "no space left on device".
const ENOSPC: i32 = 28;
/// Linux's "disk quota exceeded".
const EDQUOT: i32 = 122;

/// The storage's state and its history since the outbox opened.
#[derive(Debug)]
pub(super) struct StorageHealth {
    state: StorageState,
    /// Times the storage went down.
    faults: u64,
    /// Times it came back.
    recoveries: u64,
    /// Records refused since the last summary in the log.
    refused_unreported: u64,
    /// Records refused during the current outage.
    refused_this_outage: u64,
    /// When the last summary was logged (or the outage began).
    last_summary: Option<Instant>,
}

/// What changed, for the caller to log once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Transition {
    /// The storage went down.
    WentDown(StorageFault),
    /// The storage came back after refusing this many records.
    Recovered {
        /// Records refused while it was down.
        refused: u64,
    },
}

impl StorageHealth {
    /// Up, with no history.
    pub(super) fn new() -> Self {
        Self {
            state: StorageState::Ok,
            faults: 0,
            recoveries: 0,
            refused_unreported: 0,
            refused_this_outage: 0,
            last_summary: None,
        }
    }

    /// The current state.
    pub(super) fn state(&self) -> &StorageState {
        &self.state
    }

    /// The fault, while down.
    pub(super) fn fault(&self) -> Option<&StorageFault> {
        match &self.state {
            StorageState::Ok => None,
            StorageState::Down(fault) => Some(fault),
        }
    }

    /// Times the storage went down, and came back.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.faults, self.recoveries)
    }

    /// A write failed with `fault` at `now`. The first failure of an outage is the transition;
    /// later ones (the writes already under way) change nothing.
    pub(super) fn fail(&mut self, fault: StorageFault, now: Instant) -> Option<Transition> {
        if self.fault().is_some() {
            return None;
        }
        self.faults += 1;
        self.refused_this_outage = 0;
        self.refused_unreported = 0;
        self.last_summary = Some(now);
        self.state = StorageState::Down(fault.clone());
        Some(Transition::WentDown(fault))
    }

    /// A write was refused because the storage is down; returns the fault to report.
    pub(super) fn refuse(&mut self) -> Option<StorageFault> {
        let fault = self.fault()?.clone();
        self.refused_this_outage += 1;
        self.refused_unreported += 1;
        Some(fault)
    }

    /// Records refused since the last summary, if a summary is due at `now` (one per
    /// [`SUMMARY_EVERY`] while down, and only if something was refused).
    pub(super) fn summary_due(&mut self, now: Instant) -> Option<u64> {
        self.fault()?;
        let last = self.last_summary.get_or_insert(now);
        if now.saturating_duration_since(*last) < SUMMARY_EVERY || self.refused_unreported == 0 {
            return None;
        }
        *last = now;
        Some(std::mem::take(&mut self.refused_unreported))
    }

    /// The database reopened: writes are taken again.
    pub(super) fn recover(&mut self) -> Option<Transition> {
        self.fault()?;
        self.state = StorageState::Ok;
        self.recoveries += 1;
        self.last_summary = None;
        self.refused_unreported = 0;
        Some(Transition::Recovered {
            refused: std::mem::take(&mut self.refused_this_outage),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(since: TimestampMs) -> StorageFault {
        StorageFault::of(&io::Error::from_raw_os_error(ENOSPC), since)
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        assert!(full(0).disk_full);
        // sled's clone of its global error keeps the kind only.
        let cloned = io::Error::new(io::ErrorKind::StorageFull, "Os { code: 28 }");
        assert!(is_disk_full(&cloned));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(5)), "EIO");
        assert!(full(0).to_string().starts_with("the device's disk is full"));
        let eio = StorageFault::of(&io::Error::from_raw_os_error(5), 0);
        assert!(eio.to_string().starts_with("the device's storage failed"));
    }

    #[test]
    fn an_outage_is_one_transition_down_and_one_up() {
        let start = Instant::now();
        let mut health = StorageHealth::new();
        assert_eq!(health.refuse(), None, "nothing is refused while up");
        assert_eq!(
            health.fail(full(5), start),
            Some(Transition::WentDown(full(5)))
        );
        assert_eq!(health.fail(full(6), start), None, "already down");
        assert_eq!(health.refuse(), Some(full(5)));
        assert_eq!(health.refuse(), Some(full(5)));
        assert_eq!(health.recover(), Some(Transition::Recovered { refused: 2 }));
        assert_eq!(health.recover(), None);
        assert_eq!(health.state(), &StorageState::Ok);
        assert_eq!(health.counts(), (1, 1));
    }

    #[test]
    fn refusals_are_summarised_once_a_minute_while_down() {
        let start = Instant::now();
        let mut health = StorageHealth::new();
        health.fail(full(0), start);
        for _ in 0..500 {
            health.refuse();
        }
        assert_eq!(health.summary_due(start + Duration::from_secs(10)), None);
        assert_eq!(health.summary_due(start + SUMMARY_EVERY), Some(500));
        assert_eq!(
            health.summary_due(start + SUMMARY_EVERY * 2),
            None,
            "nothing refused since"
        );
        health.refuse();
        assert_eq!(health.summary_due(start + SUMMARY_EVERY * 2), Some(1));
    }
}
