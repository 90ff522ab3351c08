#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Patchy 4G and broker outages while a cab posts confirmations, against the real gateway:
//! - the cab's link cut, flapping and stalled (open but silent) through a relay, on the embedded
//!   broker and on an external one;
//! - the broker itself (a Mosquitto of the test's own, keeping nothing on disk) killed and
//!   restarted under load, so that everything it held in memory is lost.
//!
//! Each ends with an exact reconciliation of the gateway's store with what the app was told.

mod common;

use std::time::Duration;

use common::{drain_and_reconcile, post_until, reconcile};
use fieldsync_tests::system::{unique_id, AgentProcess, Broker, GatewayProcess, PrivateMosquitto};
use fieldsync_tests::test_gateway::LinkProxy;
use tokio_util::sync::CancellationToken;

async fn cut_flap_and_stall(broker: Broker) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let device = unique_id("cab");
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device]).await;
    let (host, port) = broker.address();
    assert_eq!(host, "127.0.0.1", "the relay forwards to a local broker");
    let proxy = LinkProxy::start(port).await;
    let mut agent = AgentProcess::start(
        dir.path(),
        &device,
        ("127.0.0.1".into(), proxy.port),
        &gateway,
    )
    .await;
    let stop = CancellationToken::new();
    let poster = tokio::spawn(post_until(agent.api_port, 400_000_000_000, stop.clone()));

    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    pause(300).await;
    proxy.cut();
    pause(800).await;
    proxy.restore();
    pause(300).await;
    for _ in 0..5 {
        proxy.cut();
        pause(80).await;
        proxy.restore();
        pause(120).await;
    }
    proxy.stall();
    pause(1500).await;
    proxy.restore();
    pause(300).await;
    proxy.stall();
    pause(700).await;
    proxy.cut();
    pause(300).await;
    proxy.restore();
    pause(300).await;
    stop.cancel();
    let accepted = poster.await.unwrap();
    assert!(accepted.created.len() > 100, "{}", accepted.created.len());

    drain_and_reconcile(
        &mut agent,
        &mut gateway,
        accepted,
        &format!("{} behind a patchy link", broker.name()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_flapping_or_stalled_link_loses_and_repeats_nothing() {
    for broker in Broker::under_test() {
        cut_flap_and_stall(broker).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut mosquitto) = PrivateMosquitto::start(dir.path()).await else {
        eprintln!("SKIPPED: no mosquitto binary on this machine (apt-get install mosquitto)");
        return;
    };
    let broker = Broker::External("127.0.0.1".into(), mosquitto.port);
    let devices = [unique_id("cab"), unique_id("cab")];
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&devices[0], &devices[1]]).await;
    let mut agents = Vec::new();
    for device in &devices {
        agents.push(AgentProcess::start(dir.path(), device, broker.address(), &gateway).await);
    }
    let stop = CancellationToken::new();
    let posters: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            tokio::spawn(post_until(
                agent.api_port,
                500_000_000_000 + i as u64 * 1_000_000,
                stop.clone(),
            ))
        })
        .collect();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        mosquitto.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.cancel();
    let mut accepted = Vec::new();
    for (device, poster) in devices.iter().zip(posters) {
        accepted.push((device.clone(), poster.await.unwrap()));
    }
    for agent in &mut agents {
        agent.wait_drained().await;
        agent.stop();
    }
    gateway.stop();
    reconcile(&gateway.data_dir, &accepted, "Mosquitto restarted twice");
}
