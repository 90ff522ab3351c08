//! The MQTT connection: polls rumqttc's event loop (which must keep turning for anything to be
//! sent), backs off between failed attempts, and on every connect resubscribes, announces the
//! device online and makes every unacked record eligible again. Messages from the gateway go to the
//! receiver; this task only moves packets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::clock::SharedClock;
use proto::{DeviceId, TopicKind};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, Publish, QoS, Request,
    SubscribeFilter,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::options;
use super::stall::StallDetector;
use super::status::LinkStatus;
use crate::outbox::Outbox;

/// How often the connection looks at the ack timing.
const STALL_CHECK: Duration = Duration::from_millis(250);

/// Everything the connection task needs.
pub(super) struct Connection {
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub device: DeviceId,
    pub boot: u64,
    /// Dates the state messages and the link's changes.
    pub clock: SharedClock,
    pub outbox: Outbox,
    pub status: Arc<watch::Sender<LinkStatus>>,
    pub incoming: mpsc::UnboundedSender<Publish>,
    /// Counts SUBACKs, so that announcing can wait for its subscription to be in place.
    pub subacks: watch::Sender<u64>,
    pub backoff: Backoff,
    /// The gateway's ack timing, to notice a link that stopped forwarding.
    pub stall: Arc<Mutex<StallDetector>>,
    /// Stops polling at once (a clean close ends the loop by itself, after the DISCONNECT).
    pub stop: CancellationToken,
}

impl Connection {
    /// Runs until the client disconnects cleanly or `stop` is cancelled.
    pub(super) async fn run(mut self) {
        let mut watch_acks = tokio::time::interval(STALL_CHECK);
        watch_acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Between a CONNACK and the next error. Only then may the ack watch interrupt `poll`:
        // once connected rumqttc's polling can be cancelled and resumed, but a connection attempt
        // cancelled every tick would start again from scratch and, on a link slower than the
        // tick, never finish.
        let mut online = false;
        loop {
            let event = tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = watch_acks.tick(), if online => {
                    online = !self.check_stall();
                    continue;
                }
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    online = true;
                    self.on_connected();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.subacks.send_modify(|count| *count += 1);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if self.incoming.send(publish).is_err() {
                        tracing::warn!("the receiver has stopped; dropping a message");
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    tracing::info!("disconnected from the MQTT broker");
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    online = false;
                    if matches!(error, ConnectionError::RequestsDone) {
                        // Every client handle is gone: nothing more can be sent.
                        break;
                    }
                    if !self.on_error(error).await {
                        break;
                    }
                }
            }
        }
        self.set_disconnected(None);
    }

    /// A new connection: every unacked record may be sent again (the client dropped what it had
    /// not delivered, and the gateway may hold any of it), then subscribe and announce.
    fn on_connected(&mut self) {
        self.backoff.reset();
        if let Err(e) = self.outbox.reset_in_flight() {
            tracing::error!(error = %e, "cannot reset the outbox's in-flight records");
        }
        let mut connection = (0, 0);
        self.status.send_modify(|status| {
            status.connections += 1;
            connection = (status.connections, status.drops);
        });
        tracing::info!(connection = connection.0, "connected to the MQTT broker");
        // Not awaited here: the requests wait in the client's queue while MQTT's in-flight window
        // is full, and only this loop's polling empties it.
        tokio::spawn(announce(
            self.client.clone(),
            self.device.clone(),
            self.boot,
            self.clock.clone(),
            Arc::clone(&self.status),
            self.subacks.subscribe(),
            connection,
        ));
    }

    /// Drops the connection if acks have stopped coming (see [`StallDetector`]); the next poll
    /// reconnects at once, and the sender resends everything unacked on the new connection.
    /// Returns whether it dropped the connection.
    fn check_stall(&mut self) -> bool {
        let (stall, rtt, bound) = match self.stall.lock() {
            Ok(detector) => (
                detector.check(Instant::now()),
                detector.round_trip(),
                detector.bound(),
            ),
            Err(_) => return false,
        };
        let rtt_ms = rtt.map(|rtt| u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX));
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        self.status.send_if_modified(|status| {
            let changed = status.ack_rtt_ms != rtt_ms || status.stall_after_ms != bound_ms;
            status.ack_rtt_ms = rtt_ms;
            status.stall_after_ms = bound_ms;
            changed
        });
        let Some(stall) = stall else { return false };
        let reason = format!(
            "link stalled: no ack for {:.1} s (bound {:.1} s) with {} batches in flight; \
             reconnecting",
            stall.waited.as_secs_f64(),
            stall.bound.as_secs_f64(),
            stall.batches
        );
        tracing::warn!("{reason}");
        if let Ok(mut detector) = self.stall.lock() {
            detector.reset();
        }
        // Drop the socket; rumqttc keeps what it had not sent for the next connection, less the
        // batches, which the outbox sends again itself.
        self.eventloop.clean();
        let up = self.device.topic(TopicKind::Up);
        self.eventloop
            .pending
            .retain(|request| !matches!(request, Request::Publish(p) if p.topic == up));
        self.status.send_modify(|status| {
            status.stalls += 1;
            status.stalled = true;
        });
        self.set_disconnected(Some(reason));
        true
    }

    /// A failed attempt or a dropped connection: wait before the next attempt. Returns `false` if
    /// stopped meanwhile.
    async fn on_error(&mut self, error: ConnectionError) -> bool {
        let delay = self.backoff.next_delay(&mut rand::thread_rng());
        tracing::warn!(error = %error, retry_in = ?delay, "MQTT connection failed");
        self.set_disconnected(Some(error.to_string()));
        // The Last Will's timestamp: when this device last knew it was online.
        match options::last_will(&self.device, self.boot, self.clock.now_ms()) {
            Ok(will) => {
                self.eventloop.mqtt_options.set_last_will(will);
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the Last Will"),
        }
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    fn set_disconnected(&self, error: Option<String>) {
        self.status.send_modify(|status| {
            if status.connected {
                status.connected = false;
                status.since = Some(self.clock.now_ms());
            }
            if error.is_some() {
                status.drops += 1;
                status.last_error = error;
            }
        });
    }
}

/// Subscribes to the ack and down topics and waits for the broker to confirm, publishes the
/// retained online state, then opens the link to the sender. Until the subscription is in place a
/// job sent down, or the ack for a batch, would be lost.
async fn announce(
    client: AsyncClient,
    device: DeviceId,
    boot: u64,
    clock: SharedClock,
    status: Arc<watch::Sender<LinkStatus>>,
    mut subacks: watch::Receiver<u64>,
    connection: (u64, u64),
) {
    let before = *subacks.borrow_and_update();
    let filters = [TopicKind::Ack, TopicKind::Down]
        .map(|kind| SubscribeFilter::new(device.topic(kind), QoS::AtLeastOnce));
    if let Err(e) = client.subscribe_many(filters).await {
        tracing::warn!(error = %e, "cannot subscribe");
        return;
    }
    let mut link = status.subscribe();
    tokio::select! {
        confirmed = subacks.wait_for(|count| *count > before) => if confirmed.is_err() { return },
        // The connection dropped first: the next one announces itself.
        _ = link.wait_for(|status| status.drops != connection.1) => return,
    }
    match options::state_payload(true, boot, clock.now_ms()) {
        Ok(online) => {
            let topic = device.topic(TopicKind::State);
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, online).await {
                tracing::warn!(error = %e, "cannot publish the online state");
                return;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode the online state"),
    }
    status.send_modify(|status| {
        // This connection has dropped, or a later one replaced it (and will announce itself).
        if (status.connections, status.drops) == connection && !status.connected {
            status.connected = true;
            status.stalled = false;
            status.since = Some(clock.now_ms());
        }
    });
}
