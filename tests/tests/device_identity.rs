#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Device identity with the real binaries: the configuration `gateway devices add` prints is what
//! a real `edge-agent` needs to deliver through the gateway's embedded broker; `gateway devices
//! revoke` (gateway stopped) shuts that device out from the next start while another device goes
//! on delivering; an unknown device and a wrong password are refused.

use std::time::Duration;

use fieldsync_tests::free_port;
use fieldsync_tests::system::{post_collection, AgentProcess, GatewayProcess};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};

/// Whether the broker on `port` gives `device` with `password` a successful CONNACK.
async fn connects(port: u16, device: &str, password: &str) -> bool {
    let mut options = MqttOptions::new(device, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials(device, password);
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    match tokio::time::timeout(Duration::from_secs(20), eventloop.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => ack.code == ConnectReturnCode::Success,
        Ok(Ok(other)) => panic!("unexpected first event {other:?}"),
        Ok(Err(_)) => false,
        Err(_) => panic!("the broker neither accepted nor refused {device}"),
    }
}

/// An agent for `device` that presents `password` (through the environment, as an operator
/// would keep it out of the configuration file), signing with the keys it was issued.
async fn agent(
    dir: &std::path::Path,
    gateway: &GatewayProcess,
    device: &str,
    password: &str,
    port: u16,
) -> AgentProcess {
    let env = vec![
        (
            "FIELDSYNC_AGENT_MQTT_USERNAME".to_owned(),
            device.to_owned(),
        ),
        (
            "FIELDSYNC_AGENT_MQTT_PASSWORD".to_owned(),
            password.to_owned(),
        ),
    ];
    AgentProcess::start_with_env(dir, device, ("127.0.0.1".to_owned(), port), gateway, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_devices_deliver_and_revoked_ones_are_shut_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut gateway, passwords) =
        GatewayProcess::start_with_devices(dir.path(), port, &["cab-1", "cab-2"]).await;
    let (cab1, cab2) = (&passwords[0].1, &passwords[1].1);

    let mut first = agent(dir.path(), &gateway, "cab-1", cab1, port).await;
    let second = agent(dir.path(), &gateway, "cab-2", cab2, port).await;
    for agent in [&first, &second] {
        post_collection(agent.api_port, 100_000_000_001, "collected", "R-1")
            .await
            .unwrap();
        agent.wait_drained().await;
    }
    assert!(!connects(port, "cab-3", cab1).await, "an unknown device");
    assert!(!connects(port, "cab-1", cab2).await, "a wrong password");

    first.stop();
    gateway.stop();
    assert!(gateway
        .devices(&["revoke", "cab-1"])
        .contains("revoked cab-1"));
    let listed = gateway.devices(&["list"]);
    assert!(
        listed.contains("cab-1\t") && listed.contains("revoked"),
        "{listed}"
    );
    gateway.restart().await;

    assert!(!connects(port, "cab-1", cab1).await, "a revoked device");
    // The other device is unaffected: it delivers through the restarted gateway.
    post_collection(second.api_port, 100_000_000_002, "collected", "R-1")
        .await
        .unwrap();
    second.wait_drained().await;
    drop(second);
    gateway.stop();
}
