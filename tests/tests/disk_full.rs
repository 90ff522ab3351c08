#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A cab's disk filled by another file while its crew goes on confirming, against the real
//! gateway: while the disk is full the agent answers 507 and says so in `/v1/status`; once the
//! file is gone it recovers by itself, without a restart, and delivers everything it accepted.
//! Ends with an exact reconciliation (every 201 stored once, no refused confirmation stored), on
//! the embedded broker and on an external one. Mounting the small disk needs root (CI runs as
//! root); elsewhere the test prints why it skips.

mod common;

use std::time::Duration;

use common::{drain_and_reconcile, Accepted};
use fieldsync_tests::disk::{fill, Tmpfs};
use fieldsync_tests::system::{post_collection, unique_id, AgentProcess, Broker, GatewayProcess};
use fieldsync_tests::wait_for;

const DEADLINE: Duration = Duration::from_secs(30);

/// Posts `count` confirmations with UPRNs from `base`; every answer must be `expected`.
async fn post(port: u16, base: u64, count: u64, expected: u16, accepted: &mut Accepted) {
    for uprn in base..base + count {
        match post_collection(port, uprn, "collected", "DISK-1").await {
            Ok(seq) if expected == 201 => {
                accepted.created.insert(seq, uprn);
            }
            Err(Some(status)) if status == expected => {}
            other => panic!("confirmation {uprn}: expected {expected}, got {other:?}"),
        }
    }
}

async fn storage_state(agent: &AgentProcess) -> String {
    let status = agent.status().await.expect("the agent's status");
    status["outbox"]["storage"]["state"]
        .as_str()
        .unwrap_or("missing")
        .to_owned()
}

async fn full_and_recovered(broker: Broker, disk: &Tmpfs) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let device = unique_id("cab");
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device]).await;
    let mut agent = AgentProcess::start(disk.path(), &device, broker.address(), &gateway).await;
    let mut accepted = Accepted::default();

    post(agent.api_port, 700_000_000_000, 100, 201, &mut accepted).await;
    let ballast = fill(disk.path());
    // sled may take a few records into memory before its write-out meets the full disk; those
    // were accepted and must arrive. From the first refusal on, every POST is refused at once.
    let mut uprn = 700_000_001_000;
    let refused = loop {
        uprn += 1;
        match post_collection(agent.api_port, uprn, "collected", "DISK-1").await {
            Ok(seq) => {
                accepted.created.insert(seq, uprn);
            }
            other => break other,
        }
        assert!(uprn < 700_000_003_000, "the full disk was never noticed");
    };
    assert!(
        matches!(refused, Err(Some(507))),
        "{}: a POST on a full disk got {refused:?}",
        broker.name()
    );
    post(agent.api_port, 700_000_003_001, 20, 507, &mut accepted).await;
    assert_eq!(storage_state(&agent).await, "disk_full");

    std::fs::remove_file(&ballast).unwrap();
    wait_for("the agent's storage to recover", DEADLINE, || async {
        (storage_state(&agent).await == "ok").then_some(())
    })
    .await;
    post(agent.api_port, 700_000_004_000, 100, 201, &mut accepted).await;

    drain_and_reconcile(
        &mut agent,
        &mut gateway,
        accepted,
        &format!("{}, the cab's disk full and recovered", broker.name()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_507_recovers_by_itself_and_loses_nothing() {
    let disk = match Tmpfs::mount("16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    for broker in Broker::under_test() {
        full_and_recovered(broker, &disk).await;
    }
}
