#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One size limit everywhere: `proto::MAX_MESSAGE_BYTES` for a payload. Over the embedded broker,
//! a batch of exactly the limit (and one byte less) is stored and acked; one byte more reaches the
//! gateway, which quarantines it with its reason and acknowledges the MQTT message, so the broker
//! does not redeliver it; a packet that could not carry a valid payload on any topic is refused by
//! the broker, which closes the sender's connection (MQTT 3.1.1 has no reason code).

mod support;

use std::time::Duration;

use fieldsync_tests::{wait_for, FakeDevice};
use gateway::broker::max_publish_remaining_length;
use gateway::Gateway;
use proto::{DeviceId, Envelope, Record, RecordBody, TopicKind, MAX_MESSAGE_BYTES};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::enrolled;

const DEADLINE: Duration = Duration::from_secs(20);
/// Notes this long or longer have a three-byte CBOR text header, so each more character is
/// exactly one more byte.
const SHORTEST_NOTE: usize = 256;

async fn start(dir: &std::path::Path) -> Gateway {
    let mut config = support::config(dir);
    config.devices.provisioned = vec!["hub-1".into()];
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        gateway.wait_ready(DEADLINE).await,
        "the ingest never subscribed"
    );
    gateway
}

/// A valid batch from `device`, records `first..`, whose encoding is exactly `size` bytes: job
/// updates whose notes are lengthened until the size is reached. Returns it and its last sequence.
fn batch_of_exact_size(device: &FakeDevice, first: u64, size: usize) -> (Vec<u8>, u64) {
    let template = match proto::examples::envelope_job_update().recs.remove(0).body {
        RecordBody::JobUpdate(update) => update,
        other => panic!("the example is not a job update: {other:?}"),
    };
    let record = |seq: u64, note_len: usize| Record {
        seq,
        ts: 1_764_000_000_000 + seq as i64 * 1000,
        body: RecordBody::JobUpdate(proto::JobUpdate {
            note: Some("n".repeat(note_len)),
            ..template.clone()
        }),
        boot: None,
        mono: None,
    };
    let encode = |envelope: &Envelope| proto::encode(envelope, usize::MAX).unwrap();
    let mut envelope = device.envelope(Vec::new());
    loop {
        let seq = first + envelope.recs.len() as u64;
        envelope.recs.push(record(seq, SHORTEST_NOTE));
        if encode(&envelope).len() > size {
            envelope.recs.pop();
            break;
        }
    }
    let mut missing = size - encode(&envelope).len();
    for rec in &mut envelope.recs {
        let RecordBody::JobUpdate(update) = &mut rec.body else {
            unreachable!()
        };
        let more = missing.min(proto::validate::MAX_TEXT_LEN - SHORTEST_NOTE);
        update.note = Some("n".repeat(SHORTEST_NOTE + more));
        missing -= more;
    }
    assert_eq!(missing, 0, "not enough records to reach {size} bytes");
    let bytes = encode(&envelope);
    assert_eq!(bytes.len(), size);
    let last = envelope.recs.last().map(|r| r.seq).unwrap();
    (bytes, last)
}

/// As [`batch_of_exact_size`], signed by `device`: the signed message is exactly `size` bytes,
/// since the limit is on what the broker carries.
fn signed_of_exact_size(device: &FakeDevice, first: u64, size: usize) -> (Vec<u8>, u64) {
    let up = device.id.topic(TopicKind::Up);
    // What signing adds is the same for any payload of about this size.
    let probe = size - 1000;
    let overhead = device.seal(&up, vec![0; probe]).len() - probe;
    let (inner, last) = batch_of_exact_size(device, first, size - overhead);
    let sealed = device.seal(&up, inner);
    assert_eq!(sealed.len(), size);
    (sealed, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_at_the_limit_are_stored_and_one_byte_over_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path()).await;
    let device = enrolled(&gateway, "hub-1").await;
    let id = DeviceId::new("hub-1").unwrap();
    let up = id.topic(TopicKind::Up);

    let (below, below_last) = signed_of_exact_size(&device, 1, MAX_MESSAGE_BYTES - 1);
    device.send_raw(&up, below).await;
    device.wait_acked(below_last, DEADLINE).await;
    let (at, at_last) = signed_of_exact_size(&device, below_last + 1, MAX_MESSAGE_BYTES);
    device.send_raw(&up, at).await;
    device.wait_acked(at_last, DEADLINE).await;
    assert_eq!(gateway.store.record_count(&id).unwrap(), at_last);

    // No one can sign a message over the limit; the size is judged before the signature.
    let (over, _) = batch_of_exact_size(&device, at_last + 1, MAX_MESSAGE_BYTES + 1);
    device.send_raw(&up, over).await;
    let entry = wait_for("the oversized batch in quarantine", DEADLINE, || async {
        gateway
            .store
            .quarantined(10, None)
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(entry.topic, up);
    assert!(
        entry.reason.contains(&format!(
            "{} bytes, over the {MAX_MESSAGE_BYTES}-byte limit",
            MAX_MESSAGE_BYTES + 1
        )),
        "{}",
        entry.reason
    );
    assert_eq!(gateway.store.record_count(&id).unwrap(), at_last);

    // The device is still connected and its next batch goes through: the oversized one was
    // acknowledged to the broker, not left to be redelivered.
    let (next, next_last) = signed_of_exact_size(&device, at_last + 1, 10_000);
    device.send_raw(&up, next).await;
    device.wait_acked(next_last, DEADLINE).await;
    assert_eq!(gateway.store.quarantined(10, None).unwrap().len(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_closes_a_connection_whose_packet_no_valid_payload_fits() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path()).await;
    let longest_id = "d".repeat(proto::topic::MAX_DEVICE_ID_LEN);
    let topic = DeviceId::new(longest_id.as_str())
        .unwrap()
        .topic(TopicKind::Up);

    let mut options = MqttOptions::new("oversized", "127.0.0.1", gateway.mqtt.1);
    options.set_max_packet_size(4 * MAX_MESSAGE_BYTES, 4 * MAX_MESSAGE_BYTES);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    // One byte more than the broker's packet limit: on this, the longest topic, the payload is
    // four bytes over the limit.
    let payload_len = max_publish_remaining_length(MAX_MESSAGE_BYTES) + 1 - (2 + topic.len() + 2);
    assert_eq!(payload_len, MAX_MESSAGE_BYTES + 4);
    client
        .publish(&topic, QoS::AtLeastOnce, false, vec![0xa0; payload_len])
        .await
        .unwrap();
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("the broker neither acked nor closed");
    assert!(closed, "the broker acked an oversized packet");

    // The gateway saw nothing, and a device keeps working.
    let device = enrolled(&gateway, "hub-1").await;
    device.send(fieldsync_tests::telemetry(1, 10, "B-1")).await;
    device.wait_acked(10, DEADLINE).await;
    assert!(gateway.store.quarantined(10, None).unwrap().is_empty());
    gateway.stop().await;
}
