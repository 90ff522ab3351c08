#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the gateway logs never holds a resident's contact details or a secret, and what it
//! answers publicly never holds contact details: a resident's report and comment through
//! Open311, read back through every public read, read by staff of each role, refused tokens and
//! keys, and the purge, all with every log line captured (the gateway at `trace`, the rest at
//! `debug`), then searched.
//!
//! The only test in its binary: it installs the process's log subscriber.

mod support;

use std::sync::Arc;

use fieldsync_tests::http;
use gateway::access::Role;
use gateway::clock::FixedClock;
use gateway::Gateway;
use support::Captured;

/// Tuesday 24 November 2026, 18:00 UTC: after the round, inside the report window.
const NOW: &str = "2026-11-24T18:00:00Z";
const REGISTER: &str = include_str!("fixtures/properties.csv");
/// What the resident gives that must never be logged or shown publicly.
const PERSONAL: [&str; 6] = [
    "Zelda",
    "Quixote",
    "zelda.q@example.org",
    "07700900461",
    "fms-acct-9931",
    "fms-device-5150",
];

fn assert_holds_none(what: &str, text: &str, secrets: &[&str]) {
    for secret in PERSONAL.iter().chain(secrets) {
        assert!(!text.contains(secret), "{what} holds {secret:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_details_and_secrets_never_reach_the_logs_nor_public_reads() {
    let logs = Captured::install("debug,gateway=trace");

    let dir = tempfile::tempdir().unwrap();
    let mut config = support::config(dir.path());
    config.missed_bins.calendar.bank_holidays = Default::default();
    let clock = Arc::new(FixedClock::at_rfc3339(NOW));
    let gateway = Gateway::start_with_clock(config, clock).await.unwrap();
    let token = |name: &str, role| {
        let issued = gateway.access.add_staff(name, role, false).unwrap();
        issued.token.reveal().to_owned()
    };
    let (admin, viewer, supervisor) = (
        token("admin", Role::Admin),
        token("wallboard", Role::Viewer),
        token("sam", Role::WasteSupervisor),
    );
    let api_key = gateway
        .access
        .add_integration("fixmystreet", false)
        .unwrap()
        .token
        .reveal()
        .to_owned();
    // The secret halves: the names are not secrets.
    let secrets: Vec<String> = [&admin, &viewer, &supervisor, &api_key]
        .iter()
        .map(|t| t.split_once('.').unwrap().1.to_owned())
        .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();

    let base = format!("http://{}", gateway.http_addr);
    let open311 = format!("{base}/open311/v2");
    let form = Some("application/x-www-form-urlencoded");
    let imported = http::request(
        "POST",
        &format!("{base}/api/v1/properties"),
        Some(&admin),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let created = http::request(
        "POST",
        &format!("{open311}/requests.json"),
        None,
        form,
        format!(
            "api_key={api_key}&service_code=refuse&address_id=100021445101&first_name=Zelda&\
             last_name=Quixote&email=zelda.q%40example.org&phone=07700900461&\
             account_id=fms-acct-9931&device_id=fms-device-5150&description=Bin+left+out"
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let commented = http::request(
        "POST",
        &format!("{open311}/servicerequestupdates.json"),
        None,
        form,
        format!(
            "api_key={api_key}&service_request_id={id}&update_id=1&status=OPEN&\
             updated_datetime=2026-11-24T18:00:00Z&description=Still+there&first_name=Zelda&\
             last_name=Quixote&email=zelda.q%40example.org&account_id=fms-acct-9931"
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(commented.status, 200, "{}", commented.body);
    // Refused: a wrong key, a staff token as a key, a revoked token.
    for key in ["fixmystreet.00", admin.as_str()] {
        let refused = http::request(
            "POST",
            &format!("{open311}/requests.json"),
            None,
            form,
            format!("api_key={key}&service_code=refuse&address_id=1&email=zelda.q%40example.org")
                .into_bytes(),
        )
        .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }

    let window = "start_date=2026-11-24T00:00:00Z&end_date=2026-11-25T00:00:00Z";
    for url in [
        format!("{open311}/requests.json"),
        format!("{open311}/requests.xml"),
        format!("{open311}/requests/{id}.json"),
        format!("{open311}/requests/{id}.xml"),
        format!("{open311}/requests.json?service_request_id={id}"),
        format!("{open311}/servicerequestupdates.json?api_key={api_key}&{window}"),
        format!("{open311}/servicerequestupdates.xml?api_key={api_key}&{window}"),
        format!("{base}/api/v1/bin-days?uprn=100021445101"),
    ] {
        let read = http::get(&url, None).await;
        assert_eq!(read.status, 200, "{url}: {}", read.body);
        let shown = if url.contains("bin-days") {
            "100021445101"
        } else {
            id.as_str()
        };
        assert!(read.body.contains(shown), "{url}: {}", read.body);
        assert_holds_none(&url, &read.body, &[]);
    }
    let as_viewer = http::get(&format!("{base}/api/v1/reports/{id}"), Some(&viewer)).await;
    assert_holds_none("a viewer's report", &as_viewer.body, &[]);
    let as_supervisor = http::get(&format!("{base}/api/v1/reports/{id}"), Some(&supervisor)).await;
    assert!(as_supervisor.body.contains("zelda.q@example.org"));
    let wrong = format!("wallboard.{}", "0".repeat(64));
    let refused = http::get(&format!("{base}/api/v1/reports"), Some(&wrong)).await;
    assert_eq!(refused.status, 401);
    gateway
        .access
        .revoke(gateway::storage::HolderKind::Staff, "sam")
        .unwrap();
    let revoked = http::get(&format!("{base}/api/v1/reports"), Some(&supervisor)).await;
    assert_eq!(revoked.status, 401);

    // The report is open (accepted): nothing is due; a report closed long ago would be.
    assert_eq!(gateway.desk.purge_residents(i64::MAX, 0).unwrap(), 0);
    gateway.stop().await;

    let text = logs.text();
    assert!(
        text.contains("open311 service request created"),
        "the capture missed the gateway's lines:\n{text}"
    );
    assert_holds_none("the logs", &text, &secrets);
}
