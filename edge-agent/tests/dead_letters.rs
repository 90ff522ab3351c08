#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A record the gateway refuses (named in its ack's `rej`) goes to the agent's dead-letter list,
//! shown in `/v1/status`, and the records behind it are delivered: one poison record no longer
//! holds up a device. The gateway here is a few lines over the embedded broker that stores
//! everything but the poison, acks through it, and names it.

#[path = "support/signing.rs"]
mod signing;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::{free_port, http, test_gateway, wait_for};
use proto::{
    Ack, Envelope, RecordBody, Refusal, Topic, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const DEADLINE: Duration = Duration::from_secs(20);
/// The collection the gateway refuses.
const POISON_UPRN: u64 = 5;
const WHY: &str = "uprn: not in the property register";

/// What the refusing gateway has stored: collections' UPRNs.
type Stored = Arc<Mutex<BTreeSet<u64>>>;

/// Subscribes to every device's batches; stores each collection but the poison, and acks each
/// batch through its last record, naming the poison in `rej`.
async fn refusing_gateway(port: u16) -> Stored {
    let mut options = MqttOptions::new("refusing-gateway", "127.0.0.1", port);
    options.set_max_packet_size(MAX_MESSAGE_BYTES + 1024, MAX_MESSAGE_BYTES + 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client
        .subscribe("fieldsync/v1/+/up", QoS::AtLeastOnce)
        .await
        .unwrap();
    let stored = Stored::default();
    let kept = Arc::clone(&stored);
    tokio::spawn(async move {
        // Everything at or below `thru` is stored or refused.
        let mut thru = 0;
        let mut held = BTreeSet::new();
        while let Ok(event) = eventloop.poll().await {
            let Event::Incoming(Packet::Publish(publish)) = event else {
                continue;
            };
            let Ok(topic) = Topic::parse(&publish.topic) else {
                continue;
            };
            let device = topic.device.to_string();
            let inner = test_gateway::open_from_device(&device, &publish.topic, &publish.payload)
                .expect("a batch the device signed");
            let envelope: Envelope = proto::decode(&inner, MAX_MESSAGE_BYTES).unwrap();
            let mut rej = Vec::new();
            for record in &envelope.recs {
                held.insert(record.seq);
                if let RecordBody::Collection(collection) = &record.body {
                    let uprn = collection.uprn.unwrap_or(0);
                    if uprn == POISON_UPRN {
                        rej.push(Refusal::new(record.seq, WHY));
                    } else {
                        kept.lock().unwrap().insert(uprn);
                    }
                }
            }
            while held.remove(&(thru + 1)) {
                thru += 1;
            }
            let ack = Ack {
                v: SCHEMA_VERSION,
                thru,
                rej,
            };
            let ack_topic = topic.device.topic(TopicKind::Ack);
            let payload =
                test_gateway::sign(&ack_topic, &proto::encode(&ack, MAX_MESSAGE_BYTES).unwrap());
            let client = client.clone();
            // Not awaited in the polling loop, which must keep turning to send it.
            tokio::spawn(async move {
                let _ = client
                    .publish(ack_topic, QoS::AtLeastOnce, false, payload)
                    .await;
            });
        }
    });
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_dead_lettered_and_the_records_behind_it_are_delivered() {
    let port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    let stored = refusing_gateway(port).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig {
        device_id: "cab-poison".into(),
        signing: signing::signing("cab-poison"),
        data_dir: dir.path().join("cab-poison"),
        shutdown_deadline_s: 5,
        ..AgentConfig::default()
    };
    config.mqtt.port = port;
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 400;
    config.uplink.linger_ms = 20;
    config.intervals.health_s = 3600;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    let agent = Agent::start(config).await.unwrap();

    let url = format!("http://{}/v1/collections", agent.api_addr);
    let mut poison_seq = 0;
    for uprn in 1..=10u64 {
        let body = serde_json::json!({
            "uprn": uprn, "stream": "refuse", "outcome": "collected",
            "pos": {"lat": 51.5, "lon": -0.14, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
        });
        let response = http::post_json(&url, None, &body).await;
        assert_eq!(response.status, 201, "{}", response.body);
        if uprn == POISON_UPRN {
            poison_seq = response.json()["seq"].as_u64().unwrap();
        }
    }

    let status_url = format!("http://{}/v1/status", agent.api_addr);
    let status = wait_for("everything acked", DEADLINE, || async {
        let status = http::get(&status_url, None).await.json();
        let outbox = &status["outbox"];
        (outbox["depth"] == 0 && outbox["acked_through"] == 10).then_some(status)
    })
    .await;
    // The watermark moved past the refused record, the ones behind it were delivered…
    let expected: BTreeSet<u64> = (1..=10).filter(|uprn| *uprn != POISON_UPRN).collect();
    assert_eq!(*stored.lock().unwrap(), expected);
    // …and the refused one is kept, with the gateway's reason, not deleted unseen.
    let dead = &status["outbox"]["dead_letters"];
    assert_eq!(dead["count"], 1, "{status}");
    assert_eq!(dead["evicted"], 0, "{status}");
    assert_eq!(dead["newest"][0]["seq"], poison_seq, "{status}");
    assert_eq!(dead["newest"][0]["kind"], "collection", "{status}");
    assert_eq!(dead["newest"][0]["why"], WHY, "{status}");
    agent.shutdown().await;
}
