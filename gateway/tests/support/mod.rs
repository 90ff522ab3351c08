//! What the gateway's integration tests share: fake devices enrolled as `gateway devices add`
//! enrols a real one, so that they sign their envelopes and read the gateway's signed acks; a
//! test gateway's configuration; batches as the ingest hands them to the store.

// Each test file compiles this module, and none uses all of it.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use fieldsync_tests::{free_port, DeviceKeys, FakeDevice};
use gateway::config::GatewayConfig;
use gateway::devices::Issued;
use gateway::storage::IncomingBatch;
use gateway::Gateway;
use proto::{DeviceId, JobStatus, JobUpdate, Record, RecordBody, TimestampMs};

/// A gateway's configuration for a test: its store in `dir/store`, its embedded broker on a free
/// port letting fake devices in without credentials (device identity is tested in
/// device_identity.rs), HTTP on a free port.
pub fn config(dir: &std::path::Path) -> GatewayConfig {
    let mut config = GatewayConfig {
        data_dir: dir.join("store"),
        ..GatewayConfig::default()
    };
    config.mqtt.listen = ([127, 0, 0, 1], free_port()).into();
    config.mqtt.allow_anonymous = true;
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config
}

/// The keys an issued credential hands the device.
pub fn keys(issued: &Issued) -> DeviceKeys {
    DeviceKeys {
        device: issued.signing_key.clone(),
        gateway: issued.gateway_key,
    }
}

/// `id` issued a credential and keys by `gateway`'s registry (replacing any), connected to its
/// broker and signing.
pub async fn enrolled(gateway: &Gateway, id: &str) -> FakeDevice {
    let issued = gateway
        .devices
        .add(&DeviceId::new(id).unwrap(), true)
        .unwrap();
    FakeDevice::connect_signed(id, gateway.mqtt.1, keys(&issued)).await
}

/// `records` as a batch from `device`, received (and sent) at `at`: what the ingest hands the
/// store for a message from it.
pub fn batch_from(device: &str, records: Vec<Record>, at: TimestampMs) -> IncomingBatch {
    let device = DeviceId::new(device).unwrap();
    IncomingBatch {
        topic: device.topic(proto::TopicKind::Up),
        device,
        payload: bytes::Bytes::new(),
        received: at,
        sent: at,
        boot: None,
        mono: None,
        records,
        refused: Vec::new(),
    }
}

/// An operative's report on `job`, as their handheld records it at `at` (the gateway dates the
/// job's history by its own clock).
pub fn job_update(seq: u64, job: &str, status: JobStatus, at: TimestampMs) -> Record {
    Record {
        seq,
        ts: at,
        body: RecordBody::JobUpdate(JobUpdate {
            job: job.into(),
            status,
            pos: None,
            note: Some("boiler in the loft".into()),
        }),
        boot: None,
        mono: None,
    }
}

/// Everything the process logs, kept in memory: for the tests that read the gateway's logs (each
/// the only test in its binary, since the subscriber is the process's).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Installs the process's log subscriber at `filter` (an `EnvFilter` directive), without
    /// colour, writing here.
    pub fn install(filter: &str) -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
