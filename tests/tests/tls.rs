#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS end to end with the real binaries: a gateway serving HTTPS and an embedded-broker TLS
//! listener, both on a certificate from a CA made at test time. An agent trusting that CA
//! delivers a record over MQTT/TLS and gets its ack; an agent trusting another CA refuses the
//! broker, and so does an HTTPS client.

use fieldsync_tests::pki::TestPki;
use fieldsync_tests::system::{post_collection, AgentProcess, GatewayProcess, DEADLINE};
use fieldsync_tests::{free_port, http, wait_for};

/// An agent for `device` with `password` (enrolled with `gateway`, whose keys it signs with),
/// connecting over TLS to `port` and trusting `ca`.
async fn tls_agent(
    dir: &std::path::Path,
    gateway: &GatewayProcess,
    device: &str,
    password: &str,
    port: u16,
    ca: &std::path::Path,
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
        (
            "FIELDSYNC_AGENT_MQTT_TLS_CA".to_owned(),
            ca.display().to_string(),
        ),
    ];
    AgentProcess::start_with_env(dir, device, ("127.0.0.1".to_owned(), port), gateway, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_trusting_the_sites_ca_deliver_over_tls_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = TestPki::new(dir.path(), "site");
    let other = TestPki::new(dir.path(), "other");
    let (mut gateway, passwords) = GatewayProcess::start_with_devices_tls(
        dir.path(),
        free_port(),
        &["cab-tls", "cab-wrong-ca"],
        &site,
    )
    .await;
    let (_, tls_port) = gateway.tls.clone().unwrap();

    // HTTPS: trusted with the site's CA (the gateway's start waited on it), not with another.
    let healthz = gateway.url("/healthz");
    assert!(healthz.starts_with("https://"));
    let trusted = http::try_request_tls("GET", &healthz, &site.ca, None, Vec::new())
        .await
        .unwrap();
    assert_eq!(trusted.status, 200);
    let untrusted = http::try_request_tls("GET", &healthz, &other.ca, None, Vec::new()).await;
    assert!(
        untrusted.is_err(),
        "a client trusting another CA got {untrusted:?}"
    );

    // MQTT over TLS: delivered and acked.
    let agent = tls_agent(
        dir.path(),
        &gateway,
        "cab-tls",
        &passwords[0].1,
        tls_port,
        &site.ca,
    )
    .await;
    post_collection(agent.api_port, 700_000_000_001, "collected", "R-1")
        .await
        .unwrap();
    agent.wait_drained().await;
    let status = agent.status().await.unwrap();
    assert_eq!(status["link"]["state"], "connected", "{status}");

    // An agent that trusts another CA refuses the broker's certificate: it keeps its record
    // and never connects.
    let refused = tls_agent(
        dir.path(),
        &gateway,
        "cab-wrong-ca",
        &passwords[1].1,
        tls_port,
        &other.ca,
    )
    .await;
    post_collection(refused.api_port, 700_000_000_002, "collected", "R-1")
        .await
        .unwrap();
    let error = wait_for(
        "the agent to report the refused certificate",
        DEADLINE,
        || async {
            let status = refused.status().await?;
            status["link"]["last_error"].as_str().map(str::to_owned)
        },
    )
    .await;
    let status = refused.status().await.unwrap();
    assert_eq!(status["link"]["connections"], 0, "{status}");
    assert_eq!(status["outbox"]["depth"], 1, "{status}");
    assert!(
        error.to_lowercase().contains("certificate") || error.to_lowercase().contains("tls"),
        "{error}"
    );

    drop(refused);
    drop(agent);
    gateway.stop();
}
