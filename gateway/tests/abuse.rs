#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Abuse limits over real sockets: one client (from 127.0.0.2) floods Open311 posts and holds
//! connections open; it is answered 429 beyond its burst, per address and per `api_key`, and
//! its connections beyond its share are closed, while another client (127.0.0.1) is served
//! throughout. The gateway's clock is fixed, so buckets never refill and the counts are exact.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fieldsync_tests::free_port;
use gateway::access::Role;
use gateway::clock::FixedClock;
use gateway::config::GatewayConfig;
use gateway::http::rate_limit::Rate;
use gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DEADLINE: Duration = Duration::from_secs(20);
/// What the test gateway issues: two front ends' Open311 keys and a waste supervisor's token.
struct Keys {
    flooder: String,
    other: String,
    staff: String,
}
const BURST: u32 = 5;
const PER_ADDRESS_CONNECTIONS: usize = 8;

async fn start(dir: &std::path::Path) -> (Gateway, Keys) {
    let mut config = GatewayConfig {
        data_dir: dir.join("store"),
        ..GatewayConfig::default()
    };
    config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
    config.mqtt.allow_anonymous = true;
    config.http.listen = ([0, 0, 0, 0], 0).into();
    let rate = Rate {
        burst: BURST,
        per_minute: 1,
    };
    config.http.limits.open311_posts_per_address = rate;
    config.http.limits.open311_posts_per_key = rate;
    config.http.limits.max_connections_per_address = PER_ADDRESS_CONNECTIONS;
    let clock = Arc::new(FixedClock::at_rfc3339("2026-11-24T12:00:00Z"));
    let gateway = Gateway::start_with_clock(config, clock).await.unwrap();
    assert!(gateway.wait_ready(DEADLINE).await);
    let key = |name: &str| {
        let issued = gateway.access.add_integration(name, false).unwrap();
        issued.token.reveal().to_owned()
    };
    let (flooder, other) = (key("flooding-front-end"), key("well-behaved-front-end"));
    let staff = gateway
        .access
        .add_staff("sam", Role::WasteSupervisor, false)
        .unwrap()
        .token
        .reveal()
        .to_owned();
    (
        gateway,
        Keys {
            flooder,
            other,
            staff,
        },
    )
}

/// A TCP connection to the gateway from the loopback address `from`.
async fn connect(from: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// One HTTP/1.1 request with a urlencoded `form` on a new connection from `from`; the
/// response's status.
async fn status(from: [u8; 4], port: u16, method: &str, path: &str, form: &str) -> u16 {
    let headers = "Content-Type: application/x-www-form-urlencoded\r\n";
    request(from, port, method, path, headers, form).await
}

/// One HTTP/1.1 request with `headers` (each ending in CRLF) and `body`; the response's status.
async fn request(
    from: [u8; 4],
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> u16 {
    let request = async {
        let mut stream = connect(from, port).await;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) and close before the whole body is sent.
        let _ = stream.write_all(body.as_bytes()).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
    };
    tokio::time::timeout(DEADLINE, request)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} from {from:?} got no answer in time"))
}

fn report(key: &str) -> String {
    format!("api_key={key}&service_code=refuse&address_id=100021445101")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flooding_client_is_limited_and_everyone_else_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, keys) = start(dir.path()).await;
    let port = gateway.http_addr.port();
    let flooder = [127, 0, 0, 2];
    let other = [127, 0, 0, 1];
    let posts = "/open311/v2/requests.json";

    // The flood: ten times its burst, ten at a time.
    let mut refused = 0;
    for wave_number in 0..10 {
        let wave: Vec<_> = (0..BURST)
            .map(|_| {
                let form = report(&keys.flooder);
                tokio::spawn(async move { status(flooder, port, "POST", posts, &form).await })
            })
            .collect();
        for answer in wave {
            let code = answer.await.unwrap();
            assert_ne!(code, 0, "the flooder got no HTTP answer");
            refused += u32::from(code == 429);
        }
        // The other client is served between the waves: its posts, within its own burst, reach
        // the Open311 handler (which answers for the unknown address); its reads are answered.
        if wave_number < BURST {
            let code = status(other, port, "POST", posts, &report(&keys.other)).await;
            assert!(
                code != 429 && code != 0,
                "the other client's post got {code}"
            );
        }
        assert_eq!(status(other, port, "GET", "/healthz", "").await, 200);
    }
    assert_eq!(refused, 9 * BURST, "all but the flooder's burst refused");

    // Its key is spent too: from another address, the flooder's key is refused at once.
    assert_eq!(
        status([127, 0, 0, 3], port, "POST", posts, &report(&keys.flooder)).await,
        429
    );

    // The flooder holds its share of connections open; one more is closed unanswered, while
    // the other client still connects and is served.
    let mut held = Vec::new();
    for _ in 0..PER_ADDRESS_CONNECTIONS {
        held.push(connect(flooder, port).await);
    }
    let mut extra = connect(flooder, port).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, extra.read(&mut buffer))
        .await
        .expect("the extra connection was neither answered nor closed");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a connection beyond the flooder's share was served"
    );
    assert_eq!(status(other, port, "GET", "/healthz", "").await, 200);
    drop(held);

    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_routers_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, keys) = start(dir.path()).await;
    let port = gateway.http_addr.port();
    let limit = GatewayConfig::default().http.limits.max_body_bytes;
    // A staff route that reads a JSON body and sets no limit of its own: the router's holds.
    let headers = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        keys.staff
    );
    let json = |description: usize| {
        format!(
            "{{\"uprn\":100021445101,\"stream\":\"refuse\",\"description\":\"{}\"}}",
            "y".repeat(description)
        )
    };
    let over = request(
        [127, 0, 0, 1],
        port,
        "POST",
        "/api/v1/reports",
        &headers,
        &json(limit),
    )
    .await;
    assert_eq!(over, 413, "a body over the router's limit");
    let under = request(
        [127, 0, 0, 1],
        port,
        "POST",
        "/api/v1/reports",
        &headers,
        &json(10),
    )
    .await;
    assert_ne!(under, 413, "a small body");
    gateway.stop().await;
}
