//! Decoding an uplink batch record by record ([`decode_batch`]), so that one bad record is refused
//! on its own instead of taking its batch with it, while refusing whole exactly the batches
//! [`decode::<Envelope>`](super::decode) would refuse for their header or their CBOR.
//!
//! The batch map is walked entry by entry ([`super::items`] finds where each entry starts) and
//! serde reads each header field, and each record, where it lies: a good batch is read once.
//! Only a refused record is read again, to find its `seq` and where the next one starts.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Deserializer};

use super::items::{self, NotWellFormed};
use super::strict::Strict;
use super::{classify, version_mismatch, DecodeError};
use crate::validate::{check_envelope_header, Validate};
use crate::{DeviceId, Record, Refusal, TimestampMs, MAX_BATCH_RECORDS, SCHEMA_VERSION};

/// A batch decoded record by record by [`decode_batch`]: its header, the records that decoded and
/// passed their checks, and the ones that did not, each with its sequence number and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// The schema version ([`SCHEMA_VERSION`]).
    pub v: u16,
    /// The sending device.
    pub dev: DeviceId,
    /// When the device sent the batch, by its own clock.
    pub sent: TimestampMs,
    /// The agent's boot counter when it sent the batch, if it says.
    pub boot: Option<u64>,
    /// The device's monotonic clock when it sent the batch, if it says.
    pub mono: Option<u64>,
    /// The good records, in the batch's order.
    pub records: Vec<Record>,
    /// The refused records, in the batch's order.
    pub refused: Vec<Refusal>,
}

/// Decodes a batch like [`decode::<Envelope>`](super::decode), but one record at a time: a record
/// that does not decode or breaks the contract is refused on its own (in
/// [`DecodedBatch::refused`], with its `seq` and why) and the others come back, so that one poison
/// record cannot hold up a device for ever. The whole batch is refused, as by `decode`, when its
/// header is bad (size, version, device, send time, more than [`MAX_BATCH_RECORDS`] records,
/// malformed CBOR) or when a refused record's `seq` cannot be read, since then nothing could name
/// it.
pub fn decode_batch(bytes: &[u8], max: usize) -> Result<DecodedBatch, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    decode_parts(bytes).map_err(|error| match error {
        DecodeError::UnsupportedVersion { .. } => error,
        // A newer version may have reshaped the batch: say so rather than what broke, as `decode`
        // does. (A batch of this version reads as this version here, so this costs only errors.)
        other => version_mismatch(bytes).unwrap_or(other),
    })
}

fn decode_parts(bytes: &[u8]) -> Result<DecodedBatch, DecodeError> {
    let (mut left, mut at) = items::container(bytes, 0, items::MAP)
        .map_err(malformed)?
        .ok_or_else(|| DecodeError::Schema("a batch is a map".to_owned()))?;
    let mut nested = Nested(bytes.to_vec());
    let mut header = Header::default();
    while !items::at_end(bytes, &mut at, &mut left) {
        let key_end = items::skip(bytes, at).map_err(malformed)?;
        let key = key(&bytes[at..key_end])?;
        at = key_end;
        let end = if key == "recs" {
            if header.recs.is_some() {
                return Err(duplicate(&key));
            }
            let (records, end) = decode_records(bytes, &mut nested, at)?;
            header.recs = Some(records);
            end
        } else {
            let end = items::skip(bytes, at).map_err(malformed)?;
            match key.as_ref() {
                "v" => once(&mut header.v, &key, || field(&mut nested, &key, at, end))?,
                "dev" => once(&mut header.dev, &key, || field(&mut nested, &key, at, end))?,
                "sent" => once(&mut header.sent, &key, || field(&mut nested, &key, at, end))?,
                "boot" => once(&mut header.boot, &key, || field(&mut nested, &key, at, end))?,
                "mono" => once(&mut header.mono, &key, || field(&mut nested, &key, at, end))?,
                // Unknown fields are ignored, but must still be CBOR that `decode` reads.
                _ => field::<IgnoredAny>(&mut nested, &key, at, end).map(drop)?,
            }
            end
        };
        at = end;
    }
    if at != bytes.len() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the message",
            bytes.len() - at
        )));
    }
    // In the order `decode` checks them: missing fields, the version, the header's values.
    let v = required(header.v, "v")?;
    let dev = required(header.dev, "dev")?;
    let sent = required(header.sent, "sent")?;
    let recs = required(header.recs, "recs")?;
    if v != SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    check_envelope_header(&dev, sent)?;
    if let Some(error) = recs.unnamed {
        return Err(error);
    }
    Ok(DecodedBatch {
        v,
        dev,
        sent,
        boot: header.boot,
        mono: header.mono,
        records: recs.good,
        refused: recs.refused,
    })
}

/// A batch's header fields as they are found, each at most once.
#[derive(Default)]
struct Header {
    v: Option<u16>,
    dev: Option<DeviceId>,
    sent: Option<TimestampMs>,
    boot: Option<u64>,
    mono: Option<u64>,
    recs: Option<Records>,
}

/// A batch's records as decoded one by one.
struct Records {
    good: Vec<Record>,
    refused: Vec<Refusal>,
    /// The first refused record whose `seq` cannot be read, which refuses the batch; kept until
    /// the header has been checked, which `decode` would complain of first.
    unnamed: Option<DecodeError>,
}

/// Decodes the records array that starts at `at`, returning its records and where it ends.
fn decode_records(
    bytes: &[u8],
    nested: &mut Nested,
    at: usize,
) -> Result<(Records, usize), DecodeError> {
    let not_array = || DecodeError::Schema("`recs` is not an array".to_owned());
    let (mut left, mut pos) = items::container(bytes, at, items::ARRAY)
        .map_err(malformed)?
        .ok_or_else(not_array)?;
    let too_many = || {
        DecodeError::Schema(format!(
            "`recs` holds more than {MAX_BATCH_RECORDS} records"
        ))
    };
    if left.is_some_and(|n| n > MAX_BATCH_RECORDS as u64) {
        return Err(too_many());
    }
    // Never more than the limit, checked above for a definite length.
    let claimed = left.map_or(0, |n| usize::try_from(n).unwrap_or(0));
    let mut recs = Records {
        good: Vec::with_capacity(claimed),
        refused: Vec::new(),
        unnamed: None,
    };
    let mut index = 0;
    while !items::at_end(bytes, &mut pos, &mut left) {
        if index == MAX_BATCH_RECORDS {
            return Err(too_many());
        }
        index += 1;
        // A record lies in the batch map and the `recs` array.
        let why = match nested.read(pos, 2, StrictSeed::<Record>(PhantomData)) {
            Ok((record, end)) => match record.validate() {
                Ok(()) => {
                    recs.good.push(record);
                    pos = end;
                    continue;
                }
                Err(invalid) => DecodeError::Invalid(invalid),
            },
            // Whether it is CBOR that `decode` would read at all (serde_cbor calls some shapes it
            // refuses syntax errors too) is for `readable_seq` to say.
            Err(error) => classify(&error),
        };
        let (seq, end) = readable_seq(bytes, nested, pos)?;
        match seq {
            Some(seq) => recs.refused.push(Refusal::new(seq, why)),
            None => {
                recs.unnamed.get_or_insert(DecodeError::Schema(format!(
                    "recs[{}] is refused ({why}) and its `seq` cannot be read",
                    index - 1
                )));
            }
        }
        pos = end;
    }
    Ok((recs, pos))
}

/// A refused record's `seq`, if the record at `at` is a map with exactly one `seq` entry, a
/// positive integer, whatever else is wrong with it; and where the record ends. An error when the
/// record is not CBOR that `decode` reads, which refuses the batch.
fn readable_seq(
    bytes: &[u8],
    nested: &mut Nested,
    at: usize,
) -> Result<(Option<u64>, usize), DecodeError> {
    match nested.read(at, 2, PhantomData::<SeqOnly>) {
        Ok((SeqOnly(seq), end)) => Ok((seq.filter(|&seq| seq > 0), end)),
        Err(error) if error.is_data() => {
            // Read only as far as the record's shape went wrong: find its end, and read it all
            // as `decode` would have, which refuses the batch if it is not CBOR that it reads.
            let end = items::skip(bytes, at).map_err(malformed)?;
            nested
                .read(at, 2, PhantomData::<IgnoredAny>)
                .map_err(|error| classify(&error))?;
            Ok((None, end))
        }
        Err(error) => Err(classify(&error)),
    }
}

/// A record's `seq` entry, read from a map whose other entries may hold anything.
struct SeqOnly(Option<u64>);

impl<'de> Deserialize<'de> for SeqOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Finder;

        impl<'de> Visitor<'de> for Finder {
            type Value = SeqOnly;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record map with a `seq`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SeqOnly, A::Error> {
                let mut seq = None;
                while let Some(key) = map.next_key::<serde_cbor::Value>()? {
                    if key != serde_cbor::Value::Text("seq".to_owned()) {
                        map.next_value::<IgnoredAny>()?;
                    } else if seq.is_some() {
                        return Err(de::Error::duplicate_field("seq"));
                    } else {
                        seq = Some(map.next_value::<u64>()?);
                    }
                }
                Ok(SeqOnly(seq))
            }
        }

        deserializer.deserialize_map(Finder)
    }
}

/// A copy of the batch in which to decode each of its parts where it lies, as deep as it lies.
///
/// Why a copy: serde_cbor counts nesting from where a deserializer starts (at most 127 maps and
/// arrays) and cannot be told to start deeper, so a record read on its own would be allowed two
/// levels more than in the whole batch, and a batch that `decode` refuses as nested too deeply
/// would pass. So a part `levels` deep is read inside as many one-item array heads, written over
/// the bytes just before it; those have been read already (and are still read from the original,
/// as keys or as refused records, never from here).
struct Nested(Vec<u8>);

/// The head of an array of one item.
const ONE_ITEM_ARRAY: u8 = 0x81;

impl Nested {
    /// Reads the item at `at`, `levels` deep, with `seed`; returns it and where it ends.
    fn read<T, S>(
        &mut self,
        at: usize,
        levels: usize,
        seed: S,
    ) -> Result<(T, usize), serde_cbor::Error>
    where
        S: for<'de> DeserializeSeed<'de, Value = T>,
    {
        // A part always has its map head, and for a record the `recs` key, before it.
        let start = at.checked_sub(levels).ok_or_else(|| {
            <serde_cbor::Error as de::Error>::custom("a part of a batch too near its start")
        })?;
        self.0[start..at].fill(ONE_ITEM_ARRAY);
        let mut deserializer =
            serde_cbor::Deserializer::from_slice(&self.0[start..]).disable_legacy_enums();
        let value = Within { levels, seed }.deserialize(&mut deserializer)?;
        Ok((value, start + deserializer.byte_offset()))
    }
}

/// Deserializes with `seed` inside `levels` one-item arrays.
struct Within<S> {
    levels: usize,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Within<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        if self.levels == 0 {
            self.seed.deserialize(deserializer)
        } else {
            deserializer.deserialize_seq(self)
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Within<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of one item")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<S::Value, A::Error> {
        let inner = Within {
            levels: self.levels - 1,
            seed: self.seed,
        };
        seq.next_element_seed(inner)?
            .ok_or_else(|| de::Error::custom("an empty array where one item was written"))
    }
}

/// A seed that deserializes `T` as strictly as the contract says (see [`super::strict`]).
struct StrictSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for StrictSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(Strict(deserializer))
    }
}

/// A map key: a text string, read by serde when it is not a plain definite-length one (an
/// indefinite-length text string is still text), refused when it is not text at all.
fn key(item: &[u8]) -> Result<std::borrow::Cow<'_, str>, DecodeError> {
    if let Some(text) = items::text(item) {
        return Ok(text.into());
    }
    super::from_slice::<String>(item)
        .map(Into::into)
        .map_err(|error| match classify(&error) {
            DecodeError::Schema(why) => DecodeError::Schema(format!("a map key: {why}")),
            other => other,
        })
}

/// Decodes the header field `key`'s value, from `at` to `end` and one level deep, strictly; a
/// schema error names the field.
fn field<T: DeserializeOwned>(
    nested: &mut Nested,
    key: &str,
    at: usize,
    end: usize,
) -> Result<T, DecodeError> {
    let (value, read_to) = nested
        .read(at, 1, StrictSeed::<T>(PhantomData))
        .map_err(|error| match classify(&error) {
            DecodeError::Schema(why) => DecodeError::Schema(format!("`{key}`: {why}")),
            other => other,
        })?;
    if read_to != end {
        return Err(DecodeError::Malformed(format!(
            "a header field's value ends at byte {read_to}, not {end}"
        )));
    }
    Ok(value)
}

/// Sets a header field found in the map, refusing a second entry for it.
fn once<T>(
    slot: &mut Option<T>,
    key: &str,
    read: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(duplicate(key));
    }
    *slot = Some(read()?);
    Ok(())
}

fn duplicate(key: &str) -> DecodeError {
    DecodeError::Schema(format!("duplicate field `{key}`"))
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::MissingField(key.to_owned()))
}

fn malformed(error: NotWellFormed) -> DecodeError {
    DecodeError::Malformed(error.to_string())
}

#[cfg(test)]
mod tests {
    use serde_cbor::Value;

    use super::*;
    use crate::{examples, Envelope, MAX_MESSAGE_BYTES};

    /// A batch of three telemetry records, as a CBOR value to edit.
    fn batch() -> Value {
        serde_cbor::value::to_value(examples::telemetry_batch(3)).unwrap()
    }

    fn entries(map: &mut Value) -> &mut std::collections::BTreeMap<Value, Value> {
        match map {
            Value::Map(entries) => entries,
            _ => panic!("not a map"),
        }
    }

    fn first_record(batch: &mut Value) -> &mut Value {
        match entries(batch).get_mut(&Value::Text("recs".into())) {
            Some(Value::Array(recs)) => &mut recs[0],
            _ => panic!("no recs"),
        }
    }

    /// `levels` arrays, one in the other.
    fn nested(levels: usize) -> Value {
        (0..levels).fold(Value::Integer(0), |inner, _| Value::Array(vec![inner]))
    }

    /// Whether `decode_batch` takes `bytes` whole, with no record refused.
    fn taken_whole(bytes: &[u8]) -> bool {
        decode_batch(bytes, MAX_MESSAGE_BYTES).is_ok_and(|batch| batch.refused.is_empty())
    }

    #[test]
    fn nests_exactly_as_deep_as_decode_allows() {
        // An unknown field nested ever deeper, in the header and in a record: decode_batch must
        // stop where decode::<Envelope> stops, although it reads each part on its own.
        for in_record in [false, true] {
            let mut last_taken = None;
            for levels in 110..135 {
                let mut value = batch();
                let map = if in_record {
                    first_record(&mut value)
                } else {
                    &mut value
                };
                entries(map).insert(Value::Text("deep".into()), nested(levels));
                let bytes = serde_cbor::to_vec(&value).unwrap();
                let decoded = crate::decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).is_ok();
                assert_eq!(
                    taken_whole(&bytes),
                    decoded,
                    "{levels} levels (in a record: {in_record})"
                );
                if decoded {
                    last_taken = Some(levels);
                } else {
                    assert!(decode_batch(&bytes, MAX_MESSAGE_BYTES).is_err());
                }
            }
            // The limit was reached within the range, so both sides were seen.
            assert!(
                last_taken.is_some_and(|levels| levels < 134),
                "{last_taken:?}"
            );
        }
    }

    #[test]
    fn reads_keys_of_indefinite_length_as_decode_does() {
        let bytes = serde_cbor::to_vec(&batch()).unwrap();
        let definite = b"\x64recs";
        let at = bytes
            .windows(definite.len())
            .position(|w| w == definite)
            .unwrap();
        // "recs" as the indefinite-length text string (_ "re", "cs").
        let mut chunked = bytes[..at].to_vec();
        chunked.extend_from_slice(b"\x7f\x62re\x62cs\xff");
        chunked.extend_from_slice(&bytes[at + definite.len()..]);
        let envelope = crate::decode::<Envelope>(&chunked, MAX_MESSAGE_BYTES).unwrap();
        let decoded = decode_batch(&chunked, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(decoded.records, envelope.recs);
        assert!(decoded.refused.is_empty());
        // A key of bytes, or an integer, is still no key.
        for wrong in [&b"\x44recs"[..], b"\x01"] {
            let mut bad = bytes[..at].to_vec();
            bad.extend_from_slice(wrong);
            bad.extend_from_slice(&bytes[at + definite.len()..]);
            assert!(decode_batch(&bad, MAX_MESSAGE_BYTES).is_err());
        }
    }
}
