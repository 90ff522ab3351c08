#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A cab's agent killed with SIGKILL again and again while the app posts confirmations, against
//! the real gateway on the embedded broker and on an external one: after the last restart every
//! confirmation that got a 201 is in the gateway's store exactly once under its sequence number,
//! and nothing else is there but confirmations whose request got no answer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{reconcile, Accepted};
use fieldsync_tests::system::{post_collection, unique_id, AgentProcess, Broker, GatewayProcess};

const LIVES: u64 = 4;
const POSTERS: u64 = 3;

/// Posts confirmations with fresh UPRNs (`first + n * POSTERS`) until the agent stops answering.
async fn post_until_gone(port: u16, first: u64, round: u64, accepted: Arc<Mutex<Accepted>>) {
    for n in 0.. {
        let uprn = 300_000_000_000 + round * 1_000_000 + first + n * POSTERS;
        let answer = post_collection(port, uprn, "collected", "KILL-1").await;
        let mut accepted = accepted.lock().unwrap();
        match answer {
            Ok(seq) => {
                assert!(
                    accepted.created.insert(seq, uprn).is_none(),
                    "sequence {seq} handed out twice"
                );
            }
            Err(Some(status)) if status < 500 => panic!("{status} for a good record"),
            Err(_) => {
                accepted.unanswered.insert(uprn);
                return;
            }
        }
    }
}

async fn run(broker: Broker) {
    let _exclusive = fieldsync_tests::system::external_broker_lock(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let device = unique_id("cab");
    let mut gateway = GatewayProcess::start(dir.path(), &broker, &[&device]).await;
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let mut agent = AgentProcess::start(dir.path(), &device, broker.address(), &gateway).await;
    for life in 0..LIVES {
        let posters: Vec<_> = (0..POSTERS)
            .map(|first| {
                tokio::spawn(post_until_gone(
                    agent.api_port,
                    first,
                    life,
                    accepted.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + 150 * life)).await;
        agent.kill();
        for poster in posters {
            poster.await.unwrap();
        }
        agent.restart().await;
    }
    agent.wait_drained().await;
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.created.len() > 100,
        "too few records posted to prove anything: {}",
        accepted.created.len()
    );
    agent.stop();
    gateway.stop();
    reconcile(&gateway.data_dir, &[(device, accepted)], broker.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_in_a_loop_loses_and_repeats_nothing() {
    for broker in Broker::under_test() {
        run(broker).await;
    }
}
