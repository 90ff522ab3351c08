//! Property tests: every message the contract allows, however unusual its values (extreme
//! integers, floats that shrink to half precision, subnormals, multi-byte text), survives
//! `proto::encode` and `proto::decode` unchanged, and `proto::decode_batch` returns a batch's
//! good records while refusing a poisoned one alone.

mod strategies;

use proptest::prelude::*;
use proto::{Message, MAX_MESSAGE_BYTES};

/// Encodes and decodes `message`, which must come back equal.
fn assert_round_trips<M: Message + PartialEq + std::fmt::Debug>(
    message: &M,
) -> Result<(), TestCaseError> {
    let bytes = proto::encode(message, MAX_MESSAGE_BYTES)
        .map_err(|e| TestCaseError::fail(format!("encoding {message:?}: {e}")))?;
    let decoded: M = proto::decode(&bytes, MAX_MESSAGE_BYTES)
        .map_err(|e| TestCaseError::fail(format!("decoding {message:?}: {e}")))?;
    prop_assert_eq!(&decoded, message);
    Ok(())
}

proptest! {
    // Enough cases to reach every field and kind a few times, few enough to keep the suite fast.
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn envelopes_round_trip(envelope in strategies::envelope()) {
        assert_round_trips(&envelope)?;
    }

    #[test]
    fn acks_round_trip(ack in strategies::ack()) {
        assert_round_trips(&ack)?;
    }

    #[test]
    fn downs_round_trip(down in strategies::down()) {
        assert_round_trips(&down)?;
    }

    #[test]
    fn states_round_trip(state in strategies::state()) {
        assert_round_trips(&state)?;
    }

    #[test]
    fn batches_decode_record_by_record(envelope in strategies::envelope()) {
        let bytes = proto::encode(&envelope, MAX_MESSAGE_BYTES).unwrap();
        let batch = proto::decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        prop_assert!(batch.refused.is_empty());
        prop_assert_eq!((batch.dev, batch.sent), (envelope.dev, envelope.sent));
        prop_assert_eq!((batch.boot, batch.mono), (envelope.boot, envelope.mono));
        prop_assert_eq!(batch.records, envelope.recs);
    }

    #[test]
    fn a_poisoned_record_is_refused_alone(
        envelope in strategies::envelope_of(8).prop_filter("a record", |e| !e.recs.is_empty()),
        pick in any::<prop::sample::Index>(),
        poison in 0..3usize,
    ) {
        use serde_cbor::Value;
        let victim = pick.index(envelope.recs.len());
        let mut value: Value =
            serde_cbor::from_slice(&proto::encode(&envelope, MAX_MESSAGE_BYTES).unwrap()).unwrap();
        let Value::Map(map) = &mut value else { unreachable!() };
        let Some(Value::Array(recs)) = map.get_mut(&Value::Text("recs".into())) else {
            unreachable!()
        };
        let Value::Map(record) = &mut recs[victim] else { unreachable!() };
        let key = |k: &str| Value::Text(k.into());
        match poison {
            // An unknown kind, a null optional field, the timestamp as bytes.
            0 => { record.insert(key("body"), Value::Map([(key("zzz"), Value::Null)].into())); }
            1 => { record.insert(key("mono"), Value::Null); }
            _ => { record.insert(key("ts"), Value::Bytes(vec![1])); }
        }
        let bytes = serde_cbor::to_vec(&value).unwrap();
        prop_assert!(proto::decode::<proto::Envelope>(&bytes, MAX_MESSAGE_BYTES).is_err());
        let batch = proto::decode_batch(&bytes, MAX_MESSAGE_BYTES).unwrap();
        let seq = envelope.recs[victim].seq;
        prop_assert_eq!(batch.refused.len(), 1);
        prop_assert_eq!(batch.refused[0].seq, seq);
        let mut expected = envelope.recs.clone();
        expected.remove(victim);
        prop_assert_eq!(batch.records, expected);
    }

    #[test]
    fn stored_records_round_trip(record in strategies::record()) {
        // The agent's outbox keeps single records with `encode_value`, outside any envelope.
        let bytes = proto::encode_value(&record).unwrap();
        prop_assert_eq!(proto::decode_value::<proto::Record>(&bytes, MAX_MESSAGE_BYTES).unwrap(), record);
    }
}
