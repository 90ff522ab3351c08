//! Property tests: every message the contract allows, however unusual its values (extreme
//! integers, floats that shrink to half precision, subnormals, multi-byte text), survives
//! `proto::encode` and `proto::decode` unchanged.

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
    fn stored_records_round_trip(record in strategies::record()) {
        // The agent's outbox keeps single records with `encode_value`, outside any envelope.
        let bytes = proto::encode_value(&record).unwrap();
        prop_assert_eq!(proto::decode_value::<proto::Record>(&bytes, MAX_MESSAGE_BYTES).unwrap(), record);
    }
}
