//! The Open311 router driven over real HTTP (a listener on port 0, a raw HTTP/1.1 client that
//! sees status, content type and body) against an in-memory backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::London;
use proto::BinStream;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::model::MAX_RESULTS;
use super::*;
use crate::clock::FixedClock;

const KEY: &str = "secret-key";
const KNOWN_UPRN: u64 = 100_021_234_567;

/// A backend over vectors: ids `R1`, `R2`, … in creation order; updates as seeded.
#[derive(Default)]
struct FakeBackend {
    requests: Mutex<Vec<ServiceRequest>>,
    created: Mutex<Vec<NewServiceRequest>>,
    updates: Mutex<Vec<RequestUpdate>>,
    /// Comments kept, in order; a comment's id is `C{n}`.
    comments: Mutex<Vec<NewRequestUpdate>>,
    /// Every update search the router made.
    update_searches: Mutex<Vec<UpdateSearch>>,
    down: AtomicBool,
}

impl FakeBackend {
    fn seed(&self, request: ServiceRequest) {
        self.requests.lock().unwrap().push(request);
    }

    fn seed_update(&self, update: RequestUpdate) {
        self.updates.lock().unwrap().push(update);
    }

    fn update_searches(&self) -> Vec<UpdateSearch> {
        self.update_searches.lock().unwrap().clone()
    }

    fn created(&self) -> Vec<NewServiceRequest> {
        self.created.lock().unwrap().clone()
    }

    fn check_up(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("store offline".into()))
        } else {
            Ok(())
        }
    }
}

impl Open311Backend for FakeBackend {
    fn api_key_accepted(&self, key: &str) -> bool {
        key == KEY
    }

    fn create(&self, request: NewServiceRequest) -> Result<CreatedRequest, BackendError> {
        self.check_up()?;
        // Known UPRN, else any pin, else an address naming the known property.
        let address_id = match &request.location {
            Location {
                address_id: Some(uprn),
                ..
            } if *uprn == KNOWN_UPRN => Some(*uprn),
            Location {
                position: Some(_), ..
            } => Some(KNOWN_UPRN),
            Location {
                address_string: Some(address),
                ..
            } if address.contains("1 High Street") => Some(KNOWN_UPRN),
            Location {
                address_id: Some(uprn),
                ..
            } => {
                return Err(BackendError::UnknownAddress(format!(
                    "address_id {uprn} is not a property we collect from"
                )))
            }
            _ => {
                return Err(BackendError::UnknownAddress(
                    "address_string matches no property we collect from.".into(),
                ))
            }
        };
        let mut requests = self.requests.lock().unwrap();
        let id = format!("R{}", requests.len() + 1);
        let now = now();
        requests.push(ServiceRequest {
            id: id.clone(),
            status: Open311Status::Open,
            extended_status: UpdateStatus::Open,
            status_notes: "Reported; a crew will check the round's records.".into(),
            subject: request.subject,
            description: request.description.clone(),
            agency_responsible: None,
            service_notice: None,
            requested: now,
            updated: now,
            expected: None,
            address: None,
            address_id,
            zipcode: None,
            lat: None,
            long: None,
            media_url: request.media_urls.first().cloned(),
        });
        let account_id = request.contact.account_id.clone();
        self.created.lock().unwrap().push(request);
        Ok(CreatedRequest {
            id,
            service_notice: Some("A crew will return within two working days.".into()),
            account_id,
        })
    }

    fn get(&self, id: &str) -> Result<Option<ServiceRequest>, BackendError> {
        self.check_up()?;
        let requests = self.requests.lock().unwrap();
        Ok(requests.iter().find(|r| r.id == id).cloned())
    }

    fn list(&self, filter: &RequestFilter) -> Result<Vec<ServiceRequest>, BackendError> {
        self.check_up()?;
        let requests = self.requests.lock().unwrap();
        let mut found: Vec<ServiceRequest> = match filter {
            RequestFilter::Ids(ids) => requests
                .iter()
                .filter(|r| ids.contains(&r.id))
                .cloned()
                .collect(),
            RequestFilter::Search(search) => requests
                .iter()
                .filter(|r| {
                    search.subjects.contains(&r.subject)
                        && search.statuses.contains(&r.status)
                        && (search.from..=search.to).contains(&r.requested)
                })
                .cloned()
                .collect(),
        };
        found.sort_by_key(|r| std::cmp::Reverse(r.requested));
        Ok(found)
    }

    fn add_update(&self, update: NewRequestUpdate) -> Result<PostedUpdate, BackendError> {
        self.check_up()?;
        if !self
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.id == update.request_id)
        {
            return Err(BackendError::UnknownRequest(update.request_id));
        }
        let mut comments = self.comments.lock().unwrap();
        let again = comments.iter().position(|kept| {
            kept.request_id == update.request_id
                && kept.client_update_id.is_some()
                && kept.client_update_id == update.client_update_id
        });
        let index = again.unwrap_or_else(|| {
            comments.push(update);
            comments.len() - 1
        });
        Ok(PostedUpdate {
            update_id: format!("C{index}"),
        })
    }

    fn updates(&self, search: &UpdateSearch) -> Result<Vec<RequestUpdate>, BackendError> {
        self.check_up()?;
        self.update_searches.lock().unwrap().push(*search);
        let mut found: Vec<RequestUpdate> = self
            .updates
            .lock()
            .unwrap()
            .iter()
            .filter(|u| (search.from..=search.to).contains(&u.updated))
            .cloned()
            .collect();
        found.sort_by_key(|u| u.updated);
        found.truncate(search.limit);
        Ok(found)
    }
}

/// The time every test runs at: fixed, so no test depends on the day it runs.
fn now() -> DateTime<Utc> {
    utc("2026-11-25T12:00:00Z")
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn report(id: &str, stream: BinStream, status: Open311Status, requested: &str) -> ServiceRequest {
    ServiceRequest {
        id: id.into(),
        status,
        extended_status: match status {
            Open311Status::Open => UpdateStatus::Open,
            Open311Status::Closed => UpdateStatus::Fixed,
        },
        status_notes: String::new(),
        subject: Subject::MissedBin(stream),
        description: None,
        agency_responsible: None,
        service_notice: None,
        requested: utc(requested),
        updated: utc(requested),
        expected: None,
        address: None,
        address_id: None,
        zipcode: None,
        lat: None,
        long: None,
        media_url: None,
    }
}

/// The router nested where the gateway puts it, served on 127.0.0.1:0 until `stop`.
struct Server {
    addr: SocketAddr,
    backend: Arc<FakeBackend>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// With the gateway's default settings (extended statuses on, any jurisdiction).
    async fn start() -> Self {
        Self::start_with(Settings {
            extended_statuses: true,
            ..Settings::default()
        })
        .await
    }

    async fn start_with(settings: Settings) -> Self {
        let backend = Arc::new(FakeBackend::default());
        let app = Router::new().nest(
            "/open311/v2",
            router(
                backend.clone(),
                settings,
                London,
                Arc::new(FixedClock::at(now())),
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            backend,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server did not stop")
            .unwrap();
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let mut head = format!(
                "{method} /open311/v2/{path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                 Content-Length: {}\r\n",
                body.len()
            );
            if let Some(content_type) = content_type {
                head.push_str(&format!("Content-Type: {content_type}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.unwrap();
            Reply::parse(&raw)
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("no answer within 10 s")
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, b"").await
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            "POST",
            path,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            body.as_bytes(),
        )
        .await
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let content_type = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default();
        Self {
            status,
            content_type,
            body: body.to_owned(),
        }
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.content_type, "application/json; charset=utf-8",
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap()
    }

    fn xml(&self) -> &str {
        assert_eq!(self.content_type, "text/xml; charset=utf-8", "{self:?}");
        assert!(
            self.body
                .starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"),
            "{}",
            self.body
        );
        &self.body
    }

    fn ids(&self) -> Vec<String> {
        self.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["service_request_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn valid_post() -> Vec<(&'static str, &'static str)> {
    vec![
        ("api_key", KEY),
        ("jurisdiction_id", "example.gov.uk"),
        ("service_code", "refuse"),
        ("address_id", "100021234567"),
        ("email", "resident@example.org"),
        ("first_name", "Ann"),
        ("last_name", "Other"),
        ("phone", "020 7946 0000"),
        ("account_id", "acc-1"),
        ("device_id", "dev-1"),
        ("description", "Bin not emptied.\nIt was out by 6am."),
        ("media_url", "https://example.org/photo.jpg"),
    ]
}

#[tokio::test]
async fn services_list_one_service_per_stream_in_json_and_xml() {
    let server = Server::start().await;
    let reply = server.get("services.json").await;
    assert_eq!(reply.status, 200);
    let services = reply.json();
    let services = services.as_array().unwrap();
    // One per stream, the one missed-collection service WasteWorks uses, then heating.
    assert_eq!(services.len(), BinStream::ALL.len() + 2);
    assert_eq!(
        services[BinStream::ALL.len()]["service_code"],
        "missed_collection"
    );
    assert_eq!(services[BinStream::ALL.len()]["metadata"], true);
    let heating = &services[BinStream::ALL.len() + 1];
    assert_eq!(heating["service_code"], "heating_fault");
    assert_eq!(heating["group"], "Heating and hot water");
    assert_eq!(heating["metadata"], false);
    assert_eq!(
        services[0],
        json!({
            "service_code": "refuse",
            "service_name": "Missed refuse collection",
            "description": "Your general waste bin was not emptied on your collection day.",
            "metadata": false,
            "type": "realtime",
            "keywords": "missed bin, refuse, general waste, rubbish, black bin",
            "group": "Missed bin",
        })
    );

    let reply = server.get("services.xml").await;
    assert_eq!(reply.status, 200);
    let xml = reply.xml();
    assert!(xml.contains(
        "<services><service><service_code>refuse</service_code>\
         <service_name>Missed refuse collection</service_name>"
    ));
    assert!(xml.contains("<metadata>false</metadata><type>realtime</type>"));
    assert!(xml.contains("<group>Missed bin</group></service>"));
    assert_eq!(xml.matches("<service>").count(), BinStream::ALL.len() + 2);
    assert!(xml.ends_with("</services>\n"));
    server.stop().await;
}

#[tokio::test]
async fn service_definitions_have_no_attributes() {
    let server = Server::start().await;
    let reply = server.get("services/garden.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"service_code": "garden", "attributes": []})
    );

    let reply = server.get("services/garden.xml").await;
    assert!(reply.xml().contains(
        "<service_definition><service_code>garden</service_code><attributes></attributes>\
         </service_definition>"
    ));

    let reply = server.get("services/heating_fault.json").await;
    assert_eq!(
        reply.json(),
        json!({"service_code": "heating_fault", "attributes": []})
    );

    let reply = server.get("services/potholes.json").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()[0]["code"], 404);
    let reply = server.get("services/garden.html").await;
    assert_eq!(reply.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn post_with_a_uprn_creates_a_request() {
    let server = Server::start().await;
    let reply = server.post_form("requests.json", &valid_post()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!([{
            "service_request_id": "R1",
            "service_notice": "A crew will return within two working days.",
            "account_id": "acc-1",
        }])
    );
    let created = server.backend.created();
    assert_eq!(created.len(), 1);
    let request = &created[0];
    assert_eq!(request.subject, Subject::MissedBin(BinStream::Refuse));
    assert_eq!(request.location.address_id, Some(KNOWN_UPRN));
    assert_eq!(
        request.description.as_deref(),
        Some("Bin not emptied.\nIt was out by 6am.")
    );
    assert_eq!(
        request.contact,
        Contact {
            email: Some("resident@example.org".into()),
            first_name: Some("Ann".into()),
            last_name: Some("Other".into()),
            phone: Some("020 7946 0000".into()),
            account_id: Some("acc-1".into()),
            device_id: Some("dev-1".into()),
        }
    );
    assert_eq!(request.media_urls, vec!["https://example.org/photo.jpg"]);
    server.stop().await;
}

#[tokio::test]
async fn post_with_lat_long_answers_in_xml() {
    let server = Server::start().await;
    let reply = server
        .post_form(
            "requests.xml",
            &[
                ("api_key", KEY),
                ("service_code", "food"),
                ("lat", "51.50135"),
                ("long", "-0.14189"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.xml().contains(
        "<service_requests><request><service_request_id>R1</service_request_id>\
         <service_notice>A crew will return within two working days.</service_notice>\
         </request></service_requests>"
    ));
    assert_eq!(
        server.backend.created()[0].location,
        Location::lat_long(51.50135, -0.14189)
    );
    server.stop().await;
}

#[tokio::test]
async fn api_key_missing_or_wrong_is_403_before_anything_else() {
    let server = Server::start().await;
    let mut without_key = valid_post();
    without_key.retain(|(name, _)| *name != "api_key");
    without_key.push(("lat", "999"));
    let reply = server.post_form("requests.json", &without_key).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!([{"code": 403, "description": "api_key was not provided -- can't proceed with create_request"}])
    );

    let mut wrong_key = valid_post();
    wrong_key[0] = ("api_key", "guess");
    let reply = server.post_form("requests.xml", &wrong_key).await;
    assert_eq!(reply.status, 403);
    assert!(reply.xml().contains(
        "<errors><error><code>403</code><description>Invalid api_key received -- can&apos;t \
         proceed with create_request</description></error></errors>"
    ));
    assert!(server.backend.created().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn unknown_service_is_404_and_unknown_uprn_is_a_clear_400() {
    let server = Server::start().await;
    let mut unknown_service = valid_post();
    unknown_service[2] = ("service_code", "potholes");
    let reply = server.post_form("requests.json", &unknown_service).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!([{"code": 404, "description": "service_code potholes was not found; services.json lists the services"}])
    );

    let mut unknown_uprn = valid_post();
    unknown_uprn[3] = ("address_id", "100021999999");
    let reply = server.post_form("requests.json", &unknown_uprn).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!([{"code": 400, "description": "address_id 100021999999 is not a property we collect from"}])
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_400_with_every_problem_listed() {
    let server = Server::start().await;
    let reply = server
        .post_form(
            "requests.json",
            &[
                ("api_key", KEY),
                ("service_code", "refuse"),
                ("lat", "95.1"),
                ("long", "NaN"),
                ("address_id", "12-34"),
            ],
        )
        .await;
    assert_eq!(reply.status, 400);
    let descriptions: Vec<String> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        descriptions,
        vec![
            "address_id must be a UPRN: a number of up to 12 digits",
            "lat must be between -90 and 90 degrees (WGS84)",
            "long must be a decimal number of degrees (WGS84)",
        ]
    );

    let reply = server
        .post_form(
            "requests.json",
            &[("api_key", KEY), ("service_code", "refuse")],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()[0]["description"],
        "a location was not provided; send address_id (the property's UPRN), lat and long, or \
         address_string"
    );
    assert!(server.backend.created().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_forms_or_too_large_are_refused() {
    let server = Server::start().await;
    let reply = server
        .send(
            "POST",
            "requests.json",
            Some("application/json"),
            br#"{"api_key":"secret-key"}"#,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()[0]["description"],
        "The request must be sent as application/x-www-form-urlencoded or multipart/form-data"
    );

    let huge = format!("api_key={KEY}&description={}", "x".repeat(MAX_BODY_BYTES));
    let reply = server
        .send(
            "POST",
            "requests.json",
            Some("application/x-www-form-urlencoded"),
            huge.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("The request body is larger than"));
    server.stop().await;
}

#[tokio::test]
async fn get_one_request_with_local_offsets_and_404() {
    let server = Server::start().await;
    server.backend.seed(ServiceRequest {
        id: "R7".into(),
        status: Open311Status::Closed,
        extended_status: UpdateStatus::NoFurtherAction,
        status_notes: "Your bin was not out when the crew passed at 07:42; photo taken.".into(),
        subject: Subject::MissedBin(BinStream::Recycling),
        description: Some("Missed again".into()),
        agency_responsible: Some("Waste Services".into()),
        service_notice: None,
        requested: utc("2026-03-28T07:42:00Z"),
        updated: utc("2026-03-30T09:15:00Z"),
        expected: Some(utc("2026-11-24T07:42:00Z")),
        address: Some("1 High Street, Anytown".into()),
        address_id: Some(KNOWN_UPRN),
        zipcode: Some("AN1 1AA".into()),
        lat: Some(51.5),
        long: Some(-0.12),
        media_url: None,
    });
    let reply = server.get("requests/R7.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!([{
            "service_request_id": "R7",
            // Rejected: closed, but never "closed" to a client that reads that as fixed.
            "status": "no_further_action",
            "status_notes": "Your bin was not out when the crew passed at 07:42; photo taken.",
            "service_name": "Missed recycling collection",
            "service_code": "recycling",
            "description": "Missed again",
            "agency_responsible": "Waste Services",
            "service_notice": null,
            // Greenwich time before the spring change, summer time after it.
            "requested_datetime": "2026-03-28T07:42:00+00:00",
            "updated_datetime": "2026-03-30T10:15:00+01:00",
            "expected_datetime": "2026-11-24T07:42:00+00:00",
            "address": "1 High Street, Anytown",
            "address_id": "100021234567",
            "zipcode": "AN1 1AA",
            "lat": 51.5,
            "long": -0.12,
            "media_url": null,
        }])
    );

    let xml = server.get("requests/R7.xml").await;
    assert!(xml.xml().contains(
        "<service_requests><request><service_request_id>R7</service_request_id>\
         <status>no_further_action</status>"
    ));
    assert!(xml
        .body
        .contains("<updated_datetime>2026-03-30T10:15:00+01:00</updated_datetime>"));
    assert!(!xml.body.contains("<service_notice>"));

    for path in ["requests/R8.json", "requests/R%2C7.json"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()[0]["code"], 404);
    }
    assert_eq!(server.get("requests/R7.csv").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn list_filters_by_status_service_dates_and_ids() {
    let server = Server::start().await;
    for (id, stream, status, at) in [
        (
            "A",
            BinStream::Refuse,
            Open311Status::Open,
            "2026-05-02T08:00:00Z",
        ),
        (
            "B",
            BinStream::Refuse,
            Open311Status::Closed,
            "2026-05-10T08:00:00Z",
        ),
        (
            "C",
            BinStream::Glass,
            Open311Status::Open,
            "2026-05-20T08:00:00Z",
        ),
        (
            "D",
            BinStream::Garden,
            Open311Status::Open,
            "2026-01-05T08:00:00Z",
        ),
    ] {
        server.backend.seed(report(id, stream, status, at));
    }
    let window = "start_date=2026-05-01T00:00:00%2B01:00&end_date=2026-05-31";

    let all = server.get(&format!("requests.json?{window}")).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.ids(), vec!["C", "B", "A"]);

    let open = server
        .get(&format!("requests.json?{window}&status=open"))
        .await;
    assert_eq!(open.ids(), vec!["C", "A"]);

    let refuse = server
        .get(&format!(
            "requests.json?{window}&service_code=refuse&status=open,closed"
        ))
        .await;
    assert_eq!(refuse.ids(), vec!["B", "A"]);

    // An unencoded `+` in the offset arrives as a space and is still understood.
    let narrow = server
        .get("requests.json?start_date=2026-05-05T00:00:00+01:00&end_date=2026-05-15T00:00:00Z")
        .await;
    assert_eq!(narrow.ids(), vec!["B"]);

    // Ids override every other argument, dates included.
    let by_id = server
        .get("requests.json?service_request_id=D,A,nope&status=closed")
        .await;
    assert_eq!(by_id.ids(), vec!["A", "D"]);

    let xml = server
        .get(&format!("requests.xml?{window}&service_code=glass"))
        .await;
    assert_eq!(xml.xml().matches("<request>").count(), 1);

    let bad = server.get("requests.json?status=pending").await;
    assert_eq!(bad.status, 400);
    let too_wide = server
        .get("requests.json?start_date=2026-01-01&end_date=2026-06-01")
        .await;
    assert_eq!(too_wide.status, 400);
    assert_eq!(
        too_wide.json()[0]["description"],
        "end_date may be at most 90 days after start_date"
    );
    server.stop().await;
}

#[tokio::test]
async fn list_defaults_to_the_last_90_days() {
    let server = Server::start().await;
    let now = now();
    let mut recent = report(
        "NEW",
        BinStream::Refuse,
        Open311Status::Open,
        "2026-01-01T00:00:00Z",
    );
    recent.requested = now - chrono::Duration::days(10);
    let mut old = report(
        "OLD",
        BinStream::Refuse,
        Open311Status::Open,
        "2026-01-01T00:00:00Z",
    );
    old.requested = now - chrono::Duration::days(200);
    server.backend.seed(recent);
    server.backend.seed(old);
    assert_eq!(server.get("requests.json").await.ids(), vec!["NEW"]);
    server.stop().await;
}

#[tokio::test]
async fn text_is_escaped_in_xml_and_intact_in_json() {
    let server = Server::start().await;
    let mut tricky = report(
        "X1",
        BinStream::Other,
        Open311Status::Open,
        "2026-05-02T08:00:00Z",
    );
    tricky.status_notes = "Crew said <b>\"no access\"</b> & left a tag \u{7}".into();
    tricky.description = Some("]]> <!-- '".into());
    server.backend.seed(tricky);

    let xml = server.get("requests/X1.xml").await;
    assert!(xml.xml().contains(
        "<status_notes>Crew said &lt;b&gt;&quot;no access&quot;&lt;/b&gt; &amp; left a tag \u{FFFD}\
         </status_notes>"
    ));
    assert!(xml
        .body
        .contains("<description>]]&gt; &lt;!-- &apos;</description>"));

    let json = server.get("requests/X1.json").await.json();
    assert_eq!(
        json[0]["status_notes"],
        "Crew said <b>\"no access\"</b> & left a tag \u{7}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_outage_is_a_general_service_error() {
    let server = Server::start().await;
    server.backend.down.store(true, Ordering::SeqCst);
    let reply = server.post_form("requests.json", &valid_post()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!([{"code": 503, "description": "The missed-bin service is temporarily unavailable; please try again later"}])
    );
    assert_eq!(server.get("requests/R1.xml").await.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_open311_form() {
    let server = Server::start().await;
    let reply = server.get("tokens/123.json").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()[0]["code"], 404);

    let reply = server.get("nothing.xml").await;
    assert_eq!(reply.status, 404);
    assert!(reply.xml().contains("<errors><error><code>404</code>"));

    let reply = server.send("DELETE", "requests.json", None, b"").await;
    assert_eq!(reply.status, 405);
    assert_eq!(
        reply.json()[0]["description"],
        "DELETE is not allowed on this resource"
    );
    server.stop().await;
}

fn update(
    update_id: &str,
    request_id: &str,
    status: UpdateStatus,
    updated: &str,
    description: &str,
) -> RequestUpdate {
    RequestUpdate {
        update_id: update_id.into(),
        request_id: request_id.into(),
        status,
        updated: utc(updated),
        description: description.into(),
        external_status_code: None,
        media_url: None,
    }
}

/// A report's life as FixMyStreet would poll it, seeded out of order.
fn seed_updates(backend: &FakeBackend) {
    for u in [
        update(
            "MB-7-2",
            "MB-7",
            UpdateStatus::Fixed,
            "2026-06-25T10:05:00Z",
            "Our crew collected your general waste bin at 11:05 on Thursday 25 June. This report \
             is now closed.",
        ),
        update(
            "MB-7-0",
            "MB-7",
            UpdateStatus::Open,
            "2026-06-24T17:00:00Z",
            "We have accepted your report.",
        ),
        update(
            "MB-7-1",
            "MB-7",
            UpdateStatus::ActionScheduled,
            "2026-06-24T17:01:00Z",
            "A crew was sent.",
        ),
        update(
            "MB-8-0",
            "MB-8",
            UpdateStatus::NoFurtherAction,
            "2026-03-01T09:00:00Z",
            "Our crew recorded that your bin was not put out.",
        ),
    ] {
        backend.seed_update(u);
    }
}

const JUNE: &str = "start_date=2026-06-24T00:00:00Z&end_date=2026-06-26T00:00:00Z";

#[tokio::test]
async fn updates_need_an_api_key() {
    let server = Server::start().await;
    seed_updates(&server.backend);

    let reply = server
        .get(&format!("servicerequestupdates.json?{JUNE}"))
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!([{"code": 403, "description": "api_key was not provided -- can't proceed with get_service_request_updates"}])
    );

    // A wrong key is refused before the dates are even read.
    let reply = server
        .get("servicerequestupdates.xml?api_key=guess&start_date=bogus")
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.xml().contains(
        "<errors><error><code>403</code><description>Invalid api_key received -- can&apos;t \
         proceed with get_service_request_updates</description></error></errors>"
    ));
    assert!(server.backend.update_searches().is_empty());

    // Residents' comments need the key too.
    let reply = server
        .post_form("servicerequestupdates.xml", &[("api_key", "guess")])
        .await;
    assert_eq!(reply.status, 403);
    server.stop().await;
}

#[tokio::test]
async fn updates_in_json_are_the_window_oldest_first() {
    let server = Server::start().await;
    seed_updates(&server.backend);

    let reply = server
        .get(&format!(
            "servicerequestupdates.json?api_key={KEY}&jurisdiction_id=example.gov.uk&{JUNE}"
        ))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let updates = reply.json();
    let ids: Vec<&str> = updates
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["update_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["MB-7-0", "MB-7-1", "MB-7-2"]);
    assert_eq!(
        updates[1],
        json!({
            "update_id": "MB-7-1",
            "service_request_id": "MB-7",
            "status": "action_scheduled",
            // Summer time in the council's offset.
            "updated_datetime": "2026-06-24T18:01:00+01:00",
            "description": "A crew was sent.",
            "media_url": null,
            "external_status_code": null,
        })
    );
    assert_eq!(updates[2]["status"], "fixed");

    let searches = server.backend.update_searches();
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0].from, utc("2026-06-24T00:00:00Z"));
    assert_eq!(searches[0].to, utc("2026-06-26T00:00:00Z"));
    server.stop().await;
}

#[tokio::test]
async fn updates_in_xml_use_fixmystreets_element_names_and_escape_text() {
    let server = Server::start().await;
    let mut tricky = update(
        "MB-9-0",
        "MB-9",
        UpdateStatus::NoFurtherAction,
        "2026-11-24T09:00:00Z",
        "Crew said <b>\"bin & bags\"</b> weren't out \u{1}",
    );
    tricky.external_status_code = Some("rejected".into());
    server.backend.seed_update(tricky);

    // FixMyStreet's request: both dates in UTC, the `+` of an offset left unencoded by others.
    let reply = server
        .get(&format!(
            "servicerequestupdates.xml?api_key={KEY}&start_date=2026-11-24T08:00:00+00:00\
             &end_date=2026-11-24T10:00:00Z"
        ))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.xml(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests_updates><request_update>\
         <update_id>MB-9-0</update_id><service_request_id>MB-9</service_request_id>\
         <status>no_further_action</status>\
         <updated_datetime>2026-11-24T09:00:00+00:00</updated_datetime>\
         <description>Crew said &lt;b&gt;&quot;bin &amp; bags&quot;&lt;/b&gt; weren&apos;t out \
         \u{FFFD}</description><external_status_code>rejected</external_status_code>\
         </request_update></service_requests_updates>\n"
    );

    let json = server
        .get(&format!(
            "servicerequestupdates.json?api_key={KEY}&start_date=2026-11-24"
        ))
        .await
        .json();
    assert_eq!(
        json[0]["description"],
        "Crew said <b>\"bin & bags\"</b> weren't out \u{1}"
    );

    // An empty window is an empty list, not an error.
    let empty = server
        .get(&format!(
            "servicerequestupdates.xml?api_key={KEY}&start_date=2026-01-01&end_date=2026-01-02"
        ))
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.xml(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <service_requests_updates></service_requests_updates>\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn update_windows_default_to_a_day_and_are_capped_at_a_week() {
    let server = Server::start().await;
    let reply = server
        .get(&format!("servicerequestupdates.json?api_key={KEY}"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!([]));
    let search = server.backend.update_searches()[0];
    assert_eq!(search.to - search.from, chrono::Duration::hours(24));
    assert_eq!(search.to, now());

    let too_wide = server
        .get(&format!(
            "servicerequestupdates.json?api_key={KEY}&start_date=2026-06-01&end_date=2026-06-30"
        ))
        .await;
    assert_eq!(too_wide.status, 400);
    assert!(too_wide.json()[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("end_date may be at most 7 days after start_date"));

    let bad = server
        .get(&format!(
            "servicerequestupdates.xml?api_key={KEY}&start_date=2026-06-01T00:00:00&end_date=x"
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.xml().matches("<error>").count(), 2);
    assert_eq!(server.backend.update_searches().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn updates_stop_at_the_limit_keeping_the_oldest() {
    let server = Server::start().await;
    let start = utc("2026-06-24T00:00:00Z");
    for i in 0..=MAX_RESULTS {
        let mut u = update(
            &format!("U-{i}"),
            "R1",
            UpdateStatus::Open,
            "2026-06-24T00:00:00Z",
            "x",
        );
        u.updated = start + chrono::Duration::seconds(i as i64);
        server.backend.seed_update(u);
    }
    let reply = server
        .get(&format!("servicerequestupdates.json?api_key={KEY}&{JUNE}"))
        .await;
    let updates = reply.json();
    let updates = updates.as_array().unwrap();
    assert_eq!(updates.len(), MAX_RESULTS);
    assert_eq!(updates[0]["update_id"], "U-0");
    assert_eq!(
        updates[MAX_RESULTS - 1]["update_id"],
        format!("U-{}", MAX_RESULTS - 1)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_outage_while_listing_updates_is_a_general_service_error() {
    let server = Server::start().await;
    server.backend.down.store(true, Ordering::SeqCst);
    let reply = server
        .get(&format!("servicerequestupdates.json?api_key={KEY}"))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()[0]["code"], 503);
    server.stop().await;
}

// What FixMyStreet sends, replayed as its Open311 client (perllib/Open311.pm) builds it:
// urlencoded by HTTP::Request::Common (or form-data when its uploads are on), `jurisdiction_id`
// and `api_key` beside the fields, its framed description, `attribute[…]` names, coordinates
// truncated to six places, W3C dates in UTC, and `GET requests` with every open report's id
// in one comma-separated `service_request_id` (URI.pm escapes the commas as %2C).

/// The POST FixMyStreet's `send_service_request` makes for a waste report from its map, in
/// its field order.
fn fixmystreet_post(detail: &str) -> Vec<(&'static str, String)> {
    let description = format!(
        "title: Bin not emptied\n\ndetail: {detail}\n\n\
         url: https://www.fixmystreet.com/report/4242\n\nSubmitted via FixMyStreet\n"
    );
    vec![
        ("jurisdiction_id", "hillingdon.gov.uk".into()),
        ("api_key", KEY.into()),
        ("service_code", "recycling".into()),
        ("description", description),
        ("first_name", "Ann".into()),
        ("last_name", "Other".into()),
        ("email", "ann@example.org".into()),
        ("lat", "51.562401".into()),
        ("long", "-0.445951".into()),
        ("attribute[uprn]", "100021999999".into()),
        ("attribute[fixmystreet_id]", "4242".into()),
        ("attribute[title]", "Bin not emptied".into()),
    ]
}

fn borrowed<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `fields` as multipart/form-data, with one photo part as FixMyStreet adds them.
fn multipart(fields: &[(&str, &str)], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo1\"; \
             filename=\"4242.0.full.jpeg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    // A photo-sized part: read through and dropped.
    body.extend(std::iter::repeat_n(0xFFu8, 300 * 1024));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn fixmystreet_post_with_an_unknown_uprn_keeps_its_pin_and_its_long_description() {
    let server = Server::start().await;
    // 4,000 characters of detail and FixMyStreet's framing: over the specification's 4,000.
    let fields = fixmystreet_post(&"é".repeat(4000));
    let reply = server.post_form("requests.json", &borrowed(&fields)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()[0]["service_request_id"], "R1");
    let reply = server.post_form("requests.xml", &borrowed(&fields)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply
        .xml()
        .contains("<request><service_request_id>R2</service_request_id>"));

    let created = server.backend.created();
    let location = &created[0].location;
    // Both kept: the backend falls back to the pin when the UPRN is not on its register.
    assert_eq!(location.address_id, Some(100_021_999_999));
    assert_eq!(
        location.position,
        Some(LatLong {
            lat: 51.562401,
            long: -0.445951
        })
    );
    let description = created[0].description.as_deref().unwrap();
    assert!(description.chars().count() > 4000);
    assert!(description.ends_with("Submitted via FixMyStreet"));
    server.stop().await;
}

#[tokio::test]
async fn fixmystreet_post_as_form_data_with_photos_in_json_and_xml() {
    let server = Server::start().await;
    let fields = fixmystreet_post("Left on the pavement.");
    let boundary = "xYzZY";
    let body = multipart(&borrowed(&fields), boundary);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let reply = server
        .send("POST", "requests.json", Some(&content_type), &body)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()[0]["service_request_id"], "R1");
    let reply = server
        .send("POST", "requests.xml", Some(&content_type), &body)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply
        .xml()
        .contains("<service_request_id>R2</service_request_id>"));
    let created = server.backend.created();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].subject, Subject::MissedBin(BinStream::Recycling));
    assert_eq!(created[0].contact.email.as_deref(), Some("ann@example.org"));
    assert!(created[0]
        .description
        .as_deref()
        .unwrap()
        .contains("Left on the pavement."));

    // The key is checked in form-data too; a broken body is a 400 in Open311's form.
    let keyless: Vec<(&str, &str)> = borrowed(&fields)
        .into_iter()
        .filter(|(k, _)| *k != "api_key")
        .collect();
    let reply = server
        .send(
            "POST",
            "requests.xml",
            Some(&content_type),
            &multipart(&keyless, boundary),
        )
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = server
        .send(
            "POST",
            "requests.json",
            Some(&content_type),
            b"--xYzZY\r\nnonsense",
        )
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()[0]["code"], 400);
    server.stop().await;
}

#[tokio::test]
async fn fixmystreet_post_with_a_postcode_only_is_matched_by_address() {
    let server = Server::start().await;
    // FixMyStreet sends address_string (the postcode searched for) when there is no pin.
    let fields: Vec<(&'static str, String)> = fixmystreet_post("x")
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "lat" | "long" | "attribute[uprn]"))
        .chain([("address_string", "1 High Street, AN1 1AA".to_owned())])
        .collect();
    for path in ["requests.json", "requests.xml"] {
        let reply = server.post_form(path, &borrowed(&fields)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let created = server.backend.created();
    assert_eq!(
        created[1].location.address_string.as_deref(),
        Some("1 High Street, AN1 1AA")
    );
    server.stop().await;
}

#[tokio::test]
async fn fixmystreet_get_requests_for_all_its_open_reports_at_once() {
    let server = Server::start().await;
    let rejected = ServiceRequest {
        extended_status: UpdateStatus::NoFurtherAction,
        ..report(
            "MB-2",
            BinStream::Refuse,
            Open311Status::Closed,
            "2026-11-24T09:00:00Z",
        )
    };
    let dispatched = ServiceRequest {
        extended_status: UpdateStatus::ActionScheduled,
        ..report(
            "MB-3",
            BinStream::Refuse,
            Open311Status::Open,
            "2026-11-24T09:00:00Z",
        )
    };
    server.backend.seed(report(
        "MB-1",
        BinStream::Refuse,
        Open311Status::Closed,
        "2026-11-24T09:00:00Z",
    ));
    server.backend.seed(rejected);
    server.backend.seed(dispatched);
    // 5,000 ids: what a council's open reports come to, within the 64 KiB URI hyper allows.
    let ids: Vec<String> = (1..=5000).map(|i| format!("MB-{i}")).collect();
    let query = format!(
        "jurisdiction_id=hillingdon.gov.uk&service_request_id={}",
        ids.join("%2C")
    );
    let reply = server.get(&format!("requests.xml?{query}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let xml = reply.xml();
    // Collected is closed (FixMyStreet: fixed); the rejection is not.
    for (id, status) in [
        ("MB-1", "closed"),
        ("MB-2", "no_further_action"),
        ("MB-3", "action_scheduled"),
    ] {
        assert!(
            xml.contains(&format!(
                "<service_request_id>{id}</service_request_id><status>{status}</status>"
            )),
            "{xml}"
        );
    }
    let reply = server.get(&format!("requests.json?{query}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let statuses: Vec<(String, String)> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service_request_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(statuses.contains(&("MB-2".into(), "no_further_action".into())));
    server.stop().await;
}

#[tokio::test]
async fn basic_statuses_are_open_and_closed_only() {
    let server = Server::start_with(Settings::default()).await;
    server.backend.seed(ServiceRequest {
        extended_status: UpdateStatus::NoFurtherAction,
        ..report(
            "MB-2",
            BinStream::Refuse,
            Open311Status::Closed,
            "2026-11-24T09:00:00Z",
        )
    });
    let reply = server.get("requests/MB-2.json").await;
    assert_eq!(reply.json()[0]["status"], "closed");
    let reply = server.get("requests/MB-2.xml").await;
    assert!(reply.xml().contains("<status>closed</status>"));
    server.stop().await;
}

#[tokio::test]
async fn a_configured_jurisdiction_is_checked_on_every_call() {
    let server = Server::start_with(Settings {
        extended_statuses: true,
        jurisdiction_id: Some("hillingdon.gov.uk".into()),
        waste_only: true,
    })
    .await;
    let fields = fixmystreet_post("x");
    let reply = server.post_form("requests.json", &borrowed(&fields)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // FixMyStreet's services import, with waste_only for its WasteWorks pages.
    let reply = server
        .get("services.xml?jurisdiction_id=hillingdon.gov.uk")
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.xml().contains(
        "<keywords>missed bin, refuse, general waste, rubbish, black bin, waste_only</keywords>"
    ));
    let reply = server.get("services.json").await;
    assert_eq!(reply.status, 200, "absent is accepted");

    let other: Vec<(&'static str, String)> = fields
        .iter()
        .map(|(k, v)| match *k {
            "jurisdiction_id" => (*k, "ealing.gov.uk".to_owned()),
            _ => (*k, v.clone()),
        })
        .collect();
    let reply = server.post_form("requests.xml", &borrowed(&other)).await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert!(reply.xml().contains(
        "<error><code>404</code><description>jurisdiction_id ealing.gov.uk was not found; \
         this endpoint serves hillingdon.gov.uk</description></error>"
    ));
    for path in [
        "services.json?jurisdiction_id=ealing.gov.uk",
        "services/refuse.json?jurisdiction_id=ealing.gov.uk",
        "requests.json?jurisdiction_id=ealing.gov.uk",
        "requests/R1.json?jurisdiction_id=ealing.gov.uk",
        "servicerequestupdates.json?api_key=secret-key&jurisdiction_id=ealing.gov.uk",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert_eq!(reply.json()[0]["code"], 404, "{path}");
    }
    assert_eq!(server.backend.created().len(), 1);
    server.stop().await;
}

/// What FixMyStreet's `post_service_request_update` sends for a resident's comment on a sent
/// report, in its field names and forms: its comment id as `update_id`, the status upper-cased,
/// the time from Perl's W3CDTF formatter (here without an offset, as it writes a floating time),
/// `last_name` `-` for a one-word name, and the Bromley-style extras it adds for some councils.
fn fixmystreet_comment(request_id: &str, update_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("jurisdiction_id", "hillingdon.gov.uk".into()),
        ("api_key", KEY.into()),
        ("updated_datetime", "2026-11-25T10:05:00".into()),
        ("service_request_id", request_id.into()),
        ("status", "OPEN".into()),
        (
            "description",
            "Still not emptied & it's bin day again <soon>".into(),
        ),
        ("last_name", "-".into()),
        ("first_name", "Ann".into()),
        ("email", "ann@example.org".into()),
        ("phone", "07700 900123".into()),
        ("update_id", update_id.into()),
        ("account_id", "fms-77".into()),
        (
            "media_url",
            "https://www.fixmystreet.com/c/248.0.full.jpeg".into(),
        ),
        ("title", "MS".into()),
        ("email_alerts_requested", "FALSE".into()),
    ]
}

#[tokio::test]
async fn fixmystreet_comments_are_kept_once_and_answered_with_an_update_id_in_xml_and_json() {
    let server = Server::start().await;
    server.backend.seed(report(
        "R1",
        BinStream::Refuse,
        Open311Status::Open,
        "2026-11-24T18:00:00Z",
    ));
    let fields = fixmystreet_comment("R1", "248");
    let reply = server
        .post_form("servicerequestupdates.xml", &borrowed(&fields))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // Exactly what FixMyStreet's XML::Simple reading takes the first request_update's id from.
    assert_eq!(
        reply.xml(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_request_updates><request_update>\
         <update_id>C0</update_id></request_update></service_request_updates>\n"
    );
    // FixMyStreet did not hear us and sends it again: the same id, kept once.
    let again = server
        .post_form("servicerequestupdates.json", &borrowed(&fields))
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json(), json!([{"update_id": "C0"}]));
    let other = server
        .post_form(
            "servicerequestupdates.json",
            &borrowed(&fixmystreet_comment("R1", "249")),
        )
        .await;
    assert_eq!(other.json(), json!([{"update_id": "C1"}]));

    let kept = server.backend.comments.lock().unwrap().clone();
    assert_eq!(kept.len(), 2);
    let first = &kept[0];
    assert_eq!(first.request_id, "R1");
    assert_eq!(first.client_update_id.as_deref(), Some("248"));
    assert_eq!(first.status.as_deref(), Some("OPEN"));
    assert_eq!(
        first.description.as_deref(),
        Some("Still not emptied & it's bin day again <soon>")
    );
    // A floating time is the council's: 10:05 in London in November is 10:05 UTC.
    assert_eq!(first.updated, Some(utc("2026-11-25T10:05:00Z")));
    assert_eq!(first.contact.first_name.as_deref(), Some("Ann"));
    assert_eq!(first.contact.last_name, None);
    assert_eq!(first.contact.email.as_deref(), Some("ann@example.org"));
    assert_eq!(first.contact.account_id.as_deref(), Some("fms-77"));
    assert_eq!(
        first.media_url.as_deref(),
        Some("https://www.fixmystreet.com/c/248.0.full.jpeg")
    );

    // The public read of the report shows none of it.
    let public = server.get("requests/R1.json").await;
    assert!(!public.body.contains("ann@example.org"), "{}", public.body);
    assert!(
        !public.body.contains("Still not emptied"),
        "{}",
        public.body
    );
    server.stop().await;
}

#[tokio::test]
async fn comment_errors_are_open311_errors_in_the_format_asked() {
    let server = Server::start().await;
    server.backend.seed(report(
        "R1",
        BinStream::Refuse,
        Open311Status::Open,
        "2026-11-24T18:00:00Z",
    ));
    // No key: 403, before anything else.
    let mut fields = fixmystreet_comment("R1", "248");
    fields.retain(|(name, _)| *name != "api_key");
    let reply = server
        .post_form("servicerequestupdates.xml", &borrowed(&fields))
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(reply.xml().contains(
        "<errors><error><code>403</code><description>api_key was not provided -- can&apos;t \
         proceed with post_service_request_update</description></error></errors>"
    ));
    // A report we never sent: 404.
    let reply = server
        .post_form(
            "servicerequestupdates.json",
            &borrowed(&fixmystreet_comment("R9", "248")),
        )
        .await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!([{"code": 404, "description": "service_request_id R9 was not found"}])
    );
    // No id, no words, a time that is not one: every problem at once.
    let reply = server
        .post_form(
            "servicerequestupdates.json",
            &[("api_key", KEY), ("updated_datetime", "yesterday")],
        )
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let descriptions: Vec<String> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(descriptions.len(), 3, "{descriptions:?}");
    assert!(
        descriptions[0].starts_with("updated_datetime must be"),
        "{descriptions:?}"
    );
    assert_eq!(descriptions[1], "service_request_id was not provided");
    assert_eq!(descriptions[2], "description was not provided");
    // Sent as form-data, as FixMyStreet does with uploads on: read the same.
    let fields = fixmystreet_comment("R1", "250");
    let boundary = "cOmMeNt";
    let reply = server
        .send(
            "POST",
            "servicerequestupdates.xml",
            Some(&format!("multipart/form-data; boundary={boundary}")),
            &multipart(&borrowed(&fields), boundary),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.xml().contains("<update_id>C0</update_id>"));
    server.stop().await;
}

#[tokio::test]
async fn the_missed_collection_service_takes_the_bin_as_an_attribute_in_json_and_xml() {
    let server = Server::start().await;
    let reply = server.get("services/missed_collection.json").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let definition = reply.json();
    let attribute = &definition["attributes"][0];
    assert_eq!(attribute["code"], "service_id");
    assert_eq!(attribute["datatype"], "singlevaluelist");
    assert_eq!(attribute["required"], true);
    assert_eq!(
        attribute["values"][1],
        json!({"key": "recycling", "name": "Missed recycling collection"})
    );
    let reply = server.get("services/missed_collection.xml").await;
    assert!(reply.xml().contains(
        "<attributes><attribute><variable>true</variable><code>service_id</code>\
         <datatype>singlevaluelist</datatype><required>true</required>"
    ));
    assert!(reply
        .xml()
        .contains("<values><value><key>refuse</key><name>Missed refuse collection</name></value>"));

    // What FixMyStreet's waste pages post for it: the bin in attribute[service_id].
    let mut fields = fixmystreet_post("Recycling left");
    fields.retain(|(name, _)| *name != "service_code");
    fields.push(("service_code", "missed_collection".into()));
    fields.push(("attribute[service_id]", "recycling".into()));
    let reply = server.post_form("requests.xml", &borrowed(&fields)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        server.backend.created()[0].subject,
        Subject::MissedBin(BinStream::Recycling)
    );
    // Without the bin, or with one we do not know: a 400 saying so.
    fields.pop();
    let reply = server.post_form("requests.json", &borrowed(&fields)).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.json()[0]["description"],
        "attribute[service_id] was not provided"
    );
    fields.push(("attribute[service_id]", "compost".into()));
    let reply = server.post_form("requests.json", &borrowed(&fields)).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    server.stop().await;
}
