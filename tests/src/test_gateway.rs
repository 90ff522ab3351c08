//! A small gateway for agents' tests that speaks `proto` over MQTT: subscribes to every device's
//! `up` and `state` topics, keeps each record in memory keyed by (device, seq), and acks
//! cumulatively, with knobs to drop, withhold or duplicate acks. It also sends `down` messages.
//! It signs what it sends with a fixed test key and checks devices' signatures with keys derived
//! from their ids ([`keys_for`]), which is how the agents under test are configured.
//!
//! [`LinkProxy`] sits between an agent and the broker and can cut the link and restore it, since
//! the embedded broker cannot be stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::signed::{self, SigningKey};
use proto::{
    Ack, Down, Envelope, Record, RecordBody, State, Topic, TopicKind, MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
};

use crate::{DeviceKeys, GATEWAY_KID};

/// The test gateway's signing key.
fn gateway_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// The keys of `device` for the test gateway: its signing key, derived from its id (these are
/// test keys, not secrets), and the test gateway's public key.
pub fn keys_for(device: &str) -> DeviceKeys {
    let id = device.as_bytes();
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = id.get(i % id.len().max(1)).copied().unwrap_or(0) ^ (i as u8) ^ 0x5a;
    }
    // Ids of different lengths would otherwise cycle into the same seed.
    seed[31] ^= id.len() as u8;
    DeviceKeys {
        device: SigningKey::from_bytes(&seed),
        gateway: gateway_key().verifying_key(),
    }
}

/// `payload` signed by the test gateway for `topic`.
pub fn sign(topic: &str, payload: &[u8]) -> Vec<u8> {
    signed::sign(payload, topic, GATEWAY_KID, &gateway_key()).unwrap()
}

/// The envelope in `payload`, which `device` signed with its [`keys_for`] for `topic`.
pub fn open_from_device(device: &str, topic: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let key = keys_for(device).device.verifying_key();
    signed::open(payload, topic, |kid| (kid == device).then_some(key))
        .map(|opened| opened.payload)
        .ok()
}
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the test gateway has seen.
#[derive(Debug, Default)]
struct Seen {
    /// The store: each (device, seq) once, with the first copy received.
    records: BTreeMap<(String, u64), Record>,
    /// (device, seq) in the order first received.
    arrivals: Vec<(String, u64)>,
    /// Records received again with the same content (resends).
    duplicates: u64,
    /// Records received again with different content: a sequence number reused.
    conflicts: Vec<(String, u64)>,
    /// Per device: the ack watermark and the numbers held or accounted for above it.
    progress: BTreeMap<String, (u64, BTreeSet<u64>)>,
    /// Batches received.
    batches: u64,
    /// Acks published.
    acks_sent: u64,
    /// States received, in order.
    states: Vec<(String, State)>,
    /// Payloads that did not decode, or whose signature did not verify.
    malformed: u64,
    /// Envelopes that came unsigned (stored all the same).
    unsigned: u64,
}

/// Knobs a test turns while the gateway runs.
#[derive(Debug, Default)]
struct Knobs {
    /// Acks still to drop.
    drop_acks: AtomicU64,
    /// Send every ack twice.
    duplicate_acks: AtomicBool,
    /// Send no acks at all (store anyway).
    withhold_acks: AtomicBool,
}

/// A running test gateway.
pub struct TestGateway {
    seen: Arc<Mutex<Seen>>,
    knobs: Arc<Knobs>,
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl TestGateway {
    /// Connects to the broker on 127.0.0.1:`port` and subscribes; returns once subscribed.
    pub async fn start(port: u16) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "test-gateway-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(MAX_MESSAGE_BYTES * 2, MAX_MESSAGE_BYTES * 2);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let knobs = Arc::new(Knobs::default());
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let task = tokio::spawn({
            let client = client.clone();
            let seen = Arc::clone(&seen);
            let knobs = Arc::clone(&knobs);
            async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for kind in [TopicKind::Up, TopicKind::State] {
                                let _ = client
                                    .subscribe(kind.filter_all_devices(), QoS::AtLeastOnce)
                                    .await;
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(true);
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            let acks = receive(&seen, &knobs, &publish.topic, &publish.payload);
                            for (topic, payload) in acks {
                                let _ = client
                                    .publish(topic, QoS::AtLeastOnce, false, payload)
                                    .await;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|done| *done))
            .await
            .expect("the test gateway could not subscribe in time")
            .unwrap();
        Self {
            seen,
            knobs,
            client,
            task,
        }
    }

    /// The records stored for `device`, by sequence number.
    pub fn stored(&self, device: &str) -> Vec<Record> {
        let seen = self.seen.lock().unwrap();
        seen.records
            .iter()
            .filter(|((dev, _), _)| dev == device)
            .map(|(_, record)| record.clone())
            .collect()
    }

    /// How many records are stored for `device`.
    pub fn stored_count(&self, device: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.records.keys().filter(|(dev, _)| dev == device).count()
    }

    /// `device`'s sequence numbers in the order they first arrived.
    pub fn arrival_order(&self, device: &str) -> Vec<u64> {
        let seen = self.seen.lock().unwrap();
        seen.arrivals
            .iter()
            .filter(|(dev, _)| dev == device)
            .map(|(_, seq)| *seq)
            .collect()
    }

    /// Records received more than once with the same content (harmless resends).
    pub fn duplicates(&self) -> u64 {
        self.seen.lock().unwrap().duplicates
    }

    /// (device, seq) received again with different content: a sequence number was reused.
    pub fn conflicts(&self) -> Vec<(String, u64)> {
        self.seen.lock().unwrap().conflicts.clone()
    }

    /// Payloads on `up` or `state` that did not decode.
    pub fn malformed(&self) -> u64 {
        self.seen.lock().unwrap().malformed
    }

    /// Envelopes that came unsigned.
    pub fn unsigned(&self) -> u64 {
        self.seen.lock().unwrap().unsigned
    }

    /// Batches received.
    pub fn batches(&self) -> u64 {
        self.seen.lock().unwrap().batches
    }

    /// Acks published.
    pub fn acks_sent(&self) -> u64 {
        self.seen.lock().unwrap().acks_sent
    }

    /// The watermark the gateway acks for `device`.
    pub fn acked_through(&self, device: &str) -> u64 {
        let seen = self.seen.lock().unwrap();
        seen.progress.get(device).map_or(0, |(thru, _)| *thru)
    }

    /// The states `device` published (or its Last Will), in order.
    pub fn states(&self, device: &str) -> Vec<State> {
        let seen = self.seen.lock().unwrap();
        seen.states
            .iter()
            .filter(|(dev, _)| dev == device)
            .map(|(_, state)| *state)
            .collect()
    }

    /// Drops the next `n` acks (as a lossy link or a crashed gateway would).
    pub fn drop_next_acks(&self, n: u64) {
        self.knobs.drop_acks.store(n, Ordering::SeqCst);
    }

    /// Sends every ack twice, or stops doing so.
    pub fn duplicate_acks(&self, on: bool) {
        self.knobs.duplicate_acks.store(on, Ordering::SeqCst);
    }

    /// Stores without acking, or resumes acking (the next batch brings the ack up to date).
    pub fn withhold_acks(&self, on: bool) {
        self.knobs.withhold_acks.store(on, Ordering::SeqCst);
    }

    /// Publishes an ack for `device` now, whatever the knobs say.
    pub async fn ack_now(&self, device: &str) {
        let thru = self.acked_through(device);
        let topic = format!("fieldsync/v1/{device}/ack");
        let payload = sign(&topic, &encode_ack(thru));
        self.publish_raw(&topic, payload).await;
    }

    /// Publishes `down` on `device`'s down topic (QoS 1, not retained), signed.
    pub async fn send_down(&self, device: &str, down: &Down) {
        let topic = format!("fieldsync/v1/{device}/down");
        let payload = sign(&topic, &proto::encode(down, MAX_MESSAGE_BYTES).unwrap());
        self.publish_raw(&topic, payload).await;
    }

    /// Publishes `payload` on `topic` as it is (QoS 1, not retained): a forgery, say.
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Waits until `device` has `n` records stored, or panics after `deadline`.
    pub async fn wait_stored(&self, device: &str, n: usize, deadline: Duration) {
        crate::wait_for(&format!("{n} records from {device}"), deadline, || async {
            (self.stored_count(device) >= n).then_some(())
        })
        .await;
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Handles one message; returns the acks to publish.
fn receive(
    seen: &Mutex<Seen>,
    knobs: &Knobs,
    topic: &str,
    payload: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let Ok(topic) = Topic::parse(topic) else {
        return Vec::new();
    };
    let device = topic.device.to_string();
    let mut seen = seen.lock().unwrap();
    match topic.kind {
        TopicKind::State => {
            match proto::decode::<State>(payload, MAX_MESSAGE_BYTES) {
                Ok(state) => seen.states.push((device, state)),
                Err(_) if payload.is_empty() => {}
                Err(_) => seen.malformed += 1,
            }
            Vec::new()
        }
        TopicKind::Up => {
            let opened = if signed::is_signed(payload) {
                open_from_device(&device, &topic.device.topic(TopicKind::Up), payload)
            } else {
                seen.unsigned += 1;
                Some(payload.to_vec())
            };
            let Some(envelope) =
                opened.and_then(|bytes| proto::decode::<Envelope>(&bytes, MAX_MESSAGE_BYTES).ok())
            else {
                seen.malformed += 1;
                return Vec::new();
            };
            seen.batches += 1;
            let thru = store(&mut seen, &device, envelope);
            if knobs.withhold_acks.load(Ordering::SeqCst) {
                return Vec::new();
            }
            let dropped = knobs
                .drop_acks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if dropped {
                return Vec::new();
            }
            let copies = if knobs.duplicate_acks.load(Ordering::SeqCst) {
                2
            } else {
                1
            };
            seen.acks_sent += copies;
            let ack_topic = topic.device.topic(TopicKind::Ack);
            let ack = sign(&ack_topic, &encode_ack(thru));
            (0..copies)
                .map(|_| (ack_topic.clone(), ack.clone()))
                .collect()
        }
        TopicKind::Ack | TopicKind::Down => Vec::new(),
    }
}

/// Stores a batch; returns the device's new ack watermark.
fn store(seen: &mut Seen, device: &str, envelope: Envelope) -> u64 {
    for record in envelope.recs {
        let key = (device.to_owned(), record.seq);
        let covered: Vec<u64> = match &record.body {
            RecordBody::Gap(gap) => (gap.from..=gap.to).collect(),
            _ => Vec::new(),
        };
        match seen.records.get(&key) {
            Some(existing) if *existing == record => seen.duplicates += 1,
            Some(_) => seen.conflicts.push(key),
            None => {
                seen.arrivals.push(key.clone());
                let (_, held) = seen.progress.entry(device.to_owned()).or_default();
                held.insert(record.seq);
                held.extend(covered);
                seen.records.insert(key, record);
            }
        }
    }
    let (thru, held) = seen.progress.entry(device.to_owned()).or_default();
    while held.remove(&(*thru + 1)) {
        *thru += 1;
    }
    // Numbers at or below the watermark are settled; keep only those above.
    held.retain(|seq| *seq > *thru);
    *thru
}

fn encode_ack(thru: u64) -> Vec<u8> {
    proto::encode(
        &Ack {
            v: SCHEMA_VERSION,
            thru,
            rej: Vec::new(),
        },
        MAX_MESSAGE_BYTES,
    )
    .unwrap()
}

/// What a [`LinkProxy`] does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwarded both ways.
    Up,
    /// Every connection closed, new ones refused: a broker that is not there.
    Cut,
    /// Connections stay open but nothing is forwarded either way: a mobile link that stops
    /// carrying traffic without closing (a dead NAT mapping, a cell that lost its backhaul).
    Stalled,
}

/// A TCP proxy to the broker that can cut every connection through it and refuse new ones, stall
/// them (open, but silent), then let them through again: the broker's "outage", as the agent
/// sees it.
pub struct LinkProxy {
    /// The port agents connect to.
    pub port: u16,
    link: watch::Sender<Link>,
    task: JoinHandle<()>,
}

impl LinkProxy {
    /// Proxies a fresh local port to the broker on 127.0.0.1:`broker_port`; starts up.
    pub async fn start(broker_port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, link_rx) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let state = link_rx.clone();
                if *state.borrow() == Link::Cut {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                        return;
                    };
                    pump(inbound, outbound, state).await;
                });
            }
        });
        Self { port, link, task }
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Keeps connections open but forwards nothing, either way, until restored or cut.
    pub fn stall(&self) {
        self.link.send_replace(Link::Stalled);
    }

    /// Lets connections through again (a stalled one carries on where it stopped).
    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

/// Forwards bytes between the two ends while the link is up; holds them while it is stalled;
/// closes both when it is cut or either end closes.
async fn pump(mut inbound: TcpStream, mut outbound: TcpStream, mut link: watch::Receiver<Link>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut in_read, mut in_write) = inbound.split();
    let (mut out_read, mut out_write) = outbound.split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let state = *link.borrow_and_update();
        match state {
            Link::Cut => return,
            Link::Stalled => {
                if link.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Link::Up => {}
        }
        // Reads are cancel-safe, so a change of state between two reads loses no bytes.
        tokio::select! {
            changed = link.changed() => if changed.is_err() { return },
            read = in_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if out_write.write_all(&up[..n]).await.is_err() { return },
            },
            read = out_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if in_write.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.link.send_replace(Link::Cut);
        self.task.abort();
    }
}
