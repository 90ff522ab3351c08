//! The keys of the gateway's trees. Every binary part (a sequence, a time, a boot counter) has a
//! fixed width, and every variable part (a device id) a one-byte length before it, so that a key
//! reads back the same way whatever bytes its numbers contain: no separator is ever searched for.
//!
//! `ingest` tree (one tree, so one sled batch updates records, progress and registry atomically):
//!
//! | key | value |
//! | --- | --- |
//! | `S` len device first(8) last(8) | a run of [`crate::storage::StoredRecord`]s, sequences `first..=last` |
//! | `E` received(8) len device seq(8) | a copy of a crew record, in arrival order |
//! | `A` len device boot(8) | the boot's clock anchor (gateway ms at the device's mono 0) |
//! | `F` len device first(8) last(8) | nothing: a run holding telemetry or gaps not yet fed to the boilers |
//! | `p` device | [`crate::progress::SeqRanges`] |
//! | `d` device | [`crate::storage::DeviceInfo`] |
//!
//! Records are stored in runs: the consecutive sequences of one batch that were new, one value
//! for the run (a batch of 100 is one write, not 100). Runs never overlap, since a sequence is
//! stored once, so the run holding a sequence is the last one starting at or below it.
//!
//! `p` and `d` end with the device id and hold nothing after it, so they need no length. The
//! `quarantine` tree is keyed by id(8); `refused` by len device seq(8); `meta` by text names.
//! Format 1 (before these rules) keyed records `r{device}/{seq}` and evidence
//! `e{received}{device}/{seq}`, and read the device back by searching for the last `/`, which a
//! sequence's bytes could contain. Format 2 kept one record per key, `R` len device seq(8).
//! [`super::migrate`] rewrites older stores.

use proto::{DeviceId, TimestampMs};

/// A run of stored records.
pub const RUN: u8 = b'S';
/// Format 2's stored record, one per key.
pub const RECORD: u8 = b'R';
/// A copy of a crew or operative record (collection, round event, job update), ordered by arrival.
pub const EVIDENCE: u8 = b'E';
/// A boot's clock anchor.
pub const ANCHOR: u8 = b'A';
/// A run holding telemetry or gap records not yet fed to the boilers.
pub const TO_FEED: u8 = b'F';
/// A device's sequence progress.
pub const PROGRESS: u8 = b'p';
/// A device's registry entry.
pub const DEVICE: u8 = b'd';

/// Format 1's record prefix: `r{device}/{seq BE}`.
pub const OLD_RECORD: u8 = b'r';
/// Format 1's evidence prefix: `e{received BE}{device}/{seq BE}`.
pub const OLD_EVIDENCE: u8 = b'e';

/// `{prefix}{device}`: progress and registry entries.
pub fn device_key(prefix: u8, device: &DeviceId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + device.as_str().len());
    key.push(prefix);
    key.extend_from_slice(device.as_str().as_bytes());
    key
}

/// A device id with its length before it. Ids are at most 64 bytes, so one byte holds it.
fn push_device(key: &mut Vec<u8>, device: &DeviceId) {
    let id = device.as_str().as_bytes();
    // DeviceId guarantees 1..=64 bytes; the min keeps the length byte honest regardless.
    key.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(&id[..id.len().min(usize::from(u8::MAX))]);
}

/// Reads a length-prefixed device id at the start of `bytes`; returns it and what follows.
fn read_device(bytes: &[u8]) -> Option<(DeviceId, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    let id = std::str::from_utf8(rest.get(..len)?).ok()?;
    Some((DeviceId::new(id).ok()?, &rest[len..]))
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Times before 1970 are refused at decode, so clamping at 0 keeps the order.
fn time_bytes(at: TimestampMs) -> [u8; 8] {
    u64::try_from(at).unwrap_or(0).to_be_bytes()
}

/// `{prefix}{len}{device}`: the prefix of one device's runs (or to-feed marks), and no other
/// device's (the length byte makes `hub-1` differ from `hub-10`).
pub fn run_prefix(prefix: u8, device: &DeviceId) -> Vec<u8> {
    let mut key = vec![prefix];
    push_device(&mut key, device);
    key
}

/// The key of `device`'s run of sequences `first..=last` under `prefix` ([`RUN`] or
/// [`TO_FEED`]). Every run of a device that starts at or below `first` sorts at or below
/// `run_key(prefix, device, first, u64::MAX)`.
pub fn run_key(prefix: u8, device: &DeviceId, first: u64, last: u64) -> Vec<u8> {
    let mut key = run_prefix(prefix, device);
    key.extend_from_slice(&first.to_be_bytes());
    key.extend_from_slice(&last.to_be_bytes());
    key
}

/// The device and sequences `(first, last)` of a run key under `prefix`.
pub fn parse_run_key(prefix: u8, key: &[u8]) -> Option<(DeviceId, u64, u64)> {
    let rest = key.strip_prefix(&[prefix])?;
    let (device, rest) = read_device(rest)?;
    if rest.len() != 16 {
        return None;
    }
    Some((device, read_u64(&rest[..8])?, read_u64(&rest[8..])?))
}

/// Format 2's record key.
pub fn record_key(device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = run_prefix(RECORD, device);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The device and sequence of a format 2 record key.
pub fn parse_record_key(key: &[u8]) -> Option<(DeviceId, u64)> {
    let rest = key.strip_prefix(&[RECORD])?;
    let (device, rest) = read_device(rest)?;
    Some((device, read_u64(rest)?))
}

/// An evidence key: arrival time first, so a range scan reads the recent ones in order.
pub fn evidence_key(received: TimestampMs, device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = vec![EVIDENCE];
    key.extend_from_slice(&time_bytes(received));
    push_device(&mut key, device);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The first evidence key received at or after `since`.
pub fn evidence_from(since: TimestampMs) -> Vec<u8> {
    let mut key = vec![EVIDENCE];
    key.extend_from_slice(&time_bytes(since));
    key
}

/// The device and sequence of an evidence key.
pub fn parse_evidence_key(key: &[u8]) -> Option<(DeviceId, u64)> {
    let rest = key.strip_prefix(&[EVIDENCE])?.get(8..)?;
    let (device, rest) = read_device(rest)?;
    Some((device, read_u64(rest)?))
}

/// Format 2's to-feed key, one per record: `F` len device seq(8).
pub fn parse_old_feed_key(key: &[u8]) -> Option<(DeviceId, u64)> {
    let rest = key.strip_prefix(&[TO_FEED])?;
    let (device, rest) = read_device(rest)?;
    if rest.len() != 8 {
        return None;
    }
    Some((device, read_u64(rest)?))
}

/// A boot's clock-anchor key.
pub fn anchor_key(device: &DeviceId, boot: u64) -> Vec<u8> {
    let mut key = vec![ANCHOR];
    push_device(&mut key, device);
    key.extend_from_slice(&boot.to_be_bytes());
    key
}

/// A refused record's key in the `refused` tree.
pub fn refused_key(device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + device.as_str().len() + 8);
    push_device(&mut key, device);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Format 1's record key, read by its fixed-width tail (the `/` and 8 sequence bytes) rather than
/// by searching for a `/`: returns the device and sequence.
pub fn parse_old_record_key(key: &[u8]) -> Option<(DeviceId, u64)> {
    let rest = key.strip_prefix(&[OLD_RECORD])?;
    let split = rest.len().checked_sub(9)?;
    let (id, tail) = rest.split_at(split);
    let seq = tail.strip_prefix(b"/")?;
    let device = DeviceId::new(std::str::from_utf8(id).ok()?).ok()?;
    Some((device, read_u64(seq)?))
}

/// Format 1's evidence key, read the same way: returns the arrival time, device and sequence.
pub fn parse_old_evidence_key(key: &[u8]) -> Option<(TimestampMs, DeviceId, u64)> {
    let rest = key.strip_prefix(&[OLD_EVIDENCE])?;
    let received = i64::try_from(read_u64(rest.get(..8)?)?).ok()?;
    let rest = &rest[8..];
    let split = rest.len().checked_sub(9)?;
    let (id, tail) = rest.split_at(split);
    let seq = tail.strip_prefix(b"/")?;
    let device = DeviceId::new(std::str::from_utf8(id).ok()?).ok()?;
    Some((received, device, read_u64(seq)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str) -> DeviceId {
        DeviceId::new(id).unwrap()
    }

    #[test]
    fn keys_read_back_whatever_bytes_their_numbers_hold() {
        let device = dev("cab-rcv07");
        // Every byte value in every position of the sequence, '/' (0x2f) included.
        for byte in 0..=u8::MAX {
            for seq in [u64::from(byte), u64::from_be_bytes([byte; 8]), 0x2f2f] {
                assert_eq!(
                    parse_record_key(&record_key(&device, seq)),
                    Some((device.clone(), seq))
                );
                for prefix in [RUN, TO_FEED] {
                    assert_eq!(
                        parse_run_key(prefix, &run_key(prefix, &device, seq, !seq)),
                        Some((device.clone(), seq, !seq))
                    );
                }
                let received = i64::from(byte) << 40 | 0x2f2f;
                assert_eq!(
                    parse_evidence_key(&evidence_key(received, &device, seq)),
                    Some((device.clone(), seq))
                );
            }
        }
    }

    #[test]
    fn one_devices_prefix_holds_no_other_devices_records() {
        let short = run_prefix(RUN, &dev("hub-1"));
        assert!(!run_key(RUN, &dev("hub-10"), 1, 1).starts_with(&short));
        assert!(run_key(RUN, &dev("hub-1"), u64::MAX, u64::MAX).starts_with(&short));
    }

    #[test]
    fn the_run_holding_a_sequence_is_the_last_starting_at_or_below_it() {
        let device = dev("hub-1");
        let runs = [(1, 100), (101, 101), (102, 300), (0x2f00, 0x2fff)];
        for seq in [1, 50, 100, 101, 102, 299, 0x2f2f] {
            let bound = run_key(RUN, &device, seq, u64::MAX);
            let holder = runs
                .iter()
                .rfind(|&&(first, last)| run_key(RUN, &device, first, last) <= bound)
                .unwrap();
            assert!(holder.0 <= seq && seq <= holder.1, "{seq} in {holder:?}");
        }
    }

    #[test]
    fn format_one_keys_are_read_by_their_fixed_tail() {
        let mut old = vec![OLD_RECORD];
        old.extend_from_slice(b"hub-1/");
        old.extend_from_slice(&47u64.to_be_bytes()); // ends in 0x2f, the byte that broke rposition
        assert_eq!(parse_old_record_key(&old), Some((dev("hub-1"), 47)));
        let mut old = vec![OLD_EVIDENCE];
        old.extend_from_slice(&0x2f2fu64.to_be_bytes());
        old.extend_from_slice(b"cab-1/");
        old.extend_from_slice(&0x2f2f_2f2fu64.to_be_bytes());
        assert_eq!(
            parse_old_evidence_key(&old),
            Some((0x2f2f, dev("cab-1"), 0x2f2f_2f2f))
        );
        assert_eq!(parse_old_record_key(b"r/"), None);
    }
}
