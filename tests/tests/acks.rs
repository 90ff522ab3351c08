#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The gateway's acks mistreated on their way to a cab, against the real gateway: every third
//! lost, every second delivered twice, every fifth delivered again after newer ones. An ack is
//! the only thing that lets an agent delete a record, so a stale or repeated one must delete
//! nothing it should not, and a lost one must only delay the deletion (the agent resends, the
//! gateway stores once and acks again). Ends with an exact reconciliation, on the embedded
//! broker and on an external one.

mod common;

use std::time::Duration;

use common::{drain_and_reconcile, post_until};
use fieldsync_tests::ack_faults::{AckFaultRelay, AckFaults};
use fieldsync_tests::system::{unique_id, AgentProcess, Broker, GatewayProcess};
use tokio_util::sync::CancellationToken;

async fn acks_lost_duplicated_and_reordered(broker: Broker) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let device = unique_id("cab");
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device]).await;
    let (host, port) = broker.address();
    assert_eq!(host, "127.0.0.1", "the relay forwards to a local broker");
    let relay = AckFaultRelay::start(
        port,
        AckFaults {
            lose_every: 3,
            duplicate_every: 2,
            replay_late_every: 5,
        },
    )
    .await;
    let mut agent = AgentProcess::start(
        dir.path(),
        &device,
        ("127.0.0.1".into(), relay.port),
        &gateway,
    )
    .await;

    let stop = CancellationToken::new();
    let poster = tokio::spawn(post_until(agent.api_port, 600_000_000_000, stop.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.cancel();
    let accepted = poster.await.unwrap();
    assert!(accepted.created.len() > 100, "{}", accepted.created.len());

    let context = format!("{} with acks lost, duplicated and reordered", broker.name());
    let confirmations = accepted.created.len();
    drain_and_reconcile(&mut agent, &mut gateway, accepted, &context).await;
    eprintln!(
        "{context}: {confirmations} confirmations; acks lost {}, duplicated {}, replayed late {}",
        relay.lost(),
        relay.duplicated(),
        relay.replayed_late()
    );
    assert!(relay.lost() > 0, "no ack was lost: the test proved nothing");
    assert!(relay.duplicated() > 0, "no ack was duplicated");
    assert!(
        relay.replayed_late() > 0,
        "no stale ack came after a newer one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_lost_duplicated_or_reordered_lose_and_repeat_nothing() {
    for broker in Broker::under_test() {
        acks_lost_duplicated_and_reordered(broker).await;
    }
}
