#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Missed-bin reports through Open311 over a running gateway, with a crew's cab publishing real
//! `proto` batches over MQTT: one report rejected from the crew's evidence, another accepted,
//! dispatched to the cab as a return job and closed by its confirmation, each observed through
//! `GET requests/{id}.json` as a resident's front end would, and through
//! `GET servicerequestupdates.json` as FixMyStreet polls for what happened.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fieldsync_tests::{http, wait_for};
use gateway::access::Role;
use gateway::Gateway;
use proto::{
    BinStream, Collection, DownBody, JobKind, Outcome, Position, Record, RecordBody, RoundEvent,
    RoundPhase,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(20);

/// What a test's gateway issued: an admin's staff token and a front end's Open311 api_key.
struct Keys {
    admin: String,
    api_key: String,
}
const ROUND: &str = "T-1";

/// Three houses on one round, collected every day so that today is a collection day whenever
/// the test runs.
const REGISTER: &str = "\
uprn,address,lat,lon,round,order,weekdays,frequency,anchor,streams
100021445101,\"2 Swakeleys Road, Ickenham, Uxbridge UB10 8BE\",51.56240,-0.44620,T-1,1,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse;recycling
100021445102,\"4 Swakeleys Road, Ickenham, Uxbridge UB10 8BE\",51.56240,-0.44595,T-1,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse;recycling
100021445103,\"6 Swakeleys Road, Ickenham, Uxbridge UB10 8BE\",51.56240,-0.44570,T-1,3,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse;recycling
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn collection(seq: u64, uprn: u64, outcome: Outcome, job: Option<String>) -> Record {
    Record {
        seq,
        ts: now_ms(),
        body: RecordBody::Collection(Collection {
            uprn: Some(uprn),
            stream: BinStream::Refuse,
            outcome,
            pos: Position {
                lat: 51.5624,
                lon: -0.4462,
                acc: 4.0,
            },
            vehicle: "RCV07".into(),
            round: ROUND.into(),
            job,
            photo: None,
            note: None,
        }),
        boot: None,
        mono: None,
    }
}

fn round(seq: u64, phase: RoundPhase) -> Record {
    Record {
        seq,
        ts: now_ms(),
        body: RecordBody::RoundEvent(RoundEvent {
            round: ROUND.into(),
            vehicle: "RCV07".into(),
            phase,
        }),
        boot: None,
        mono: None,
    }
}

async fn post_report(keys: &Keys, base: &str, uprn: u64) -> String {
    let api_key = &keys.api_key;
    let form = format!(
        "api_key={api_key}&service_code=refuse&address_id={uprn}\
         &description=Bin+not+emptied&first_name=Ada&email=ada%40example.org"
    );
    let response = http::request(
        "POST",
        &format!("{base}/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        form.into_bytes(),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let created = response.json();
    created[0]["service_request_id"]
        .as_str()
        .expect("a service_request_id")
        .to_owned()
}

/// Opens the staff event stream (server-sent events) on a raw connection.
async fn open_events(keys: &Keys, addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\n\
         Accept: text/event-stream\r\n\r\n",
        keys.admin
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads the stream until `needle` appears; returns all read so far.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the event stream closed");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {}", String::from_utf8_lossy(&seen)));
    String::from_utf8_lossy(&seen).into_owned()
}

/// A gateway on a store in `dir`, with an admin's staff token, a front end's Open311 key and,
/// when given, a jurisdiction to check; ready.
async fn start_gateway(dir: &std::path::Path, jurisdiction: Option<&str>) -> (Gateway, Keys) {
    let mut config = support::config(dir);
    config.open311.jurisdiction_id = jurisdiction.map(str::to_owned);
    let gateway = Gateway::start(config).await.unwrap();
    assert!(gateway.wait_ready(DEADLINE).await);
    let admin = gateway
        .access
        .add_staff("admin", Role::Admin, false)
        .unwrap();
    let front_end = gateway
        .access
        .add_integration("fixmystreet", false)
        .unwrap();
    let keys = Keys {
        admin: admin.token.reveal().to_owned(),
        api_key: front_end.token.reveal().to_owned(),
    };
    (gateway, keys)
}

/// Each update's `update_id` and `status`, in order.
fn ids_and_statuses<'a>(updates: &[&'a serde_json::Value]) -> Vec<(&'a str, &'a str)> {
    updates
        .iter()
        .map(|u| {
            (
                u["update_id"].as_str().unwrap(),
                u["status"].as_str().unwrap(),
            )
        })
        .collect()
}

async fn get_request(base: &str, id: &str) -> serde_json::Value {
    let response = http::get(&format!("{base}/requests/{id}.json"), None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_rejected_from_evidence_or_dispatched_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, keys) = start_gateway(dir.path(), None).await;
    let api_key = &keys.api_key;
    let base = format!("http://{}/open311/v2", gateway.http_addr);

    let imported = http::request(
        "POST",
        &format!("http://{}/api/v1/properties", gateway.http_addr),
        Some(keys.admin.as_str()),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert_eq!(imported.json()["imported"], 3);

    // The crew's day: no. 2 not put out, no. 4 emptied, round complete.
    let cab = support::enrolled(&gateway, "cab-rcv07").await;
    cab.send(vec![
        round(1, RoundPhase::Started),
        collection(2, 100_021_445_101, Outcome::NotPresented, None),
        collection(3, 100_021_445_102, Outcome::Collected, None),
        round(4, RoundPhase::Completed),
    ])
    .await;
    cab.wait_acked(4, DEADLINE).await;
    // The desk follows the ingest asynchronously: wait until it has seen the round.
    let progress_url = format!(
        "http://{}/api/v1/rounds/{ROUND}/progress",
        gateway.http_addr
    );
    wait_for("the round's progress", DEADLINE, || async {
        let progress = http::get(&progress_url, Some(keys.admin.as_str()))
            .await
            .json();
        (progress["completed_at"].is_number()).then_some(())
    })
    .await;

    // No. 2: the crew recorded the bin not presented, so the report is closed with that.
    let mut events = open_events(&keys, gateway.http_addr).await;
    read_until(&mut events, "text/event-stream").await;
    let rejected = post_report(&keys, &base, 100_021_445_101).await;
    let seen = read_until(&mut events, &format!("\"id\":\"{rejected}\"")).await;
    assert!(seen.contains("\"status\":\"rejected\""), "{seen}");
    let request = get_request(&base, &rejected).await;
    // Extended statuses (the default): a rejection is never "closed", which FixMyStreet shows as
    // fixed.
    assert_eq!(request["status"], "no_further_action", "{request}");
    let notes = request["status_notes"].as_str().unwrap();
    assert!(notes.contains("not"), "{notes}");
    assert_eq!(request["address_id"], "100021445101");

    // No. 6: nothing recorded and the round is complete, so it is accepted and a return job
    // goes to the cab.
    let accepted = post_report(&keys, &base, 100_021_445_103).await;
    let request = get_request(&base, &accepted).await;
    assert_eq!(request["status"], "action_scheduled", "{request}");
    let job = wait_for("the return job on the cab", DEADLINE, || async {
        cab.downs().into_iter().find_map(|down| match down.body {
            DownBody::Job(job) => Some(job),
            _ => None,
        })
    })
    .await;
    match &job.kind {
        JobKind::ReturnCollection(ret) => {
            assert_eq!(ret.uprn, 100_021_445_103);
            assert_eq!(ret.report, accepted);
        }
        other => panic!("expected a return collection, got {other:?}"),
    }

    // A second resident reports the same bin: a report of their own, following the first.
    let second = post_report(&keys, &base, 100_021_445_103).await;
    assert_ne!(second, accepted);
    let request = get_request(&base, &second).await;
    assert_eq!(request["status"], "action_scheduled", "{request}");
    assert!(
        request["status_notes"]
            .as_str()
            .unwrap()
            .contains("already been reported"),
        "{request}"
    );

    // The crew goes back and empties it: the report closes.
    cab.send(vec![collection(
        5,
        100_021_445_103,
        Outcome::Collected,
        Some(job.id.clone()),
    )])
    .await;
    cab.wait_acked(5, DEADLINE).await;
    let closed = wait_for("the report to close", DEADLINE, || async {
        let request = get_request(&base, &accepted).await;
        (request["status"] == "closed").then_some(request)
    })
    .await;
    assert!(
        closed["status_notes"]
            .as_str()
            .unwrap()
            .contains("crew collected"),
        "{closed}"
    );

    // Staff see the whole history, in words.
    let history = http::get(
        &format!("http://{}/api/v1/reports/{accepted}", gateway.http_addr),
        Some(keys.admin.as_str()),
    )
    .await
    .json();
    assert_eq!(history["status"], "closed", "{history}");
    assert_eq!(history["history"].as_array().unwrap().len(), 3, "{history}");
    assert_eq!(history["notes"].as_array().unwrap().len(), 3, "{history}");

    // FixMyStreet's poll for the last hour: every transition, oldest first.
    let now = chrono::Utc::now();
    let hour_ago = now - chrono::Duration::hours(1);
    let w3c =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = format!("start_date={}&end_date={}", w3c(hour_ago), w3c(now));
    let polled = http::get(
        &format!("{base}/servicerequestupdates.json?api_key={api_key}&{window}"),
        None,
    )
    .await;
    assert_eq!(polled.status, 200, "{}", polled.body);
    let updates = polled.json();
    let updates = updates.as_array().unwrap();
    let times: Vec<&str> = updates
        .iter()
        .map(|u| u["updated_datetime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first: {updates:?}");
    let of = |id: &str| -> Vec<&serde_json::Value> {
        updates
            .iter()
            .filter(|u| u["service_request_id"] == id)
            .collect()
    };
    let returned = of(&accepted);
    let summary = ids_and_statuses(&returned);
    assert_eq!(
        summary,
        vec![
            (format!("{accepted}-0").as_str(), "open"),
            (format!("{accepted}-1").as_str(), "action_scheduled"),
            (format!("{accepted}-2").as_str(), "fixed"),
        ],
        "{updates:?}"
    );
    assert!(
        returned[2]["description"]
            .as_str()
            .unwrap()
            .contains("crew collected"),
        "{updates:?}"
    );
    let refused = of(&rejected);
    assert_eq!(refused.len(), 1, "{updates:?}");
    assert_eq!(refused[0]["status"], "no_further_action");
    assert_eq!(refused[0]["external_status_code"], "rejected");
    assert!(
        refused[0]["description"]
            .as_str()
            .unwrap()
            .contains("was not put out for collection"),
        "{updates:?}"
    );
    // The second resident hears the same: their report's own updates, ending fixed.
    let second_updates = of(&second);
    let followed = ids_and_statuses(&second_updates);
    assert_eq!(
        followed,
        vec![
            (format!("{second}-0").as_str(), "action_scheduled"),
            (format!("{second}-1").as_str(), "fixed"),
        ],
        "{updates:?}"
    );
    assert_eq!(updates.len(), 6, "{updates:?}");

    // The same in FixMyStreet's XML; nothing without the key.
    let xml = http::get(
        &format!("{base}/servicerequestupdates.xml?api_key={api_key}&{window}"),
        None,
    )
    .await;
    assert_eq!(xml.status, 200, "{}", xml.body);
    assert!(
        xml.body
            .contains("<service_requests_updates><request_update>"),
        "{}",
        xml.body
    );
    assert_eq!(
        xml.body.matches("<request_update>").count(),
        6,
        "{}",
        xml.body
    );
    assert!(
        xml.body.contains(&format!(
            "<update_id>{second}-1</update_id><service_request_id>{second}</service_request_id>\
             <status>fixed</status>"
        )),
        "{}",
        xml.body
    );
    assert!(
        xml.body.contains(&format!(
            "<update_id>{accepted}-2</update_id><service_request_id>{accepted}</service_request_id>\
             <status>fixed</status>"
        )),
        "{}",
        xml.body
    );
    let keyless = http::get(&format!("{base}/servicerequestupdates.json?{window}"), None).await;
    assert_eq!(keyless.status, 403, "{}", keyless.body);

    // Errors in Open311's own format.
    let unknown = http::request(
        "POST",
        &format!("{base}/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        format!("api_key={api_key}&service_code=refuse&address_id=100021999999").into_bytes(),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let errors = unknown.json();
    assert!(errors[0]["description"]
        .as_str()
        .unwrap()
        .contains("100021999999"));
    let forbidden = http::request(
        "POST",
        &format!("{base}/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        b"api_key=wrong&service_code=refuse&address_id=100021445101".to_vec(),
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);

    // A council's "check my bin day" page, with no token: the street's bins, what the crew
    // recorded today, and nothing of the residents who reported.
    let days = http::get(
        &format!(
            "http://{}/api/v1/bin-days?postcode=ub10%208be",
            gateway.http_addr
        ),
        None,
    )
    .await;
    assert_eq!(days.status, 200, "{}", days.body);
    for private in ["example.org", "Ada", "Bin not emptied"] {
        assert!(!days.body.contains(private), "{}", days.body);
    }
    let days = days.json();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive();
    assert_eq!(days["date"], today.to_string(), "{days}");
    let properties = days["properties"].as_array().unwrap();
    assert_eq!(properties.len(), 3, "{days}");
    let refuse_of = |uprn: u64| {
        let property = properties
            .iter()
            .find(|p| p["uprn"] == uprn)
            .unwrap_or_else(|| panic!("{uprn} in {days}"));
        assert_eq!(property["postcode"], "UB10 8BE");
        property["bins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["stream"] == "refuse")
            .unwrap()
            .clone()
    };
    let left = refuse_of(100_021_445_101);
    assert_eq!(left["collection_today"], true, "{left}");
    assert_eq!(left["today"]["collected"], false, "{left}");
    assert_eq!(left["today"]["outcome"], "not_presented", "{left}");
    let tomorrow = today.succ_opt().unwrap().to_string();
    assert_eq!(left["next_collection_day"], tomorrow.as_str(), "{left}");
    let emptied = refuse_of(100_021_445_102);
    assert_eq!(emptied["today"]["collected"], true, "{emptied}");
    assert!(emptied["today"]["at"].as_str().unwrap().ends_with('Z'));
    let one = http::get(
        &format!(
            "http://{}/api/v1/bin-days?uprn=100021445103",
            gateway.http_addr
        ),
        None,
    )
    .await
    .json();
    assert_eq!(one["properties"].as_array().unwrap().len(), 1, "{one}");
    let neither = http::get(
        &format!("http://{}/api/v1/bin-days", gateway.http_addr),
        None,
    )
    .await;
    assert_eq!(neither.status, 400, "{}", neither.body);
    // Any council page may read it from the browser.
    let mut raw = TcpStream::connect(gateway.http_addr).await.unwrap();
    raw.write_all(
        b"GET /api/v1/bin-days?uprn=100021445103 HTTP/1.1\r\nHost: gateway\r\n\
          Connection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = String::new();
    raw.read_to_string(&mut head).await.unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );

    let metrics = gateway.metrics.render();
    assert!(
        metrics.contains("fieldsync_report_decisions_total{decision=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fieldsync_reports_closed_total 1"),
        "{metrics}"
    );
    gateway.stop().await;
}

/// What FixMyStreet sends, against the real register: an unknown `attribute[uprn]` with a pin
/// (the pin places it), `address_string` alone (matched against the addresses), a pin between
/// two houses (the one with the bin wins), form-data with a photo, WasteWorks' single
/// missed-collection service with the bin in `attribute[service_id]`, and a pin far from any
/// property (kept for staff to place, then placed), in JSON and XML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixmystreet_reports_are_placed_by_uprn_pin_or_address() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, keys) = start_gateway(dir.path(), Some("hillingdon.gov.uk")).await;
    let api_key = &keys.api_key;
    let base = format!("http://{}/open311/v2", gateway.http_addr);
    // No. 4 has refuse only here, so a recycling pin between it and no. 2 goes to no. 2.
    let register = REGISTER.replace(
        "4 Swakeleys Road, Ickenham, Uxbridge UB10 8BE\",51.56240,-0.44595,T-1,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse;recycling",
        "4 Swakeleys Road, Ickenham, Uxbridge UB10 8BE\",51.56240,-0.44595,T-1,2,Mon;Tue;Wed;Thu;Fri;Sat;Sun,weekly,,refuse",
    );
    let imported = http::request(
        "POST",
        &format!("http://{}/api/v1/properties", gateway.http_addr),
        Some(keys.admin.as_str()),
        Some("text/csv"),
        register.into_bytes(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);

    let framing = |detail: &str| {
        format!(
            "title%3A+Bin+not+emptied%0A%0Adetail%3A+{detail}%0A%0Aurl%3A+https%3A%2F%2Fwww.fixmystreet.com%2Freport%2F42%0A%0ASubmitted+via+FixMyStreet%0A"
        )
    };
    let post = |path: &'static str, body: String| {
        let base = base.clone();
        async move {
            http::request(
                "POST",
                &format!("{base}/{path}"),
                None,
                Some("application/x-www-form-urlencoded"),
                body.into_bytes(),
            )
            .await
        }
    };
    let uprn_of = |id: String| {
        let base = base.clone();
        async move { get_request(&base, &id).await["address_id"].clone() }
    };

    // An unknown UPRN from FixMyStreet's waste pages, with its pin on no. 6, and a 5,000-
    // character detail.
    let body = format!(
        "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}&service_code=refuse\
         &description={}&first_name=Ann&last_name=Other&email=ann%40example.org\
         &lat=51.562400&long=-0.445700&attribute%5Buprn%5D=100021999999",
        framing(&"x".repeat(5000))
    );
    let reply = post("requests.json", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(uprn_of(id).await, "100021445103");

    // address_string alone, answered in XML.
    let body = format!(
        "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}&service_code=recycling\
         &description={}&first_name=Bo&last_name=&address_string=2+Swakeleys+Road%2C+Ickenham",
        framing("Not+emptied")
    );
    let reply = post("requests.xml", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply
        .body
        .split("<service_request_id>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(uprn_of(id).await, "100021445101");

    // A recycling pin 5 m from no. 4 (refuse only) and 12 m from no. 2, as form-data with a
    // photo: no. 2 has the bin.
    let boundary = "xYzZY";
    let mut form = Vec::new();
    for (name, value) in [
        ("jurisdiction_id", "hillingdon.gov.uk"),
        ("api_key", keys.api_key.as_str()),
        ("service_code", "recycling"),
        (
            "description",
            "title: Recycling missed\n\ndetail: Box left\n",
        ),
        ("first_name", "Cy"),
        ("lat", "51.562400"),
        ("long", "-0.446020"),
    ] {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo1\"; filename=\"1.jpeg\"\
             \r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend(std::iter::repeat_n(0xD8u8, 200 * 1024));
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let reply = http::request(
        "POST",
        &format!("{base}/requests.json"),
        None,
        Some(&format!("multipart/form-data; boundary={boundary}")),
        form,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(uprn_of(id).await, "100021445101");

    // WasteWorks' single missed-collection service, the bin in attribute[service_id].
    let body = format!(
        "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}&service_code=missed_collection\
         &attribute%5Bservice_id%5D=recycling&attribute%5Buprn%5D=100021445103\
         &description={}&first_name=Ed&lat=51.562400&long=-0.445700",
        framing("Box+left")
    );
    let reply = post("requests.xml", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply
        .body
        .split("<service_request_id>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let request = get_request(&base, &id).await;
    assert_eq!(request["service_code"], "recycling", "{request}");
    assert_eq!(request["address_id"], "100021445103", "{request}");

    // A pin in a field 200 m away, in both formats: kept for staff to place (FixMyStreet would
    // resend a refusal for ever), "investigating" meanwhile, the pin shown back.
    let mut unplaced = Vec::new();
    for path in ["requests.json", "requests.xml"] {
        let body = format!(
            "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}&service_code=refuse\
             &description=Bin+not+emptied&first_name=Di&email=di%40example.org\
             &lat=51.564200&long=-0.446200"
        );
        let reply = post(path, body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains("our staff will look at it"),
            "{}",
            reply.body
        );
        let id = if path.ends_with(".json") {
            reply.json()[0]["service_request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        } else {
            reply
                .body
                .split("<service_request_id>")
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .unwrap()
                .to_owned()
        };
        unplaced.push(id);
    }
    let xml = http::get(&format!("{base}/requests/{}.xml", unplaced[1]), None).await;
    assert!(
        xml.body.contains("<status>investigating</status>"),
        "{}",
        xml.body
    );
    assert!(xml.body.contains("<lat>51.5642</lat>"), "{}", xml.body);
    assert!(!xml.body.contains("<address_id>"), "{}", xml.body);
    let request = get_request(&base, &unplaced[0]).await;
    assert_eq!(request["status"], "investigating", "{request}");
    assert!(request["address_id"].is_null(), "{request}");
    assert!(
        request["status_notes"]
            .as_str()
            .unwrap()
            .contains("within 50 m of where you put the pin"),
        "{request}"
    );
    // Staff find the address; the report is then decided there and the resident told.
    let place = |id: String, body: &'static str| {
        let url = format!("http://{}/api/v1/reports/{id}/place", gateway.http_addr);
        let admin = keys.admin.clone();
        async move {
            http::request(
                "POST",
                &url,
                Some(admin.as_str()),
                Some("application/json"),
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let placed = place(unplaced[0].clone(), r#"{"uprn": 100021445103}"#).await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_eq!(placed.json()["uprn"], 100_021_445_103u64);
    let request = get_request(&base, &unplaced[0]).await;
    assert_eq!(request["address_id"], "100021445103", "{request}");
    assert_ne!(request["status"], "investigating", "{request}");
    let again = place(unplaced[0].clone(), r#"{"uprn": 100021445103}"#).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let nowhere = place(unplaced[1].clone(), r#"{"uprn": 100021999999}"#).await;
    assert_eq!(nowhere.status, 422, "{}", nowhere.body);
    // The one still to place is what staff's list of unplaced reports shows.
    let waiting = http::get(
        &format!("http://{}/api/v1/reports?unplaced=true", gateway.http_addr),
        Some(keys.admin.as_str()),
    )
    .await
    .json();
    let waiting: Vec<&str> = waiting
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, vec![unplaced[1].as_str()]);
    gateway.stop().await;
}

/// The form FixMyStreet's `send_service_request` posts for a waste report, in its field names:
/// its framed description, the pin to six places, `attribute[uprn]` and its own id.
fn fixmystreet_report(keys: &Keys, uprn: u64, first_name: &str, email: &str) -> String {
    let api_key = &keys.api_key;
    format!(
        "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}&service_code=refuse\
         &description=title%3A+Bin+not+emptied%0A%0Adetail%3A+Left+on+the+kerb%0A%0Aurl%3A+\
         https%3A%2F%2Fwww.fixmystreet.com%2Freport%2F4242%0A%0ASubmitted+via+FixMyStreet%0A\
         &first_name={first_name}&last_name=Other&email={email}&phone=07700+900123\
         &lat=51.562400&long=-0.445700&attribute%5Buprn%5D={uprn}\
         &attribute%5Bfixmystreet_id%5D=4242"
    )
}

/// The form FixMyStreet's `post_service_request_update` posts for a resident's comment: its
/// comment id as `update_id`, the status upper-cased, a W3CDTF time, `last_name` `-`.
fn fixmystreet_comment(keys: &Keys, request_id: &str, update_id: u32) -> String {
    let api_key = &keys.api_key;
    format!(
        "jurisdiction_id=hillingdon.gov.uk&api_key={api_key}\
         &updated_datetime=2026-11-25T10%3A05%3A00%2B00%3A00&service_request_id={request_id}\
         &status=OPEN&description=Still+not+emptied&last_name=-&first_name=Bo\
         &email=bo%40example.org&update_id={update_id}&account_id=fms-77"
    )
}

/// What FixMyStreet sends and reads for items 1, 2 and 5 of its Open311 conventions, in XML and
/// JSON: two residents reporting one bin (two ids, one return job, both told every step, by id
/// list and by the updates feed), a comment on each (kept once however often it is resent,
/// shown to staff and never in public reads), and a return visit the crew could not complete
/// (an update, not "action scheduled" for ever), then the crew going back and emptying it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixmystreet_second_reporters_comments_and_failed_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, keys) = start_gateway(dir.path(), Some("hillingdon.gov.uk")).await;
    let api_key = &keys.api_key;
    let base = format!("http://{}/open311/v2", gateway.http_addr);
    let staff = format!("http://{}/api/v1", gateway.http_addr);
    let imported = http::request(
        "POST",
        &format!("{staff}/properties"),
        Some(keys.admin.as_str()),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let cab = support::enrolled(&gateway, "cab-rcv07").await;
    cab.send(vec![
        round(1, RoundPhase::Started),
        round(2, RoundPhase::Completed),
    ])
    .await;
    cab.wait_acked(2, DEADLINE).await;
    wait_for("the round's progress", DEADLINE, || async {
        let progress = http::get(
            &format!("{staff}/rounds/{ROUND}/progress"),
            Some(keys.admin.as_str()),
        )
        .await
        .json();
        (progress["completed_at"].is_number()).then_some(())
    })
    .await;
    let post = |path: &'static str, body: String| {
        let base = base.clone();
        async move {
            http::request(
                "POST",
                &format!("{base}/{path}"),
                None,
                Some("application/x-www-form-urlencoded"),
                body.into_bytes(),
            )
            .await
        }
    };
    let xml_value = |body: &str, element: &str| -> String {
        body.split(&format!("<{element}>"))
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("no {element} in {body}"))
            .to_owned()
    };

    // Item 2: two residents report no. 6's bin, in XML and in JSON: two ids, one return job.
    let reply = post(
        "requests.xml",
        fixmystreet_report(&keys, 100_021_445_103, "Ann", "ann%40example.org"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let first = xml_value(&reply.body, "service_request_id");
    let reply = post(
        "requests.json",
        fixmystreet_report(&keys, 100_021_445_103, "Bo", "bo%40example.org"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let job = wait_for("the return job on the cab", DEADLINE, || async {
        cab.downs().into_iter().find_map(|down| match down.body {
            DownBody::Job(job) => Some(job),
            _ => None,
        })
    })
    .await;
    // FixMyStreet's status call: every open report's id in one list, the comma as %2C.
    let listed = http::get(
        &format!(
            "{base}/requests.xml?jurisdiction_id=hillingdon.gov.uk&service_request_id=\
             {first}%2C{second}"
        ),
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(
        listed.body.matches("<request>").count(),
        2,
        "{}",
        listed.body
    );
    assert_eq!(
        listed
            .body
            .matches("<status>action_scheduled</status>")
            .count(),
        2,
        "{}",
        listed.body
    );

    // Item 1: a comment on each, in XML and JSON; FixMyStreet resends the first.
    let reply = post(
        "servicerequestupdates.xml",
        fixmystreet_comment(&keys, &second, 248),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains(&format!(
            "<service_request_updates><request_update><update_id>{second}-c0</update_id>\
             </request_update></service_request_updates>"
        )),
        "{}",
        reply.body
    );
    let again = post(
        "servicerequestupdates.xml",
        fixmystreet_comment(&keys, &second, 248),
    )
    .await;
    assert_eq!(xml_value(&again.body, "update_id"), format!("{second}-c0"));
    let reply = post(
        "servicerequestupdates.json",
        fixmystreet_comment(&keys, &first, 249),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()[0]["update_id"], format!("{first}-c0"));
    let unknown = post(
        "servicerequestupdates.xml",
        fixmystreet_comment(&keys, "MB-999999", 250),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.body.contains("<errors><error><code>404</code>"),
        "{}",
        unknown.body
    );
    // Staff see it with who sent it; public reads never show it.
    let report = http::get(
        &format!("{staff}/reports/{second}"),
        Some(keys.admin.as_str()),
    )
    .await
    .json();
    let comments = report["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1, "{report}");
    assert_eq!(comments[0]["text"], "Still not emptied");
    assert_eq!(comments[0]["contact"]["email"], "bo@example.org");
    assert_eq!(report["contact"]["email"], "bo@example.org", "{report}");
    assert_eq!(report["linked_to"], first.as_str(), "{report}");
    for path in [
        format!("requests/{second}.json"),
        format!("requests/{second}.xml"),
        format!("requests.json?service_request_id={first},{second}"),
    ] {
        let public = http::get(&format!("{base}/{path}"), None).await;
        assert_eq!(public.status, 200, "{}", public.body);
        for private in ["example.org", "Still not emptied", "07700", "Ann", "Bo "] {
            assert!(!public.body.contains(private), "{path}: {}", public.body);
        }
    }

    // Item 5: the crew goes back and finds the way blocked: both residents are told.
    let blocked = collection(
        3,
        100_021_445_103,
        Outcome::BlockedAccess,
        Some(job.id.clone()),
    );
    cab.send(vec![blocked]).await;
    cab.wait_acked(3, DEADLINE).await;
    wait_for(
        "the failed return to reach both reports",
        DEADLINE,
        || async {
            let listed = http::get(
                &format!("{base}/requests.json?service_request_id={first}%2C{second}"),
                None,
            )
            .await
            .json();
            let statuses: Vec<&str> = listed
                .as_array()?
                .iter()
                .filter_map(|r| r["status"].as_str())
                .collect();
            (statuses == ["no_further_action", "no_further_action"]).then_some(())
        },
    )
    .await;
    let now = chrono::Utc::now();
    // FixMyStreet's window, as its W3CDTF writes it and URI.pm encodes it.
    let w3c = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%%2B00:00").to_string();
    let window = format!(
        "api_key={api_key}&jurisdiction_id=hillingdon.gov.uk&start_date={}&end_date={}",
        w3c(now - chrono::Duration::hours(2)),
        w3c(now + chrono::Duration::minutes(1))
    );
    let feed = http::get(&format!("{base}/servicerequestupdates.xml?{window}"), None).await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    for (id, n) in [(&first, 2), (&second, 1)] {
        let update = format!(
            "<update_id>{id}-{n}</update_id><service_request_id>{id}</service_request_id>\
             <status>no_further_action</status>"
        );
        assert!(feed.body.contains(&update), "{update} in {}", feed.body);
    }
    assert_eq!(
        feed.body.matches("access was blocked").count(),
        2,
        "{}",
        feed.body
    );
    assert!(!feed.body.contains("Still not emptied"), "{}", feed.body);

    // The crew goes back again on the same job and empties it: both fixed, in the JSON feed.
    cab.send(vec![collection(
        4,
        100_021_445_103,
        Outcome::Collected,
        Some(job.id.clone()),
    )])
    .await;
    cab.wait_acked(4, DEADLINE).await;
    let feed = wait_for("both reports fixed in the feed", DEADLINE, || async {
        let feed = http::get(&format!("{base}/servicerequestupdates.json?{window}"), None)
            .await
            .json();
        let fixed = feed
            .as_array()?
            .iter()
            .filter(|u| u["status"] == "fixed")
            .count();
        (fixed == 2).then_some(feed)
    })
    .await;
    let ids: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["update_id"].as_str().unwrap())
        .collect();
    for expected in [
        format!("{first}-0"),
        format!("{first}-1"),
        format!("{first}-2"),
        format!("{first}-3"),
        format!("{second}-0"),
        format!("{second}-1"),
        format!("{second}-2"),
    ] {
        assert!(ids.contains(&expected.as_str()), "{expected} in {ids:?}");
    }
    gateway.stop().await;
}
