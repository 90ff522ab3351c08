//! End-to-end tests of the whole fieldsync system over real MQTT; this library holds what every
//! test needs: free ports, waiting on a condition with a deadline (never a bare sleep), and a
//! scriptable fake device that publishes `proto` batches and collects the gateway's acks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod ack_faults;
pub mod disk;
pub mod faketime;
pub mod pki;
pub mod process;
pub mod system;
pub mod test_gateway;

use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::signed::{self, SigningKey, VerifyingKey};
use proto::{Ack, DeviceId, Down, Envelope, Record, TopicKind, MAX_MESSAGE_BYTES, SCHEMA_VERSION};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tokio::sync::watch;

/// A TCP port on 127.0.0.1 that was free a moment ago. Never assume 1883 is free: a Mosquitto
/// may hold it.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free local port")
}

/// Polls `condition` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A device's keys as `gateway devices add` issues them: its own signing key, and the gateway's
/// public key.
#[derive(Debug, Clone)]
pub struct DeviceKeys {
    /// Signs the device's envelopes.
    pub device: SigningKey,
    /// Checks the gateway's acks and downlink messages.
    pub gateway: VerifyingKey,
}

impl DeviceKeys {
    /// The keys in an agent configuration `gateway devices add` printed (`[signing]`'s `key` and
    /// `gateway_key`), if it holds both.
    pub fn from_agent_config(text: &str) -> Option<Self> {
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().strip_prefix('='))
                .map(|quoted| quoted.trim().trim_matches('"').to_owned())
        };
        Some(Self {
            device: signed::signing_key_from_hex(&value("key")?).ok()?,
            gateway: signed::verifying_key_from_hex(&value("gateway_key")?).ok()?,
        })
    }

    /// The private and the gateway's public key as hex text, as an agent's `[signing]` holds
    /// them.
    pub fn hex(&self) -> (String, String) {
        (
            signed::key_hex(&self.device.to_bytes()),
            signed::key_hex(&self.gateway.to_bytes()),
        )
    }

    /// The environment that hands these keys to an `edge-agent` process.
    pub fn agent_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "FIELDSYNC_AGENT_SIGNING_KEY".to_owned(),
                signed::key_hex(&self.device.to_bytes()),
            ),
            (
                "FIELDSYNC_AGENT_SIGNING_GATEWAY_KEY".to_owned(),
                signed::key_hex(&self.gateway.to_bytes()),
            ),
        ]
    }
}

/// The key id the gateway signs with.
pub const GATEWAY_KID: &str = "gateway";

/// The message inside `payload` received on `topic`: opened with `keys`' gateway key if signed
/// (`None` if it does not verify), as it is if bare.
pub fn open_from_gateway(
    payload: &[u8],
    topic: &str,
    keys: Option<&DeviceKeys>,
) -> Option<Vec<u8>> {
    if !signed::is_signed(payload) {
        return Some(payload.to_vec());
    }
    let gateway = keys?.gateway;
    signed::open(payload, topic, |kid| {
        (kid == GATEWAY_KID).then_some(gateway)
    })
    .ok()
    .map(|opened| opened.payload)
}

/// A fake device: an MQTT client that publishes raw payloads or `proto` batches on its own `up`
/// topic (signed, if it has keys) and records the highest ack the gateway has sent it.
pub struct FakeDevice {
    /// The device's id.
    pub id: DeviceId,
    keys: Option<DeviceKeys>,
    client: AsyncClient,
    acked: watch::Receiver<u64>,
    acks_received: Arc<Mutex<u64>>,
    refused: Arc<Mutex<Vec<proto::Refusal>>>,
    downs: Arc<Mutex<Vec<Down>>>,
}

impl FakeDevice {
    /// Connects `id`, which does not sign, to the broker on 127.0.0.1:`port` and subscribes to
    /// its ack and down topics.
    pub async fn connect(id: &str, port: u16) -> Self {
        Self::connect_to(id, "127.0.0.1", port, None).await
    }

    /// Connects `id`, signing with `keys`, to the broker on 127.0.0.1:`port`.
    pub async fn connect_signed(id: &str, port: u16, keys: DeviceKeys) -> Self {
        Self::connect_to(id, "127.0.0.1", port, Some(keys)).await
    }

    /// Connects `id` to the broker on `host`:`port` and subscribes to its ack and down topics;
    /// with `keys` it signs its batches and reads only acks and downlink the gateway signed.
    pub async fn connect_to(id: &str, host: &str, port: u16, keys: Option<DeviceKeys>) -> Self {
        let id = DeviceId::new(id).unwrap();
        let mut options = MqttOptions::new(format!("fake-{id}"), host, port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(MAX_MESSAGE_BYTES * 2, MAX_MESSAGE_BYTES * 2);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (acked_tx, acked) = watch::channel(0);
        let acks_received = Arc::new(Mutex::new(0));
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let ack_topic = id.topic(TopicKind::Ack);
        let down_topic = id.topic(TopicKind::Down);
        let client_for_loop = client.clone();
        let counter = acks_received.clone();
        let downs = Arc::new(Mutex::new(Vec::new()));
        let downs_for_loop = downs.clone();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let refused_for_loop = refused.clone();
        let keys_for_loop = keys.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let filters = [&ack_topic, &down_topic]
                            .map(|topic| SubscribeFilter::new(topic.to_string(), QoS::AtLeastOnce));
                        let _ = client_for_loop.subscribe_many(filters).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let Some(payload) = open_from_gateway(
                            &publish.payload,
                            &publish.topic,
                            keys_for_loop.as_ref(),
                        ) else {
                            continue;
                        };
                        if publish.topic == down_topic {
                            if let Ok(down) = proto::decode::<Down>(&payload, MAX_MESSAGE_BYTES) {
                                downs_for_loop.lock().unwrap().push(down);
                            }
                        } else if let Ok(ack) = proto::decode::<Ack>(&payload, MAX_MESSAGE_BYTES) {
                            *counter.lock().unwrap() += 1;
                            refused_for_loop
                                .lock()
                                .unwrap()
                                .extend(ack.rej.iter().cloned());
                            acked_tx.send_modify(|thru| *thru = (*thru).max(ack.thru));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|done| *done))
            .await
            .expect("the fake device could not subscribe in time")
            .unwrap();
        Self {
            id,
            keys,
            client,
            acked,
            acks_received,
            refused,
            downs,
        }
    }

    /// Every refusal the gateway's acks have named so far, in arrival order (with repeats).
    pub fn refused(&self) -> Vec<proto::Refusal> {
        self.refused.lock().unwrap().clone()
    }

    /// The downlink messages (jobs, cancellations, configuration) received so far.
    pub fn downs(&self) -> Vec<Down> {
        self.downs.lock().unwrap().clone()
    }

    /// An envelope of `records` from this device.
    pub fn envelope(&self, records: Vec<Record>) -> Envelope {
        Envelope {
            v: SCHEMA_VERSION,
            dev: self.id.clone(),
            sent: chrono_now_ms(),
            recs: records,
            boot: None,
            mono: None,
        }
    }

    /// Publishes `records` as one batch on the device's `up` topic, signed if it has keys.
    pub async fn send(&self, records: Vec<Record>) {
        let payload = proto::encode(&self.envelope(records), MAX_MESSAGE_BYTES).unwrap();
        self.send_up(payload).await;
    }

    /// Publishes an encoded envelope (or any payload) on the device's `up` topic, signed if it
    /// has keys.
    pub async fn send_up(&self, payload: Vec<u8>) {
        let topic = self.id.topic(TopicKind::Up);
        let payload = self.seal(&topic, payload);
        self.send_raw(&topic, payload).await;
    }

    /// `payload` as this device would publish it on `topic`: signed if it has keys.
    pub fn seal(&self, topic: &str, payload: Vec<u8>) -> Vec<u8> {
        match &self.keys {
            Some(keys) => signed::sign(&payload, topic, self.id.as_str(), &keys.device).unwrap(),
            None => payload,
        }
    }

    /// Publishes any payload on any topic.
    pub async fn send_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Waits until the gateway has acked through `seq` at least.
    pub async fn wait_acked(&self, seq: u64, deadline: Duration) {
        let mut acked = self.acked.clone();
        tokio::time::timeout(deadline, acked.wait_for(|thru| *thru >= seq))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} was acked through {} only, not {seq}, within {deadline:?}",
                    self.id,
                    *self.acked.borrow()
                )
            })
            .unwrap();
    }

    /// The highest ack received.
    pub fn acked_through(&self) -> u64 {
        *self.acked.borrow()
    }

    /// How many ack messages arrived.
    pub fn acks_received(&self) -> u64 {
        *self.acks_received.lock().unwrap()
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Telemetry records `from..=to` for boiler `asset`.
pub fn telemetry(from: u64, to: u64, asset: &str) -> Vec<Record> {
    (from..=to)
        .map(|seq| Record {
            seq,
            ts: 1_764_000_000_000 + seq as i64 * 60_000,
            body: proto::RecordBody::Telemetry(proto::Telemetry {
                asset: asset.to_owned(),
                flow: Some(60.0 + (seq % 10) as f32),
                ret: Some(45.0),
                bar: Some(1.5),
                ..proto::Telemetry::default()
            }),
            boot: None,
            mono: None,
        })
        .collect()
}

/// A small HTTP/1.1 client for the gateway's and the agent's APIs.
pub mod http {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::Request;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    /// A response's status and body.
    #[derive(Debug)]
    pub struct Response {
        /// The status code.
        pub status: u16,
        /// The body as text.
        pub body: String,
    }

    impl Response {
        /// The body parsed as JSON.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
        }
    }

    /// Sends `method` to `url` with an optional bearer token and body; panics if it cannot.
    pub async fn request(
        method: &str,
        url: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        try_request(method, url, token, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"))
    }

    /// Sends `method` to `url`; an error if the server cannot be reached (not yet listening, say).
    pub async fn try_request(
        method: &str,
        url: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Response, hyper_util::client::legacy::Error> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let response = client
            .request(builder.body(Full::new(Bytes::from(body))).unwrap())
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Sends `method` to an `https://127.0.0.1:port/path` URL over one new TLS connection,
    /// trusting only the CA certificates in `ca` (PEM); an error if the server cannot be reached
    /// or its certificate is not trusted.
    pub async fn try_request_tls(
        method: &str,
        url: &str,
        ca: &std::path::Path,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
        use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

        let uri: hyper::Uri = url.parse()?;
        let host = uri.host().ok_or("no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let name = ServerName::try_from(host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", format!("{host}:{port}"));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let response = sender
            .send_request(builder.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// `GET url`.
    pub async fn get(url: &str, token: Option<&str>) -> Response {
        request("GET", url, token, None, Vec::new()).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(url: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        request(
            "POST",
            url,
            token,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// A server-sent event stream opened on a raw connection (`Accept: text/event-stream`),
    /// read as text as it comes.
    pub struct EventStream {
        stream: tokio::net::TcpStream,
        seen: Vec<u8>,
    }

    impl EventStream {
        /// Opens `path` on `addr` with bearer `token`, and waits for the answer's headers: the
        /// handler has subscribed by then, so nothing sent after this is missed.
        pub async fn open(addr: std::net::SocketAddr, path: &str, token: &str) -> Self {
            use tokio::io::AsyncWriteExt;
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut events = Self {
                stream,
                seen: Vec::new(),
            };
            let head = events
                .read_until("\r\n\r\n", std::time::Duration::from_secs(20))
                .await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            events
        }

        /// Reads until `needle` appears, within `deadline`; returns everything read so far.
        pub async fn read_until(&mut self, needle: &str, deadline: std::time::Duration) -> String {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            let (stream, seen) = (&mut self.stream, &mut self.seen);
            tokio::time::timeout(deadline, async {
                while !String::from_utf8_lossy(seen).contains(needle) {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the event stream closed");
                    seen.extend_from_slice(&buf[..n]);
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {}", String::from_utf8_lossy(seen)));
            String::from_utf8_lossy(&self.seen).into_owned()
        }
    }
}
