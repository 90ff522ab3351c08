#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A clean stop is quiet: a gateway with its embedded broker, a device that says goodbye (MQTT
//! DISCONNECT) as a stopping agent does, and another still sending batches as fast as it can while
//! the gateway stops, logs nothing at WARN or above (rumqttd's own lines included) from start
//! until the broker has seen the gateway's client go, so that an operator reading the log of a
//! restart sees no error that is not one.
//!
//! The only test in its binary: it installs the process's log subscriber.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fieldsync_tests::wait_for;
use gateway::clock::FixedClock;
use gateway::Gateway;
use proto::{Record, RecordBody, Telemetry, TimestampMs};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use support::Captured;

/// Wednesday 25 November 2026, 10:00 UTC.
const NOW: &str = "2026-11-25T10:00:00Z";
const NOW_MS: TimestampMs = 1_795_600_800_000;
const DEADLINE: Duration = Duration::from_secs(20);

/// Whether the log has a line holding `needle` about `client`'s connection.
fn said(logs: &Captured, needle: &str, client: &str) -> bool {
    let client = format!("client_id=\"{client}\"");
    logs.text()
        .lines()
        .any(|line| line.contains(needle) && line.contains(&client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_logs_no_error_or_warning() {
    // Everything at INFO, so that the broker's farewells are seen to have happened.
    let logs = Captured::install("info");

    let dir = tempfile::tempdir().unwrap();
    let config = support::config(dir.path());
    let gateway = Gateway::start_with_clock(config, Arc::new(FixedClock::at_rfc3339(NOW)))
        .await
        .unwrap();
    assert!(gateway.wait_ready(DEADLINE).await);

    let hub = support::enrolled(&gateway, "hub-0001").await;
    let record = Record {
        seq: 1,
        ts: NOW_MS,
        body: RecordBody::Telemetry(Telemetry {
            asset: "HIL-B-0001".into(),
            bar: Some(1.5),
            ..Telemetry::default()
        }),
        boot: None,
        mono: None,
    };
    hub.send(vec![record.clone()]).await;
    hub.wait_acked(1, DEADLINE).await;

    // A device stopping cleanly: CONNECT, then DISCONNECT.
    let options = MqttOptions::new("fake-hh-ada", "127.0.0.1", gateway.mqtt.1);
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    loop {
        match eventloop.poll().await.unwrap() {
            Event::Incoming(Packet::ConnAck(_)) => break,
            _ => continue,
        }
    }
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}
    wait_for("the broker to see the device go", DEADLINE, || async {
        said(&logs, "router-drop", "fake-hh-ada").then_some(())
    })
    .await;

    // The hub keeps sending through the stop.
    let hub = Arc::new(hub);
    let sending = hub.clone();
    let flood = tokio::spawn(async move {
        for seq in 2.. {
            sending
                .send(vec![Record {
                    seq,
                    ..record.clone()
                }])
                .await;
        }
    });
    hub.wait_acked(100, DEADLINE).await;
    gateway.stop().await;

    // The broker outlives the gateway in this process (rumqttd has no stop; in the binary the
    // process's exit ends it, and every device's connection with it): the gateway's own client
    // leaving is what a stop shows of it, once the router has seen it go.
    wait_for(
        "the broker to see the gateway's client go",
        DEADLINE,
        || async { said(&logs, "Disconnecting connection", "fieldsync-gateway").then_some(()) },
    )
    .await;
    flood.abort();
    let text = logs.text();
    let loud: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        // Configured so for the fake devices, and said at start-up.
        .filter(|line| !line.contains("mqtt.allow_anonymous is set"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}
