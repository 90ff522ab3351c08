//! A relay between an agent and its broker that reads the MQTT packets going through it and
//! mistreats the gateway's acks on their way down: some lost, some delivered twice, some
//! delivered again later, after newer ones (reordered). Everything else passes untouched, byte for
//! byte, so the agent and the broker see a real session.
//!
//! A lost ack is a QoS 1 publish the agent never sees: the relay answers the broker's delivery
//! with a `PUBACK` of its own, as if the agent had taken it, so that the broker does not hold it
//! for a resend at the next connection. Duplicated and stale copies are extra QoS 0 publishes of
//! the same payload, so the agent's session stays consistent with the broker's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rumqttc::{Packet, PubAck, Publish, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Large enough for any packet of the contract, with its MQTT header.
const MAX_PACKET: usize = 2 * proto::MAX_MESSAGE_BYTES;

/// Which acks to mistreat, counted from the first ack of each connection's life (1-based): every
/// `n`th, for each fault; 0 turns a fault off.
#[derive(Debug, Clone, Copy, Default)]
pub struct AckFaults {
    /// Swallow the ack.
    pub lose_every: u64,
    /// Deliver it, then a copy of it straight after.
    pub duplicate_every: u64,
    /// Deliver it, then a copy of it again after the next two acks (a stale ack after newer ones).
    pub replay_late_every: u64,
}

/// How many acks the relay lost, duplicated and replayed late, over all connections.
#[derive(Debug, Default)]
pub struct AckFaultCounts {
    /// Acks swallowed.
    pub lost: AtomicU64,
    /// Acks delivered twice in a row.
    pub duplicated: AtomicU64,
    /// Stale acks delivered after newer ones.
    pub replayed_late: AtomicU64,
}

/// The relay: agents connect to [`AckFaultRelay::port`].
pub struct AckFaultRelay {
    /// The port agents connect to.
    pub port: u16,
    /// What it has done so far.
    pub counts: Arc<AckFaultCounts>,
    task: JoinHandle<()>,
}

impl AckFaultRelay {
    /// Relays a fresh local port to the broker on 127.0.0.1:`broker_port`.
    pub async fn start(broker_port: u16, faults: AckFaults) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(AckFaultCounts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((agent, _)) = listener.accept().await else {
                    continue;
                };
                let counts = shared.clone();
                tokio::spawn(async move {
                    let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                        return;
                    };
                    relay(agent, broker, faults, counts).await;
                });
            }
        });
        Self { port, counts, task }
    }

    /// Acks lost so far.
    pub fn lost(&self) -> u64 {
        self.counts.lost.load(Ordering::Relaxed)
    }

    /// Acks duplicated so far.
    pub fn duplicated(&self) -> u64 {
        self.counts.duplicated.load(Ordering::Relaxed)
    }

    /// Stale acks delivered after newer ones so far.
    pub fn replayed_late(&self) -> u64 {
        self.counts.replayed_late.load(Ordering::Relaxed)
    }
}

impl Drop for AckFaultRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the agent's packets go up untouched (with the relay's own `PUBACK`s put in
/// between whole packets); the broker's come down through [`AckMistreater`].
async fn relay(
    agent: TcpStream,
    broker: TcpStream,
    faults: AckFaults,
    counts: Arc<AckFaultCounts>,
) {
    let (mut agent_read, mut agent_write) = agent.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    let (to_broker, mut up_queue) = mpsc::unbounded_channel::<Bytes>();

    let writer = tokio::spawn(async move {
        while let Some(frame) = up_queue.recv().await {
            if broker_write.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let agent_to_broker = to_broker.clone();
    let up = tokio::spawn(async move {
        let mut frames = Frames::default();
        while let Some(frame) = frames.next(&mut agent_read).await {
            if agent_to_broker.send(frame).is_err() {
                return;
            }
        }
    });

    let mut frames = Frames::default();
    let mut acks = AckMistreater::new(faults, counts);
    while let Some(frame) = frames.next(&mut broker_read).await {
        let Some(publish) = ack_publish(&frame) else {
            if agent_write.write_all(&frame).await.is_err() {
                break;
            }
            continue;
        };
        let (down, puback) = acks.on_ack(frame, &publish);
        if let Some(puback) = puback {
            if to_broker.send(puback).is_err() {
                break;
            }
        }
        let mut failed = false;
        for bytes in down {
            failed |= agent_write.write_all(&bytes).await.is_err();
        }
        if failed {
            break;
        }
    }
    up.abort();
    writer.abort();
}

/// The publish in `frame` if it is one on an ack topic.
fn ack_publish(frame: &Bytes) -> Option<Publish> {
    let mut buffer = BytesMut::from(&frame[..]);
    match Packet::read(&mut buffer, MAX_PACKET) {
        Ok(Packet::Publish(publish)) if publish.topic.ends_with("/ack") => Some(publish),
        _ => None,
    }
}

/// Decides what becomes of each ack on one connection.
struct AckMistreater {
    faults: AckFaults,
    counts: Arc<AckFaultCounts>,
    seen: u64,
    /// Stale copies waiting: (the ack number after which to deliver, the copy).
    late: Vec<(u64, Bytes)>,
}

impl AckMistreater {
    fn new(faults: AckFaults, counts: Arc<AckFaultCounts>) -> Self {
        Self {
            faults,
            counts,
            seen: 0,
            late: Vec::new(),
        }
    }

    /// The bytes to deliver to the agent for this ack, in order, and a `PUBACK` to answer the
    /// broker with when the ack is lost.
    fn on_ack(&mut self, frame: Bytes, publish: &Publish) -> (Vec<Bytes>, Option<Bytes>) {
        self.seen += 1;
        let nth = |every: u64| every != 0 && self.seen % every == 0;
        let mut down = Vec::new();
        let mut puback = None;
        if nth(self.faults.lose_every) {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            if publish.qos != QoS::AtMostOnce {
                puback = Some(encode(&Packet::PubAck(PubAck::new(publish.pkid))));
            }
        } else {
            down.push(frame);
            if nth(self.faults.duplicate_every) {
                self.counts.duplicated.fetch_add(1, Ordering::Relaxed);
                down.push(copy_at_most_once(publish));
            }
            if nth(self.faults.replay_late_every) {
                self.late.push((self.seen + 2, copy_at_most_once(publish)));
            }
        }
        let seen = self.seen;
        let (due, waiting): (Vec<_>, Vec<_>) = self.late.drain(..).partition(|(at, _)| *at <= seen);
        self.late = waiting;
        for (_, stale) in due {
            self.counts.replayed_late.fetch_add(1, Ordering::Relaxed);
            down.push(stale);
        }
        (down, puback)
    }
}

/// The same ack as a QoS 0 publish, which needs no answer from the agent.
fn copy_at_most_once(publish: &Publish) -> Bytes {
    let copy = Publish::from_bytes(
        publish.topic.clone(),
        QoS::AtMostOnce,
        publish.payload.clone(),
    );
    encode(&Packet::Publish(copy))
}

fn encode(packet: &Packet) -> Bytes {
    let mut buffer = BytesMut::new();
    packet.write(&mut buffer, MAX_PACKET).unwrap();
    buffer.freeze()
}

/// Whole MQTT packets read off a socket, as the bytes they came in.
#[derive(Default)]
struct Frames {
    buffer: BytesMut,
}

impl Frames {
    /// The next whole packet; `None` when the socket closes or sends what is not MQTT.
    async fn next(&mut self, socket: &mut (impl AsyncReadExt + Unpin)) -> Option<Bytes> {
        loop {
            match rumqttc::mqttbytes::check(self.buffer.iter(), MAX_PACKET) {
                Ok(header) => return Some(self.buffer.split_to(header.frame_length()).freeze()),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return None,
            }
            match socket.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}
