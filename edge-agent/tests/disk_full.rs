#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real full disk (issue 11, item 11). The agent's data lives on a small tmpfs that another file
//! fills, as a log or a photo cache would on a device. While the disk is full every POST is
//! answered 507 with the reason, and `/v1/status` says the storage is full; once the file is gone
//! the running agent recovers by itself (no restart), stores again and applies acks, and no
//! sequence number is ever handed out twice: after a restart the outbox holds exactly the records
//! that got a 201.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the tests print why they skip.

#[path = "support/signing.rs"]
mod signing;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use edge_agent::outbox::{BatchLimits, Outbox, OutboxConfig, OutboxError, StorageState};
use fieldsync_tests::disk::{fill, Tmpfs};
use fieldsync_tests::{free_port, http, wait_for};
use proto::clock::{Clock, SystemClock};
use proto::{RecordBody, Telemetry};

const DEADLINE: Duration = Duration::from_secs(20);

/// Everything the agent logs in this test binary, at WARN and above.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let make_writer = move || Sink(Arc::clone(&sink));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(make_writer)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
}

/// Lines logged so far at `level`.
fn logged(level: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    text.lines()
        .filter(|line| line.contains(level))
        .map(str::to_owned)
        .collect()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn collection(n: u64) -> serde_json::Value {
    serde_json::json!({
        "uprn": 100_000 + n, "stream": "refuse", "outcome": "collected",
        "pos": {"lat": 51.5, "lon": -0.14, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A",
        "note": format!("bin {n} {}", "y".repeat(200)),
    })
}

/// Every record the outbox in `dir` holds, by sequence number.
fn held(dir: &Path) -> Vec<u64> {
    let outbox = Outbox::open(dir, OutboxConfig::default()).unwrap();
    let limits = BatchLimits {
        records: 100_000,
        bytes: usize::MAX,
    };
    let batch = outbox.next_batch(Instant::now(), limits).unwrap();
    batch.iter().map(|record| record.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_shows_in_status_and_recovers_without_a_restart() {
    let disk = match Tmpfs::mount("6m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    log();
    let data_dir = disk.path().join("agent");
    let mut config = AgentConfig {
        device_id: "cab-full".into(),
        signing: signing::signing("cab-full"),
        data_dir: data_dir.clone(),
        shutdown_deadline_s: 1,
        ..AgentConfig::default()
    };
    config.mqtt.port = free_port();
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.intervals.health_s = 3600;
    let agent = Agent::start(config).await.unwrap();
    let base = format!("http://{}", agent.api_addr);
    let post = |n: u64| {
        let url = format!("{base}/v1/collections");
        async move { http::post_json(&url, None, &collection(n)).await }
    };

    let mut created = BTreeSet::new();
    let first = post(0).await;
    assert_eq!(first.status, 201, "{}", first.body);
    created.insert(first.json()["seq"].as_u64().unwrap());

    let ballast = fill(disk.path());
    // sled may take a few records into memory before its write-out meets the full disk.
    let mut n = 1;
    let refused = loop {
        let response = post(n).await;
        n += 1;
        match response.status {
            201 => assert!(created.insert(response.json()["seq"].as_u64().unwrap())),
            _ => break response,
        }
        assert!(n < 2_000, "the full disk was never noticed");
    };
    assert_eq!(refused.status, 507, "{}", refused.body);
    let reason = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(reason.contains("disk is full"), "{reason}");
    // Every later POST is refused the same way, at once.
    for _ in 0..20 {
        let response = post(n).await;
        n += 1;
        assert_eq!(response.status, 507, "{}", response.body);
    }
    let status = http::get(&format!("{base}/v1/status"), None).await.json();
    assert_eq!(
        status["outbox"]["storage"]["state"], "disk_full",
        "{status}"
    );
    // One line says the storage went down (one per test of this binary), not one per request.
    let errors = logged("ERROR");
    assert!(errors.len() <= 2, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|line| line.contains("outbox storage down")),
        "{errors:#?}"
    );
    assert!(status["outbox"]["storage"]["since"].is_i64(), "{status}");

    std::fs::remove_file(&ballast).unwrap();
    wait_for("the storage to recover", DEADLINE, || async {
        let status = http::get(&format!("{base}/v1/status"), None).await.json();
        (status["outbox"]["storage"]["state"] == "ok").then_some(())
    })
    .await;
    let status = http::get(&format!("{base}/v1/status"), None).await.json();
    assert_eq!(status["outbox"]["storage"]["recoveries"], 1, "{status}");
    for _ in 0..10 {
        let response = post(n).await;
        n += 1;
        assert_eq!(response.status, 201, "{}", response.body);
        let seq = response.json()["seq"].as_u64().unwrap();
        assert!(created.insert(seq), "sequence {seq} handed out twice");
    }
    agent.shutdown().await;

    // Exactly what got a 201 is held: nothing refused was kept, nothing accepted was lost.
    let held: BTreeSet<u64> = held(&data_dir).into_iter().collect();
    assert_eq!(held, created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_apply_again_once_space_returns() {
    let disk = match Tmpfs::mount("6m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let dir = disk.path().join("outbox");
    let outbox = Outbox::open(&dir, OutboxConfig::default()).unwrap();
    let telemetry = || {
        RecordBody::Telemetry(Telemetry {
            asset: "B-1".into(),
            flow: Some(60.0),
            ..Telemetry::default()
        })
    };
    let mut accepted = Vec::new();
    for _ in 0..5 {
        accepted.push(
            outbox
                .accept(SystemClock.now_ms(), telemetry())
                .await
                .unwrap()
                .seq,
        );
    }
    let ballast = fill(disk.path());
    let mut refused = None;
    for _ in 0..2_000 {
        match outbox.accept(SystemClock.now_ms(), telemetry()).await {
            Ok(ok) => accepted.push(ok.seq),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the full disk was never noticed");
    assert!(
        matches!(refused, OutboxError::StorageDown(ref fault) if fault.disk_full),
        "{refused:?}"
    );
    assert!(matches!(
        outbox.stats().unwrap().storage,
        StorageState::Down(_)
    ));

    std::fs::remove_file(&ballast).unwrap();
    let mut storage = outbox.storage_changes();
    tokio::time::timeout(
        DEADLINE,
        storage.wait_for(|state| *state == StorageState::Ok),
    )
    .await
    .expect("the outbox did not recover")
    .unwrap();

    let last = *accepted.last().unwrap();
    let acked = outbox.ack(last).await.unwrap();
    assert_eq!(acked.acked_through, last);
    assert_eq!(outbox.stats().unwrap().depth, 0);
    let next = outbox
        .accept(SystemClock.now_ms(), telemetry())
        .await
        .unwrap()
        .seq;
    assert!(next > last, "{next} reuses a number up to {last}");
    drop(outbox);
    assert_eq!(held(&dir), vec![next]);
}
