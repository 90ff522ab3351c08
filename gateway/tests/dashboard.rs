#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard on a real gateway with a fixed clock. Over plain HTTP: sign-in with a staff
//! token opens an HttpOnly, SameSite=Strict session that the API accepts in place of the token,
//! refused from another origin and ended by signing out; pages need a session and the role;
//! embedded files carry their types and revalidate. In Debian's headless Chromium (driven over
//! WebDriver by chromedriver, skipped when either is missing): the estate, a boiler's page and
//! the supervisors' page load with no console errors, the seeded boiler's charts are drawn, an
//! alert raised during the test (a pressure drop sent through the broker) appears without a
//! reload with its samples, the boiler's repair jobs are listed with the operative's updates, a
//! job raised from the alert by keyboard and its updates from the handheld appear without a
//! reload, and every control is reachable by keyboard.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use fieldsync_tests::{free_port, http, wait_for};
use gateway::access::Role;
use gateway::clock::FixedClock;
use gateway::repairs::Operative;
use gateway::storage::IncomingBatch;
use gateway::Gateway;
use hyper_util::client::legacy::connect::HttpConnector;
use proto::{
    Envelope, JobStatus, Record, RecordBody, Telemetry, TimestampMs, TopicKind, MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The staff tokens a test gateway issues: an admin's, an asset manager's, a waste
/// supervisor's, a viewer's.
struct Tokens {
    admin: String,
    manager: String,
    supervisor: String,
    viewer: String,
}
/// Wednesday 25 November 2026, 10:00 UTC.
const NOW: &str = "2026-11-25T10:00:00Z";
const NOW_MS: TimestampMs = 1_795_600_800_000;
/// Tuesday 24 November 2026, 00:00 UTC: samples run from here.
const DAY0_MS: TimestampMs = NOW_MS - 34 * 3_600_000;
const MIN: i64 = 60_000;
const DEADLINE: Duration = Duration::from_secs(20);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const REGISTER: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham\",Worcester Bosch,Greenstar 30i,30,2019-03-14,no,no,hub-0001
HIL-B-0002,100021445103,6 Swakeleys Road,Vaillant,ecoTEC plus 832,32,,no,no,hub-0002
";

async fn start(dir: &std::path::Path) -> (Gateway, Tokens) {
    let mut config = support::config(dir);
    // One operative, who gets every job (the default rule, the least loaded).
    config.repairs.operatives = vec![Operative {
        device: "hh-ada".into(),
        name: "Ada".into(),
        patch: Vec::new(),
    }];
    let gateway = Gateway::start_with_clock(config, Arc::new(FixedClock::at_rfc3339(NOW)))
        .await
        .unwrap();
    let issue = |name: &str, role: Role| {
        let issued = gateway.access.add_staff(name, role, false).unwrap();
        issued.token.reveal().to_owned()
    };
    let tokens = Tokens {
        admin: issue("ada", Role::Admin),
        manager: issue("amira", Role::AssetManager),
        supervisor: issue("sam", Role::WasteSupervisor),
        viewer: issue("vic", Role::Viewer),
    };
    (gateway, tokens)
}

/// B-0001's samples at minutes `minutes` after `DAY0_MS`, at `bar`, numbered on from
/// `first_seq` (the hub's sequence has no gaps where its samples have: it was not sampling).
fn samples_at(minutes: impl Iterator<Item = i64>, first_seq: u64, bar: f32) -> IncomingBatch {
    let records = minutes
        .zip(first_seq..)
        .map(|(m, seq)| Record {
            seq,
            ts: DAY0_MS + m * MIN,
            body: RecordBody::Telemetry(Telemetry {
                asset: "HIL-B-0001".into(),
                flow: Some(60.0),
                ret: Some(45.0),
                bar: Some(bar),
                modu: Some(40.0),
                flame: Some(true),
                ch: Some(true),
                ..Telemetry::default()
            }),
            boot: None,
            mono: None,
        })
        .collect();
    support::batch_from("hub-0001", records, NOW_MS)
}

/// The job `id` as the staff API shows it.
async fn repair(base: &str, id: &str, token: &str) -> serde_json::Value {
    let reply = http::get(&format!("{base}/api/v1/repairs/{id}"), Some(token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Presses `key` in the browser, on whatever has the focus.
async fn press(browser: &Client, key: Key) {
    let press = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key.into() })
        .then(KeyAction::Up { value: key.into() });
    browser.perform_actions(press).await.unwrap();
}

/// Types `text` in the browser, a key at a time, into whatever has the focus.
async fn type_keys(browser: &Client, text: &str) {
    let mut keys = KeyActions::new("keyboard".into());
    for c in text.chars() {
        keys = keys
            .then(KeyAction::Down { value: c })
            .then(KeyAction::Up { value: c });
    }
    browser.perform_actions(keys).await.unwrap();
}

/// Presses Tab until the element `css` has the focus, at most `most` times.
async fn tab_to(browser: &Client, css: &str, most: usize) {
    for _ in 0..most {
        press(browser, Key::Tab).await;
        let there = browser
            .execute(
                "return document.activeElement === document.querySelector(arguments[0])",
                vec![serde_json::json!(css)],
            )
            .await
            .unwrap();
        if there == true {
            return;
        }
    }
    panic!("{css} not reached in {most} presses of Tab");
}

/// The minute, counted from `DAY0_MS`, at which the test's low pressure starts.
const LOW_FROM_MIN: i64 = (NOW_MS - DAY0_MS) / MIN - 10;

/// A gateway with both registers and B-0001's healthy samples up to ten minutes ago (sequences
/// 1 to `LOW_FROM_MIN - 60`), an hour's gap in them the day before.
async fn loaded(dir: &std::path::Path) -> (Gateway, String, Tokens) {
    let (gateway, tokens) = start(dir).await;
    let base = format!("http://{}", gateway.http_addr);
    let imported = http::request(
        "POST",
        &format!("{base}/api/v1/assets"),
        Some(tokens.admin.as_str()),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let properties = http::request(
        "POST",
        &format!("{base}/api/v1/properties"),
        Some(tokens.admin.as_str()),
        Some("text/csv"),
        include_bytes!("fixtures/properties.csv").to_vec(),
    )
    .await;
    assert_eq!(properties.status, 200, "{}", properties.body);
    let gap = 20 * 60..21 * 60;
    let healthy = (0..LOW_FROM_MIN).filter(|m| !gap.contains(m));
    gateway
        .store
        .ingest(&[samples_at(healthy, 1, 1.5)])
        .unwrap();
    (gateway, base, tokens)
}

/// A raw HTTP/1.1 exchange, for the headers the shared helper does not send: the status line
/// and headers, and the body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_opens_a_session_the_api_accepts_from_the_dashboards_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _, tokens) = loaded(dir.path()).await;
    let addr = gateway.http_addr;
    let origin = format!("Origin: http://{addr}");
    let form = "Content-Type: application/x-www-form-urlencoded";

    // No session: pages send to the sign-in form, the API says 401.
    let (head, _) = exchange(addr, "GET", "/dashboard/", &[], "").await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert_eq!(header(&head, "location"), Some("/dashboard/sign-in"));
    let (head, body) = exchange(addr, "GET", "/dashboard/sign-in", &[], "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("<label for=\"token\">"), "{body}");
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    assert!(header(&head, "content-security-policy")
        .is_some_and(|csp| csp.contains("default-src 'none'")));

    let (head, body) = exchange(
        addr,
        "POST",
        "/dashboard/sign-in",
        &[form, &origin],
        "token=nobody",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(header(&head, "set-cookie").is_none());
    // Another site's form cannot sign a browser in.
    let (head, _) = exchange(
        addr,
        "POST",
        "/dashboard/sign-in",
        &[form, "Origin: https://evil.example"],
        &format!("token={}", tokens.manager),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");

    let (head, _) = exchange(
        addr,
        "POST",
        "/dashboard/sign-in",
        &[form, &origin],
        &format!("token={}", tokens.manager),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert_eq!(
        header(&head, "location"),
        Some("/dashboard/"),
        "asset managers land on the estate"
    );
    let cookie = header(&head, "set-cookie").unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "served over plain HTTP: {cookie}"
    );
    assert!(
        !cookie.contains(tokens.manager.as_str()),
        "the cookie is not the token: {cookie}"
    );
    let session = format!("Cookie: {}", cookie.split(';').next().unwrap());

    let (head, body) = exchange(addr, "GET", "/api/v1/estate", &[&session], "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{body}");
    let (head, body) = exchange(addr, "GET", "/dashboard/session", &[&session], "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let session_view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session_view["role"], "asset_manager");
    assert_eq!(session_view["may_act_on_boilers"], true);
    assert_eq!(session_view["time_zone"], "Europe/London");
    // The role still bounds what the session may do.
    let (head, _) = exchange(
        addr,
        "POST",
        "/api/v1/reports",
        &[&session, &origin, "Content-Type: application/json"],
        "{\"uprn\":100021445102,\"stream\":\"refuse\"}",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // A state change from another origin is refused, session or not (CSRF).
    let (head, body) = exchange(
        addr,
        "GET",
        "/api/v1/alerts",
        &[&session, "Origin: https://evil.example"],
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(body.contains("dashboard's own pages"), "{body}");
    let (head, _) = exchange(
        addr,
        "GET",
        "/api/v1/alerts",
        &[&session, "Sec-Fetch-Site: cross-site"],
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");

    // Served over TLS (here: as the browser's Origin says, through a proxy), the cookie is Secure.
    let (head, _) = exchange(
        addr,
        "POST",
        "/dashboard/sign-in",
        &[form, &format!("Origin: https://{addr}")],
        &format!("token={}", tokens.manager),
    )
    .await;
    assert!(
        header(&head, "set-cookie").is_some_and(|c| c.ends_with("; Secure")),
        "{head}"
    );
    let (head, _) = exchange(addr, "GET", "/", &[], "").await;
    assert_eq!(header(&head, "location"), Some("/dashboard/"), "{head}");

    // A viewer's session sees the supervisors' page, not the boilers.
    let (head, _) = exchange(
        addr,
        "POST",
        "/dashboard/sign-in",
        &[form, &origin],
        &format!("token={}", tokens.viewer),
    )
    .await;
    assert_eq!(header(&head, "location"), Some("/dashboard/waste"));
    let viewer = format!(
        "Cookie: {}",
        header(&head, "set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
    );
    let (head, _) = exchange(addr, "GET", "/dashboard/boilers/HIL-B-0001", &[&viewer], "").await;
    assert_eq!(
        header(&head, "location"),
        Some("/dashboard/waste"),
        "{head}"
    );
    let (head, _) = exchange(addr, "GET", "/dashboard/waste", &[&viewer], "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Nor may it act on them: the boiler page's forms are not for it.
    let (_, body) = exchange(addr, "GET", "/dashboard/session", &[&viewer], "").await;
    let viewer_view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(viewer_view["may_act_on_boilers"], false, "{body}");

    // Embedded files: their types, and a 304 for a copy already held.
    let (head, body) = exchange(
        addr,
        "GET",
        "/dashboard/static/vendor/uplot/uPlot.iife.min.js",
        &[],
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(body.contains("uPlot"));
    let etag = header(&head, "etag").unwrap().to_owned();
    let (head, _) = exchange(
        addr,
        "GET",
        "/dashboard/static/vendor/uplot/uPlot.iife.min.js",
        &[&format!("If-None-Match: {etag}")],
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    let (head, _) = exchange(addr, "GET", "/dashboard/static/app.css", &[], "").await;
    assert_eq!(
        header(&head, "content-type"),
        Some("text/css; charset=utf-8")
    );
    let (head, _) = exchange(addr, "GET", "/dashboard/static/../Cargo.toml", &[], "").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Today's rounds, for the supervisors' page: the one due on a Wednesday.
    let rounds = http::get(
        &format!("http://{addr}/api/v1/rounds"),
        Some(tokens.viewer.as_str()),
    )
    .await;
    assert_eq!(rounds.status, 200, "{}", rounds.body);
    let rounds = rounds.json();
    assert_eq!(rounds.as_array().unwrap().len(), 1, "{rounds}");
    assert_eq!(rounds[0]["round"], "HIL-WED-2");
    assert_eq!(rounds[0]["scheduled"], 10);

    // Signing out ends the session.
    let (head, _) = exchange(
        addr,
        "POST",
        "/dashboard/sign-out",
        &[&session, &origin],
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert!(header(&head, "set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    let (head, _) = exchange(addr, "GET", "/api/v1/estate", &[&session], "").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    gateway.stop().await;
}

/// chromedriver on a free port, ended when dropped, with the browser session it holds: a
/// failing test must not leave a Chromium running (a killed chromedriver leaves its browser).
struct Driver {
    child: Child,
    port: u16,
    url: String,
    session: std::sync::Mutex<Option<String>>,
}

impl Driver {
    /// Ends the browser session, blocking, as `Drop` cannot wait on async work.
    fn end_session(&self) {
        let Some(session) = self.session.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        use std::io::{Read, Write};
        let _ = stream.set_read_timeout(Some(DEADLINE));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // Until the JSON answer has come: chromedriver may keep the connection open after it.
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            if answer.trim_ascii_end().ends_with(b"}") {
                break;
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.end_session();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Chromium and its driver, or why the browser tests cannot run here.
fn browser_missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .find(|path| !std::path::Path::new(path).exists())
        .map(|path| format!("{path} is not installed (apt-get install chromium chromium-driver)"))
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        port,
        url: format!("http://127.0.0.1:{port}"),
        session: std::sync::Mutex::new(None),
    };
    let status = format!("{}/status", driver.url);
    wait_for("chromedriver to listen", DEADLINE, || async {
        http::try_request("GET", &status, None, None, Vec::new())
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;
    driver
}

async fn open_browser(driver: &Driver) -> Client {
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            // A tablet's width, so the layout under test is the one tablets get.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=820,1180", "--no-first-run", "--disable-extensions"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap();
    *driver.session.lock().unwrap() = browser.session_id().await.unwrap();
    browser
}

/// The browser's console since the last call, at level SEVERE: errors, failed loads, CSP
/// refusals. chromedriver's log endpoint is outside W3C WebDriver, so it is called directly.
async fn console_errors(driver: &Driver, browser: &Client) -> Vec<String> {
    let session = browser.session_id().await.unwrap().unwrap();
    let answer = http::request(
        "POST",
        &format!("{}/session/{session}/se/log", driver.url),
        None,
        Some("application/json"),
        br#"{"type":"browser"}"#.to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Opens `path` and waits until its script says it has loaded.
/// Signs in with `token` through the form, and waits for the page it lands on.
async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    appears(browser, Locator::Css("body[data-ready='true']")).await;
}

async fn open(browser: &Client, base: &str, path: &str) {
    browser.goto(&format!("{base}{path}")).await.unwrap();
    browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("body[data-ready='true']"))
        .await
        .unwrap_or_else(|e| panic!("{path} did not finish loading: {e}"));
}

/// With `FIELDSYNC_DASHBOARD_SCREENSHOTS=DIR`, saves what the browser shows as `DIR/NAME.png`,
/// for a person to look at the layout.
async fn screenshot(browser: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("FIELDSYNC_DASHBOARD_SCREENSHOTS") {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Tabs through the page from its top and checks that every visible, enabled control got the
/// focus on the way.
async fn every_control_is_reachable_by_keyboard(browser: &Client, path: &str) {
    let controls = browser
        .execute(
            "const all = [...document.querySelectorAll(
                 'a[href], button, input, select, textarea, summary, [tabindex]')]
               .filter((c) => !c.disabled && c.tabIndex >= 0 && c.getClientRects().length > 0);
             all.forEach((c, i) => { c.dataset.kbd = i; });
             document.activeElement && document.activeElement.blur();
             window.scrollTo(0, 0);
             return all.length;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(controls > 0, "{path} has no controls");
    let mut reached = std::collections::BTreeSet::new();
    // The skip link is reached from the document itself; each press moves one control on, or
    // one part on within a control made of parts (a date and time field's day, month, year…).
    for _ in 0..2 * controls + 12 {
        if reached.len() as u64 == controls {
            break;
        }
        press(browser, Key::Tab).await;
        let at = browser
            .execute("return document.activeElement.dataset.kbd ?? null", vec![])
            .await
            .unwrap();
        if let Some(at) = at.as_str() {
            reached.insert(at.parse::<u64>().unwrap());
        }
    }
    let missed: Vec<u64> = (0..controls).filter(|i| !reached.contains(i)).collect();
    if !missed.is_empty() {
        let names = browser
            .execute(
                "return arguments[0].map((i) => document.querySelector(`[data-kbd=\"${i}\"]`).outerHTML.slice(0, 120))",
                vec![serde_json::json!(missed)],
            )
            .await
            .unwrap();
        panic!("{path}: controls not reached by Tab: {names}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() {
    if let Some(why) = browser_missing() {
        println!("SKIPPED: the dashboard's browser test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (gateway, base, tokens) = loaded(dir.path()).await;
    let driver = start_driver().await;
    let browser = open_browser(&driver).await;

    // Sign in through the form, as staff do.
    browser
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
    let errors = console_errors(&driver, &browser).await;
    assert!(errors.is_empty(), "the sign-in page's console: {errors:?}");
    every_control_is_reachable_by_keyboard(&browser, "/dashboard/sign-in").await;
    sign_in(&browser, &base, &tokens.manager).await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/dashboard/");
    let errors = console_errors(&driver, &browser).await;
    assert!(errors.is_empty(), "the estate's console: {errors:?}");
    let by_state = browser
        .find(Locator::Id("by-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(by_state.contains("silent\n1"), "{by_state}");
    screenshot(&browser, "estate").await;
    every_control_is_reachable_by_keyboard(&browser, "/dashboard/").await;

    // A repair job on the boiler, raised by its asset manager and accepted on the operative's
    // handheld before the page opens.
    let handheld = support::enrolled(&gateway, "hh-ada").await;
    let service = http::post_json(
        &format!("{base}/api/v1/repairs"),
        Some(tokens.manager.as_str()),
        &serde_json::json!({"asset": "HIL-B-0001", "description": "Annual service",
            "priority": "planned"}),
    )
    .await;
    assert_eq!(service.status, 201, "{}", service.body);
    let service = service.json()["id"].as_str().unwrap().to_owned();
    handheld
        .send(vec![support::job_update(
            1,
            &service,
            JobStatus::Accepted,
            NOW_MS,
        )])
        .await;
    handheld.wait_acked(1, DEADLINE).await;
    wait_for("the service accepted", DEADLINE, || async {
        (repair(&base, &service, &tokens.manager).await["status"] == "accepted").then_some(())
    })
    .await;

    // A boiler's page: the charts drawn from the seeded samples, the job with its update.
    open(&browser, &base, "/dashboard/boilers/HIL-B-0001").await;
    let jobs = browser
        .find(Locator::Css(&format!("#repairs tr[data-job='{service}']")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for said in [
        service.as_str(),
        "accepted",
        "planned",
        "hh-ada",
        "25 Nov 2026, 10:00, by amira",
        "accepted, 25 Nov 2026, 10:00: boiler in the loft",
        // Due by planned work's target, 90 days on.
        "23 Feb 2027",
    ] {
        assert!(jobs.contains(said), "{said:?} not in {jobs:?}");
    }
    let canvases = browser
        .execute(
            "return [...document.querySelectorAll('figure.chart')].map((f) => {
                 const c = f.querySelector('.uplot canvas');
                 return c ? [f.id, c.width, c.height] : [f.id, 0, 0];
             })",
            vec![],
        )
        .await
        .unwrap();
    let canvases = canvases.as_array().unwrap();
    assert_eq!(canvases.len(), 4, "{canvases:?}");
    for chart in canvases {
        assert!(
            chart[1].as_u64().unwrap() > 0 && chart[2].as_u64().unwrap() > 0,
            "{chart}"
        );
    }
    // The figures behind them, as their text alternative says.
    let said = browser
        .execute(
            "return [...document.querySelectorAll('.plot')].map((p) => p.getAttribute('aria-label'))",
            vec![],
        )
        .await
        .unwrap();
    let said = said.to_string();
    assert!(said.contains("Flow: latest 60.0 °C"), "{said}");
    assert!(said.contains("Pressure: latest 1.50 bar"), "{said}");
    assert!(said.contains("Modulation: latest 40 %"), "{said}");
    assert!(said.contains("Estimated: latest"), "{said}");
    let errors = console_errors(&driver, &browser).await;
    assert!(errors.is_empty(), "the boiler page's console: {errors:?}");

    // Longer periods, from hourly and daily rollups.
    for days in ["7", "365"] {
        browser
            .find(Locator::Id("range"))
            .await
            .unwrap()
            .select_by_value(days)
            .await
            .unwrap();
        appears(
            &browser,
            Locator::Css(&format!("body[data-range='{days}']")),
        )
        .await;
        let said = browser
            .execute(
                "return document.querySelector('#temperatures .plot').getAttribute('aria-label')",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            said.to_string().contains("Flow: latest 60.0 °C"),
            "{days} days: {said}"
        );
    }
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "the boiler page's console over longer periods: {errors:?}"
    );
    browser
        .find(Locator::Id("range"))
        .await
        .unwrap()
        .select_by_value("1")
        .await
        .unwrap();
    appears(&browser, Locator::Css("body[data-range='1']")).await;

    // The forecast as the page draws it, from an open forecast alert as the API lists one.
    let forecast = browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               import("/dashboard/static/forecast.js").then((m) => {
                 const at = "2026-11-25T10:00:00.000Z";
                 const f = m.forecastOf([{ kind: "pressure_forecast", state: "open", evidence: [
                   { at, what: "pressure_trend_bar_per_day", value: -0.05, unit: "bar/day" },
                   { at, what: "pressure_trend_bar", value: 1.4, unit: "bar" },
                   { at, what: "days_until_below_1_bar", value: 8, unit: "days" }] }]);
                 const [xs, [bar, trend]] = m.withForecast([f.at - 60], [1.45], f);
                 done({ days: f.days, xs, bar, trend, none: m.forecastOf([]) });
               }).catch((e) => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    let at = NOW_MS / 1000;
    assert_eq!(
        forecast,
        serde_json::json!({"days": 8, "xs": [at - 60, at, at + 8 * 86_400],
            "bar": [1.45, null, null], "trend": [null, 1.4, 1], "none": null}),
    );

    // The pressure drops while the page is open: its alert appears, without a reload.
    let none = browser
        .find_all(Locator::Css("#alerts tr[data-alert*='pressure_low']"))
        .await
        .unwrap();
    assert!(none.is_empty(), "no alert before the drop");
    // Through the broker, as the hub would send them, dated by the gateway's clock.
    let hub = support::enrolled(&gateway, "hub-0001").await;
    let sent = (LOW_FROM_MIN - 60) as u64;
    let low = samples_at(LOW_FROM_MIN..LOW_FROM_MIN + 5, sent + 1, 0.8).records;
    let last = low.last().unwrap().seq;
    let envelope = Envelope {
        v: SCHEMA_VERSION,
        dev: hub.id.clone(),
        sent: NOW_MS,
        recs: low,
        boot: None,
        mono: None,
    };
    let up = hub.id.topic(TopicKind::Up);
    let payload = proto::encode(&envelope, MAX_MESSAGE_BYTES).unwrap();
    hub.send_raw(&up, hub.seal(&up, payload)).await;
    hub.wait_acked(last, DEADLINE).await;
    let row = appears(
        &browser,
        Locator::Css("#alerts tr[data-alert*='pressure_low']"),
    )
    .await;
    assert!(row.text().await.unwrap().contains("pressure low"));
    // The samples themselves reached the charts live.
    wait_for(
        "the live samples on the pressure chart",
        DEADLINE,
        || async {
            let said = browser
                .execute(
                    "return document.querySelector('#pressure .plot').getAttribute('aria-label')",
                    vec![],
                )
                .await
                .unwrap();
            said.as_str()
                .is_some_and(|said| said.contains("Pressure: latest 0.80 bar"))
                .then_some(())
        },
    )
    .await;
    every_control_is_reachable_by_keyboard(&browser, "/dashboard/boilers/HIL-B-0001").await;

    // Acknowledged from the keyboard: the page's own POST passes the origin check.
    let note = row.find(Locator::Css("input[name='note']")).await.unwrap();
    note.send_keys("booked a visit\u{E007}").await.unwrap();
    appears(
        &browser,
        Locator::XPath(
            "//table[@id='alerts']//td[contains(., 'amira') and contains(., 'booked a visit')]",
        ),
    )
    .await;

    // A repair job raised from the open alert, from the keyboard: it heads the boiler's jobs,
    // and the alert shows it in place of the button.
    let raise = "#alerts tr[data-alert*='pressure_low'] td.repair button";
    let label = browser
        .execute(
            "const b = document.querySelector(arguments[0]); b.focus();
             return b.getAttribute('aria-label');",
            vec![serde_json::json!(raise)],
        )
        .await
        .unwrap();
    assert_eq!(label, "Raise a repair job for the pressure low alert");
    press(&browser, Key::Enter).await;
    let first_job = || async {
        let first = browser
            .execute(
                "const r = document.querySelector('#repairs tbody tr');
                 return r && r.dataset.job;",
                vec![],
            )
            .await
            .unwrap();
        first
            .as_str()
            .filter(|job| *job != service)
            .map(str::to_owned)
    };
    let job = wait_for("the job raised from the alert", DEADLINE, first_job).await;
    let raised = repair(&base, &job, &tokens.manager).await;
    // The table was redrawn by the acknowledgement: the alert's row is found afresh.
    let alert_row = "#alerts tr[data-alert*='pressure_low']";
    let alert_id = browser
        .find(Locator::Css(alert_row))
        .await
        .unwrap()
        .attr("data-alert")
        .await
        .unwrap();
    assert_eq!(raised["alert"].as_str(), alert_id.as_deref());
    let alert_cell = format!("{alert_row} td.repair");
    let job_row = format!("#repairs tr[data-job='{job}']");
    let said = browser
        .find(Locator::Css(&job_row))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for part in [
        "dispatched",
        raised["priority"].as_str().unwrap(),
        "25 Nov 2026, 10:00, by amira, from the pressure low alert",
        "No updates yet.",
    ] {
        assert!(said.contains(part), "{part:?} not in {said:?}");
    }
    let cell = browser
        .find(Locator::Css(&alert_cell))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cell, format!("{job}: dispatched"));
    assert!(browser
        .find_all(Locator::Css(raise))
        .await
        .unwrap()
        .is_empty());

    // The operative's updates from the handheld, over MQTT, appear without a reload.
    handheld
        .send(vec![
            support::job_update(2, &job, JobStatus::Accepted, NOW_MS),
            support::job_update(3, &job, JobStatus::EnRoute, NOW_MS),
        ])
        .await;
    handheld.wait_acked(3, DEADLINE).await;
    appears(
        &browser,
        Locator::XPath(&format!(
            "//table[@id='repairs']//tr[@data-job='{job}']/td[2][. = 'en route']"
        )),
    )
    .await;
    let updates = browser
        .find(Locator::Css(&format!("{job_row} ol.updates")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        updates,
        "accepted, 25 Nov 2026, 10:00: boiler in the loft\n\
         en route, 25 Nov 2026, 10:00: boiler in the loft"
    );
    wait_for("the alert's job en route", DEADLINE, || async {
        let cell = browser
            .find(Locator::Css(&alert_cell))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (cell == format!("{job}: en route")).then_some(())
    })
    .await;

    // A job raised for the boiler itself through its form, filled and sent from the keyboard.
    // A description of spaces first: the gateway's refusal (400) is said beside the form, which
    // keeps what was typed.
    let said = || async {
        browser
            .find(Locator::Id("raise-said"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let field = |id: &'static str| {
        let browser = &browser;
        async move {
            browser
                .execute(
                    "return document.getElementById(arguments[0]).value",
                    vec![serde_json::json!(id)],
                )
                .await
                .unwrap()
        }
    };
    let submit = "#raise-form button[type='submit']";
    browser
        .execute(
            "document.getElementById('raise-description').focus()",
            vec![],
        )
        .await
        .unwrap();
    type_keys(&browser, "   ").await;
    tab_to(&browser, submit, 12).await;
    press(&browser, Key::Enter).await;
    wait_for("the refusal said beside the form", DEADLINE, || async {
        (said().await == "Could not raise the job: description: must not be empty").then_some(())
    })
    .await;
    assert_eq!(field("raise-description").await, "   ");
    // The refusal is the console's only entry since the last look: the browser logs any error
    // answer as a failed load.
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.len() == 1
            && errors[0].ends_with(
                "/api/v1/repairs - Failed to load resource: the server responded with a status \
                 of 400 (Bad Request)"
            ),
        "the boiler page's console before and at the refusal: {errors:?}"
    );
    // Then a real one, urgent, due at 9 o'clock on 1 June 2027 in the council's time: British
    // Summer Time, an hour ahead of UTC (and of this browser's own zone).
    browser
        .execute(
            "document.getElementById('raise-description').focus()",
            vec![],
        )
        .await
        .unwrap();
    press(&browser, Key::Backspace).await;
    press(&browser, Key::Backspace).await;
    press(&browser, Key::Backspace).await;
    let wanted = "Radiators cold upstairs since Sunday";
    type_keys(&browser, wanted).await;
    press(&browser, Key::Tab).await;
    // From routine, the default, one up.
    press(&browser, Key::Up).await;
    assert_eq!(field("raise-priority").await, "urgent");
    press(&browser, Key::Tab).await;
    // The field's parts in the order of the browser's locale (Debian's Chromium ships only
    // en-US: month, day, year, hour, minute, AM or PM).
    let order = browser
        .execute(
            "return new Intl.DateTimeFormat(navigator.language, { year: 'numeric', month: '2-digit',
               day: '2-digit', hour: '2-digit', minute: '2-digit' })
               .formatToParts(new Date(2027, 5, 1, 9, 0))
               .filter((p) => p.type !== 'literal').map((p) => p.type)",
            vec![],
        )
        .await
        .unwrap();
    for part in order.as_array().unwrap() {
        match part.as_str().unwrap() {
            "day" => type_keys(&browser, "01").await,
            "month" => type_keys(&browser, "06").await,
            // A year may have more digits: the field waits for more until moved on.
            "year" => {
                type_keys(&browser, "2027").await;
                press(&browser, Key::Right).await;
            }
            "hour" => type_keys(&browser, "09").await,
            "minute" => type_keys(&browser, "00").await,
            "dayPeriod" => type_keys(&browser, "A").await,
            other => panic!("a date and time part {other:?} in {order}"),
        }
    }
    assert_eq!(field("raise-due").await, "2027-06-01T09:00");
    tab_to(&browser, submit, 12).await;
    press(&browser, Key::Enter).await;
    let row = appears(
        &browser,
        Locator::XPath(&format!(
            "//table[@id='repairs']//tr[td[@class='what'] = '{wanted}']"
        )),
    )
    .await;
    let raised_id = row.attr("data-job").await.unwrap().unwrap();
    let said_row = row.text().await.unwrap();
    for part in [
        raised_id.as_str(),
        wanted,
        "urgent",
        "25 Nov 2026, 10:00, by amira",
        "1 Jun 2027, 09:00",
    ] {
        assert!(said_row.contains(part), "{part:?} not in {said_row:?}");
    }
    assert!(
        !said_row.contains("alert"),
        "raised on the boiler, not an alert: {said_row:?}"
    );
    assert_eq!(
        said().await,
        format!("Raised {raised_id}: urgent, due 1 Jun 2027, 09:00.")
    );
    assert_eq!(field("raise-description").await, "");
    assert_eq!(field("raise-priority").await, "routine");
    assert_eq!(field("raise-due").await, "");
    // And the API has it, as the form sent it.
    let listed = http::get(
        &format!("{base}/api/v1/repairs?asset=HIL-B-0001"),
        Some(tokens.manager.as_str()),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == raised_id.as_str())
        .unwrap_or_else(|| panic!("{raised_id} not listed: {listed}"))
        .clone();
    assert_eq!(listed["asset"], "HIL-B-0001");
    assert_eq!(listed["description"], wanted);
    assert_eq!(listed["priority"], "urgent");
    assert_eq!(listed["due"], "2027-06-01T08:00:00.000Z");
    assert_eq!(listed["alert"], serde_json::Value::Null);
    assert_eq!(
        listed["origin"],
        serde_json::json!({"by": "staff", "name": "amira"})
    );
    // Where the clocks change, as the page reads a due time: the hour skipped in spring is read
    // an hour on, the hour passed twice in autumn as the later; an empty field sends none.
    let read = browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               import("/dashboard/static/common.js").then((m) => done([
                 m.councilTime("2027-03-28T01:30"), m.councilTime("2026-10-25T01:30"),
                 m.councilTime("2026-11-25T10:00"), m.councilTime(""),
               ])).catch((e) => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        read,
        serde_json::json!([
            "2027-03-28T02:30:00+01:00",
            "2026-10-25T01:30:00+00:00",
            "2026-11-25T10:00:00+00:00",
            null
        ])
    );
    screenshot(&browser, "boiler").await;
    browser
        .execute("document.getElementById('alerts').scrollIntoView()", vec![])
        .await
        .unwrap();
    screenshot(&browser, "boiler-repairs").await;
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "the boiler page's console after the alert and its repair: {errors:?}"
    );
    drop(handheld);

    // The supervisors' page, with a report taken by the contact centre; another, filed while
    // the page is open, appears without a reload.
    let file = || async {
        let filed = http::post_json(
            &format!("{base}/api/v1/reports"),
            Some(tokens.admin.as_str()),
            &serde_json::json!({"uprn": 100021445102u64, "stream": "refuse"}),
        )
        .await;
        assert_eq!(filed.status, 201, "{}", filed.body);
        filed.json()["id"].as_str().unwrap().to_owned()
    };
    let first = file().await;
    // Rounds and reports are a waste supervisor's, not an asset manager's.
    browser
        .find(Locator::Css("form[action='/dashboard/sign-out'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sign_in(&browser, &base, &tokens.supervisor).await;
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/dashboard/waste"
    );
    let reports = browser
        .find(Locator::Id("reports"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reports.contains(&first), "{reports}");
    let second = file().await;
    appears(
        &browser,
        Locator::XPath(&format!("//table[@id='reports']//th[. = '{second}']")),
    )
    .await;
    let devices = browser
        .find(Locator::Id("devices"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(devices.contains("hub-0001"), "{devices}");
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "the supervisors' page's console: {errors:?}"
    );
    screenshot(&browser, "waste").await;
    every_control_is_reachable_by_keyboard(&browser, "/dashboard/waste").await;

    drop(browser);
    drop(driver);
    gateway.stop().await;
}

/// Waits up to [`DEADLINE`] for `locator` to appear on `browser`'s page, and returns it; fails
/// the test if it does not.
async fn appears(browser: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(DEADLINE)
        .for_element(locator)
        .await
        .unwrap()
}
