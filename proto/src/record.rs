//! What devices send up: an [`Envelope`] of [`Record`]s, each a collection confirmation, a boiler
//! telemetry sample, a job update, a round event, a health report or a telemetry gap.
//!
//! Field names are short and stable because every byte crosses 4G; `fieldsync.cddl` gives each its
//! meaning. Optional fields are left out of the encoding when absent.

use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{DeviceId, TimestampMs, MAX_BATCH_RECORDS};

/// One batch of records from one device, published on `fieldsync/v1/{device}/up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The schema version ([`crate::SCHEMA_VERSION`]).
    pub v: u16,
    /// The sending device; must match the topic's device level.
    pub dev: DeviceId,
    /// When the device sent the batch, by its own clock.
    pub sent: TimestampMs,
    /// The records, in any order; at most [`MAX_BATCH_RECORDS`].
    #[serde(deserialize_with = "bounded")]
    pub recs: Vec<Record>,
    /// The agent's boot counter (as in [`crate::State`]) when it sent the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<u64>,
    /// The device's monotonic clock when it sent the batch: milliseconds since the start of boot
    /// `boot`. With a record's own `boot` and `mono`, it places the record on the gateway's clock
    /// whatever the device's wall clock did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono: Option<u64>,
}

/// One record: a device-wide sequence number, the device's timestamp, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The device's sequence number: starts at 1, never reused, gaps only where a [`Gap`] says so.
    pub seq: u64,
    /// When it happened, by the device's clock (UTC ms).
    pub ts: TimestampMs,
    /// What happened.
    pub body: RecordBody,
    /// The agent's boot counter when the record was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<u64>,
    /// The device's monotonic clock when the record was made: milliseconds since the start of
    /// boot `boot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono: Option<u64>,
}

/// The kinds of record. Encoded as a one-entry map from the kind's tag to its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordBody {
    /// A crew's confirmation of one property's bin.
    #[serde(rename = "col")]
    Collection(Collection),
    /// A boiler's sample.
    #[serde(rename = "tel")]
    Telemetry(Telemetry),
    /// A repairs or return-collection job's progress.
    #[serde(rename = "job")]
    JobUpdate(JobUpdate),
    /// A crew started or completed a round.
    #[serde(rename = "rnd")]
    RoundEvent(RoundEvent),
    /// The device's own health.
    #[serde(rename = "hlt")]
    Health(Health),
    /// Telemetry the device had to drop.
    #[serde(rename = "gap")]
    Gap(Gap),
}

/// A record's kind without its fields: for priorities, metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// [`RecordBody::Collection`].
    Collection,
    /// [`RecordBody::Telemetry`].
    Telemetry,
    /// [`RecordBody::JobUpdate`].
    JobUpdate,
    /// [`RecordBody::RoundEvent`].
    RoundEvent,
    /// [`RecordBody::Health`].
    Health,
    /// [`RecordBody::Gap`].
    Gap,
}

impl RecordKind {
    /// Every kind, for metrics tables.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Collection,
        RecordKind::Telemetry,
        RecordKind::JobUpdate,
        RecordKind::RoundEvent,
        RecordKind::Health,
        RecordKind::Gap,
    ];

    /// A stable lower-case name, as in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Collection => "collection",
            RecordKind::Telemetry => "telemetry",
            RecordKind::JobUpdate => "job_update",
            RecordKind::RoundEvent => "round_event",
            RecordKind::Health => "health",
            RecordKind::Gap => "gap",
        }
    }

    /// Whether records of this kind are what people are waiting on (crews' confirmations, job
    /// progress, round events): they are sent first and never dropped for space.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            RecordKind::Collection | RecordKind::JobUpdate | RecordKind::RoundEvent
        )
    }
}

impl RecordBody {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::Collection(_) => RecordKind::Collection,
            RecordBody::Telemetry(_) => RecordKind::Telemetry,
            RecordBody::JobUpdate(_) => RecordKind::JobUpdate,
            RecordBody::RoundEvent(_) => RecordKind::RoundEvent,
            RecordBody::Health(_) => RecordKind::Health,
            RecordBody::Gap(_) => RecordKind::Gap,
        }
    }
}

/// A GNSS fix in WGS84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude in degrees, −90 to 90.
    pub lat: f64,
    /// Longitude in degrees, −180 to 180.
    pub lon: f64,
    /// Horizontal accuracy (one standard deviation) in metres, as the receiver reports it.
    pub acc: f32,
}

/// The bin streams a council collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinStream {
    /// General waste.
    Refuse,
    /// Dry mixed recycling.
    Recycling,
    /// Garden waste (often a paid subscription).
    Garden,
    /// Food waste caddy.
    Food,
    /// Glass box.
    Glass,
    /// A booked bulky-waste collection.
    Bulky,
    /// Clinical waste.
    Clinical,
    /// Anything else.
    Other,
}

impl BinStream {
    /// Every stream, in a stable order.
    pub const ALL: [BinStream; 8] = [
        BinStream::Refuse,
        BinStream::Recycling,
        BinStream::Garden,
        BinStream::Food,
        BinStream::Glass,
        BinStream::Bulky,
        BinStream::Clinical,
        BinStream::Other,
    ];

    /// The wire name, as in JSON, CSV and Open311 service codes.
    pub fn as_str(self) -> &'static str {
        match self {
            BinStream::Refuse => "refuse",
            BinStream::Recycling => "recycling",
            BinStream::Garden => "garden",
            BinStream::Food => "food",
            BinStream::Glass => "glass",
            BinStream::Bulky => "bulky",
            BinStream::Clinical => "clinical",
            BinStream::Other => "other",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What the crew found at the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Emptied.
    Collected,
    /// The bin was not put out.
    NotPresented,
    /// Wrong material in the bin; left with a tag.
    Contaminated,
    /// The crew could not reach the bin (parked cars, locked gate, road works).
    BlockedAccess,
    /// The bin is too damaged to lift.
    DamagedBin,
    /// Too heavy to lift safely.
    Overweight,
    /// Anything else; the record's note says what.
    Other,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Collected => "collected",
            Outcome::NotPresented => "not_presented",
            Outcome::Contaminated => "contaminated",
            Outcome::BlockedAccess => "blocked_access",
            Outcome::DamagedBin => "damaged_bin",
            Outcome::Overweight => "overweight",
            Outcome::Other => "other",
        }
    }
}

/// A crew's confirmation of one property's bin, with the fix that places it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// The property's Unique Property Reference Number, when the crew's app knows it; a lift-sensor
    /// confirmation may only have a position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uprn: Option<u64>,
    /// Which bin.
    pub stream: BinStream,
    /// What the crew found.
    pub outcome: Outcome,
    /// Where the vehicle was.
    pub pos: Position,
    /// The vehicle's fleet id.
    pub vehicle: String,
    /// The round being worked.
    pub round: String,
    /// The return job this confirmation answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// A photo's content hash (lower-case hex SHA-256); the photo travels separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// The crew's note; required when the outcome is `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One sample of a boiler. Every reading is optional because boilers and interfaces differ.
/// Temperatures in °C, pressure in bar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The boiler's asset id in the council's asset register.
    pub asset: String,
    /// Central-heating flow temperature (OpenTherm id 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<f32>,
    /// Return temperature (id 28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<f32>,
    /// Domestic hot water temperature (id 26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw: Option<f32>,
    /// Outside temperature (id 27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<f32>,
    /// Exhaust (flue) temperature (id 33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exh: Option<f32>,
    /// Central-heating setpoint (id 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setp: Option<f32>,
    /// Central-heating water pressure in bar (id 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar: Option<f32>,
    /// Relative modulation level, 0–100 % (id 17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modu: Option<f32>,
    /// Flame on (id 0, bit 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flame: Option<bool>,
    /// Central heating active (id 0, bit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ch: Option<bool>,
    /// Hot water active (id 0, bit 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_on: Option<bool>,
    /// Fault indication (id 0, bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<bool>,
    /// Application-specific fault flags (id 5, high byte: service request, lockout-reset, low
    /// water pressure, gas/flame fault, air pressure fault, water over-temperature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fflags: Option<u8>,
    /// The manufacturer's fault code (id 5, low byte; a JSON line's `oem`). Hubs before
    /// revision 1.1 sent id 115's diagnostic code here when id 5 gave none; now that is `odiag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oem: Option<u16>,
    /// Burner starts counter (id 116).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<u32>,
    /// Burner operation hours counter (id 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
    /// Gas meter reading in m³ (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas: Option<f64>,
    /// Heat meter reading in kWh (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heat: Option<f64>,
    // Later optional fields (contract revision 1.1): older gateways ignore them, older hubs never
    // send them. Each is absent when the boiler does not report it.
    /// The boiler's whole status byte (id 0, low byte): bits 0–3 as `fault`, `ch`, `dhw_on`,
    /// `flame`; bit 4 cooling, bit 5 second heating circuit, bit 6 diagnostic indication, bit 7
    /// reserved (electricity production in OpenTherm 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sflags: Option<u8>,
    /// Diagnostic (service) indication (id 0, bit 6): the boiler asks for a service visit
    /// without being in fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diag: Option<bool>,
    /// The manufacturer's diagnostic code (id 115), apart from `oem`, the fault code of id 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odiag: Option<u16>,
    /// Data ids the boiler answered Data-Invalid for, ascending: it knows them but its sensor or
    /// value is invalid now (a failed sensor), as opposed to `unsup`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inval: Vec<u8>,
    /// Data ids the boiler answered Unknown-DataId for, ascending: it does not support them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsup: Vec<u8>,
    /// Slave configuration flags (id 3, high byte: bit 0 hot water present, 1 control type,
    /// 2 cooling, 3 hot water storage, 4 master low-off and pump control, 5 CH2 present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scfg: Option<u8>,
    /// The boiler's OpenTherm member id, its manufacturer (id 3, low byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smem: Option<u8>,
    /// Maximum boiler capacity, kW (id 15, high byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kw: Option<u8>,
    /// Minimum modulation level, % of maximum capacity (id 15, low byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_modu: Option<u8>,
    /// Hot-water flow rate, l/min (id 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_flow: Option<f32>,
    /// Room temperature, °C (id 24, written by the thermostat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<f32>,
    /// Hot-water setpoint, °C (id 56).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_setp: Option<f32>,
    /// Maximum central-heating water setpoint, °C (id 57).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_setp: Option<f32>,
    /// Unsuccessful burner starts counter (id 113).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_starts: Option<u32>,
    /// Flame signal too low counter (id 114).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flame_low: Option<u32>,
    /// Central-heating pump starts counter (id 117).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pump_starts: Option<u32>,
    /// Hot-water pump or valve starts counter (id 118).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_pump_starts: Option<u32>,
    /// Burner starts for hot water (id 119); heating starts are `starts` less these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_starts: Option<u32>,
    /// Central-heating pump operation hours (id 121).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pump_hours: Option<u32>,
    /// Hot-water pump or valve operation hours (id 122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_pump_hours: Option<u32>,
    /// Burner operation hours for hot water (id 123); heating hours are `hours` less these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhw_hours: Option<u32>,
}

/// Where a job stands, as the operative reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// The operative took the job.
    Accepted,
    /// On the way.
    EnRoute,
    /// At the property.
    Arrived,
    /// Done.
    Completed,
    /// Could not get in.
    NoAccess,
    /// Needs parts; another visit will follow.
    PartsNeeded,
    /// Cancelled on the device.
    Cancelled,
}

impl JobStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Accepted => "accepted",
            JobStatus::EnRoute => "en_route",
            JobStatus::Arrived => "arrived",
            JobStatus::Completed => "completed",
            JobStatus::NoAccess => "no_access",
            JobStatus::PartsNeeded => "parts_needed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// A job's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The job's id, as the gateway issued it.
    pub job: String,
    /// The new status.
    pub status: JobStatus,
    /// Where the operative was, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<Position>,
    /// The operative's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether a round started or completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundPhase {
    /// The crew set off on the round.
    Started,
    /// The crew finished the round; residents may now report missed bins.
    Completed,
}

/// A crew started or completed a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundEvent {
    /// The round's id.
    pub round: String,
    /// The vehicle working it.
    pub vehicle: String,
    /// Started or completed.
    pub phase: RoundPhase,
}

/// The device's own health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Battery charge, 0–100 %, if the device has a battery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batt: Option<u8>,
    /// Cellular signal strength in dBm, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i16>,
    /// Records waiting in the outbox.
    pub depth: u64,
    /// Bytes the outbox holds.
    pub bytes: u64,
    /// Free disk in bytes on the outbox's file system.
    pub free: u64,
    /// Seconds since the agent started.
    pub up: u64,
    /// The agent's version.
    pub ver: String,
    /// Records the gateway refused that the agent keeps in its dead-letter list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<u64>,
    /// Outages of the agent's own storage (a full or failing disk) since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<u64>,
    /// Connections the agent dropped since it started because the gateway's acks stopped coming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalls: Option<u64>,
    /// Acks and downlink messages the agent ignored since it started because they were not
    /// signed by the gateway: unsigned, badly signed, or signed for another topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified: Option<u64>,
    /// The state of the device's sensor source (a boiler hub's OpenTherm Gateway), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<SourceHealth>,
}

/// What a device's sensor source is doing, as of the health record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// Its state.
    pub st: SourceStatus,
    /// Why it is not `ok`, in a few words (the error, the summary mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The states of a sensor source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// Reading, and readings came since the last health record.
    Ok,
    /// Running, but no reading since the last health record: the sensor says nothing (an OTGW
    /// with no thermostat or boiler traffic, a feed that stopped).
    Silent,
    /// An OpenTherm Gateway in `PS=1` summary mode: it prints no frames, only a summary line when
    /// asked, with fewer values.
    Summary,
    /// Its serial port or TCP connection is lost; the agent is reopening it.
    Reconnecting,
    /// Its input ended (a replayed file, a closed pipe); it reads nothing more.
    Ended,
    /// It stopped on an error (`why` says which).
    Failed,
}

/// Why telemetry was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The outbox reached its disk budget and the oldest telemetry made room.
    DiskBudget,
    /// The sensor could not be read.
    SensorError,
    /// The device restarted and lost samples it had not yet stored.
    Restart,
}

/// The device dropped telemetry: the gateway knows data is missing rather than guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// The lowest sequence number dropped.
    pub from: u64,
    /// The highest sequence number dropped.
    pub to: u64,
    /// How many records were dropped: always `to - from + 1`, since every number in the range was
    /// dropped (a device reports a run with holes as several gaps).
    pub count: u64,
    /// Why.
    pub reason: GapReason,
}

/// Deserializes a list of at most [`MAX_BATCH_RECORDS`] items (a batch's records, an ack's
/// refusals), refusing more before allocating for them: a header claiming a billion items must not
/// reserve memory for them.
pub(crate) fn bounded<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH_RECORDS} items")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let claimed = seq.size_hint().unwrap_or(0);
            if claimed > MAX_BATCH_RECORDS {
                return Err(de::Error::invalid_length(claimed, &self));
            }
            let mut items = Vec::with_capacity(claimed);
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_BATCH_RECORDS {
                    return Err(de::Error::invalid_length(items.len() + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(Bounded(PhantomData))
}
