//! fieldsync's wire contract: every message that crosses MQTT, its CBOR encoding, its topics and
//! its version. No I/O and no async here, so that devices, the gateway, the simulator and other
//! implementations agree on one definition.
//!
//! - [`record`]: what a device sends up: collection confirmations, boiler telemetry, job updates,
//!   round events, device health and telemetry gaps, batched in an [`Envelope`].
//! - [`downlink`]: what the gateway sends down: cumulative [`Ack`]s, jobs, job cancellations,
//!   configuration ([`Down`]), and the retained online/offline [`State`].
//! - [`topic`]: device ids and the `fieldsync/v1/{device}/{up|ack|down|state}` topics.
//! - [`clock`]: the time source devices and the gateway stamp records with.
//! - [`codec`]: encoding and decoding with a size limit, version checks and typed errors.
//! - [`signed`]: messages signed as COSE_Sign1 with Ed25519, bound to their topic: envelopes
//!   by their device, acks and downlink by the gateway.
//! - [`validate`]: the value checks every decoded message passes (finite numbers, latitude
//!   range, device id syntax…).
//! - [`examples`]: one realistic example of every message, for tests, the test vectors,
//!   benchmarks and simulators.
//!
//! `fieldsync.cddl` beside this crate is the same contract in CDDL (RFC 8610), and `vectors/`
//! holds one encoded example of every message; both are checked against this code by the tests.

pub mod clock;
pub mod codec;
pub mod downlink;
pub mod examples;
pub mod record;
pub mod signed;
pub mod topic;
pub mod validate;

pub use codec::{
    decode, decode_batch, decode_value, encode, encode_value, DecodeError, DecodedBatch,
    EncodeError, Message,
};
pub use downlink::{
    Ack, Config, Down, DownBody, Job, JobCancel, JobKind, Priority, Refusal, RepairJob,
    ReturnCollectionJob, State, MAX_REFUSAL_REASON_LEN,
};
pub use record::{
    BinStream, Collection, Envelope, Gap, GapReason, Health, JobStatus, JobUpdate, Outcome,
    Position, Record, RecordBody, RecordKind, RoundEvent, RoundPhase, SourceHealth, SourceStatus,
    Telemetry,
};
pub use topic::{DeviceId, InvalidDeviceId, Topic, TopicKind};
pub use validate::{Invalid, Validate};

/// The schema version this build writes and reads. Adding an optional field keeps it; any other
/// change to the contract is a new version (see `docs/ARCHITECTURE.md`, the wire contract).
pub const SCHEMA_VERSION: u16 = 1;

/// The default largest encoded message, in bytes. Big enough for a full batch of
/// [`MAX_BATCH_RECORDS`] telemetry records with every reading, small enough for a device's memory.
/// MQTT clients and brokers must be configured to carry at least this much (rumqttc defaults to
/// 10 KiB, rumqttd to 20 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The most records one [`Envelope`] may carry. The decoder refuses more, which also bounds what it
/// allocates for a batch whatever its header claims.
pub const MAX_BATCH_RECORDS: usize = 1000;

/// Milliseconds since the Unix epoch, UTC. Device clocks can be wrong: the gateway records its own
/// receive time beside this.
pub type TimestampMs = i64;
