#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Exactly-once delivery from the agent to a test gateway over the embedded broker: with the broker
//! up throughout (in priority order), with the link down for a while, with the broker absent at
//! start, and with the gateway's acks lost, withheld or duplicated. Each record is identified by a
//! unique UPRN or asset so that a record stored twice under two numbers would show.

#[path = "support/signing.rs"]
mod signing;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use edge_agent::outbox::{Outbox, OutboxConfig};
use fieldsync_tests::test_gateway::{LinkProxy, TestGateway};
use fieldsync_tests::{free_port, http, wait_for};
use proto::{
    BinStream, Collection, Outcome, Position, Record, RecordBody, Telemetry, MAX_MESSAGE_BYTES,
};

const DEADLINE: Duration = Duration::from_secs(20);

#[path = "support/stall_relay.rs"]
mod stall_relay;
const TS: i64 = 1_764_000_000_000;

/// Starts an embedded broker on a fresh port.
fn broker() -> u16 {
    let port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    port
}

/// An agent configuration for tests: fast reconnects and resends, small batches, API on port 0.
fn config(dir: &Path, device: &str, mqtt_port: u16) -> AgentConfig {
    let mut config = AgentConfig {
        device_id: device.into(),
        signing: signing::signing(device),
        data_dir: dir.join(device),
        shutdown_deadline_s: 5,
        ..AgentConfig::default()
    };
    config.mqtt.port = mqtt_port;
    config.mqtt.keep_alive_s = 5;
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 400;
    config.uplink.batch_max_records = 50;
    config.uplink.linger_ms = 20;
    config.uplink.resend_after_s = 1;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config
}

fn collection(uprn: u64) -> RecordBody {
    RecordBody::Collection(Collection {
        uprn: Some(uprn),
        stream: BinStream::Recycling,
        outcome: Outcome::Collected,
        pos: Position {
            lat: 51.5,
            lon: -0.14,
            acc: 4.0,
        },
        vehicle: "RCV-17".into(),
        round: "MON-A".into(),
        job: None,
        photo: None,
        note: None,
    })
}

fn collection_json(uprn: u64) -> serde_json::Value {
    serde_json::json!({
        "uprn": uprn, "stream": "recycling", "outcome": "collected",
        "pos": {"lat": 51.5, "lon": -0.14, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
    })
}

fn telemetry(n: u64) -> Telemetry {
    Telemetry {
        asset: format!("B-{n}"),
        flow: Some(60.0),
        ..Telemetry::default()
    }
}

/// What identifies a record's content across sequence numbers.
fn identity(record: &Record) -> String {
    match &record.body {
        RecordBody::Collection(c) => format!("col:{}", c.uprn.unwrap_or(0)),
        RecordBody::Telemetry(t) => format!("tel:{}", t.asset),
        other => format!("{:?}:{}", other.kind(), record.seq),
    }
}

/// Checks that the gateway holds exactly `expected` (by identity), each once, and no sequence
/// number was reused.
fn assert_exactly_once(gateway: &TestGateway, device: &str, expected: &[String]) {
    assert!(gateway.conflicts().is_empty(), "{:?}", gateway.conflicts());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for record in gateway.stored(device) {
        if matches!(record.body, RecordBody::Health(_)) {
            continue;
        }
        *counts.entry(identity(&record)).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for id in expected {
        assert!(counts.contains_key(id), "{id} was never stored");
    }
    assert_eq!(counts.len(), expected.len(), "unexpected records stored");
}

async fn wait_all_acked(agent: &Agent) {
    wait_for("the outbox to empty", DEADLINE, || async {
        let stats = agent.intake().outbox().stats().unwrap();
        // The outbox forgets acked records before the ack is on disk; the status's last ack is
        // set once it is.
        let last_ack = agent.link_status().borrow().last_ack.map(|ack| ack.thru);
        (stats.depth == 0 && last_ack == Some(stats.acked_through)).then_some(())
    })
    .await;
}

async fn wait_connected(agent: &Agent, connected: bool) {
    let mut status = agent.link_status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.connected == connected))
        .await
        .unwrap_or_else(|_| panic!("link never became connected={connected}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_up_every_record_stored_once_crews_records_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let config = config(dir.path(), "cab-1", port);

    // A backlog from before the agent started: telemetry first, then crews' confirmations.
    {
        let outbox = Outbox::open(&config.data_dir, OutboxConfig::default()).unwrap();
        for n in 1..=150 {
            let body = RecordBody::Telemetry(telemetry(n));
            outbox.accept(TS + n as i64, body).await.unwrap();
        }
        for uprn in 1..=30 {
            outbox.accept(TS + 1000, collection(uprn)).await.unwrap();
        }
    }
    let agent = Agent::start(config).await.unwrap();
    // More while running: confirmations through the API, samples from a sensor.
    let url = format!("http://{}/v1/collections", agent.api_addr);
    for uprn in 1001..=1020 {
        let response = http::post_json(&url, None, &collection_json(uprn)).await;
        assert_eq!(response.status, 201, "{}", response.body);
    }
    let sink = agent.telemetry_sink();
    for n in 151..=200 {
        sink.send(telemetry(n)).await.unwrap();
    }

    gateway.wait_stored("cab-1", 250, DEADLINE).await;
    wait_all_acked(&agent).await;
    let expected: Vec<String> = (1..=200)
        .map(|n| format!("tel:B-{n}"))
        .chain(
            (1..=30)
                .chain(1001..=1020)
                .map(|uprn| format!("col:{uprn}")),
        )
        .collect();
    assert_exactly_once(&gateway, "cab-1", &expected);
    // Every batch came signed by the device, and every ack it acted on was the gateway's.
    assert_eq!(gateway.unsigned(), 0);
    assert_eq!(gateway.malformed(), 0);
    assert_eq!(agent.link_status().borrow().unverified, 0);

    // The backlog's confirmations (numbers 151 to 180) all arrived before its telemetry.
    let order = gateway.arrival_order("cab-1");
    let position = |seq: u64| order.iter().position(|s| *s == seq).unwrap();
    let last_confirmation = (151..=180).map(position).max().unwrap();
    let first_telemetry = (1..=150).map(position).min().unwrap();
    assert!(last_confirmation < first_telemetry, "{order:?}");

    // Online at connect; offline, retained, at a clean shutdown.
    agent.shutdown().await;
    let states = wait_for("the offline state", DEADLINE, || async {
        let states = gateway.states("cab-1");
        states.last().is_some_and(|s| !s.online).then_some(states)
    })
    .await;
    assert!(states[0].online, "{states:?}");
    assert!(states.iter().all(|s| s.boot == 1), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_down_for_a_while_nothing_lost_nothing_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let proxy = LinkProxy::start(port).await;
    let agent = Agent::start(config(dir.path(), "cab-2", proxy.port))
        .await
        .unwrap();
    wait_connected(&agent, true).await;
    let url = format!("http://{}/v1/collections", agent.api_addr);

    let mut expected = Vec::new();
    for uprn in 1..=180u64 {
        if uprn == 40 {
            proxy.cut();
            wait_connected(&agent, false).await;
        }
        if uprn == 140 {
            proxy.restore();
        }
        let response = http::post_json(&url, None, &collection_json(uprn)).await;
        assert_eq!(response.status, 201, "{}", response.body);
        expected.push(format!("col:{uprn}"));
    }
    gateway.wait_stored("cab-2", 180, DEADLINE).await;
    wait_all_acked(&agent).await;
    assert_exactly_once(&gateway, "cab-2", &expected);
    let status = agent.link_status().borrow().clone();
    assert!(status.connections >= 2 && status.drops >= 1, "{status:?}");

    // The API reports the link and the outbox.
    let status = http::get(&format!("http://{}/v1/status", agent.api_addr), None)
        .await
        .json();
    assert_eq!(status["link"]["connected"], true, "{status}");
    assert_eq!(status["outbox"]["depth"], 0, "{status}");
    assert_eq!(status["last_ack"]["thru"], 180, "{status}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_absent_at_start_then_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let agent = Agent::start(config(dir.path(), "hub-3", port))
        .await
        .unwrap();
    let sink = agent.telemetry_sink();
    for n in 1..=40 {
        sink.send(telemetry(n)).await.unwrap();
    }
    wait_for("the samples to be stored", DEADLINE, || async {
        (agent.intake().outbox().stats().unwrap().depth == 40).then_some(())
    })
    .await;
    assert!(!agent.link_status().borrow().connected);

    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    let gateway = TestGateway::start(port).await;
    gateway.wait_stored("hub-3", 40, DEADLINE).await;
    wait_all_acked(&agent).await;
    let expected: Vec<String> = (1..=40).map(|n| format!("tel:B-{n}")).collect();
    assert_exactly_once(&gateway, "hub-3", &expected);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_withheld_acks_are_repaired_by_resending() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let agent = Agent::start(config(dir.path(), "hh-4", port))
        .await
        .unwrap();
    wait_connected(&agent, true).await;
    let url = format!("http://{}/v1/collections", agent.api_addr);

    // The ack for the only batch (one record, so one batch however slow the disk) is lost:
    // nothing later repairs it but a resend.
    gateway.drop_next_acks(1);
    let response = http::post_json(&url, None, &collection_json(1)).await;
    assert_eq!(response.status, 201, "{}", response.body);
    gateway.wait_stored("hh-4", 1, DEADLINE).await;
    wait_all_acked(&agent).await;
    assert!(gateway.duplicates() >= 1, "the batch was not resent");

    // No acks for a while: resends keep coming, and the first ack after clears everything.
    gateway.withhold_acks(true);
    for uprn in 2..=30 {
        assert_eq!(
            http::post_json(&url, None, &collection_json(uprn))
                .await
                .status,
            201
        );
    }
    gateway.wait_stored("hh-4", 30, DEADLINE).await;
    let before = gateway.duplicates();
    wait_for("a resend of the unacked records", DEADLINE, || async {
        (gateway.duplicates() >= before + 29).then_some(())
    })
    .await;
    assert_eq!(agent.intake().outbox().stats().unwrap().depth, 29);
    gateway.withhold_acks(false);
    wait_all_acked(&agent).await;

    let expected: Vec<String> = (1..=30).map(|uprn| format!("col:{uprn}")).collect();
    assert_exactly_once(&gateway, "hh-4", &expected);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_acks_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    gateway.duplicate_acks(true);
    let agent = Agent::start(config(dir.path(), "hub-5", port))
        .await
        .unwrap();
    let sink = agent.telemetry_sink();
    for n in 1..=120 {
        sink.send(telemetry(n)).await.unwrap();
    }
    gateway.wait_stored("hub-5", 120, DEADLINE).await;
    wait_all_acked(&agent).await;
    // Replayed acks (an old one after a newer) change nothing either.
    gateway.ack_now("hub-5").await;
    let stats = agent.intake().outbox().stats().unwrap();
    assert_eq!((stats.depth, stats.acked_through), (0, 120));
    let expected: Vec<String> = (1..=120).map(|n| format!("tel:B-{n}")).collect();
    assert_exactly_once(&gateway, "hub-5", &expected);
    assert!(gateway.acks_sent() >= 2 * gateway.batches());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_what_is_left_without_lingering() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let mut config = config(dir.path(), "cab-6", port);
    // Part-filled batches would wait a minute: only the shutdown's drain sends these.
    config.uplink.linger_ms = 60_000;
    let agent = Agent::start(config).await.unwrap();
    wait_connected(&agent, true).await;
    let url = format!("http://{}/v1/collections", agent.api_addr);
    for uprn in 1..=5 {
        assert_eq!(
            http::post_json(&url, None, &collection_json(uprn))
                .await
                .status,
            201
        );
    }
    assert_eq!(gateway.stored_count("cab-6"), 0);
    let outbox = agent.intake().outbox().clone();
    agent.shutdown().await;
    assert_eq!(gateway.stored_count("cab-6"), 5);
    assert_eq!(
        outbox.stats().unwrap().depth,
        0,
        "acked before the link closed"
    );
}

/// A backlog drained as fast as the broker takes it: the gateway's acks come faster than the agent
/// can apply them (each waits for a flush). Acknowledged only once applied, about a hundred piled
/// up unacknowledged; the broker then stopped sending to the agent (and answering its pings) while
/// rumqttc, its window of batches full, sent no acknowledgements: the link stalled for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_drains_without_stalling() {
    const BACKLOG: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let mut config = config(dir.path(), "hub-7", port);
    config.uplink.batch_max_records = 20;
    config.uplink.resend_after_s = 30;
    {
        let outbox = Outbox::open(&config.data_dir, OutboxConfig::default()).unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..32 {
            let outbox = outbox.clone();
            writers.spawn(async move {
                for n in (writer + 1..=BACKLOG).step_by(32) {
                    let body = RecordBody::Telemetry(telemetry(n));
                    outbox.accept(TS + n as i64, body).await.unwrap();
                }
            });
        }
        while writers.join_next().await.is_some() {}
    }
    let agent = Agent::start(config).await.unwrap();
    wait_for("the backlog to drain", Duration::from_secs(40), || async {
        (agent.intake().outbox().stats().unwrap().acked_through == BACKLOG).then_some(())
    })
    .await;
    assert_eq!(gateway.stored_count("hub-7"), BACKLOG as usize);
    assert_eq!(agent.link_status().borrow().drops, 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_is_noticed_from_the_ack_timing_dropped_and_drained_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let relay = stall_relay::StallRelay::start(([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    let mut config = config(dir.path(), "cab-stall", relay.port);
    // Keep-alive would notice only after 90 s: the ack timing must. And what was in flight on
    // the stalled connection must go again as soon as a new one is up, not after a resend timeout.
    config.mqtt.keep_alive_s = 60;
    config.uplink.resend_after_s = 600;
    let agent = Agent::start(config).await.unwrap();
    wait_connected(&agent, true).await;
    let url = format!("http://{}/v1/collections", agent.api_addr);
    let mut expected = Vec::new();
    for uprn in 1..=40u64 {
        let response = http::post_json(&url, None, &collection_json(uprn)).await;
        assert_eq!(response.status, 201, "{}", response.body);
        expected.push(format!("col:{uprn}"));
    }
    wait_all_acked(&agent).await;

    relay.stall();
    for uprn in 41..=80u64 {
        let response = http::post_json(&url, None, &collection_json(uprn)).await;
        assert_eq!(response.status, 201, "{}", response.body);
        expected.push(format!("col:{uprn}"));
    }
    let status_url = format!("http://{}/v1/status", agent.api_addr);
    let status = wait_for("the stall to be noticed", DEADLINE, || async {
        let status = http::get(&status_url, None).await.json();
        (status["link"]["stalls"].as_u64() >= Some(1)).then_some(status)
    })
    .await;
    // Not `connected: true` with records in flight: stalled until a new connection is made,
    // which cannot happen while the relay forwards nothing.
    assert_eq!(status["link"]["state"], "stalled", "{status}");
    assert_eq!(status["link"]["connected"], false, "{status}");
    assert!(status["link"]["ack_rtt_ms"].is_u64(), "{status}");

    relay.resume();
    gateway.wait_stored("cab-stall", 80, DEADLINE).await;
    wait_all_acked(&agent).await;
    assert_exactly_once(&gateway, "cab-stall", &expected);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_slower_than_the_stall_check_still_completes() {
    // The ack watch wakes every 250 ms; it must not cut short a connection attempt that takes
    // longer (TLS over a slow cell), or the agent would never connect.
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let relay = stall_relay::StallRelay::start(([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    relay.set_latency(Duration::from_millis(400));
    let agent = Agent::start(config(dir.path(), "cab-slow", relay.port))
        .await
        .unwrap();
    wait_connected(&agent, true).await;
    let url = format!("http://{}/v1/collections", agent.api_addr);
    let response = http::post_json(&url, None, &collection_json(1)).await;
    assert_eq!(response.status, 201, "{}", response.body);
    gateway.wait_stored("cab-slow", 1, DEADLINE).await;
    wait_all_acked(&agent).await;
    assert_eq!(agent.link_status().borrow().stalls, 0);
    agent.shutdown().await;
}
