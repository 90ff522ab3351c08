#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The local API against bad input: wrong types, missing and unknown fields, out-of-range values,
//! malformed and huge bodies. Each gets a clear 4xx naming the field where there is one, and
//! changes nothing: no sequence number is used, nothing is stored. Good input gets a 201.

#[path = "support/signing.rs"]
mod signing;

use std::path::Path;

use edge_agent::agent::Agent;
use edge_agent::config::AgentConfig;
use fieldsync_tests::{free_port, http};
use serde_json::{json, Value};

/// An agent whose broker is absent: the API does not need the link.
async fn agent(dir: &Path) -> Agent {
    let mut config = AgentConfig {
        device_id: "cab-api".into(),
        signing: signing::signing("cab-api"),
        data_dir: dir.join("agent"),
        shutdown_deadline_s: 1,
        ..AgentConfig::default()
    };
    config.mqtt.port = free_port();
    config.api.listen = ([127, 0, 0, 1], 0).into();
    Agent::start(config).await.unwrap()
}

fn collection() -> Value {
    json!({
        "uprn": 100023336956u64, "stream": "refuse", "outcome": "collected",
        "pos": {"lat": 51.501, "lon": -0.142, "acc": 4.0}, "vehicle": "RCV-17", "round": "MON-A"
    })
}

/// `collection()` with `key` set to `value` (or removed, for `Value::Null` at the top level).
fn with(key: &str, value: Value) -> Value {
    let mut body = collection();
    let object = body.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.into(), value);
    }
    body
}

/// Sends a request and checks the status, the error text and the named field.
async fn refused(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    status: u16,
    field: Option<&str>,
) {
    let response = http::request(method, url, None, content_type, body.clone()).await;
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    assert_eq!(response.status, status, "{shown} → {}", response.body);
    let error = response.json();
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{shown} → {}",
        response.body
    );
    assert_eq!(
        error["field"].as_str(),
        field,
        "{shown} → {}",
        response.body
    );
}

async fn refused_json(url: &str, body: Value, status: u16, field: Option<&str>) {
    let bytes = body.to_string().into_bytes();
    refused("POST", url, Some("application/json"), bytes, status, field).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path()).await;
    let base = format!("http://{}", agent.api_addr);
    let collections = format!("{base}/v1/collections");
    let before = agent.intake().outbox().stats().unwrap();

    // Wrong types.
    refused_json(&collections, with("uprn", json!("abc")), 422, Some("uprn")).await;
    refused_json(
        &collections,
        with("pos", json!({"lat": "north", "lon": 0.0, "acc": 1.0})),
        422,
        Some("pos.lat"),
    )
    .await;
    refused_json(
        &collections,
        with("stream", json!("skip")),
        422,
        Some("stream"),
    )
    .await;
    refused_json(&collections, json!("a collection"), 422, None).await;
    // Missing and unknown fields.
    refused_json(
        &collections,
        with("vehicle", Value::Null),
        422,
        Some("vehicle"),
    )
    .await;
    refused_json(
        &collections,
        with("pos", json!({"lat": 51.0, "lon": 0.0})),
        422,
        Some("pos.acc"),
    )
    .await;
    refused_json(&collections, with("uprm", json!(1)), 422, Some("uprm")).await;
    // Out of range, or breaking the contract.
    refused_json(
        &collections,
        with("pos", json!({"lat": 91.0, "lon": 0.0, "acc": 4.0})),
        422,
        Some("pos.lat"),
    )
    .await;
    refused_json(
        &collections,
        with("pos", json!({"lat": 51.0, "lon": -180.5, "acc": 4.0})),
        422,
        Some("pos.lon"),
    )
    .await;
    refused_json(&collections, with("uprn", json!(-5)), 422, Some("uprn")).await;
    refused_json(&collections, with("uprn", json!(0)), 422, Some("uprn")).await;
    refused_json(
        &collections,
        with("vehicle", json!("")),
        422,
        Some("vehicle"),
    )
    .await;
    refused_json(
        &collections,
        with("outcome", json!("other")),
        422,
        Some("note"),
    )
    .await;
    refused_json(
        &collections,
        with("photo", json!("not-a-hash")),
        422,
        Some("photo"),
    )
    .await;
    refused_json(
        &collections,
        with("note", json!("x".repeat(1001))),
        422,
        Some("note"),
    )
    .await;
    refused_json(&collections, with("ts", json!(-1)), 422, Some("ts")).await;
    // Malformed, not JSON, too large.
    let json_type = Some("application/json");
    refused(
        "POST",
        &collections,
        json_type,
        b"{\"uprn\": ".to_vec(),
        400,
        None,
    )
    .await;
    refused("POST", &collections, json_type, Vec::new(), 400, None).await;
    refused(
        "POST",
        &collections,
        Some("text/plain"),
        collection().to_string().into_bytes(),
        415,
        None,
    )
    .await;
    let huge = with("note", json!("x".repeat(100 * 1024)))
        .to_string()
        .into_bytes();
    refused("POST", &collections, json_type, huge, 413, None).await;

    // Rounds and jobs.
    let start = format!("{base}/v1/rounds/MON-A/start");
    refused_json(&start, json!({}), 422, Some("vehicle")).await;
    refused_json(&start, json!({"vehicle": 17}), 422, Some("vehicle")).await;
    let long_round = format!("{base}/v1/rounds/{}/complete", "R".repeat(65));
    refused_json(
        &long_round,
        json!({"vehicle": "RCV-17"}),
        422,
        Some("round"),
    )
    .await;
    let status = format!("{base}/v1/jobs/J-404/status");
    refused_json(&status, json!({"status": "arrived"}), 404, None).await;
    refused_json(
        &status,
        json!({"status": "teleported"}),
        422,
        Some("status"),
    )
    .await;
    refused_json(
        &status,
        json!({"status": "arrived", "pos": {"lat": 100.0, "lon": 0.0, "acc": 1.0}}),
        422,
        Some("pos.lat"),
    )
    .await;
    refused(
        "GET",
        &format!("{base}/v1/nothing"),
        None,
        Vec::new(),
        404,
        None,
    )
    .await;

    let after = agent.intake().outbox().stats().unwrap();
    assert_eq!(
        (after.next_seq, after.depth),
        (before.next_seq, before.depth)
    );
    assert!(agent.jobs().list().unwrap().is_empty());

    // Good input is stored, numbered from where it was.
    let response = http::post_json(&collections, None, &collection()).await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(response.json()["seq"], before.next_seq);
    let response = http::post_json(&start, None, &json!({"vehicle": "RCV-17"})).await;
    assert_eq!(response.status, 201, "{}", response.body);
    let status = http::get(&format!("{base}/v1/status"), None).await.json();
    assert_eq!(status["device"], "cab-api");
    assert_eq!(status["outbox"]["depth"], 2, "{status}");
    assert_eq!(status["outbox"]["priority_depth"], 2, "{status}");
    assert_eq!(status["link"]["connected"], false, "{status}");
    assert!(
        status["outbox"]["oldest_unsent_age_s"].is_number(),
        "{status}"
    );
    assert!(status["last_ack"].is_null(), "{status}");
    let jobs = http::get(&format!("{base}/v1/jobs"), None).await;
    assert_eq!((jobs.status, jobs.json()), (200, json!([])));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_answers_507_for_crews_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig {
        device_id: "cab-full".into(),
        signing: signing::signing("cab-full"),
        data_dir: dir.path().join("agent"),
        shutdown_deadline_s: 1,
        ..AgentConfig::default()
    };
    config.mqtt.port = free_port();
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.outbox.budget_bytes = 4 * edge_agent::outbox::MAX_RECORD_BYTES as u64;
    let agent = Agent::start(config).await.unwrap();
    let url = format!("http://{}/v1/collections", agent.api_addr);
    let note = "n".repeat(900);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = http::post_json(&url, None, &with("note", json!(note))).await;
        statuses.push(response.status);
        if response.status == 507 {
            assert!(response.json()["error"].as_str().unwrap().contains("full"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&507), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 201));
    agent.shutdown().await;
}

/// A raw HTTP/1.1 request with extra headers; the status, the answer's headers (lower-cased
/// names) and the body.
async fn raw(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    (status, headers, serde_json::from_str(body).unwrap())
}

fn replayed(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, value)| name == "idempotent-replayed" && value == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_its_idempotency_key_is_answered_as_the_first_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("agent");

    // A request that was stored but never answered (the agent was killed between the two): the
    // record and its key are on disk, and the app has no answer.
    let unanswered = edge_agent::outbox::IdempotencyKey::parse("lost-answer-1").unwrap();
    let stored_unanswered = {
        let outbox = edge_agent::outbox::Outbox::open(&data_dir, Default::default()).unwrap();
        let checked = serde_json::from_value::<edge_agent::api::requests::NewCollection>(with(
            "uprn",
            json!(7),
        ))
        .unwrap()
        .into_record(1_764_000_000_000)
        .unwrap();
        match outbox
            .accept_once(&unanswered, checked.ts, checked.body)
            .await
            .unwrap()
        {
            edge_agent::outbox::Once::Stored(accepted) => accepted.seq,
            other => panic!("{other:?}"),
        }
    };

    let agent = agent(dir.path()).await;
    let body = collection().to_string();
    let key = [("Idempotency-Key", "\"3f8e2c1a-0001\"")];
    let (status, headers, first) = raw(agent.api_addr, "/v1/collections", &key, &body).await;
    assert_eq!(status, 201, "{first}");
    assert!(!replayed(&headers));
    let (status, headers, again) = raw(agent.api_addr, "/v1/collections", &key, &body).await;
    assert_eq!((status, &again), (201, &first), "the same answer");
    assert!(replayed(&headers), "{headers:?}");

    // The same key for another request is refused, naming the header; a malformed key too.
    let other = with("uprn", json!(42)).to_string();
    let (status, _, refused) = raw(agent.api_addr, "/v1/collections", &key, &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["field"], "Idempotency-Key");
    let bad = [("Idempotency-Key", "two words")];
    let (status, _, refused) = raw(agent.api_addr, "/v1/collections", &bad, &body).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["field"], "Idempotency-Key");

    // Every POST takes a key: a round event too.
    let round = json!({"vehicle": "RCV-17"}).to_string();
    let round_key = [("Idempotency-Key", "round-start-1")];
    let (_, _, started) = raw(agent.api_addr, "/v1/rounds/MON-A/start", &round_key, &round).await;
    let (status, headers, again) =
        raw(agent.api_addr, "/v1/rounds/MON-A/start", &round_key, &round).await;
    assert_eq!((status, &again), (201, &started));
    assert!(replayed(&headers));
    let depth = agent.intake().outbox().stats().unwrap().depth;
    assert_eq!(
        depth, 3,
        "the unanswered one, the collection and the round event"
    );
    agent.shutdown().await;

    // After a restart: the same answers, and nothing stored again.
    let agent = self::agent(dir.path()).await;
    let (status, headers, again) = raw(agent.api_addr, "/v1/collections", &key, &body).await;
    assert_eq!((status, &again), (201, &first));
    assert!(replayed(&headers));
    let lost = [("Idempotency-Key", unanswered.as_str())];
    let retry = with("uprn", json!(7)).to_string();
    let (status, headers, answer) = raw(agent.api_addr, "/v1/collections", &lost, &retry).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["seq"], stored_unanswered,
        "the record stored before the kill"
    );
    assert!(replayed(&headers));
    assert_eq!(agent.intake().outbox().stats().unwrap().depth, 3);
    agent.shutdown().await;
}
