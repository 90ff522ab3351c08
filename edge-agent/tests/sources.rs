#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A boiler hub's sensor source wired into the agent: a JSON line file, an OTGW capture piped
//! through a FIFO, and an OTGW over TCP whose sampling interval the gateway changes while it runs. Samples
//! become telemetry records at the test gateway, carrying the configured asset id, and the
//! source's state and counters show in `GET /v1/status`.

#[path = "support/signing.rs"]
mod signing;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use edge_agent::source::{OtgwCommands, SourceConfig, SourceState};
use fieldsync_tests::test_gateway::TestGateway;
use fieldsync_tests::{free_port, http, wait_for};
use proto::{Config, Down, DownBody, RecordBody, Telemetry, MAX_MESSAGE_BYTES, SCHEMA_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(20);
const FIXTURE: &str = include_str!("otgw_fixture.txt");

fn broker() -> u16 {
    let port = free_port();
    gateway::broker::start_embedded(([127, 0, 0, 1], port).into(), MAX_MESSAGE_BYTES).unwrap();
    port
}

/// A boiler hub reading `source` for asset `B-1042`; health records are rare enough not to show.
fn config(dir: &Path, device: &str, mqtt_port: u16, source: SourceConfig) -> AgentConfig {
    let mut config = AgentConfig {
        device_id: device.into(),
        signing: signing::signing(device),
        data_dir: dir.join(device),
        shutdown_deadline_s: 5,
        asset: Some("B-1042".into()),
        source: Some(source),
        ..AgentConfig::default()
    };
    config.mqtt.port = mqtt_port;
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 400;
    config.uplink.linger_ms = 10;
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.intervals.health_s = 3600;
    config
}

/// The telemetry records the gateway stored for `device`.
fn telemetry(gateway: &TestGateway, device: &str) -> Vec<Telemetry> {
    gateway
        .stored(device)
        .into_iter()
        .filter_map(|record| match record.body {
            RecordBody::Telemetry(sample) => Some(sample),
            _ => None,
        })
        .collect()
}

async fn status(agent: &Agent) -> serde_json::Value {
    let response = http::get(&format!("http://{}/v1/status", agent.api_addr), None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// What a thermostat's poll cycle in `otgw_fixture.txt` decodes to.
fn fixture_sample() -> Telemetry {
    Telemetry {
        asset: "B-1042".into(),
        flow: Some(58.0),
        ret: Some(45.0),
        dhw: Some(48.0),
        exh: Some(65.0),
        setp: Some(60.0),
        bar: Some(1.601_562_5),
        modu: Some(50.0),
        flame: Some(true),
        ch: Some(true),
        dhw_on: Some(false),
        fault: Some(false),
        fflags: Some(0),
        oem: Some(0),
        odiag: Some(258),
        starts: Some(6699),
        hours: Some(3900),
        sflags: Some(0x0A),
        diag: Some(false),
        inval: vec![18],
        unsup: vec![27],
        scfg: Some(1),
        smem: Some(0),
        ..Telemetry::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_line_file_becomes_telemetry_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    let path = dir.path().join("boiler.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for line in [
        r#"{"flow": 50.0, "ret": 40.0}"#,
        "not json",
        r#"{"flow": 58.5, "bar": 1.5, "flame": true}"#,
        r#"{"starts": 6699}"#,
    ] {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let agent = Agent::start(config(
        dir.path(),
        "hub-line",
        port,
        SourceConfig::Line { path },
    ))
    .await
    .unwrap();

    // The whole file is read at once: its end samples the latest value of each field.
    gateway.wait_stored("hub-line", 1, DEADLINE).await;
    let expected = Telemetry {
        asset: "B-1042".into(),
        flow: Some(58.5),
        ret: Some(40.0),
        bar: Some(1.5),
        flame: Some(true),
        starts: Some(6699),
        ..Telemetry::default()
    };
    assert_eq!(telemetry(&gateway, "hub-line"), vec![expected]);

    let source = wait_for("the source to end", DEADLINE, || async {
        let status = status(&agent).await;
        (status["source"]["state"] == "ended").then(|| status["source"].clone())
    })
    .await;
    assert_eq!(source["kind"], "line", "{source}");
    assert_eq!(source["asset"], "B-1042", "{source}");
    assert!(source["error"].is_null(), "{source}");
    // What the next health record will say of it.
    assert_eq!(source["health"]["st"], "ended", "{source}");
    let counters = &source["counters"];
    assert_eq!(counters["lines"], 4, "{source}");
    assert_eq!(counters["lines_rejected"], 1, "{source}");
    assert_eq!(counters["samples"], 1, "{source}");
    agent.shutdown().await;
    assert_eq!(gateway.stored_count("hub-line"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otgw_capture_piped_in_becomes_one_decoded_sample() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    // Through a FIFO, as from `socat` or another program: read as it comes, not at the pace of
    // the capture's times (a saved file is replayed at that pace; see `source::replay`).
    let path = dir.path().join("otgw.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        fifo.write_all(FIXTURE.as_bytes()).unwrap();
    });
    let agent = Agent::start(config(
        dir.path(),
        "hub-otgw",
        port,
        SourceConfig::OtgwFile {
            path,
            commands: OtgwCommands::default(),
        },
    ))
    .await
    .unwrap();

    gateway.wait_stored("hub-otgw", 1, DEADLINE).await;
    assert_eq!(telemetry(&gateway, "hub-otgw"), vec![fixture_sample()]);
    let monitor = agent.source().unwrap();
    wait_for("the source to end", DEADLINE, || async {
        (monitor.view().state == SourceState::Ended).then_some(())
    })
    .await;
    let counters = monitor.stats().snapshot();
    assert_eq!((counters.frames_decoded, counters.samples), (15, 1));
    assert_eq!(counters.gateway_errors, 1);
    let status = status(&agent).await;
    assert_eq!(status["source"]["kind"], "otgw_file", "{status}");
    assert_eq!(
        status["source"]["counters"]["frames_skipped"]["parity"], 1,
        "{status}"
    );
    agent.shutdown().await;
    writer.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otgw_over_tcp_samples_at_the_interval_the_gateway_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let port = broker();
    let gateway = TestGateway::start(port).await;
    // An OTGW's TCP port: the capture, line by line, over and over, until the agent hangs up.
    let otgw = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = otgw.local_addr().unwrap().to_string();
    // What the agent sends back: PS=0 on connecting, then PM= for the polled id.
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (stream, _) = otgw.accept().await.unwrap();
        let (mut commands, mut stream) = stream.into_split();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut buf = [0; 64];
            while !String::from_utf8_lossy(&sent).contains("PM=116\r") {
                match commands.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sent.extend_from_slice(&buf[..n]),
                }
            }
            let _ = sent_tx.send(sent);
        });
        loop {
            for line in FIXTURE.lines() {
                let framed = format!("{line}\r\n");
                if stream.write_all(framed.as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let commands = OtgwCommands {
        poll: vec![116],
        ..OtgwCommands::default()
    };
    let mut config = config(
        dir.path(),
        "hub-tcp",
        port,
        SourceConfig::OtgwTcp { addr, commands },
    );
    // An hour between samples: nothing would arrive during the test unless the push takes effect.
    config.intervals.sample_s = 3600;
    let agent = Agent::start(config).await.unwrap();
    let monitor = agent.source().unwrap().clone();
    wait_for("frames over TCP", DEADLINE, || async {
        (monitor.stats().snapshot().frames_decoded >= 14).then_some(())
    })
    .await;
    assert_eq!(gateway.stored_count("hub-tcp"), 0);
    let sent = tokio::time::timeout(DEADLINE, sent_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(sent).unwrap(), "PS=0\rPM=116\r");

    let push = Down {
        v: SCHEMA_VERSION,
        sent: 1_764_000_000_000,
        body: DownBody::Config(Config {
            rev: 1,
            sample_s: Some(1),
            ..Config::default()
        }),
    };
    gateway.send_down("hub-tcp", &push).await;
    gateway.wait_stored("hub-tcp", 2, DEADLINE).await;
    // A sample may fall anywhere in the poll cycle, where the flow was 58.5 or 58.0 °C.
    for sample in telemetry(&gateway, "hub-tcp") {
        assert_eq!(sample.asset, "B-1042");
        assert!(matches!(sample.flow, Some(58.0 | 58.5)), "{sample:?}");
        assert_eq!((sample.starts, sample.hours), (Some(6699), Some(3900)));
    }
    assert_eq!(*agent.sample_interval().borrow(), Duration::from_secs(1));

    let status = status(&agent).await;
    assert_eq!(status["source"]["state"], "running", "{status}");
    assert_eq!(status["source"]["counters"]["connects"], 1, "{status}");
    // Shutdown stops a source that would otherwise never end.
    tokio::time::timeout(DEADLINE, agent.shutdown())
        .await
        .expect("shutdown stops the source");
    assert_eq!(monitor.view().state, SourceState::Ended);
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the agent hung up")
        .unwrap();
}
