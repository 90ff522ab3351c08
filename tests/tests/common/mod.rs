//! What the whole-system tests share beyond `fieldsync_tests::system`: reading the gateway's
//! store after a run, to reconcile it with what the devices accepted.

#![allow(dead_code)] // each test file uses part of it

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::time::Duration;

use fieldsync_tests::system::{post_collection, AgentProcess, GatewayProcess};
use gateway::storage::{SledStore, Store};
use proto::{DeviceId, RecordBody};
use tokio_util::sync::CancellationToken;

/// Posts confirmations with fresh UPRNs until `stop`; every one must be accepted (the agent
/// stays up: its outbox holds what the link cannot carry).
pub async fn post_until(port: u16, base: u64, stop: CancellationToken) -> Accepted {
    let mut accepted = Accepted::default();
    let mut uprn = base;
    while !stop.is_cancelled() {
        uprn += 1;
        match post_collection(port, uprn, "collected", "LINK-1").await {
            Ok(seq) => {
                accepted.created.insert(seq, uprn);
            }
            Err(status) => panic!("the agent refused a good record: {status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    accepted
}

/// What an app saw from one agent.
#[derive(Debug, Default, Clone)]
pub struct Accepted {
    /// Sequence number of each 201 → the UPRN of its confirmation.
    pub created: BTreeMap<u64, u64>,
    /// UPRNs whose request got no answer (the agent was killed): stored at most once.
    pub unanswered: BTreeSet<u64>,
    /// Records the device made that are not confirmations (round events…).
    pub others: u64,
}

/// Waits until `agent` has delivered everything it accepted, stops it and the gateway, and
/// reconciles the gateway's store with `accepted` ([`reconcile`]).
pub async fn drain_and_reconcile(
    agent: &mut AgentProcess,
    gateway: &mut GatewayProcess,
    accepted: Accepted,
    context: &str,
) {
    agent.wait_drained().await;
    agent.stop();
    gateway.stop();
    reconcile(
        &gateway.data_dir,
        &[(agent.device.clone(), accepted)],
        context,
    );
}

/// Opens the gateway's store (the gateway must be stopped) and checks, for each device, that
/// every accepted confirmation is stored once under its sequence number, and nothing else is
/// stored but unanswered confirmations and the device's other records.
pub fn reconcile(store_dir: &Path, devices: &[(String, Accepted)], context: &str) {
    let store = SledStore::open(store_dir, 16 * 1024 * 1024).expect("the gateway's store");
    for (device, accepted) in devices {
        let id = DeviceId::new(device.as_str()).expect("a device id");
        let count = store.record_count(&id).expect("the record count");
        let least = accepted.created.len() as u64 + accepted.others;
        let most = least + accepted.unanswered.len() as u64;
        assert!(
            (least..=most).contains(&count),
            "{context}: {device} has {count} records stored; accepted {least}, \
             {} more unanswered",
            accepted.unanswered.len()
        );
        let mut stored_uprns = BTreeSet::new();
        for stored in store.records(&id, 0, usize::MAX).expect("the records") {
            let seq = stored.record.seq;
            if let RecordBody::Collection(collection) = stored.record.body {
                let uprn = collection.uprn.expect("a UPRN");
                assert!(
                    stored_uprns.insert(uprn),
                    "{context}: {device}'s confirmation of {uprn} stored twice"
                );
                match accepted.created.get(&seq) {
                    Some(expected) => assert_eq!(
                        *expected, uprn,
                        "{context}: {device} seq {seq} holds another confirmation"
                    ),
                    None => assert!(
                        accepted.unanswered.contains(&uprn),
                        "{context}: {device} seq {seq} ({uprn}) was never accepted"
                    ),
                }
            }
        }
        for (seq, uprn) in &accepted.created {
            assert!(
                stored_uprns.contains(uprn),
                "{context}: {device} seq {seq} ({uprn}) was accepted but is not stored"
            );
        }
    }
}

/// Opens the gateway's store (the gateway must be stopped) and gives, for each of `device`'s
/// stored confirmations, its UPRN → when the gateway placed it, how, and the device's own `ts`.
pub fn placed_confirmations(
    store_dir: &Path,
    device: &str,
) -> BTreeMap<u64, (gateway::record_time::PlacedTime, proto::TimestampMs)> {
    let store = SledStore::open(store_dir, 16 * 1024 * 1024).expect("the gateway's store");
    let id = DeviceId::new(device).expect("a device id");
    let mut placed = BTreeMap::new();
    for stored in store.records(&id, 0, usize::MAX).expect("the records") {
        if let RecordBody::Collection(collection) = &stored.record.body {
            let uprn = collection.uprn.expect("a UPRN");
            let at = stored.placed.expect("every new record is placed");
            placed.insert(uprn, (at, stored.record.ts));
        }
    }
    placed
}
