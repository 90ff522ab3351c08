#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A cab whose clock is hours wrong, against the real gateway: confirmations made offline on a
//! clock three hours slow, the clock then corrected (as NTP does once the link is back), and
//! later a jump two hours ahead while connected. The agent runs under libfaketime, which moves
//! only its wall clock; its monotonic clock runs true, as a device's does.
//!
//! Every confirmation must be placed by the gateway at the real time it was made, within the
//! link's delay (the bound here is generous against errors of hours) and said to be placed from
//! the monotonic clock, and the store must reconcile exactly, on the embedded broker and on an
//! external one. The real time comes from this test's own clock, which is not faked: the test
//! compares two clocks running at once, never a fixed date.

mod common;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{drain_and_reconcile, placed_confirmations, Accepted};
use fieldsync_tests::faketime::FakeClock;
use fieldsync_tests::system::{post_collection, unique_id, AgentProcess, Broker, GatewayProcess};
use fieldsync_tests::test_gateway::LinkProxy;
use gateway::record_time::TimeBasis;

const HOUR_S: i64 = 3600;

/// How far from the real time a record may be placed: the link's delay and the gateway's
/// batching, with room to spare on a loaded machine; the errors it guards against are hours.
const PLACED_WITHIN_MS: i64 = 15_000;

fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Posts `count` confirmations from `base`, noting the real window each was made in.
async fn post(
    agent: &AgentProcess,
    base: u64,
    count: u64,
    accepted: &mut Accepted,
    made: &mut BTreeMap<u64, (i64, i64)>,
) {
    for uprn in base..base + count {
        let before = real_now_ms();
        let seq = post_collection(agent.api_port, uprn, "collected", "CLOCK-1")
            .await
            .unwrap_or_else(|status| panic!("confirmation {uprn} refused: {status:?}"));
        made.insert(uprn, (before, real_now_ms()));
        accepted.created.insert(seq, uprn);
    }
}

async fn clocks_hours_wrong(broker: Broker, clock_dir: &std::path::Path) -> Result<(), String> {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(clock_dir, -3 * HOUR_S)?;
    let device = unique_id("cab");
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device]).await;
    let (host, port) = broker.address();
    assert_eq!(host, "127.0.0.1", "the relay forwards to a local broker");
    let proxy = LinkProxy::start(port).await;
    let mut agent = AgentProcess::start_with_env(
        dir.path(),
        &device,
        ("127.0.0.1".into(), proxy.port),
        &gateway,
        clock.env(),
    )
    .await;
    let mut accepted = Accepted::default();
    let mut made = BTreeMap::new();

    // Connected on a slow clock, then offline, still slow.
    post(&agent, 800_000_000_000, 50, &mut accepted, &mut made).await;
    proxy.cut();
    post(&agent, 800_000_001_000, 200, &mut accepted, &mut made).await;
    // Corrected while offline, then back.
    clock.set_offset(0);
    post(&agent, 800_000_002_000, 50, &mut accepted, &mut made).await;
    proxy.restore();
    post(&agent, 800_000_003_000, 50, &mut accepted, &mut made).await;
    // A jump two hours ahead while connected.
    clock.set_offset(2 * HOUR_S);
    post(&agent, 800_000_004_000, 100, &mut accepted, &mut made).await;

    let context = format!("{}, the cab's clock hours wrong", broker.name());
    drain_and_reconcile(&mut agent, &mut gateway, accepted, &context).await;

    let placed = placed_confirmations(&gateway.data_dir, &device);
    assert_eq!(placed.len(), made.len(), "{context}");
    let mut device_clock_wrong = 0;
    for (uprn, (before, after)) in &made {
        let (at, ts) = placed[uprn];
        assert_eq!(at.basis, TimeBasis::Monotonic, "{context}: {uprn}");
        assert!(
            (before - PLACED_WITHIN_MS..=after + PLACED_WITHIN_MS).contains(&at.at),
            "{context}: {uprn} made between {before} and {after}, placed at {} ({} s off)",
            at.at,
            (at.at - before) / 1000
        );
        if (ts - before).abs() > HOUR_S * 1000 {
            device_clock_wrong += 1;
        }
    }
    // The device really did stamp hours-wrong times: 250 slow, 100 ahead.
    assert_eq!(device_clock_wrong, 350, "{context}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_on_a_clock_hours_wrong_are_placed_at_their_real_time() {
    let clock_dir = tempfile::tempdir().unwrap();
    for broker in Broker::under_test() {
        if let Err(why) = clocks_hours_wrong(broker, clock_dir.path()).await {
            eprintln!("SKIPPED: {why}");
            return;
        }
    }
}
