#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A corpus of bad MQTT payloads and topics sent to the real gateway over real MQTT, as a device
//! written by someone else might send them, on the embedded broker and on an external one. Each
//! case has its expected outcome:
//! - a message that cannot be read as a whole is quarantined with its reason, and acks nothing;
//! - a batch with bad records among good ones has the good ones stored, and the bad ones named in
//!   the ack's refusals, so the device's acks move on (one poison record never stalls a device).
//!
//! The device signs its envelopes, as the gateway requires (so each case reaches the decoder),
//! and an envelope that comes unsigned is quarantined too. Afterwards the same device's good
//! batches are stored and acked as usual, and the counts are printed.

use std::collections::BTreeSet;
use std::time::Duration;

use fieldsync_tests::system::{unique_id, Broker};
use fieldsync_tests::{free_port, telemetry, wait_for, DeviceKeys, FakeDevice};
use gateway::config::GatewayConfig;
use gateway::Gateway;
use proto::{Envelope, Record, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION};
use serde_cbor::Value;

const DEADLINE: Duration = Duration::from_secs(20);

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// The CBOR tree of `envelope`, to be spoiled (encoded without the contract's checks, since some
/// cases break them on purpose).
fn tree(envelope: &Envelope) -> Value {
    let bytes = proto::encode_value(envelope).unwrap();
    serde_cbor::from_slice(&bytes).unwrap()
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_cbor::to_vec(value).unwrap()
}

/// `f` applied to the map under `key` of a CBOR map.
fn edit(value: &mut Value, key: &str, f: impl FnOnce(&mut Value)) {
    if let Value::Map(map) = value {
        if let Some(inner) = map.get_mut(&text(key)) {
            f(inner);
        }
    }
}

/// A map's entries as an array, in order: the shape the CDDL forbids for every structure.
fn as_array(value: &Value) -> Value {
    match value {
        Value::Map(map) => Value::Array(map.values().cloned().collect()),
        other => other.clone(),
    }
}

/// Payloads that must be quarantined whole: (name, topic kind or raw topic, payload).
fn whole_message_cases(device: &FakeDevice) -> Vec<(&'static str, String, Vec<u8>)> {
    let up = device.id.topic(TopicKind::Up).to_string();
    let good = device.envelope(telemetry(1, 2, "B-1"));
    let good_bytes = proto::encode(&good, MAX_MESSAGE_BYTES).unwrap();
    let mut cases = vec![
        ("empty payload", up.clone(), Vec::new()),
        ("not CBOR", up.clone(), b"\xff\xfe\xfd garbage".to_vec()),
        (
            "JSON, not CBOR",
            up.clone(),
            br#"{"v":1,"dev":"x","sent":0,"recs":[]}"#.to_vec(),
        ),
        (
            "truncated",
            up.clone(),
            good_bytes[..good_bytes.len() / 2].to_vec(),
        ),
        (
            "trailing bytes",
            up.clone(),
            [good_bytes.clone(), vec![0x00]].concat(),
        ),
        (
            "a string, not an envelope",
            up.clone(),
            bytes(&text("hello")),
        ),
        (
            "envelope as an array",
            up.clone(),
            bytes(&as_array(&tree(&good))),
        ),
        (
            "a length the bytes cannot back",
            up.clone(),
            vec![0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "nested 100,000 deep",
            up.clone(),
            [vec![0x81; 100_000], vec![0x00]].concat(),
        ),
        (
            "over the size limit",
            up.clone(),
            vec![0u8; MAX_MESSAGE_BYTES + 1],
        ),
        (
            "state that is not a state",
            device.id.topic(TopicKind::State).to_string(),
            vec![0xa0],
        ),
        (
            "a device id that is not one",
            "fieldsync/v1/bad%id/up".to_owned(),
            good_bytes.clone(),
        ),
    ];
    let mut other_device = tree(&good);
    edit(&mut other_device, "dev", |dev| *dev = text("someone-else"));
    cases.push((
        "another device's envelope",
        up.clone(),
        bytes(&other_device),
    ));
    let mut future = tree(&good);
    edit(&mut future, "v", |v| {
        *v = Value::Integer(i128::from(SCHEMA_VERSION) + 1)
    });
    cases.push((
        "a version this gateway cannot read",
        up.clone(),
        bytes(&future),
    ));
    let mut no_version = tree(&good);
    if let Value::Map(map) = &mut no_version {
        map.remove(&text("v"));
    }
    cases.push(("no version", up.clone(), bytes(&no_version)));
    let mut bytes_id = tree(&good);
    edit(&mut bytes_id, "dev", |dev| {
        *dev = Value::Bytes(device.id.to_string().into_bytes())
    });
    cases.push(("device id as bytes", up.clone(), bytes(&bytes_id)));
    let mut int_keys = tree(&good);
    if let Value::Map(map) = &mut int_keys {
        let entries: Vec<(Value, Value)> = std::mem::take(map).into_iter().collect();
        for (i, (_, value)) in entries.into_iter().enumerate() {
            map.insert(Value::Integer(i as i128), value);
        }
    }
    cases.push(("integer map keys", up.clone(), bytes(&int_keys)));
    let too_many: Value =
        serde_cbor::from_slice(&proto::encode_value(&telemetry(1, 1001, "B-1")).unwrap()).unwrap();
    let mut too_many_tree = tree(&good);
    edit(&mut too_many_tree, "recs", |recs| *recs = too_many);
    cases.push(("1001 records", up, bytes(&too_many_tree)));
    cases
}

/// One batch of records 1..=8 in which records 2, 4, 5, 6 and 7 are bad, each differently;
/// returns its payload and the sequence numbers that must be refused.
fn poisoned_batch(device: &FakeDevice) -> (Vec<u8>, BTreeSet<u64>) {
    let mut records: Vec<Record> = telemetry(1, 8, "B-1");
    // Record 4: a gap that claims sequences above its own.
    records[3].body = proto::RecordBody::Gap(proto::Gap {
        from: 9,
        to: 12,
        count: 4,
        reason: proto::GapReason::DiskBudget,
    });
    let mut envelope = tree(&device.envelope(records));
    edit(&mut envelope, "recs", |recs| {
        let Value::Array(recs) = recs else { return };
        // Record 2: a pressure no boiler has (not finite is refused; 1e39 overflows a float32).
        edit(&mut recs[1], "body", |body| {
            edit(body, "tel", |tel| {
                if let Value::Map(map) = tel {
                    map.insert(text("bar"), Value::Float(f64::INFINITY));
                }
            })
        });
        // Record 5: a kind this contract does not have.
        edit(&mut recs[4], "body", |body| {
            *body = Value::Map([(text("zzz"), Value::Map(Default::default()))].into())
        });
        // Record 6: its body as an array.
        edit(&mut recs[5], "body", |body| *body = as_array(body));
        // Record 7: null for an optional field.
        edit(&mut recs[6], "body", |body| {
            edit(body, "tel", |tel| {
                if let Value::Map(map) = tel {
                    map.insert(text("flow"), Value::Null);
                }
            })
        });
    });
    (bytes(&envelope), [2, 4, 5, 6, 7].into())
}

fn quarantined(gateway: &Gateway) -> u64 {
    gateway
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix("fieldsync_quarantined_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn run(broker: Broker) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig {
        data_dir: dir.path().join("store"),
        ..GatewayConfig::default()
    };
    match &broker {
        Broker::Embedded(_) => {
            config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
            // The fake devices and attackers connect without credentials.
            config.mqtt.allow_anonymous = true;
        }
        Broker::External(host, port) => {
            config.mqtt.url = Some(format!("mqtt://{host}:{port}"));
            config.mqtt.client_id = unique_id("gateway");
        }
    }
    config.http.listen = ([127, 0, 0, 1], 0).into();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(gateway.wait_ready(DEADLINE).await);
    let (host, port) = match &broker {
        Broker::Embedded(_) => ("127.0.0.1".to_owned(), gateway.mqtt.1),
        Broker::External(host, port) => (host.clone(), *port),
    };
    let id = proto::DeviceId::new(unique_id("vendor")).unwrap();
    let issued = gateway.devices.add(&id, true).unwrap();
    let keys = DeviceKeys {
        device: issued.signing_key.clone(),
        gateway: issued.gateway_key,
    };
    let device = FakeDevice::connect_to(id.as_str(), &host, port, Some(keys)).await;
    let up = device.id.topic(TopicKind::Up).to_string();

    // Whole messages that cannot be read: each quarantined, none acked. What goes on the up
    // topic is signed, so that it is judged on what is inside (one too large to sign is judged
    // on its size first).
    let mut cases = whole_message_cases(&device);
    let unsigned = proto::encode(&device.envelope(telemetry(1, 3, "B-1")), MAX_MESSAGE_BYTES);
    let before = quarantined(&gateway);
    for (name, topic, payload) in &cases {
        let expected = quarantined(&gateway) + 1;
        let fits = payload.len() + proto::signed::SIGNED_OVERHEAD <= MAX_MESSAGE_BYTES;
        let payload = match *topic == up && fits {
            true => device.seal(topic, payload.clone()),
            false => payload.clone(),
        };
        device.send_raw(topic, payload).await;
        wait_for(&format!("{name} to be quarantined"), DEADLINE, || async {
            (quarantined(&gateway) >= expected).then_some(())
        })
        .await;
    }
    let expected = quarantined(&gateway) + 1;
    device.send_raw(&up, unsigned.unwrap()).await;
    wait_for(
        "the unsigned envelope to be quarantined",
        DEADLINE,
        || async { (quarantined(&gateway) >= expected).then_some(()) },
    )
    .await;
    cases.push(("an unsigned envelope", up.clone(), Vec::new()));
    assert_eq!(quarantined(&gateway) - before, cases.len() as u64);
    assert_eq!(device.acked_through(), 0, "nothing readable was sent yet");

    // A batch with five bad records among eight: the good stored, the bad refused by name, and
    // the ack past all of them.
    let (payload, bad) = poisoned_batch(&device);
    device.send_up(payload.clone()).await;
    device.wait_acked(8, DEADLINE).await;
    let refused: BTreeSet<u64> = device.refused().iter().map(|r| r.seq).collect();
    assert_eq!(refused, bad, "{:?}", device.refused());
    assert!(device.refused().iter().all(|r| !r.why.is_empty()));
    let id = device.id.clone();
    for seq in 1..=8 {
        let stored = gateway.store.record(&id, seq).unwrap().is_some();
        assert_eq!(stored, !bad.contains(&seq), "seq {seq}");
    }

    // The device goes on: its next batch is stored and acked, and a resend of the poisoned one
    // is answered with the same refusals and stores nothing new.
    device.send(telemetry(9, 20, "B-1")).await;
    device.wait_acked(20, DEADLINE).await;
    assert_eq!(gateway.store.record_count(&id).unwrap(), 3 + 12);
    let refusals_so_far = device.refused().len();
    device.send_up(payload).await;
    let again = wait_for("the resend's refusals", DEADLINE, || async {
        let all = device.refused();
        (all.len() >= refusals_so_far + bad.len()).then(|| all[refusals_so_far..].to_vec())
    })
    .await;
    let again: BTreeSet<u64> = again.iter().map(|r| r.seq).collect();
    assert_eq!(again, bad);
    assert_eq!(gateway.store.record_count(&id).unwrap(), 3 + 12);
    println!(
        "mqtt bad input on the {}: {} whole messages quarantined, {} of 8 records refused by name",
        broker.name(),
        cases.len(),
        bad.len()
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mqtt_input_is_quarantined_or_refused_by_name_and_never_stalls_a_device() {
    for broker in Broker::under_test() {
        run(broker).await;
    }
}
