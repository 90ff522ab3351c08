#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every staff route, from the role table the router is guarded by, walked on a running gateway
//! with no token (401), a token of no one, a revoked one (401), and a token of every role: 403
//! for each role that may not do what the route does, something else for each that may. A no-token
//! 401 also proves the table's route is one the router has (an unknown path is 404), and a
//! route the table lacks is refused to everyone, so the walk cannot miss one.
//!
//! And what a role sees: a viewer's reports without residents' contact details; an
//! acknowledgement with the token's name; an integration's api_key that is not a staff token.

mod support;

use std::sync::Arc;

use fieldsync_tests::http;
use gateway::access::{Role, Staff};
use gateway::clock::FixedClock;
use gateway::http::guard::STAFF_ROUTES;
use gateway::storage::HolderKind;
use gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Tuesday 24 November 2026, 18:00 UTC: after the round, inside the report window.
const NOW: &str = "2026-11-24T18:00:00Z";
const REGISTER: &str = include_str!("fixtures/properties.csv");

async fn start(dir: &std::path::Path) -> Gateway {
    let mut config = support::config(dir);
    config.missed_bins.calendar.bank_holidays = Default::default();
    Gateway::start_with_clock(config, Arc::new(FixedClock::at_rfc3339(NOW)))
        .await
        .unwrap()
}

fn issue(gateway: &Gateway, name: &str, role: Role) -> String {
    let issued = gateway.access.add_staff(name, role, false).unwrap();
    issued.token.reveal().to_owned()
}

/// The status of `method path` with `token`, read from the status line alone, so that an event
/// stream (whose body never ends) answers like any other route.
async fn status(gateway: &Gateway, method: &str, path: &str, token: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(gateway.http_addr).await.unwrap();
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: gateway\r\n{authorization}Content-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed"
        );
        head.push(byte[0]);
    }
    let line = String::from_utf8(head).unwrap();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| match part.strip_prefix(':') {
            Some("round") => "HIL-TUE-1",
            Some(_) => "MB-1",
            None => part,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_staff_route_refuses_no_token_and_the_wrong_role_and_serves_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path()).await;
    let tokens: Vec<(Role, String)> = Role::ALL
        .into_iter()
        .map(|role| (role, issue(&gateway, role.as_str(), role)))
        .collect();
    let revoked = issue(&gateway, "left", Role::Admin);
    gateway.access.revoke(HolderKind::Staff, "left").unwrap();
    let nobody = format!("nobody.{}", "0".repeat(64));
    let api_key = gateway
        .access
        .add_integration("fixmystreet", false)
        .unwrap();

    let mut refused = 0;
    for route in STAFF_ROUTES {
        let (method, path) = (route.method, concrete(route.path));
        let what = format!("{method} {path}");
        assert_eq!(status(&gateway, method, &path, None).await, 401, "{what}");
        for token in [nobody.as_str(), revoked.as_str(), api_key.token.reveal()] {
            assert_eq!(
                status(&gateway, method, &path, Some(token)).await,
                401,
                "{what} with a token that is no staff's"
            );
        }
        for (role, token) in &tokens {
            let got = status(&gateway, method, &path, Some(token)).await;
            if role.may(route.action) {
                assert!(![401, 403].contains(&got), "{what} as {role}: {got}");
            } else {
                assert_eq!(got, 403, "{what} as {role}");
                refused += 1;
            }
        }
    }
    // Every action but the devices' list is refused to some role.
    assert!(refused > STAFF_ROUTES.len(), "{refused}");
    // A method a staff route does not have is that, whoever asks; an unknown path is not found.
    let admin = &tokens[3].1;
    assert_eq!(
        status(&gateway, "DELETE", "/api/v1/reports", Some(admin)).await,
        405
    );
    assert_eq!(
        status(&gateway, "DELETE", "/api/v1/reports", None).await,
        405
    );
    assert_eq!(
        status(&gateway, "GET", "/api/v1/nothing", Some(admin)).await,
        404
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_reports_without_residents_details() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path()).await;
    let admin = issue(&gateway, "admin", Role::Admin);
    let viewer = issue(&gateway, "wallboard", Role::Viewer);
    let supervisor = issue(&gateway, "sam", Role::WasteSupervisor);
    let base = format!("http://{}", gateway.http_addr);
    let imported = http::request(
        "POST",
        &format!("{base}/api/v1/properties"),
        Some(&admin),
        Some("text/csv"),
        REGISTER.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let key = gateway
        .access
        .add_integration("fixmystreet", false)
        .unwrap();
    let created = http::request(
        "POST",
        &format!("{base}/open311/v2/requests.json"),
        None,
        Some("application/x-www-form-urlencoded"),
        format!(
            "api_key={}&service_code=refuse&address_id=100021445101&first_name=Ann&\
             last_name=Example&email=ann%40example.org&phone=07700900123",
            key.token.reveal()
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let as_supervisor = http::get(&format!("{base}/api/v1/reports/{id}"), Some(&supervisor)).await;
    assert!(
        as_supervisor.body.contains("ann@example.org"),
        "{}",
        as_supervisor.body
    );
    for url in [
        format!("{base}/api/v1/reports/{id}"),
        format!("{base}/api/v1/reports"),
    ] {
        let seen = http::get(&url, Some(&viewer)).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert!(seen.body.contains(&id), "{}", seen.body);
        for private in ["Ann", "ann@example.org", "07700900123", "contact"] {
            assert!(!seen.body.contains(private), "{private} in {}", seen.body);
        }
    }
    // The staff token's own registry says who it is, for the dashboard.
    assert_eq!(
        gateway.access.staff(&viewer).unwrap(),
        Staff {
            name: "wallboard".into(),
            role: Role::Viewer
        }
    );
    gateway.stop().await;
}
