//! Sending jobs to crews' and operatives' devices: a `Job` (or its withdrawal, a `JobCancel`) on
//! the device's `down` topic, signed by the gateway ([`Signatures::seal_down`]), QoS 1, into its
//! persistent session, so a device that is offline gets it when it reconnects. Return jobs for
//! missed bins and repair jobs go the same way, through [`JobSender`].

use std::sync::Arc;

use proto::{DeviceId, Down, DownBody, Job, JobCancel, TimestampMs, TopicKind, SCHEMA_VERSION};
use rumqttc::{AsyncClient, QoS};

use crate::devices::Signatures;

/// Why a job could not be handed to the broker.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The job does not encode (a bug, or a job over the size limit).
    #[error("could not encode the job: {0}")]
    Encode(#[from] proto::EncodeError),
    /// The job could not be signed (over the size limit once signed).
    #[error("could not sign the job: {0}")]
    Sign(#[from] proto::signed::SignError),
    /// The MQTT client's queue is full or closed.
    #[error("the MQTT client did not take the job: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// Where jobs go: the MQTT client in the gateway, a recorder in tests.
pub trait JobSender: Send + Sync {
    /// Hands `job` for `device` to the transport without waiting for it to be delivered.
    fn send_job(&self, device: &DeviceId, job: Job, now: TimestampMs) -> Result<(), DispatchError>;

    /// Hands the withdrawal of a job `device` has to the transport, likewise.
    fn send_cancel(
        &self,
        device: &DeviceId,
        cancel: JobCancel,
        now: TimestampMs,
    ) -> Result<(), DispatchError>;
}

/// Publishes jobs through the gateway's MQTT client, signed.
pub struct MqttJobSender {
    client: AsyncClient,
    max_payload: usize,
    signatures: Arc<Signatures>,
}

impl MqttJobSender {
    /// Jobs through `client`, each at most `max_payload` bytes, signed by `signatures`.
    pub fn new(client: AsyncClient, max_payload: usize, signatures: Arc<Signatures>) -> Self {
        Self {
            client,
            max_payload,
            signatures,
        }
    }
}

impl MqttJobSender {
    fn publish(
        &self,
        device: &DeviceId,
        body: DownBody,
        now: TimestampMs,
    ) -> Result<(), DispatchError> {
        let down = Down {
            v: SCHEMA_VERSION,
            sent: now,
            body,
        };
        let topic = device.topic(TopicKind::Down);
        let payload = proto::encode(&down, self.max_payload)?;
        let payload = self.signatures.seal_down(device, &topic, payload)?;
        // try_publish: the desk runs on blocking threads; a full queue is reported, and the
        // report stays open for the next sweep rather than blocking a request.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)?;
        Ok(())
    }
}

impl JobSender for MqttJobSender {
    fn send_job(&self, device: &DeviceId, job: Job, now: TimestampMs) -> Result<(), DispatchError> {
        self.publish(device, DownBody::Job(job), now)
    }

    fn send_cancel(
        &self,
        device: &DeviceId,
        cancel: JobCancel,
        now: TimestampMs,
    ) -> Result<(), DispatchError> {
        self.publish(device, DownBody::JobCancel(cancel), now)
    }
}
