#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A corpus of bad input for every HTTP route of the gateway (Open311, staff API, operations) and
//! of the agent (the app's local API): missing, absurd, huge, of the wrong type, not UTF-8, HTML
//! and SQL in text. Each case has its expected outcome; none may answer 5xx or hurt the process:
//! after the corpus a good request still works and nothing bad was stored. The counts are
//! printed.

use fieldsync_tests::http;
use fieldsync_tests::system::{agent_request, unique_id, AgentProcess, Broker, GatewayProcess};

/// One bad request and what it must get.
struct Case {
    method: &'static str,
    path: String,
    token: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// The statuses that are right for it.
    expect: &'static [u16],
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    token: Option<&'static str>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    expect: &'static [u16],
) -> Case {
    Case {
        method,
        path: path.into(),
        token,
        content_type,
        body: body.into(),
        expect,
    }
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
const JSON: Option<&str> = Some("application/json");
const CSV: Option<&str> = Some("text/csv");
/// Stands for the test gateway's admin token, which is issued when it starts.
const ADMIN: Option<&str> = Some("the admin's token");
const BAD: &[u16] = &[400];
const REFUSED: &[u16] = &[400, 422];
const UNAUTHORIZED: &[u16] = &[401];
const NOT_FOUND: &[u16] = &[404];
const NOT_ALLOWED: &[u16] = &[405];
const TOO_LARGE: &[u16] = &[413];
const MEDIA: &[u16] = &[400, 415];

/// Text that must be taken as text: markup, SQL, control and odd characters.
const HOSTILE_TEXT: [&str; 4] = [
    "<script>alert(1)</script>",
    "'; DROP TABLE reports; --",
    "Robert\u{0}'); --",
    "\u{202e}gnp.exe",
];

fn open311_cases(api_key: &str) -> Vec<Case> {
    let base = "/open311/v2";
    // Twice Open311's body limit (128 KiB), for the reason `staff_cases` gives.
    let huge = "x".repeat(2 * 128 * 1024);
    let mut cases = vec![
        case(
            "GET",
            format!("{base}/services.txt"),
            None,
            None,
            "",
            NOT_FOUND,
        ),
        case(
            "GET",
            format!("{base}/services/nonsense.json"),
            None,
            None,
            "",
            NOT_FOUND,
        ),
        case(
            "GET",
            format!("{base}/services/../../etc/passwd"),
            None,
            None,
            "",
            NOT_FOUND,
        ),
        case(
            "DELETE",
            format!("{base}/services.json"),
            None,
            None,
            "",
            NOT_ALLOWED,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            "",
            &[400, 403],
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            "api_key=wrong&service_code=refuse&address_id=1",
            &[403],
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=nuclear&address_id=1"),
            &[400, 404],
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&address_id=not-a-number"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&lat=91&long=0"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&lat=NaN&long=inf"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&lat=1e308&long=-1e308"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&address_id=1&email={huge}"),
            &[400, 413],
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            b"api_key=\xff\xfe&service_code=\xc3".to_vec(),
            &[400, 403],
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&address_id=99999999999999999999999"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/requests.json"),
            None,
            JSON,
            r#"{"api_key": 1}"#,
            MEDIA,
        ),
        case(
            "GET",
            format!("{base}/requests.json?start_date=yesterday"),
            None,
            None,
            "",
            BAD,
        ),
        case(
            "GET",
            format!("{base}/requests.json?status=sideways"),
            None,
            None,
            "",
            BAD,
        ),
        case(
            "GET",
            format!("{base}/requests.json?start_date=2026-01-01&end_date=2025-01-01"),
            None,
            None,
            "",
            BAD,
        ),
        case(
            "GET",
            format!("{base}/requests.json?service_request_id=%00%01"),
            None,
            None,
            "",
            BAD,
        ),
        case(
            "GET",
            format!("{base}/requests/%3Cscript%3E.json"),
            None,
            None,
            "",
            &[400, 404],
        ),
        case(
            "GET",
            format!("{base}/requests/MB-999999999.json"),
            None,
            None,
            "",
            NOT_FOUND,
        ),
        case(
            "GET",
            format!("{base}/servicerequestupdates.json"),
            None,
            None,
            "",
            &[400, 403],
        ),
        case(
            "GET",
            format!("{base}/servicerequestupdates.json?api_key={api_key}&start_date=1900-01-01"),
            None,
            None,
            "",
            BAD,
        ),
        // Residents' comments (FixMyStreet's POST servicerequestupdates).
        case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            FORM,
            "service_request_id=MB-1&update_id=1&description=hello",
            &[400, 403],
        ),
        case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            FORM,
            format!("api_key={api_key}"),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            FORM,
            format!(
                "api_key={api_key}&service_request_id=MB-999999999&update_id=1&status=OPEN\
                 &updated_datetime=2026-12-01T10:00:00Z&description=hello"
            ),
            NOT_FOUND,
        ),
        case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            FORM,
            format!(
                "api_key={api_key}&service_request_id=MB-1&update_id=1&status=OPEN\
                 &updated_datetime=last%20tuesday&description=hello"
            ),
            BAD,
        ),
        case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            JSON,
            "{}",
            MEDIA,
        ),
    ];
    for text in HOSTILE_TEXT {
        let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        // A comment on a report that is not there: refused, the text never echoed as markup.
        cases.push(case(
            "POST",
            format!("{base}/servicerequestupdates.json"),
            None,
            FORM,
            format!(
                "api_key={api_key}&service_request_id={encoded}&update_id={encoded}&status=OPEN\
                 &updated_datetime=2026-12-01T10:00:00Z&description={encoded}"
            ),
            &[400, 404],
        ));
    }
    for text in HOSTILE_TEXT {
        let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        // Unknown address, hostile description: refused for the address, the text never echoed
        // as markup.
        cases.push(case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=refuse&address_id=1&description={encoded}"),
            BAD,
        ));
    }
    // A heating report needs the home's UPRN, of a home whose boiler is on the register.
    for location in ["lat=51.5&long=-0.1", "address_id=100021445101"] {
        cases.push(case(
            "POST",
            format!("{base}/requests.json"),
            None,
            FORM,
            format!("api_key={api_key}&service_code=heating_fault&{location}"),
            BAD,
        ));
    }
    cases
}

fn staff_cases() -> Vec<Case> {
    // Twice the gateway's default body limit (`http.limits.max_body_bytes`, 64 KiB). Not
    // megabytes: the gateway answers 413 and closes, and an unsent rest of megabytes can reset
    // the connection before the answer is read.
    let huge_json = format!(
        r#"{{"uprn": 1, "stream": "refuse", "description": "{}"}}"#,
        "y".repeat(2 * 64 * 1024)
    );
    vec![
        // The public bin-day lookup: one of postcode or uprn, sane.
        case("GET", "/api/v1/bin-days", None, None, "", BAD),
        case("GET", "/api/v1/bin-days?uprn=one", None, None, "", BAD),
        case(
            "GET",
            "/api/v1/bin-days?uprn=1&postcode=UB10",
            None,
            None,
            "",
            BAD,
        ),
        case(
            "GET",
            format!("/api/v1/bin-days?postcode={}", "U".repeat(10_000)),
            None,
            None,
            "",
            &[400, 414, 431],
        ),
        case(
            "GET",
            "/api/v1/bin-days?postcode=%3Cscript%3E",
            None,
            None,
            "",
            &[200],
        ),
        // Placing a report staff found the property of.
        case(
            "POST",
            "/api/v1/reports/MB-1/place",
            None,
            JSON,
            r#"{"uprn": 1}"#,
            UNAUTHORIZED,
        ),
        case(
            "POST",
            "/api/v1/reports/MB-1/place",
            ADMIN,
            JSON,
            "{",
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports/MB-1/place",
            ADMIN,
            JSON,
            r#"{"uprn": "x"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports/MB-999999999/place",
            ADMIN,
            JSON,
            r#"{"uprn": 1}"#,
            &[400, 404, 422],
        ),
        case("GET", "/api/v1/reports", None, None, "", UNAUTHORIZED),
        case(
            "GET",
            "/api/v1/reports",
            Some("not-a-token"),
            None,
            "",
            UNAUTHORIZED,
        ),
        case("GET", "/api/v1/devices", None, None, "", UNAUTHORIZED),
        case("GET", "/api/v1/quarantine", None, None, "", UNAUTHORIZED),
        case("GET", "/api/v1/unmatched", None, None, "", UNAUTHORIZED),
        case("GET", "/api/v1/events", None, None, "", UNAUTHORIZED),
        case(
            "POST",
            "/api/v1/properties",
            None,
            CSV,
            "uprn\n1\n",
            UNAUTHORIZED,
        ),
        case("POST", "/api/v1/reports", None, JSON, "{}", UNAUTHORIZED),
        case(
            "GET",
            "/api/v1/reports?since=yesterday",
            ADMIN,
            None,
            "",
            BAD,
        ),
        case("GET", "/api/v1/reports/%00", ADMIN, None, "", &[400, 404]),
        case("GET", "/api/v1/reports/MB-0", ADMIN, None, "", NOT_FOUND),
        case(
            "GET",
            "/api/v1/rounds/NOPE/progress",
            ADMIN,
            None,
            "",
            &[200, 404],
        ),
        case("GET", "/api/v1/quarantine?limit=-1", ADMIN, None, "", BAD),
        case(
            "GET",
            "/api/v1/quarantine?limit=99999999999999999999",
            ADMIN,
            None,
            "",
            BAD,
        ),
        case("POST", "/api/v1/reports", ADMIN, JSON, "", REFUSED),
        case("POST", "/api/v1/reports", ADMIN, JSON, "{", REFUSED),
        case("POST", "/api/v1/reports", ADMIN, JSON, "[]", REFUSED),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            JSON,
            r#"{"uprn": "one", "stream": "refuse"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            JSON,
            r#"{"uprn": -1, "stream": "refuse"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            JSON,
            r#"{"uprn": 1, "stream": "plutonium"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            JSON,
            r#"{"uprn": 1, "stream": "refuse", "description": "<script>alert(1)</script>"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            Some("text/plain"),
            "uprn=1",
            MEDIA,
        ),
        case(
            "POST",
            "/api/v1/reports",
            ADMIN,
            JSON,
            huge_json.clone(),
            TOO_LARGE,
        ),
        case("POST", "/api/v1/properties", ADMIN, CSV, "", BAD),
        case(
            "POST",
            "/api/v1/properties",
            ADMIN,
            CSV,
            b"\xff\xfe\x00garbage".to_vec(),
            BAD,
        ),
        case(
            "POST",
            "/api/v1/properties",
            ADMIN,
            CSV,
            "uprn,address\n1,'; DROP TABLE--\n",
            BAD,
        ),
        // Repairs: the register is empty, so no asset, alert or job exists.
        case("GET", "/api/v1/repairs", None, None, "", UNAUTHORIZED),
        case("POST", "/api/v1/repairs", None, JSON, "{}", UNAUTHORIZED),
        case("GET", "/api/v1/repairs?limit=-1", ADMIN, None, "", BAD),
        case(
            "GET",
            "/api/v1/repairs?status=sideways",
            ADMIN,
            None,
            "",
            BAD,
        ),
        case("GET", "/api/v1/repairs/RP-0", ADMIN, None, "", NOT_FOUND),
        case("GET", "/api/v1/repairs/%00", ADMIN, None, "", NOT_FOUND),
        case(
            "POST",
            "/api/v1/repairs/RP-0/cancel",
            ADMIN,
            None,
            "",
            NOT_FOUND,
        ),
        case("POST", "/api/v1/repairs", ADMIN, JSON, "", REFUSED),
        case("POST", "/api/v1/repairs", ADMIN, JSON, "[]", REFUSED),
        case(
            "POST",
            "/api/v1/repairs",
            ADMIN,
            JSON,
            r#"{"asset": "NOPE", "description": "x"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/repairs",
            ADMIN,
            JSON,
            r#"{"asset": "A", "description": "  "}"#,
            BAD,
        ),
        case(
            "POST",
            "/api/v1/repairs",
            ADMIN,
            JSON,
            r#"{"asset": "A", "description": "x", "priority": "yesterday"}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/api/v1/repairs",
            ADMIN,
            JSON,
            r#"{"asset": "A", "description": "x", "due": "soon"}"#,
            BAD,
        ),
        case("POST", "/api/v1/repairs", ADMIN, JSON, huge_json, TOO_LARGE),
        case(
            "POST",
            "/api/v1/alerts/nonsense/repair",
            ADMIN,
            JSON,
            "{}",
            NOT_FOUND,
        ),
        case(
            "POST",
            "/api/v1/alerts/A:fault:1/repair",
            ADMIN,
            JSON,
            "{}",
            NOT_FOUND,
        ),
        case(
            "POST",
            "/api/v1/alerts/A:fault:1/repair",
            ADMIN,
            JSON,
            r#"{"priority": "whenever"}"#,
            REFUSED,
        ),
        case(
            "GET",
            "/api/v1/repairs/events",
            None,
            None,
            "",
            UNAUTHORIZED,
        ),
        case("DELETE", "/api/v1/reports", ADMIN, None, "", NOT_ALLOWED),
        case(
            "GET",
            "/api/v1/../../etc/passwd",
            ADMIN,
            None,
            "",
            NOT_FOUND,
        ),
    ]
}

fn agent_cases() -> Vec<Case> {
    let good_pos = r#""pos": {"lat": 51.5, "lon": -0.1, "acc": 4.0}"#;
    let collection = |fields: &str| format!("{{{fields}}}");
    // Twice the agent's default body limit (64 KiB). Not megabytes: the agent answers 413 and
    // closes as soon as the limit is passed, and megabytes still unsent then can reset the
    // connection before the client reads the answer (seen once in CI).
    let huge = "z".repeat(2 * 64 * 1024);
    let mut cases = vec![
        case("POST", "/v1/collections", None, JSON, "", REFUSED),
        case("POST", "/v1/collections", None, JSON, "null", REFUSED),
        case("POST", "/v1/collections", None, JSON, "{", REFUSED),
        case(
            "POST",
            "/v1/collections",
            None,
            Some("text/plain"),
            "hello",
            MEDIA,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "collected", {good_pos}"#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": "x", "stream": "refuse", "outcome": "collected", {good_pos}, "vehicle": "V", "round": "R""#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(
                r#""uprn": 1, "stream": "refuse", "outcome": "collected", "pos": {"lat": 91, "lon": 0, "acc": 4}, "vehicle": "V", "round": "R""#,
            ),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(
                r#""uprn": 1, "stream": "refuse", "outcome": "collected", "pos": {"lat": 1e999, "lon": 0, "acc": 4}, "vehicle": "V", "round": "R""#,
            ),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "lava", "outcome": "collected", {good_pos}, "vehicle": "V", "round": "R""#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "vanished", {good_pos}, "vehicle": "V", "round": "R""#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "other", {good_pos}, "vehicle": "V", "round": "R""#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "collected", {good_pos}, "vehicle": "{huge}", "round": "R""#
            )),
            TOO_LARGE,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "collected", {good_pos}, "vehicle": "V\u0000", "round": "R""#
            )),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            b"{\"uprn\": 1, \"vehicle\": \"\xff\"}".to_vec(),
            REFUSED,
        ),
        case(
            "POST",
            "/v1/rounds/%00/start",
            None,
            JSON,
            r#"{"vehicle": "V"}"#,
            &[400, 404, 422],
        ),
        case(
            "POST",
            "/v1/rounds/R/start",
            None,
            JSON,
            r#"{"vehicle": 7}"#,
            REFUSED,
        ),
        case(
            "POST",
            "/v1/rounds/R/explode",
            None,
            JSON,
            r#"{"vehicle": "V"}"#,
            NOT_FOUND,
        ),
        case(
            "POST",
            "/v1/jobs/unknown-job/status",
            None,
            JSON,
            r#"{"status": "completed"}"#,
            &[404, 422],
        ),
        case(
            "POST",
            "/v1/jobs/J/status",
            None,
            JSON,
            r#"{"status": "teleported"}"#,
            &[404, 422],
        ),
        case("GET", "/v1/collections", None, None, "", NOT_ALLOWED),
        case("DELETE", "/v1/status", None, None, "", NOT_ALLOWED),
    ];
    for text in HOSTILE_TEXT {
        let escaped = serde_json::to_string(text).unwrap();
        // Hostile text in a note of an "other" outcome is a good record: stored as text.
        cases.push(case(
            "POST",
            "/v1/collections",
            None,
            JSON,
            collection(&format!(
                r#""uprn": 1, "stream": "refuse", "outcome": "other", {good_pos}, "vehicle": "V", "round": "R", "note": {escaped}"#
            )),
            if text.contains('\u{0}') { REFUSED } else { &[201] },
        ));
    }
    cases
}

/// Sends every case to `base`, with `admin` for [`ADMIN`].
async fn run_corpus(name: &str, base: &str, cases: &[Case], admin: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for case in cases {
        let token = match case.token {
            token if token == ADMIN => Some(admin),
            token => token,
        };
        let response = http::try_request(
            case.method,
            &format!("{base}{}", case.path),
            token,
            case.content_type,
            case.body.clone(),
        )
        .await;
        let status = match response {
            Ok(response) => response.status,
            Err(e) => {
                wrong.push(format!(
                    "{name} {} {}: no answer ({e})",
                    case.method, case.path
                ));
                continue;
            }
        };
        if !case.expect.contains(&status) {
            wrong.push(format!(
                "{name} {} {} ({} body bytes): {status}, expected one of {:?}",
                case.method,
                case.path,
                case.body.len(),
                case.expect
            ));
        }
    }
    println!("{name}: {} bad-input cases", cases.len());
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_route_refuses_bad_input_clearly_and_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::Embedded(fieldsync_tests::free_port());
    let cab = unique_id("cab");
    let gateway = GatewayProcess::start(dir.path(), &broker, &[&cab]).await;
    let agent = AgentProcess::start(dir.path(), &cab, broker.address(), &gateway).await;

    let mut wrong = Vec::new();
    let gateway_base = gateway.url("");
    let admin = gateway.admin_token.as_str();
    let open311 = open311_cases(&gateway.api_key);
    wrong.extend(run_corpus("open311", &gateway_base, &open311, admin).await);
    wrong.extend(run_corpus("staff", &gateway_base, &staff_cases(), admin).await);
    let agent_base = format!("http://127.0.0.1:{}", agent.api_port);
    let agent_cases = agent_cases();
    wrong.extend(run_corpus("agent", &agent_base, &agent_cases, admin).await);
    assert!(
        wrong.is_empty(),
        "{} wrong outcomes:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Both still serve, and only the good records are in the agent's outbox.
    let services = http::get(&gateway.url("/open311/v2/services.json"), None).await;
    assert_eq!(services.status, 200);
    let healthz = http::get(&gateway.url("/healthz"), None).await;
    assert_eq!(healthz.status, 200);
    let (status, body) = agent_request(agent.api_port, "GET", "/v1/status", "")
        .await
        .expect("the agent answers");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let good = agent_cases.iter().filter(|c| c.expect == [201]).count() as u64;
    // The outbox's own count: the link's `last_ack` is set just after the outbox applies an
    // ack, so a read between the two saw neither.
    let accepted = status["outbox"]["acked_through"].as_u64().unwrap_or(0)
        + status["outbox"]["depth"].as_u64().unwrap_or(0);
    assert_eq!(accepted, good, "{status}");
    println!(
        "bad input: {} cases in all",
        open311.len() + staff_cases().len() + agent_cases.len()
    );
}
