//! The MQTT side of ingest: subscribe to every device's `up` and `state` topics, store each group
//! of received batches once and durably, then publish each device's cumulative ack and only then
//! acknowledge the MQTT messages (manual acks), so nothing acked can be lost by a crash. A record
//! that cannot be taken is refused on its own: the rest of its batch is stored, and the ack moves
//! past it and names it (`Ack.rej`), so one poison record never stalls a device.
//!
//! Every envelope must be signed by the device its topic names ([`Signatures`]); one that is not
//! is quarantined with the reason, never stored and never acked. Acks are signed by the gateway.
//!
//! Two tasks: the event loop, which only moves packets (it must keep polling so that our own
//! publishes go out), and the writer, which drains whatever has arrived into one group commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{Ack, Refusal, State, Topic, TopicKind, SCHEMA_VERSION};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::devices::signatures::{Checked, Signatures};
use crate::log_throttle::{KeyedThrottle, Throttle};
use crate::metrics::Metrics;
use crate::storage::{BatchOutcome, IncomingBatch, Refused, Store, StoreError};

/// Where and how the gateway's MQTT client connects.
#[derive(Debug, Clone)]
pub struct MqttEndpoint {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id; the session persists across restarts.
    pub client_id: String,
    /// Credentials, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Shared-subscription group, if replicas share the load.
    pub shared_group: Option<String>,
    /// Largest payload accepted.
    pub max_payload: usize,
}

/// Something the ingest did that other parts of the gateway react to.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// A batch was stored (possibly all duplicates).
    Stored(Arc<BatchOutcome>),
}

/// The most messages one group commit takes; more wait for the next.
const MAX_GROUP: usize = 512;
/// How many times the largest valid packet the gateway's client reads, so that a moderately
/// oversized message is quarantined rather than dropping the connection.
const OVERSIZED_HEADROOM: usize = 4;
/// Reconnect delays grow from the first to the last, doubling.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// The gateway's MQTT client and its event loop, not yet connected: [`run`] drives the loop,
/// and other parts (return jobs) publish through clones of the client.
pub fn client(endpoint: &MqttEndpoint) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(mqtt_options(endpoint), 4 * MAX_GROUP);
    // Acks are small writes that must leave at once: Nagle's algorithm would hold each behind
    // the peer's delayed ACK, adding tens of milliseconds to every batch's round trip.
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Runs ingest until `shutdown` is cancelled: connects to the broker, subscribes, stores and acks.
#[allow(clippy::too_many_arguments)] // one call site, each argument a distinct part
pub async fn run(
    endpoint: MqttEndpoint,
    (client, eventloop): (AsyncClient, EventLoop),
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<IngestEvent>,
    ready: watch::Sender<bool>,
    clock: SharedClock,
    signatures: Arc<Signatures>,
    shutdown: CancellationToken,
) {
    // Unbounded, yet bounded by the broker: with manual acks it stops sending once its in-flight
    // window of unacknowledged messages for us is full (rumqttd: 100; Mosquitto:
    // `max_inflight_messages`, 20 by default). A bounded channel would add nothing but a
    // deadlock to reason about: the poller blocked on it could not carry the writer's acks out.
    // The burst benchmark found the channel a few MiB at most (docs/BENCHMARKS.md).
    let (received, to_write) = mpsc::unbounded_channel();
    let filters = subscriptions(&endpoint);
    let poller = tokio::spawn(poll(
        eventloop,
        client.clone(),
        filters,
        received,
        metrics.clone(),
        ready,
        shutdown.clone(),
    ));
    let writer = Writer {
        store,
        client: client.clone(),
        metrics,
        events,
        max_payload: endpoint.max_payload,
        clock,
        signatures,
        warnings: std::sync::Mutex::new(Warnings {
            quarantined: Throttle::default(),
            unprovisioned: KeyedThrottle::new(WARN_EVERY_MS, THROTTLED_DEVICES),
        }),
        shutdown: shutdown.clone(),
    };
    writer.run(to_write).await;
    let _ = client.disconnect().await;
    let _ = poller.await;
}

fn mqtt_options(endpoint: &MqttEndpoint) -> MqttOptions {
    let mut options = MqttOptions::new(&endpoint.client_id, &endpoint.host, endpoint.port);
    // Room for payloads over the limit too: a broker that lets one through (one set more loosely
    // than docs/OPERATIONS.md says) must see it quarantined, not the gateway's own connection
    // closed on it, again at every redelivery.
    let incoming =
        crate::broker::max_publish_remaining_length(endpoint.max_payload) * OVERSIZED_HEADROOM;
    let outgoing = crate::broker::max_publish_remaining_length(endpoint.max_payload);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(incoming, outgoing)
        .set_inflight(1000);
    if let Some((user, password)) = &endpoint.credentials {
        options.set_credentials(user, password);
    }
    options
}

fn subscriptions(endpoint: &MqttEndpoint) -> Vec<String> {
    let shared = |filter: String| match &endpoint.shared_group {
        Some(group) => format!("$share/{group}/{filter}"),
        None => filter,
    };
    vec![
        shared(TopicKind::Up.filter_all_devices()),
        shared(TopicKind::State.filter_all_devices()),
    ]
}

/// Drives the MQTT connection: subscribes at every connect (the broker may not have kept our
/// session), forwards publishes to the writer, and backs off between failed connection attempts.
/// `ready` is true while connected with every subscription granted: a broker drops QoS 1
/// messages published to a topic nobody subscribes to, so "ready" is when devices may send.
async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    received: mpsc::UnboundedSender<(Publish, Instant)>,
    metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut delay = RECONNECT_FIRST;
    let mut granted = 0;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay = RECONNECT_FIRST;
                granted = 0;
                tracing::info!("connected to the MQTT broker");
                for filter in &filters {
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, filter, "could not subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a subscription; check its ACLs");
                } else {
                    granted += 1;
                    if granted == filters.len() {
                        ready.send_replace(true);
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if received.send((publish, Instant::now())).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                ready.send_replace(false);
                Metrics::add(&metrics.mqtt_disconnects, 1);
                if is_oversized(&e) {
                    tracing::error!(
                        error = %e,
                        "the broker delivered a message far over the size limit; it will again \
                         after the reconnect: set its packet limit as docs/OPERATIONS.md says"
                    );
                }
                tracing::warn!(error = %e, retry_in = ?delay, "MQTT connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RECONNECT_MAX);
            }
        }
    }
}

/// Whether the connection failed on a packet over the client's size limit.
fn is_oversized(error: &rumqttc::ConnectionError) -> bool {
    matches!(
        error,
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(_)
        ))
    )
}

/// What one received message turned out to be.
enum Classified {
    /// A batch, and whether it came signed.
    Batch(IncomingBatch, bool),
    State(proto::DeviceId, State),
    /// A cleared retained message: nothing to do but acknowledge it.
    Ignore,
    /// Refused, with the reason; `unverified` if for its signature.
    Refuse {
        reason: String,
        unverified: bool,
    },
}

fn refuse(reason: impl ToString) -> Classified {
    Classified::Refuse {
        reason: reason.to_string(),
        unverified: false,
    }
}

fn classify(
    publish: &Publish,
    received: i64,
    max_payload: usize,
    signatures: &Signatures,
) -> Classified {
    let topic = match Topic::parse(&publish.topic) {
        Ok(topic) => topic,
        Err(e) => return refuse(e),
    };
    match topic.kind {
        // Too large, a bad signature or a bad header refuses the message; a bad record refuses
        // only that record.
        TopicKind::Up if publish.payload.len() > max_payload => {
            refuse(proto::DecodeError::TooLarge {
                size: publish.payload.len(),
                max: max_payload,
            })
        }
        TopicKind::Up => {
            let checked =
                match signatures.check_envelope(&topic.device, &publish.topic, &publish.payload) {
                    Ok(checked) => checked,
                    Err(e) => {
                        return Classified::Refuse {
                            reason: e.to_string(),
                            unverified: true,
                        }
                    }
                };
            let (envelope, signed) = match &checked {
                Checked::Signed(inner) => (inner.as_slice(), true),
                Checked::Bare(bytes) => (*bytes, false),
            };
            match proto::decode_batch(envelope, max_payload) {
                Ok(batch) if batch.dev != topic.device => refuse(format!(
                    "envelope is from device {} but arrived on {}'s topic",
                    batch.dev, topic.device
                )),
                Ok(batch) => Classified::Batch(
                    IncomingBatch {
                        device: batch.dev,
                        topic: publish.topic.clone(),
                        payload: publish.payload.clone(),
                        received,
                        sent: batch.sent,
                        boot: batch.boot,
                        mono: batch.mono,
                        records: batch.records,
                        refused: batch.refused,
                    },
                    signed,
                ),
                Err(e) => refuse(e),
            }
        }
        TopicKind::State if publish.payload.is_empty() => Classified::Ignore,
        TopicKind::State => match proto::decode::<State>(&publish.payload, max_payload) {
            Ok(state) => Classified::State(topic.device, state),
            Err(e) => refuse(e),
        },
        TopicKind::Ack | TopicKind::Down => {
            refuse("the gateway does not take messages on this topic")
        }
    }
}

/// One group, classified and stored.
struct Committed {
    outcomes: Vec<BatchOutcome>,
    /// Devices whose batches in the group came signed (their acks are signed even when signing
    /// is optional).
    signed: BTreeSet<proto::DeviceId>,
    /// What was quarantined: topic and reason.
    refused: Vec<(String, String)>,
    /// Of which refused for their signature.
    unverified: u64,
}

/// How often a repeated warning (quarantined messages, unprovisioned devices) is logged.
const WARN_EVERY_MS: i64 = 60_000;
/// Devices whose unprovisioned batches are throttled separately; beyond, they share one throttle.
const THROTTLED_DEVICES: usize = 1024;
/// The most refusals in one ack message: a batch of refused records with long reasons must still
/// fit the payload limit. More are sent in further acks with the same `thru`.
const MAX_REFUSALS_PER_ACK: usize = 256;

/// The writer's rate-limited warnings.
struct Warnings {
    quarantined: Throttle,
    unprovisioned: KeyedThrottle<proto::DeviceId>,
}

struct Writer {
    store: Arc<dyn Store>,
    client: AsyncClient,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<IngestEvent>,
    max_payload: usize,
    clock: SharedClock,
    signatures: Arc<Signatures>,
    warnings: std::sync::Mutex<Warnings>,
    /// Cancelled when the gateway stops: the broker connection is going, and what it cannot
    /// acknowledge any more is redelivered or resent, so that is no warning.
    shutdown: CancellationToken,
}

impl Writer {
    async fn run(&self, mut to_write: mpsc::UnboundedReceiver<(Publish, Instant)>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while to_write.recv_many(&mut group, MAX_GROUP).await > 0 {
            if let Err(e) = self.commit(&group).await {
                // Nothing is acked, so devices resend and the broker redelivers: nothing is lost.
                tracing::error!(error = %e, messages = group.len(), "could not store a group");
            }
            group.clear();
        }
    }

    fn warnings(&self) -> std::sync::MutexGuard<'_, Warnings> {
        // Only throttles: a panic mid-update leaves them usable.
        self.warnings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores one group durably, then acks it to devices and to the broker. Checking signatures
    /// and decoding are done on the blocking thread with the writes: a group of 512 envelopes is
    /// tens of milliseconds of Ed25519, which must not hold up the runtime.
    async fn commit(&self, group: &[(Publish, Instant)]) -> Result<(), StoreError> {
        Metrics::add(&self.metrics.messages_in, group.len() as u64);
        let received = self.clock.now_ms();
        let publishes: Vec<Publish> = group.iter().map(|(publish, _)| publish.clone()).collect();
        let (store, signatures, max_payload) = (
            self.store.clone(),
            self.signatures.clone(),
            self.max_payload,
        );
        let committed = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut batches = Vec::new();
            let mut signed = BTreeSet::new();
            let mut states = Vec::new();
            let mut refused = Vec::new();
            let mut unverified = 0;
            for publish in &publishes {
                match classify(publish, received, max_payload, &signatures) {
                    Classified::Batch(batch, was_signed) => {
                        if was_signed {
                            signed.insert(batch.device.clone());
                        }
                        batches.push(batch);
                    }
                    Classified::State(device, state) => states.push((device, state)),
                    Classified::Ignore => {}
                    Classified::Refuse {
                        reason,
                        unverified: for_signature,
                    } => {
                        unverified += u64::from(for_signature);
                        refused.push((publish.topic.clone(), reason, publish.payload.clone()));
                    }
                }
            }
            let entries: Vec<Refused<'_>> = refused
                .iter()
                .map(|(topic, reason, payload)| Refused {
                    topic,
                    reason,
                    payload,
                    received,
                    record: None,
                })
                .collect();
            store.quarantine(&entries)?;
            for (device, state) in &states {
                store.record_state(device, state, received)?;
            }
            Ok(Committed {
                outcomes: store.ingest(&batches)?,
                signed,
                refused: refused
                    .into_iter()
                    .map(|(topic, reason, _)| (topic, reason))
                    .collect(),
                unverified,
            })
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            key: "ingest".into(),
            reason: format!("store task failed: {e}"),
        })??;
        for (topic, reason) in &committed.refused {
            if let Some(before) = self.warnings().quarantined.hit(received, WARN_EVERY_MS) {
                tracing::warn!(
                    %topic,
                    %reason,
                    unlogged_before = before,
                    "quarantined a message (one line a minute at most while they keep coming)"
                );
            }
        }
        Metrics::add(&self.metrics.quarantined, committed.refused.len() as u64);
        Metrics::add(&self.metrics.envelopes_unverified, committed.unverified);

        self.publish_acks(&committed.outcomes, &committed.signed)
            .await;
        for (publish, _) in group {
            if let Err(e) = self.client.ack(publish).await {
                if self.shutdown.is_cancelled() {
                    tracing::debug!(error = %e, "stopping: an MQTT message left unacknowledged");
                } else {
                    tracing::warn!(error = %e, "could not acknowledge an MQTT message");
                }
            }
        }
        for (_, arrived) in group {
            self.metrics.observe_lag(arrived.elapsed());
        }
        for outcome in committed.outcomes {
            self.count(&outcome, received);
            let _ = self.events.send(IngestEvent::Stored(Arc::new(outcome)));
        }
        self.metrics.set_quarantine(self.store.quarantine_usage());
        Ok(())
    }

    /// Publishes each device's latest cumulative ack once per group, with every refusal of its
    /// batches in the group (split over several acks with the same `thru` if there are many).
    async fn publish_acks(&self, outcomes: &[BatchOutcome], signed: &BTreeSet<proto::DeviceId>) {
        let mut latest: BTreeMap<&proto::DeviceId, (u64, Vec<Refusal>)> = BTreeMap::new();
        for outcome in outcomes {
            let (thru, rej) = latest.entry(&outcome.device).or_default();
            *thru = outcome.acked_through;
            for refusal in &outcome.refused {
                if !rej.iter().any(|r| r.seq == refusal.seq) {
                    rej.push(refusal.clone());
                }
            }
        }
        for (device, (thru, rej)) in latest {
            let mut chunks: Vec<Vec<Refusal>> = rej
                .chunks(MAX_REFUSALS_PER_ACK)
                .map(<[Refusal]>::to_vec)
                .collect();
            if chunks.is_empty() {
                chunks.push(Vec::new());
            }
            for rej in chunks {
                self.publish_ack(
                    device,
                    Ack {
                        v: SCHEMA_VERSION,
                        thru,
                        rej,
                    },
                    signed.contains(device),
                )
                .await;
            }
        }
    }

    async fn publish_ack(&self, device: &proto::DeviceId, ack: Ack, envelope_signed: bool) {
        let topic = device.topic(TopicKind::Ack);
        let sealed = proto::encode(&ack, self.max_payload)
            .map_err(|e| e.to_string())
            .and_then(|payload| {
                self.signatures
                    .seal_ack(&topic, payload, envelope_signed)
                    .map_err(|e| e.to_string())
            });
        let payload = match sealed {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "could not encode or sign an ack");
                return;
            }
        };
        match self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            Ok(()) => Metrics::add(&self.metrics.acks_sent, 1),
            // Stopping, the client's event loop has gone: the device resends what it was not
            // acknowledged, so this is no fault.
            Err(e) if self.shutdown.is_cancelled() => {
                tracing::debug!(error = %e, %device, "stopping: an ack left unpublished");
            }
            Err(e) => tracing::warn!(error = %e, %device, "could not publish an ack"),
        }
    }

    fn count(&self, outcome: &BatchOutcome, now: proto::TimestampMs) {
        Metrics::add(&self.metrics.records_stored, outcome.stored.len() as u64);
        Metrics::add(&self.metrics.duplicates, outcome.duplicates as u64);
        Metrics::add(&self.metrics.records_refused, outcome.newly_refused as u64);
        if outcome.newly_refused > 0 {
            if let Some(before) = self.warnings().quarantined.hit(now, WARN_EVERY_MS) {
                tracing::warn!(
                    device = %outcome.device,
                    records = outcome.newly_refused,
                    unlogged_before = before,
                    "refused records of a batch and stored the rest (one line a minute at most)"
                );
            }
        }
        if outcome.unknown_device {
            Metrics::add(&self.metrics.unknown_device_batches, 1);
            let hit = self.warnings().unprovisioned.hit(&outcome.device, now);
            if let Some(before) = hit {
                tracing::warn!(
                    device = %outcome.device,
                    unlogged_before = before,
                    "records from a device that is not provisioned (one line a minute per device)"
                );
            }
        }
    }
}
