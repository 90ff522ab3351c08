//! Repairs: jobs on council homes' assets (boilers), raised by staff from an alert or an asset,
//! by a critical alert itself (when configured), or by a tenant's heating report; dispatched to
//! an operative's handheld as a `proto::Job` on its `down` topic, exactly once, and moved by the
//! operative's `JobUpdate`s.
//!
//! - [`model`]: a job, its states and history; a tenant's heating report.
//! - [`rules`]: pure functions over data and a time: the due time, choosing the operative, when
//!   an offline handheld loses a job, how an update moves a job, which alerts raise one, when a
//!   completed job whose alert has not cleared needs a look.
//! - [`desk`]: the rules over the storage seam ([`crate::storage::RepairStore`]), sending through
//!   the same [`crate::reports::JobSender`] as return jobs for missed bins.
//! - [`follow`]: operatives' updates from the ingest, alerts from the boiler desk, and the clock,
//!   to the desk.
//! - [`notes`]: a job's progress in plain English, for the tenants following it.
//! - [`open311_backend`]: tenants' heating reports through Open311.
//!
//! [`start`] wires it into a running gateway.

pub mod desk;
pub mod follow;
pub mod model;
pub mod notes;
pub mod open311_backend;
pub mod rules;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use proto::Priority;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use desk::{NewHeatingReport, RepairDesk, RepairError, RepairSettings};
pub use model::{
    AlertRef, Dispatch, Happened, HeatingReport, Linked, NewRepair, Origin, Repair, RepairStatus,
    Transition,
};
pub use open311_backend::HeatingOpen311;
pub use rules::{AssignRule, Operative, Presence};

use crate::boilers::BoilerDesk;
use crate::clock::SharedClock;
use crate::ingest::IngestEvent;
use crate::reports::JobSender;
use crate::storage::{RepairStore, Store, StoreError};

/// Repairs' settings (`[repairs]`), each with its documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairsConfig {
    /// The operatives and their handhelds (`[[repairs.operatives]]`: `device`, `name`,
    /// `patch`). Default: none (jobs wait, raised, until one is configured).
    pub operatives: Vec<Operative>,
    /// How a job's operative is chosen: `patch`, `least_loaded` or `named`. Default
    /// `least_loaded`.
    pub rule: AssignRule,
    /// Seconds a handheld may stay offline with a job it has not started (dispatched, accepted,
    /// en route) before the job goes to another operative not known to be offline (with none,
    /// it stays). Default 7200 (2 hours).
    pub offline_limit_s: u64,
    /// Whether a critical alert (a lockout or fault, pressure below the critical 0.5 bar) raises
    /// an emergency job by itself. Default false: staff raise jobs.
    pub auto_raise: bool,
    /// Seconds after a job is completed within which its alert should clear; past that, the job
    /// is flagged for attention. Default 86400 (24 hours).
    pub attention_after_s: u64,
    /// The priority of a job a tenant's report raises when no alert is open for the boiler.
    /// Default `urgent`.
    pub tenant_priority: Priority,
    /// Seconds between the desk's clock ticks (sending what is unsent, reassignment, the
    /// attention flag). Default 60.
    pub tick_s: u64,
}

impl Default for RepairsConfig {
    fn default() -> Self {
        Self {
            operatives: Vec::new(),
            rule: AssignRule::default(),
            offline_limit_s: 2 * 60 * 60,
            auto_raise: false,
            attention_after_s: 24 * 60 * 60,
            tenant_priority: Priority::Urgent,
            tick_s: 60,
        }
    }
}

impl RepairsConfig {
    /// The desk's settings.
    pub fn settings(&self) -> RepairSettings {
        let ms = |s: u64| {
            i64::try_from(s)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
        };
        RepairSettings {
            operatives: self.operatives.clone(),
            rule: self.rule,
            offline_limit_ms: ms(self.offline_limit_s),
            auto_raise: self.auto_raise,
            attention_ms: ms(self.attention_after_s),
            tenant_priority: self.tenant_priority,
        }
    }

    /// Why the settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.tick_s == 0 {
            return Some("repairs.tick_s must be at least 1".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for operative in &self.operatives {
            if let Err(e) = proto::DeviceId::check(&operative.device) {
                return Some(format!("repairs.operatives: {e}"));
            }
            if !seen.insert(operative.device.as_str()) {
                return Some(format!(
                    "repairs.operatives: device {} is listed twice",
                    operative.device
                ));
            }
        }
        None
    }
}

/// What [`start`] needs from the gateway.
pub struct Wiring<'a> {
    /// Where jobs and reports are kept.
    pub store: Arc<dyn RepairStore>,
    /// How jobs reach handhelds.
    pub sender: Arc<dyn JobSender>,
    /// The boilers: the register and their alerts.
    pub boilers: Arc<BoilerDesk>,
    /// The ingest's store: devices' presence and operatives' stored updates.
    pub records: Arc<dyn Store>,
    /// The ingest's events, subscribed here before the ingest starts.
    pub ingest_events: &'a broadcast::Sender<IngestEvent>,
    /// The gateway's clock.
    pub clock: SharedClock,
    /// Stops the follower.
    pub shutdown: CancellationToken,
}

/// Opens the repairs desk and spawns its follower on `tasks`.
pub fn start(
    config: &RepairsConfig,
    wiring: Wiring<'_>,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<RepairDesk>, StoreError> {
    let alerts = wiring.boilers.subscribe();
    let desk = Arc::new(RepairDesk::open(
        wiring.store,
        wiring.sender,
        wiring.boilers,
        config.settings(),
    )?);
    tasks.spawn(follow::run(
        desk.clone(),
        wiring.records,
        wiring.ingest_events.subscribe(),
        alerts,
        wiring.clock,
        Duration::from_secs(config.tick_s.max(1)),
        wiring.shutdown,
    ));
    Ok(desk)
}
