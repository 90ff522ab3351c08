//! Sending jobs to crews' and operatives' devices: a `Job` (or its withdrawal, a `JobCancel`) on
//! the device's `down` topic, QoS 1, into its persistent session, so a device that is offline
//! gets it when it reconnects. Return jobs for missed bins and repair jobs go the same way.

use proto::{DeviceId, Down, DownBody, Job, JobCancel, TimestampMs, TopicKind, SCHEMA_VERSION};
use rumqttc::{AsyncClient, QoS};

/// Why a job could not be handed to the broker.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The job does not encode (a bug, or a job over the size limit).
    #[error("could not encode the job: {0}")]
    Encode(#[from] proto::EncodeError),
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

/// Publishes jobs through the gateway's MQTT client.
pub struct MqttJobSender {
    client: AsyncClient,
    max_payload: usize,
}

impl MqttJobSender {
    /// Jobs through `client`, each at most `max_payload` bytes.
    pub fn new(client: AsyncClient, max_payload: usize) -> Self {
        Self {
            client,
            max_payload,
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
        let payload = proto::encode(&down, self.max_payload)?;
        // try_publish: the desk runs on blocking threads; a full queue is reported, and the
        // report stays open for the next sweep rather than blocking a request.
        self.client.try_publish(
            device.topic(TopicKind::Down),
            QoS::AtLeastOnce,
            false,
            payload,
        )?;
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
