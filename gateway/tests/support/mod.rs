//! What the gateway's integration tests share: fake devices enrolled as `gateway devices add`
//! enrols a real one, so that they sign their envelopes and read the gateway's signed acks.

use fieldsync_tests::{DeviceKeys, FakeDevice};
use gateway::devices::Issued;
use gateway::storage::IncomingBatch;
use gateway::Gateway;
use proto::{DeviceId, Record, TimestampMs};

/// The keys an issued credential hands the device.
pub fn keys(issued: &Issued) -> DeviceKeys {
    DeviceKeys {
        device: issued.signing_key.clone(),
        gateway: issued.gateway_key,
    }
}

/// `id` issued a credential and keys by `gateway`'s registry (replacing any), connected to its
/// broker and signing.
pub async fn enrolled(gateway: &Gateway, id: &str) -> FakeDevice {
    let issued = gateway
        .devices
        .add(&DeviceId::new(id).unwrap(), true)
        .unwrap();
    FakeDevice::connect_signed(id, gateway.mqtt.1, keys(&issued)).await
}

/// `records` as a batch from `device`, received (and sent) at `at`: what the ingest hands the
/// store for a message from it.
#[allow(dead_code)] // each test file compiles this module; not all of them build batches
pub fn batch_from(device: &str, records: Vec<Record>, at: TimestampMs) -> IncomingBatch {
    let device = DeviceId::new(device).unwrap();
    IncomingBatch {
        topic: device.topic(proto::TopicKind::Up),
        device,
        payload: bytes::Bytes::new(),
        received: at,
        sent: at,
        boot: None,
        mono: None,
        records,
        refused: Vec::new(),
    }
}
