#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `edge-agent` binary killed with SIGKILL, again and again, while an app posts records: every
//! record that got a 201 reaches the gateway exactly once after the restarts, and no sequence
//! number is ever used twice. A request left unanswered by a kill is retried in the next life with
//! its `Idempotency-Key`, as an app would: it is stored once, whether or not the kill came before
//! the write. Then SIGTERM stops it gracefully.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldsync_tests::system::{agent_request as http, agent_request_with_key as http_with_key};
use fieldsync_tests::test_gateway::TestGateway;
use fieldsync_tests::{free_port, wait_for};
use proto::{RecordBody, MAX_MESSAGE_BYTES};
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_edge-agent");
const DEVICE: &str = "cab-kill";
const DEADLINE: Duration = Duration::from_secs(30);
const ROUNDS: usize = 5;
const POSTERS: usize = 3;

fn spawn_agent(data_dir: &Path, mqtt_port: u16, api_port: u16) -> Child {
    Command::new(BIN)
        .envs(fieldsync_tests::test_gateway::keys_for(DEVICE).agent_env())
        .args(["--device-id", DEVICE, "--data-dir"])
        .arg(data_dir)
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
        .args([
            "--linger-ms",
            "10",
            "--resend-after-s",
            "1",
            "--batch-max-records",
            "20",
        ])
        .args([
            "--mqtt-reconnect-min-ms",
            "50",
            "--mqtt-reconnect-max-ms",
            "300",
        ])
        .args(["--shutdown-deadline-s", "5"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the edge-agent binary")
}

async fn wait_api(port: u16) {
    wait_for("the agent's API", DEADLINE, || async {
        http(port, "GET", "/v1/status", "").await.map(|_| ())
    })
    .await;
}

/// What the app saw.
#[derive(Debug, Default)]
struct Posted {
    /// UPRN → the sequence number of its 201.
    created: BTreeMap<u64, u64>,
    /// UPRNs whose request failed or had no answer: retried, with the same key, in the next life.
    unknown: BTreeSet<u64>,
    /// Requests that were retried.
    retried: u64,
}

/// Posts collections until the agent stops answering: first those an earlier life left
/// unanswered, then each with a fresh UPRN. Each UPRN's request has its own idempotency key.
async fn post_until_gone(port: u16, next_uprn: Arc<AtomicU64>, posted: Arc<Mutex<Posted>>) {
    loop {
        let retry = {
            let mut posted = posted.lock().unwrap();
            let retry = posted.unknown.pop_first();
            posted.retried += u64::from(retry.is_some());
            retry
        };
        let uprn = retry.unwrap_or_else(|| next_uprn.fetch_add(1, Ordering::SeqCst));
        let body = format!(
            r#"{{"uprn": {uprn}, "stream": "refuse", "outcome": "collected",
                "pos": {{"lat": 51.5, "lon": -0.14, "acc": 4.0}},
                "vehicle": "RCV-17", "round": "MON-A"}}"#
        );
        let key = format!("collection-{uprn}");
        let answer = http_with_key(port, "POST", "/v1/collections", Some(&key), &body).await;
        let mut posted = posted.lock().unwrap();
        match answer {
            Some((201, body)) => {
                let created: serde_json::Value = serde_json::from_str(&body).unwrap();
                let seq = created["seq"].as_u64().unwrap();
                let earlier = posted.created.insert(uprn, seq);
                assert!(
                    earlier.is_none(),
                    "{uprn} answered twice: {earlier:?}, {seq}"
                );
            }
            Some((status, body)) if status < 500 => panic!("{status} for a good record: {body}"),
            _ => {
                posted.unknown.insert(uprn);
                return;
            }
        }
    }
}

/// Kills the agent if the test fails before stopping it, so that no agent outlives the test.
struct KillIfPanicking(u32);

impl Drop for KillIfPanicking {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Retries `uprn` (left unanswered) with its key until the agent answers.
async fn post_once(port: u16, uprn: u64, posted: &Arc<Mutex<Posted>>) {
    let body = format!(
        r#"{{"uprn": {uprn}, "stream": "refuse", "outcome": "collected",
            "pos": {{"lat": 51.5, "lon": -0.14, "acc": 4.0}},
            "vehicle": "RCV-17", "round": "MON-A"}}"#
    );
    let key = format!("collection-{uprn}");
    let (status, body) = http_with_key(port, "POST", "/v1/collections", Some(&key), &body)
        .await
        .expect("the last life answers");
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut posted = posted.lock().unwrap();
    posted.unknown.remove(&uprn);
    posted.retried += 1;
    let seq = created["seq"].as_u64().unwrap();
    assert!(posted.created.insert(uprn, seq).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_loop_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("agent");
    let mqtt_port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], mqtt_port).into(), MAX_MESSAGE_BYTES).unwrap();
    let gateway = TestGateway::start(mqtt_port).await;
    let next_uprn = Arc::new(AtomicU64::new(1));
    let posted = Arc::new(Mutex::new(Posted::default()));

    for round in 1..=ROUNDS as u64 {
        let api_port = free_port();
        let mut agent = spawn_agent(&data_dir, mqtt_port, api_port);
        wait_api(api_port).await;
        let posters: Vec<_> = (0..POSTERS)
            .map(|_| {
                tokio::spawn(post_until_gone(
                    api_port,
                    Arc::clone(&next_uprn),
                    Arc::clone(&posted),
                ))
            })
            .collect();
        let run_for = rand::thread_rng().gen_range(150..500);
        tokio::time::sleep(Duration::from_millis(run_for)).await;
        agent.kill().unwrap(); // SIGKILL
        agent.wait().unwrap();
        for poster in posters {
            poster.await.unwrap();
        }
        // The broker tells the gateway, with the Last Will, that this life ended.
        wait_for("the Last Will", DEADLINE, || async {
            gateway
                .states(DEVICE)
                .iter()
                .any(|s| !s.online && s.boot == round)
                .then_some(())
        })
        .await;
    }

    // A last life to deliver the backlog (and answer every request left unanswered), then a
    // graceful stop.
    let api_port = free_port();
    let agent = spawn_agent(&data_dir, mqtt_port, api_port);
    let _reaper = KillIfPanicking(agent.id());
    wait_api(api_port).await;
    loop {
        let Some(uprn) = posted.lock().unwrap().unknown.first().copied() else {
            break;
        };
        let before = next_uprn.load(Ordering::SeqCst);
        post_once(api_port, uprn, &posted).await;
        assert_eq!(next_uprn.load(Ordering::SeqCst), before);
    }
    let posted = std::mem::take(&mut *posted.lock().unwrap());
    assert!(
        posted.retried > 0,
        "no request was left unanswered by a kill"
    );
    assert!(
        posted.created.len() > 50,
        "too few records posted: {}",
        posted.created.len()
    );
    let stored_uprns = || -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for record in gateway.stored(DEVICE) {
            if let RecordBody::Collection(c) = record.body {
                *counts.entry(c.uprn.unwrap()).or_default() += 1;
            }
        }
        counts
    };
    wait_for("every created record at the gateway", DEADLINE, || async {
        let stored = stored_uprns();
        posted
            .created
            .keys()
            .all(|uprn| stored.contains_key(uprn))
            .then_some(())
    })
    .await;
    wait_for("the agent's outbox to empty", DEADLINE, || async {
        let (_, body) = http(api_port, "GET", "/v1/status", "").await?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status["outbox"]["depth"] == 0).then_some(())
    })
    .await;

    // Exactly once: each UPRN stored once; only those the app sent; no number reused.
    assert!(gateway.conflicts().is_empty(), "{:?}", gateway.conflicts());
    let stored = stored_uprns();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    // Every request was answered in the end, so exactly what got a 201 is stored.
    let created: BTreeSet<u64> = posted.created.keys().copied().collect();
    let stored_set: BTreeSet<u64> = stored.keys().copied().collect();
    assert_eq!(stored_set, created);
    let seqs: BTreeSet<u64> = posted.created.values().copied().collect();
    assert_eq!(
        seqs.len(),
        posted.created.len(),
        "a sequence number was given twice"
    );
    for record in gateway.stored(DEVICE) {
        if let RecordBody::Collection(c) = &record.body {
            if let Some(seq) = posted.created.get(&c.uprn.unwrap()) {
                assert_eq!(
                    *seq, record.seq,
                    "uprn {:?} stored under another number",
                    c.uprn
                );
            }
        }
    }

    // SIGTERM: a graceful stop, announced offline.
    let terminated = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let agent = Arc::new(Mutex::new(agent));
    let exit = wait_for("the agent to exit", DEADLINE, || {
        let agent = Arc::clone(&agent);
        async move { agent.lock().unwrap().try_wait().unwrap() }
    })
    .await;
    assert!(exit.success(), "{exit:?}");
    wait_for("the offline state", DEADLINE, || async {
        gateway
            .states(DEVICE)
            .last()
            .is_some_and(|s| !s.online && s.boot == ROUNDS as u64 + 1)
            .then_some(())
    })
    .await;
}
