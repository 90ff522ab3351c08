//! When a device's record happened, by the gateway's clock, and how the gateway worked it out.
//! Pure functions over the batch's and the record's clock readings; the store keeps the anchors
//! and the result beside the device's own time.
//!
//! A device's wall clock can be hours wrong and can jump (set by hand, corrected by NTP after a
//! spell offline), but its monotonic clock counts steadily from boot. Each envelope says which
//! boot sent it and its monotonic reading then (`boot`, `mono`), and each record the same at the
//! moment it was made. An envelope received at gateway time `r` with reading `mono` says the
//! boot began no later than `r − mono` (the link only ever adds delay), so the boot's **anchor**
//! is the least such value over its envelopes, and a record of that boot happened at
//! `anchor + record.mono`, whatever the wall clock said. Without an anchor for the record's boot
//! (a boot that never sent an envelope, or a device that sends no monotonic readings) the
//! batch's offset `received − sent` corrects the device's time when it exceeds the allowed skew,
//! as before; and a record from another boot than the batch's, with no anchor, cannot be placed
//! (its clock may have been set since): it keeps that guess, flagged as uncorrected.

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

/// How a record's time was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBasis {
    /// The boot's anchor plus the record's monotonic reading: right whatever the wall clock did.
    Monotonic,
    /// The device's time plus the batch's clock offset, which exceeded the allowed skew: right if
    /// the device's clock had the same error when it made the record as when it sent the batch.
    BatchOffset,
    /// The device's own time, its clock within the allowed skew when it sent the batch.
    DeviceClock,
    /// Not placed: the record comes from a boot the gateway holds no anchor for, other than the
    /// batch's, so nothing relates its clock to the gateway's. `at` is the batch-offset guess.
    Uncorrected,
}

/// A record's time as the gateway reckons it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedTime {
    /// When it happened (gateway clock, UTC ms).
    pub at: TimestampMs,
    /// How that was worked out.
    pub basis: TimeBasis,
}

/// A batch's clock readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchClock {
    /// When the gateway received it.
    pub received: TimestampMs,
    /// When the device says it sent it (device wall clock).
    pub sent: TimestampMs,
    /// The device's boot that sent it.
    pub boot: Option<u64>,
    /// The device's monotonic reading (ms since that boot) when it sent it.
    pub mono: Option<u64>,
}

/// A record's clock readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordClock {
    /// The device's wall-clock time when it made the record.
    pub ts: TimestampMs,
    /// The boot it was made in.
    pub boot: Option<u64>,
    /// The monotonic reading (ms since that boot) when it was made.
    pub mono: Option<u64>,
}

/// What one envelope says about its boot's anchor: `received − mono`, if it has a reading.
pub fn anchor_estimate(batch: &BatchClock) -> Option<TimestampMs> {
    let mono = i64::try_from(batch.mono?).ok()?;
    batch.received.checked_sub(mono)
}

/// The better of two anchor estimates: the earlier, since delay only ever makes them late.
pub fn better_anchor(known: Option<TimestampMs>, new: Option<TimestampMs>) -> Option<TimestampMs> {
    match (known, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Places a record: by its boot's `anchor` when there is one and the record has a monotonic
/// reading, else by the batch's offset beyond `max_skew_ms` (see the module's rule).
pub fn place(
    record: &RecordClock,
    batch: &BatchClock,
    anchor: Option<TimestampMs>,
    max_skew_ms: i64,
) -> PlacedTime {
    let by_anchor = anchor.zip(record.mono).and_then(|(anchor, mono)| {
        let mono = i64::try_from(mono).ok()?;
        anchor.checked_add(mono)
    });
    if let Some(at) = by_anchor {
        return PlacedTime {
            at,
            basis: TimeBasis::Monotonic,
        };
    }
    let offset = batch.received.saturating_sub(batch.sent);
    let (at, basis) = if offset.saturating_abs() > max_skew_ms {
        (record.ts.saturating_add(offset), TimeBasis::BatchOffset)
    } else {
        (record.ts, TimeBasis::DeviceClock)
    };
    let other_boot = matches!((record.boot, batch.boot), (Some(r), Some(b)) if r != b);
    PlacedTime {
        at,
        basis: if other_boot {
            TimeBasis::Uncorrected
        } else {
            basis
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 60 * 60 * 1000;
    const SKEW: i64 = 5 * 60 * 1000;
    /// Gateway time of the boot's start in these tests.
    const BOOT_AT: i64 = 1_795_000_000_000;

    fn batch(received: i64, sent: i64, boot: Option<u64>, mono: Option<u64>) -> BatchClock {
        BatchClock {
            received,
            sent,
            boot,
            mono,
        }
    }

    #[test]
    fn the_anchor_is_the_least_delayed_envelope() {
        // Sent 10 s and 20 s after boot, delayed 3 s and 1 s by the link.
        let slow = anchor_estimate(&batch(BOOT_AT + 13_000, 0, Some(1), Some(10_000)));
        let fast = anchor_estimate(&batch(BOOT_AT + 21_000, 0, Some(1), Some(20_000)));
        assert_eq!(better_anchor(slow, fast), Some(BOOT_AT + 1_000));
        assert_eq!(better_anchor(None, fast), fast);
        assert_eq!(anchor_estimate(&batch(BOOT_AT, 0, Some(1), None)), None);
        assert_eq!(
            anchor_estimate(&batch(i64::MIN, 0, Some(1), Some(u64::MAX))),
            None,
            "absurd readings give no anchor rather than overflow"
        );
    }

    #[test]
    fn an_anchored_record_ignores_its_wall_clock() {
        // Made 2 h into the boot on a clock 3 h slow; sent after NTP fixed the clock.
        let record = RecordClock {
            ts: BOOT_AT + 2 * HOUR - 3 * HOUR,
            boot: Some(1),
            mono: Some(2 * 3_600_000),
        };
        let sending = batch(
            BOOT_AT + 5 * HOUR,
            BOOT_AT + 5 * HOUR,
            Some(1),
            Some(5 * 3_600_000),
        );
        let placed = place(&record, &sending, anchor_estimate(&sending), SKEW);
        assert_eq!(placed.at, BOOT_AT + 2 * HOUR);
        assert_eq!(placed.basis, TimeBasis::Monotonic);
    }

    #[test]
    fn without_an_anchor_the_batch_offset_decides_and_says_so() {
        let old_device = RecordClock {
            ts: BOOT_AT - 3 * HOUR,
            boot: None,
            mono: None,
        };
        let slow = batch(BOOT_AT, BOOT_AT - 3 * HOUR, None, None);
        assert_eq!(
            place(&old_device, &slow, None, SKEW),
            PlacedTime {
                at: BOOT_AT,
                basis: TimeBasis::BatchOffset
            }
        );
        let close = batch(BOOT_AT, BOOT_AT - 1_000, None, None);
        assert_eq!(
            place(&old_device, &close, None, SKEW).basis,
            TimeBasis::DeviceClock
        );
    }

    #[test]
    fn a_record_from_an_unanchored_earlier_boot_is_flagged() {
        let record = RecordClock {
            ts: BOOT_AT - 3 * HOUR,
            boot: Some(6),
            mono: Some(60_000),
        };
        let sending = batch(BOOT_AT, BOOT_AT, Some(7), Some(10_000));
        let placed = place(&record, &sending, None, SKEW);
        assert_eq!(placed.basis, TimeBasis::Uncorrected);
        assert_eq!(placed.at, record.ts, "the device's time is the only guess");
        let absurd = RecordClock {
            mono: Some(u64::MAX),
            ..record
        };
        assert_eq!(
            place(&absurd, &sending, Some(i64::MAX - 1), SKEW).basis,
            TimeBasis::Uncorrected,
            "an overflowing reading is not placed"
        );
    }
}
