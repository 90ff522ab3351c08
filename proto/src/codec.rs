//! Encoding and decoding of top-level messages: CBOR maps through serde_cbor, with a size limit,
//! a schema version check, value validation and typed errors. The only module that names the CBOR
//! library, so that a move to ciborium or minicbor (serde_cbor is unmaintained, RUSTSEC-2021-0127)
//! touches nothing else.
//!
//! Decoding never panics and never trusts a length the bytes cannot back: serde_cbor checks every
//! string's length against the input before copying, nesting is capped, and the one unbounded
//! collection (a batch's records) is capped by [`crate::MAX_BATCH_RECORDS`].

mod batch;
mod items;
mod strict;

pub use batch::{decode_batch, DecodedBatch};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::validate::{Invalid, Validate};
use crate::{Ack, Down, Envelope, State, SCHEMA_VERSION};

/// A top-level message: one MQTT payload.
pub trait Message: Serialize + DeserializeOwned + Validate {
    /// The message's name, as in the CDDL and the test vectors.
    const NAME: &'static str;

    /// The schema version the message says it follows, if it carries one.
    fn version(&self) -> u16;
}

impl Message for Envelope {
    const NAME: &'static str = "envelope";
    fn version(&self) -> u16 {
        self.v
    }
}

impl Message for Ack {
    const NAME: &'static str = "ack";
    fn version(&self) -> u16 {
        self.v
    }
}

impl Message for Down {
    const NAME: &'static str = "down";
    fn version(&self) -> u16 {
        self.v
    }
}

impl Message for State {
    const NAME: &'static str = "state";
    fn version(&self) -> u16 {
        self.v
    }
}

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than the limit; it was not parsed.
    #[error("message is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not well-formed CBOR (truncated, bad header, trailing bytes…).
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// The message is for a schema version this build cannot read.
    #[error("schema version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version the message carries.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong CBOR type or an unknown enum value.
    #[error("does not match the schema: {0}")]
    Schema(String),
    /// A field's value is out of range or otherwise breaks the contract.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoding is larger than the limit: split the batch.
    #[error("encoded message is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The encoding's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A value breaks the contract; nothing was encoded.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The version field is not [`SCHEMA_VERSION`].
    #[error("message carries schema version {0}, but this build writes {SCHEMA_VERSION}")]
    WrongVersion(u16),
    /// The CBOR library failed (it should not for these types).
    #[error("CBOR encoding failed: {0}")]
    Cbor(String),
}

/// Encodes `message` as CBOR after checking its values; fails if the result exceeds `max` bytes.
pub fn encode<M: Message>(message: &M, max: usize) -> Result<Vec<u8>, EncodeError> {
    if message.version() != SCHEMA_VERSION {
        return Err(EncodeError::WrongVersion(message.version()));
    }
    message.validate()?;
    let bytes = serde_cbor::to_vec(message).map_err(|e| EncodeError::Cbor(e.to_string()))?;
    if bytes.len() > max {
        return Err(EncodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Decodes a message from `bytes`, refusing anything over `max` bytes, of another schema version,
/// or with values that break the contract. Fields this build does not know are ignored.
pub fn decode<M: Message>(bytes: &[u8], max: usize) -> Result<M, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let message: M = match from_slice(bytes) {
        Ok(message) => message,
        // A newer version may have reshaped the message: say so rather than "missing field".
        Err(e) => return Err(version_mismatch(bytes).unwrap_or_else(|| classify(&e))),
    };
    if message.version() != SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: message.version(),
            supported: SCHEMA_VERSION,
        });
    }
    message.validate()?;
    Ok(message)
}

/// Encodes any serializable value (a [`crate::Record`] in a device's outbox, say) as CBOR, without
/// the checks [`encode`] makes on top-level messages. For local storage, not for the wire.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_cbor::to_vec(value).map_err(|e| EncodeError::Cbor(e.to_string()))
}

/// Decodes a value written by [`encode_value`], refusing anything over `max` bytes.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    from_slice_lenient(bytes).map_err(|e| classify(&e))
}

/// Deserializes exactly one value from `bytes`, as strictly as `fieldsync.cddl` says (see
/// [`strict`]): maps with text keys, text where text is required, floats where floats are, no
/// `null` for an absent field, no tags. Legacy enums (arrays `[variant, value]`) are refused too:
/// the contract writes enums as strings and one-entry maps only, and one encoding per value keeps
/// third-party decoders honest.
fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_cbor::Error> {
    let mut deserializer = serde_cbor::Deserializer::from_slice(bytes).disable_legacy_enums();
    let value = T::deserialize(strict::Strict(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// Deserializes exactly one value from `bytes` as serde's derived types read it, for what this
/// build wrote itself (local storage), whose encodings the contract does not govern.
fn from_slice_lenient<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_cbor::Error> {
    let mut deserializer = serde_cbor::Deserializer::from_slice(bytes).disable_legacy_enums();
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// The version error for `bytes` if they are a map whose `v` is a version other than ours.
fn version_mismatch(bytes: &[u8]) -> Option<DecodeError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        v: u16,
    }
    let found = serde_cbor::from_slice::<VersionOnly>(bytes).ok()?.v;
    (found != SCHEMA_VERSION).then_some(DecodeError::UnsupportedVersion {
        found,
        supported: SCHEMA_VERSION,
    })
}

fn classify(error: &serde_cbor::Error) -> DecodeError {
    let message = error.to_string();
    if error.is_data() {
        // serde reports a missing field as "missing field `name`"; keep just the name.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return DecodeError::MissingField(field.to_owned());
        }
        return DecodeError::Schema(message);
    }
    DecodeError::Malformed(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DeviceId, Record, RecordBody, Refusal, Telemetry, MAX_BATCH_RECORDS, MAX_MESSAGE_BYTES,
    };

    fn envelope() -> Envelope {
        Envelope {
            v: SCHEMA_VERSION,
            dev: DeviceId::new("hub-1").unwrap(),
            sent: 1_764_000_000_000,
            recs: vec![Record {
                seq: 7,
                ts: 1_764_000_000_000,
                body: RecordBody::Telemetry(Telemetry {
                    asset: "B-1".into(),
                    flow: Some(61.5),
                    ..Telemetry::default()
                }),
                boot: None,
                mono: None,
            }],
            boot: None,
            mono: None,
        }
    }

    /// A CBOR map of `v` and the given extra text-keyed entries.
    fn cbor_map(entries: &[(&str, serde_cbor::Value)]) -> Vec<u8> {
        let map: std::collections::BTreeMap<serde_cbor::Value, serde_cbor::Value> = entries
            .iter()
            .map(|(k, v)| (serde_cbor::Value::Text((*k).into()), v.clone()))
            .collect();
        serde_cbor::to_vec(&map).unwrap()
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&envelope(), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).unwrap(),
            envelope()
        );
    }

    #[test]
    fn refuses_oversized_input_before_parsing() {
        let bytes = encode(&envelope(), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            decode::<Envelope>(&bytes, 10),
            Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: 10
            })
        );
        assert!(matches!(
            encode(&envelope(), 10),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn reports_truncation_as_malformed() {
        let bytes = encode(&envelope(), MAX_MESSAGE_BYTES).unwrap();
        let err = decode::<Envelope>(&bytes[..bytes.len() - 3], MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
        let err = decode::<Envelope>(&[0xff, 0x00], MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn reports_the_missing_field() {
        use serde_cbor::Value;
        let bytes = cbor_map(&[
            ("v", Value::Integer(1)),
            ("dev", Value::Text("hub-1".into())),
            ("recs", Value::Array(vec![])),
        ]);
        assert_eq!(
            decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES),
            Err(DecodeError::MissingField("sent".into()))
        );
    }

    #[test]
    fn rejects_other_versions_even_when_reshaped() {
        use serde_cbor::Value;
        let mut newer = envelope();
        newer.v = 2;
        let bytes = serde_cbor::to_vec(&newer).unwrap();
        let unsupported = Err(DecodeError::UnsupportedVersion {
            found: 2,
            supported: SCHEMA_VERSION,
        });
        assert_eq!(decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES), unsupported);
        let reshaped = cbor_map(&[("v", Value::Integer(2)), ("batch", Value::Bytes(vec![1]))]);
        assert_eq!(
            decode::<Envelope>(&reshaped, MAX_MESSAGE_BYTES),
            unsupported
        );
        assert!(matches!(
            encode(&newer, MAX_MESSAGE_BYTES),
            Err(EncodeError::WrongVersion(2))
        ));
    }

    #[test]
    fn ignores_unknown_fields() {
        use serde_cbor::Value;
        let bytes = cbor_map(&[
            ("v", Value::Integer(1)),
            ("thru", Value::Integer(42)),
            ("future", Value::Text("ignored".into())),
        ]);
        assert_eq!(
            decode::<Ack>(&bytes, MAX_MESSAGE_BYTES),
            Ok(Ack {
                v: 1,
                thru: 42,
                rej: Vec::new()
            })
        );
    }

    #[test]
    fn rejects_invalid_values_with_the_field() {
        let mut bad = envelope();
        bad.dev = serde_cbor::from_slice(&serde_cbor::to_vec(&"no/slash").unwrap()).unwrap();
        let bytes = serde_cbor::to_vec(&bad).unwrap();
        match decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES) {
            Err(DecodeError::Invalid(invalid)) => assert_eq!(invalid.field, "dev"),
            other => panic!("expected an invalid dev, got {other:?}"),
        }
        assert!(matches!(
            encode(&bad, MAX_MESSAGE_BYTES),
            Err(EncodeError::Invalid(_))
        ));
    }

    #[test]
    fn reports_wrong_types_as_schema_errors() {
        use serde_cbor::Value;
        let bytes = cbor_map(&[("v", Value::Integer(1)), ("thru", Value::Text("x".into()))]);
        let err = decode::<Ack>(&bytes, MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::Schema(_)), "{err:?}");
    }

    #[test]
    fn refuses_batches_over_the_record_limit_from_the_header() {
        // An array header claiming 2^32 records, with nothing behind it.
        let mut bytes = cbor_map(&[
            ("v", serde_cbor::Value::Integer(1)),
            ("dev", serde_cbor::Value::Text("hub-1".into())),
            ("sent", serde_cbor::Value::Integer(0)),
        ]);
        bytes[0] += 1; // one more map entry
        bytes.extend_from_slice(&[0x64, b'r', b'e', b'c', b's', 0x9b, 0, 0, 0, 1, 0, 0, 0, 0]);
        let err = decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::Schema(_)), "{err:?}");
    }

    /// A batch of `n` telemetry records numbered from 1, as a CBOR value to edit.
    fn batch_value(n: u64) -> serde_cbor::Value {
        let mut batch = envelope();
        batch.recs = (1..=n)
            .map(|seq| Record {
                seq,
                ..envelope().recs[0].clone()
            })
            .collect();
        serde_cbor::value::to_value(&batch).unwrap()
    }

    /// The record at `index` of a batch value.
    fn record_at(batch: &mut serde_cbor::Value, index: usize) -> &mut serde_cbor::Value {
        use serde_cbor::Value;
        let Value::Map(map) = batch else {
            panic!("not a map")
        };
        let Some(Value::Array(recs)) = map.get_mut(&Value::Text("recs".into())) else {
            panic!("no recs")
        };
        &mut recs[index]
    }

    fn set(record: &mut serde_cbor::Value, key: &str, value: serde_cbor::Value) {
        let serde_cbor::Value::Map(map) = record else {
            panic!("not a map")
        };
        map.insert(serde_cbor::Value::Text(key.into()), value);
    }

    #[test]
    fn decode_batch_returns_a_good_batch_whole() {
        let mut batch = envelope();
        batch.boot = Some(3);
        batch.mono = Some(12_000);
        let bytes = encode(&batch, MAX_MESSAGE_BYTES).unwrap();
        let decoded = decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(decoded.dev, batch.dev);
        assert_eq!((decoded.v, decoded.sent), (SCHEMA_VERSION, batch.sent));
        assert_eq!((decoded.boot, decoded.mono), (Some(3), Some(12_000)));
        assert_eq!(decoded.records, batch.recs);
        assert!(decoded.refused.is_empty());
    }

    #[test]
    fn decode_batch_refuses_a_poison_record_alone() {
        use serde_cbor::Value;
        let mut batch = batch_value(3);
        // Record 2's body is of an unknown kind; the others are good.
        set(
            record_at(&mut batch, 1),
            "body",
            Value::Map([(Value::Text("zzz".into()), Value::Integer(1))].into()),
        );
        let bytes = serde_cbor::to_vec(&batch).unwrap();
        assert!(decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).is_err());
        let decoded = decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        let seqs: Vec<u64> = decoded.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(decoded.refused.len(), 1);
        assert_eq!(decoded.refused[0].seq, 2);
        assert!(
            decoded.refused[0].why.contains("zzz"),
            "{:?}",
            decoded.refused
        );
        assert!(decoded.refused[0].validate().is_ok());
    }

    #[test]
    fn decode_batch_refuses_invalid_values_per_record_with_the_field() {
        use serde_cbor::Value;
        let mut batch = batch_value(2);
        set(record_at(&mut batch, 0), "ts", Value::Integer(-5));
        let bytes = serde_cbor::to_vec(&batch).unwrap();
        let decoded = decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.refused[0].seq, 1);
        assert!(
            decoded.refused[0].why.contains("`ts`"),
            "{:?}",
            decoded.refused
        );
    }

    #[test]
    fn decode_batch_refuses_the_whole_batch_when_a_bad_record_has_no_readable_seq() {
        use serde_cbor::Value;
        for seq in [Value::Text("one".into()), Value::Integer(0), Value::Null] {
            let mut batch = batch_value(2);
            set(record_at(&mut batch, 1), "seq", seq.clone());
            let bytes = serde_cbor::to_vec(&batch).unwrap();
            let err = decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap_err();
            assert!(
                matches!(&err, DecodeError::Schema(why) if why.contains("recs[1]")),
                "{seq:?}: {err:?}"
            );
        }
        let mut batch = batch_value(2);
        *record_at(&mut batch, 0) = Value::Text("not a record".into());
        let bytes = serde_cbor::to_vec(&batch).unwrap();
        assert!(decode_batch(&bytes, MAX_MESSAGE_BYTES).is_err());
    }

    #[test]
    fn decode_batch_refuses_a_bad_header_whole() {
        let mut bad = envelope();
        bad.sent = -1;
        let bytes = serde_cbor::to_vec(&bad).unwrap();
        assert!(matches!(
            decode_batch(&bytes, MAX_MESSAGE_BYTES),
            Err(DecodeError::Invalid(invalid)) if invalid.field == "sent"
        ));
        let mut newer = envelope();
        newer.v = 2;
        let bytes = serde_cbor::to_vec(&newer).unwrap();
        assert!(matches!(
            decode_batch(&bytes, MAX_MESSAGE_BYTES),
            Err(DecodeError::UnsupportedVersion { found: 2, .. })
        ));
        let bytes = encode(&envelope(), MAX_MESSAGE_BYTES).unwrap();
        assert!(matches!(
            decode_batch(&bytes, 10),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_batch(&bytes[..bytes.len() - 1], MAX_MESSAGE_BYTES),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn decode_batch_refuses_more_records_than_the_limit() {
        let bytes = serde_cbor::to_vec(&batch_value(MAX_BATCH_RECORDS as u64 + 1)).unwrap();
        assert!(matches!(
            decode_batch(&bytes, usize::MAX),
            Err(DecodeError::Schema(_))
        ));
        let bytes = serde_cbor::to_vec(&batch_value(MAX_BATCH_RECORDS as u64)).unwrap();
        assert_eq!(
            decode_batch(&bytes, usize::MAX).unwrap().records.len(),
            MAX_BATCH_RECORDS
        );
    }

    #[test]
    fn decode_batch_refuses_a_gap_reaching_past_its_own_record() {
        use crate::{Gap, GapReason};
        let mut batch = envelope();
        batch.recs[0].seq = 1;
        batch.recs[0].body = RecordBody::Gap(Gap {
            from: 2,
            to: 10,
            count: 9,
            reason: GapReason::DiskBudget,
        });
        let bytes = serde_cbor::to_vec(&batch).unwrap();
        assert!(decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).is_err());
        let decoded = decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        assert!(decoded.records.is_empty());
        assert_eq!(decoded.refused[0].seq, 1);
        assert!(
            decoded.refused[0].why.contains("below its own"),
            "{:?}",
            decoded.refused
        );
    }

    #[test]
    fn acks_carry_refusals_and_old_acks_still_decode() {
        use serde_cbor::Value;
        let ack = Ack {
            v: 1,
            thru: 9,
            rej: vec![Refusal::new(4, "bad\u{7}reason")],
        };
        assert_eq!(ack.rej[0].why, "bad reason");
        let bytes = encode(&ack, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(decode::<Ack>(&bytes, MAX_MESSAGE_BYTES), Ok(ack));
        // Without refusals the field is left out: what an older device reads.
        let plain = Ack {
            v: 1,
            thru: 9,
            rej: Vec::new(),
        };
        let bytes = encode(&plain, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            bytes,
            cbor_map(&[("v", Value::Integer(1)), ("thru", Value::Integer(9))])
        );
    }

    #[test]
    fn refusals_are_made_fit_for_the_wire() {
        let long = Refusal::new(1, "é".repeat(300));
        assert!(long.why.len() <= crate::MAX_REFUSAL_REASON_LEN);
        assert!(long.validate().is_ok());
        assert!(Refusal::new(1, "\n\t").validate().is_ok());
        let bad = Ack {
            v: 1,
            thru: 1,
            rej: vec![Refusal {
                seq: 1,
                why: String::new(),
            }],
        };
        assert_eq!(bad.validate().unwrap_err().field, "rej[0].why");
    }
}
