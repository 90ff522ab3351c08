#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The disk budget end to end. With the link down and a small budget, telemetry keeps coming until
//! the oldest is thinned, then crews' confirmations until the API answers 507. When the link comes
//! up, every confirmation that got a 201 reaches the gateway exactly once, the telemetry that
//! survived arrives too, and gap records account for exactly the numbers dropped: every sequence
//! number is stored once or covered by one gap, and nothing else is lost.

#[path = "support/signing.rs"]
mod signing;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use edge_agent::outbox::MAX_RECORD_BYTES;
use fieldsync_tests::test_gateway::{LinkProxy, TestGateway};
use fieldsync_tests::{free_port, http, wait_for};
use proto::{GapReason, RecordBody, Telemetry, MAX_MESSAGE_BYTES};
use tokio::task::JoinSet;

const DEADLINE: Duration = Duration::from_secs(20);
/// The smallest budget the agent accepts: 16 KiB.
const BUDGET: u64 = 4 * MAX_RECORD_BYTES as u64;

fn collection_json(uprn: u64) -> serde_json::Value {
    let note = format!(
        "Food waste in the recycling; bin {uprn} stickered. {}",
        "x".repeat(280)
    );
    serde_json::json!({
        "uprn": uprn, "stream": "refuse", "outcome": "contaminated",
        "pos": {"lat": 51.5, "lon": -0.14, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A",
        // A few hundred bytes each, so that the budget fills in a few dozen posts.
        "note": note,
    })
}

fn telemetry(n: u64) -> RecordBody {
    RecordBody::Telemetry(Telemetry {
        asset: format!("B-{n}"),
        flow: Some(60.0),
        ret: Some(45.0),
        bar: Some(1.5),
        ..Telemetry::default()
    })
}

/// Stores telemetry `from..=to` through the agent's intake, 16 at a time (as a busy sensor hub
/// would, sharing flushes); returns each sample's sequence number.
async fn store_telemetry(agent: &Agent, from: u64, to: u64) -> BTreeMap<u64, String> {
    let mut numbered = BTreeMap::new();
    let mut writers = JoinSet::new();
    for n in from..=to {
        let intake = agent.intake().clone();
        writers.spawn(async move {
            let accepted = intake.accept(intake.now_ms(), telemetry(n)).await.unwrap();
            (accepted.seq, format!("B-{n}"))
        });
        if writers.len() == 16 {
            let (seq, asset) = writers.join_next().await.unwrap().unwrap();
            numbered.insert(seq, asset);
        }
    }
    while let Some(done) = writers.join_next().await {
        let (seq, asset) = done.unwrap();
        numbered.insert(seq, asset);
    }
    numbered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_thins_telemetry_refuses_crews_records_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let device = "cab-budget";
    // The gateway is up, but the agent's link to it is down.
    let port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    let gateway = TestGateway::start(port).await;
    let link = LinkProxy::start(port).await;
    link.cut();
    let mut config = AgentConfig {
        device_id: device.into(),
        signing: signing::signing(device),
        data_dir: dir.path().join(device),
        shutdown_deadline_s: 5,
        ..AgentConfig::default()
    };
    config.mqtt.port = link.port;
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 400;
    config.uplink.linger_ms = 10;
    config.uplink.batch_max_records = 50;
    config.uplink.resend_after_s = 1;
    config.outbox.budget_bytes = BUDGET;
    // No health records: every bulk-lane record here is a sample whose number the test knows.
    config.intervals.health_s = 3600;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    let agent = Agent::start(config).await.unwrap();
    let outbox = agent.intake().outbox().clone();

    // Telemetry until the oldest is thinned, and some more.
    let mut samples = BTreeMap::new();
    let mut next = 1;
    loop {
        samples.extend(store_telemetry(&agent, next, next + 99).await);
        next += 100;
        let stats = outbox.stats().unwrap();
        if stats.depth < stats.next_seq - 1 {
            break;
        }
        assert!(next < 5000, "telemetry never thinned: {stats:?}");
    }
    samples.extend(store_telemetry(&agent, next, next + 49).await);
    let stats = outbox.stats().unwrap();
    assert!(stats.bytes <= BUDGET, "{stats:?}");
    assert!(
        stats.priority_depth >= 1,
        "a gap record reports the drops: {stats:?}"
    );

    // Crews' confirmations: each 201 is a promise; they push out the rest of the telemetry, and
    // once there is none, the API answers 507 and writes nothing.
    let url = format!("http://{}/v1/collections", agent.api_addr);
    let mut confirmed: BTreeMap<u64, u64> = BTreeMap::new();
    let refusal = loop {
        let uprn = 10_000 + confirmed.len() as u64;
        let response = http::post_json(&url, None, &collection_json(uprn)).await;
        match response.status {
            201 => {
                let seq = response.json()["seq"].as_u64().unwrap();
                confirmed.insert(seq, uprn);
            }
            507 => break response,
            other => panic!("unexpected {other}: {}", response.body),
        }
        assert!(confirmed.len() < 1000, "the outbox never filled");
    };
    let message = refusal.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("outbox full") && message.contains(&BUDGET.to_string()),
        "{message}"
    );
    assert!(
        confirmed.len() >= 10,
        "only {} confirmations fit",
        confirmed.len()
    );
    let before = outbox.stats().unwrap();
    let again = http::post_json(&url, None, &collection_json(99_999)).await;
    assert_eq!(again.status, 507, "{}", again.body);
    let after = outbox.stats().unwrap();
    assert_eq!(
        (after.next_seq, after.depth, after.bytes),
        (before.next_seq, before.depth, before.bytes),
        "a 507 writes nothing"
    );
    assert!(after.bytes <= BUDGET, "{after:?}");
    let status = http::get(&format!("http://{}/v1/status", agent.api_addr), None)
        .await
        .json();
    assert_eq!(status["outbox"]["budget_bytes"], BUDGET, "{status}");
    let last = after.next_seq - 1;

    assert_eq!(gateway.stored_count(device), 0, "the link was down");

    // The link comes up: everything held goes, and the gateway acks every number.
    link.restore();
    wait_for("the gateway to ack every number", DEADLINE, || async {
        (gateway.acked_through(device) == last && outbox.stats().unwrap().depth == 0).then_some(())
    })
    .await;
    assert!(gateway.conflicts().is_empty(), "{:?}", gateway.conflicts());
    assert_eq!(gateway.malformed(), 0);

    // Every number is exactly one of: a stored confirmation, a stored sample, a stored gap
    // record, or a dropped sample inside exactly one gap's range.
    let mut stored_samples = BTreeSet::new();
    let mut stored_confirmations = BTreeSet::new();
    let mut gap_records = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    for record in gateway.stored(device) {
        match &record.body {
            RecordBody::Collection(collection) => {
                assert_eq!(
                    confirmed.get(&record.seq),
                    collection.uprn.as_ref(),
                    "seq {} is not the confirmation that got it",
                    record.seq
                );
                stored_confirmations.insert(record.seq);
            }
            RecordBody::Telemetry(sample) => {
                assert_eq!(
                    samples.get(&record.seq),
                    Some(&sample.asset),
                    "seq {} is not the sample that got it",
                    record.seq
                );
                stored_samples.insert(record.seq);
            }
            RecordBody::Gap(gap) => {
                assert_eq!(gap.reason, GapReason::DiskBudget);
                assert_eq!(gap.count, gap.to - gap.from + 1, "{gap:?}");
                assert!(
                    gap.to < record.seq,
                    "a gap reports numbers below its own: {gap:?}"
                );
                for seq in gap.from..=gap.to {
                    assert!(dropped.insert(seq), "{seq} is in two gaps");
                    assert!(
                        samples.contains_key(&seq),
                        "gap {gap:?} covers {seq}, not a sample"
                    );
                }
                gap_records.insert(record.seq);
            }
            other => panic!("unexpected record {}: {other:?}", record.seq),
        }
    }
    // Every confirmation that got a 201 arrived (each number once: the gateway keys by it).
    let confirmed_seqs: BTreeSet<u64> = confirmed.keys().copied().collect();
    assert_eq!(stored_confirmations, confirmed_seqs);
    // Every sample either arrived or is accounted for by a gap, never both.
    assert!(stored_samples.is_disjoint(&dropped));
    let samples_seqs: BTreeSet<u64> = samples.keys().copied().collect();
    let arrived_or_dropped: BTreeSet<u64> = stored_samples.union(&dropped).copied().collect();
    assert_eq!(arrived_or_dropped, samples_seqs);
    assert!(!dropped.is_empty() && !gap_records.is_empty());
    // And no number went missing: samples, confirmations and gap records make up 1..=last.
    let all: BTreeSet<u64> = samples_seqs
        .iter()
        .chain(&confirmed_seqs)
        .chain(&gap_records)
        .copied()
        .collect();
    assert_eq!(all.len() as u64, last, "numbers reused or missing");
    assert_eq!(all, (1..=last).collect::<BTreeSet<u64>>());
    // Each sample asset arrived at most once.
    let assets: BTreeSet<&String> = stored_samples.iter().map(|seq| &samples[seq]).collect();
    assert_eq!(assets.len(), stored_samples.len());
    eprintln!(
        "budget: {} samples ({} dropped in {} gaps), {} confirmations, then 507",
        samples.len(),
        dropped.len(),
        gap_records.len(),
        confirmed.len()
    );
    agent.shutdown().await;
}
