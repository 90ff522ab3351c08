//! The repairs desk: raises repair jobs (from staff, alerts and tenants), gives each to an
//! operative by the configured rule, sends it to their handheld exactly once, moves it by the
//! operative's updates, takes it back from a handheld that stays offline, and watches the alert
//! it answers after completion. It is the one place where jobs change, so every change is stored
//! before it is sent or announced.
//!
//! Exactly once: a job's dispatch is stored (device, revision, not yet sent) before the job is
//! handed to the MQTT client, and marked sent after. A restart sends what was stored but not
//! marked, and never what was marked; the handheld takes a resend of the same id and revision as
//! the same job, which covers a crash between handing it over and marking it.
//!
//! Everything here is synchronous and durable on return: HTTP handlers and the followers call it
//! from blocking threads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use proto::{DeviceId, JobCancel, Priority, RecordBody, TimestampMs};
use tokio::sync::broadcast;

use super::model::{
    AlertRef, Dispatch, Happened, HeatingReport, Linked, NewRepair, Origin, Repair, RepairStatus,
    MAX_LINKED_REPORTS,
};
use super::rules::{self, AssignRule, Operative, Presence};
use crate::boilers::{Alert, AlertEvent, BoilerDesk};
use crate::missed_bins::comment::add_comment;
use crate::missed_bins::{CommentAdded, Contact, NewComment};
use crate::reports::JobSender;
use crate::storage::{RepairStore, StoreError, StoredRecord};

/// Why the desk could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such asset on the register.
    #[error("no asset {0}")]
    UnknownAsset(String),
    /// No boiler on the register for this home.
    #[error("no boiler on the register for UPRN {0}")]
    UnknownHome(u64),
    /// No such open alert.
    #[error("no open alert {0}")]
    NoOpenAlert(String),
    /// A job for this alert is already open.
    #[error("repair {job} is already open for this alert")]
    AlreadyRaised {
        /// The open job.
        job: String,
    },
    /// No such job.
    #[error("no repair {0}")]
    NoSuchJob(String),
}

/// How the desk runs: the operatives and the rules' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairSettings {
    /// The operatives, in the order ties are broken.
    pub operatives: Vec<Operative>,
    /// How a job's operative is chosen.
    pub rule: AssignRule,
    /// How long a handheld may stay offline with a job not yet started before it goes to
    /// another operative (ms).
    pub offline_limit_ms: i64,
    /// Whether critical alerts raise a job by themselves.
    pub auto_raise: bool,
    /// How long after completion a job's alert may stay open before the job is flagged (ms).
    pub attention_ms: i64,
    /// The priority of a job a tenant's report raises when no alert is open.
    pub tenant_priority: Priority,
}

/// A tenant's heating report as it arrives (from Open311).
#[derive(Debug, Clone, PartialEq)]
pub struct NewHeatingReport {
    /// The home.
    pub uprn: u64,
    /// What the tenant wrote.
    pub description: Option<String>,
    /// How to reach them.
    pub contact: Option<Contact>,
}

struct DeskState {
    /// The jobs that can still change: open ones, and completed ones whose alert has not
    /// cleared yet. Finished ones are only in the store.
    live: BTreeMap<String, Repair>,
}

/// The repairs desk. Cheap to share behind an `Arc`.
pub struct RepairDesk {
    state: Mutex<DeskState>,
    store: Arc<dyn RepairStore>,
    sender: Arc<dyn JobSender>,
    boilers: Arc<BoilerDesk>,
    settings: RepairSettings,
    events: broadcast::Sender<Repair>,
}

/// Whether a job can still change.
fn is_live(job: &Repair) -> bool {
    job.status.is_open()
        || (job.status == RepairStatus::Completed
            && job.alert.is_some()
            && job.alert_cleared_at.is_none())
}

impl RepairDesk {
    /// A desk over `store`, with the jobs that can still change loaded from it. Jobs stored but
    /// not yet sent are sent at the next [`RepairDesk::tick`].
    pub fn open(
        store: Arc<dyn RepairStore>,
        sender: Arc<dyn JobSender>,
        boilers: Arc<BoilerDesk>,
        settings: RepairSettings,
    ) -> Result<Self, StoreError> {
        let live = store
            .jobs()?
            .into_iter()
            .filter(is_live)
            .map(|job| (job.id.clone(), job))
            .collect();
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            state: Mutex::new(DeskState { live }),
            store,
            sender,
            boilers,
            settings,
            events,
        })
    }

    fn lock(&self) -> MutexGuard<'_, DeskState> {
        // Every change is stored before the in-memory state moves on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Jobs as they change (the server-sent events).
    pub fn subscribe(&self) -> broadcast::Receiver<Repair> {
        self.events.subscribe()
    }

    /// Raises a job at `now`, gives it to an operative and sends it.
    pub fn raise(&self, new: NewRepair, now: TimestampMs) -> Result<Repair, RepairError> {
        let mut state = self.lock();
        let job = self.new_job(&mut state, new, now)?;
        self.commit(&mut state, job, &[], now)
    }

    /// Raises a job at `now` for the open alert `alert` (staff's, or the alert's own), unless
    /// one is open for it already.
    pub fn raise_for_alert(
        &self,
        alert: &AlertRef,
        origin: Origin,
        description: Option<String>,
        priority: Option<Priority>,
        named: Option<String>,
        now: TimestampMs,
    ) -> Result<Repair, RepairError> {
        let mut state = self.lock();
        let open = self.open_alert(alert)?;
        if let Some(job) = state
            .live
            .values()
            .find(|j| j.status.is_open() && j.alert.as_ref() == Some(alert))
        {
            return Err(RepairError::AlreadyRaised {
                job: job.id.clone(),
            });
        }
        let new = NewRepair {
            asset: alert.asset.clone(),
            description: description.unwrap_or_else(|| describe(&open)),
            priority: priority.unwrap_or_else(|| rules::priority_for(open.severity)),
            due: None,
            origin,
            alert: Some(alert.clone()),
            named,
        };
        let job = self.new_job(&mut state, new, now)?;
        self.commit(&mut state, job, &[], now)
    }

    /// The open alert `alert` names.
    fn open_alert(&self, alert: &AlertRef) -> Result<Alert, RepairError> {
        self.boilers
            .alerts(&alert.asset)
            .and_then(|alerts| alerts.get(alert.kind).cloned())
            .filter(|open| alert.names(open))
            .ok_or_else(|| RepairError::NoOpenAlert(alert.id()))
    }

    /// A new job, given to an operative (if one fits) but not yet stored or sent.
    fn new_job(
        &self,
        state: &mut DeskState,
        new: NewRepair,
        now: TimestampMs,
    ) -> Result<Repair, RepairError> {
        let asset = self
            .boilers
            .with_boilers(|b| b.register().get(&new.asset).cloned())
            .ok_or_else(|| RepairError::UnknownAsset(new.asset.clone()))?;
        let mut job = Repair {
            id: self.store.next_job_id()?,
            asset: asset.asset,
            uprn: asset.uprn,
            address: asset.address,
            description: new.description,
            priority: new.priority,
            due: new.due.unwrap_or_else(|| rules::due_by(new.priority, now)),
            raised_at: now,
            origin: new.origin,
            alert: new.alert,
            named: new.named,
            status: RepairStatus::Raised,
            rev: 0,
            dispatch: None,
            completed_at: None,
            alert_cleared_at: None,
            attention_at: None,
            tenant_reports: Vec::new(),
            applied: Vec::new(),
            history: Vec::new(),
        };
        job.transition(now, RepairStatus::Raised, Happened::Raised);
        self.assign(state, &mut job, &[], now);
        Ok(job)
    }

    /// The operative's device the rule gives `job` to (never one of `exclude`), by how many open
    /// jobs each has now.
    fn choose(&self, state: &DeskState, job: &Repair, exclude: &[&str]) -> Option<String> {
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for other in state.live.values().filter(|j| j.status.is_open()) {
            if let Some(device) = other.device() {
                *load.entry(device.to_owned()).or_default() += 1;
            }
        }
        rules::choose_operative(
            self.settings.rule,
            &self.settings.operatives,
            &load,
            &job.address,
            job.named.as_deref(),
            exclude,
        )
        .map(|operative| operative.device.clone())
    }

    /// Gives `job` to an operative by the rule (never `exclude`), at a new revision; or notes
    /// that it waits, once.
    fn assign(&self, state: &DeskState, job: &mut Repair, exclude: &[&str], now: TimestampMs) {
        match self.choose(state, job, exclude) {
            Some(device) => give(job, device, now),
            None => {
                job.dispatch = None;
                let waiting = job
                    .history
                    .last()
                    .is_some_and(|t| t.happened == Happened::Waiting);
                if !waiting {
                    job.transition(now, RepairStatus::Raised, Happened::Waiting);
                    tracing::info!(job = %job.id, "no operative for the repair yet; it waits");
                }
            }
        }
    }

    /// Stores `job` (with `reports`), then sends its dispatch if not yet sent and stores that,
    /// then announces it.
    fn commit(
        &self,
        state: &mut DeskState,
        mut job: Repair,
        reports: &[HeatingReport],
        now: TimestampMs,
    ) -> Result<Repair, RepairError> {
        self.store.save(std::slice::from_ref(&job), reports)?;
        self.send_pending(&mut job, now)?;
        if is_live(&job) {
            state.live.insert(job.id.clone(), job.clone());
        } else {
            state.live.remove(&job.id);
        }
        let _ = self.events.send(job.clone());
        Ok(job)
    }

    /// Sends `job`'s stored dispatch at `now` if it has not been sent, and stores that it has:
    /// true when it was sent now. A failure to hand it over leaves it for the next tick.
    fn send_pending(&self, job: &mut Repair, now: TimestampMs) -> Result<bool, StoreError> {
        let Some(dispatch) = job.dispatch.clone() else {
            return Ok(false);
        };
        if dispatch.sent_at.is_some() || !job.status.is_open() {
            return Ok(false);
        }
        let Ok(device) = DeviceId::new(dispatch.device.as_str()) else {
            tracing::warn!(job = %job.id, "the operative's device id is not a device id");
            return Ok(false);
        };
        if let Err(e) = self.sender.send_job(&device, job.wire_job(), now) {
            tracing::warn!(job = %job.id, %device, error = %e, "could not send the repair; will retry");
            return Ok(false);
        }
        if let Some(d) = job.dispatch.as_mut() {
            d.sent_at = Some(now);
        }
        self.store.save(std::slice::from_ref(job), &[])?;
        tracing::info!(job = %job.id, %device, rev = job.rev, "repair sent to the operative");
        Ok(true)
    }

    /// Takes in operatives' job updates from `device` (other records are ignored): each moves
    /// its job once, and only the job's current operative moves it.
    pub fn observe(
        &self,
        device: &DeviceId,
        records: &[StoredRecord],
        now: TimestampMs,
    ) -> Result<(), RepairError> {
        let mut state = self.lock();
        for stored in records {
            let RecordBody::JobUpdate(update) = &stored.record.body else {
                continue;
            };
            let Some(mut job) = state.live.get(&update.job).cloned() else {
                continue;
            };
            let seq = stored.record.seq;
            if job.has_applied(device.as_str(), seq) {
                continue;
            }
            if job.device() != Some(device.as_str()) {
                tracing::info!(job = %job.id, %device, "an update from a device the job is not with; ignored");
                continue;
            }
            let Some(status) = rules::apply_update(job.status, update.status) else {
                continue;
            };
            job.note_applied(device.as_str(), seq);
            job.transition(
                now,
                status,
                Happened::Update {
                    status: update.status,
                    note: update.note.clone(),
                    device: device.to_string(),
                    seq,
                },
            );
            if status == RepairStatus::Completed {
                job.completed_at = Some(now);
            }
            if status == RepairStatus::Raised {
                // The operative declined it: someone else.
                let declined: Vec<String> =
                    job.declined_by().into_iter().map(str::to_owned).collect();
                let declined: Vec<&str> = declined.iter().map(String::as_str).collect();
                self.assign(&state, &mut job, &declined, now);
            }
            self.commit(&mut state, job, &[], now)?;
        }
        Ok(())
    }

    /// An alert opened, escalated or closed: a critical one may raise a job by itself; one that
    /// closes after its job was completed is the job's proof.
    pub fn on_alert(&self, event: &AlertEvent, now: TimestampMs) -> Result<(), RepairError> {
        match event {
            AlertEvent::Opened(alert) | AlertEvent::Escalated(alert) => {
                let Some((priority, description)) =
                    rules::auto_raise(self.settings.auto_raise, alert)
                else {
                    return Ok(());
                };
                match self.raise_for_alert(
                    &AlertRef::of(alert),
                    Origin::Alert,
                    Some(description),
                    Some(priority),
                    None,
                    now,
                ) {
                    Ok(_)
                    | Err(RepairError::AlreadyRaised { .. } | RepairError::NoOpenAlert(_)) => {
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            AlertEvent::Closed(alert) => {
                let mut state = self.lock();
                let answered: Vec<Repair> = state
                    .live
                    .values()
                    .filter(|j| {
                        j.alert_cleared_at.is_none()
                            && j.alert.as_ref().is_some_and(|a| a.names(alert))
                    })
                    .cloned()
                    .collect();
                for mut job in answered {
                    // When the gateway learned of it, as completion is when it learned of that:
                    // the alert's own time is its last reading's, which a late batch can put
                    // before a completion that came first.
                    cleared(&mut job, now);
                    self.commit(&mut state, job, &[], now)?;
                }
                Ok(())
            }
        }
    }

    /// The clock: sends what is stored but unsent, gives waiting jobs to an operative, takes
    /// jobs from handhelds offline past the limit, and flags completed jobs whose alert has not
    /// cleared. `presence` is what the gateway knows of each device. Durable on return.
    pub fn tick(
        &self,
        now: TimestampMs,
        presence: &BTreeMap<String, Presence>,
    ) -> Result<(), RepairError> {
        let mut state = self.lock();
        let ids: Vec<String> = state.live.keys().cloned().collect();
        for id in ids {
            let Some(mut job) = state.live.get(&id).cloned() else {
                continue;
            };
            let before = job.clone();
            match &job.dispatch {
                None if job.status == RepairStatus::Raised => {
                    // Not back to whoever declined it: with no one else, it waits for staff.
                    let declined: Vec<String> =
                        job.declined_by().into_iter().map(str::to_owned).collect();
                    let declined: Vec<&str> = declined.iter().map(String::as_str).collect();
                    self.assign(&state, &mut job, &declined, now);
                }
                Some(dispatch) => {
                    let seen = presence.get(&dispatch.device).copied().unwrap_or_default();
                    let offline = rules::offline_for(seen, dispatch.at, now);
                    let from = dispatch.device.clone();
                    let overdue = offline.filter(|ms| {
                        rules::should_reassign(job.status, *ms, self.settings.offline_limit_ms)
                    });
                    // Only to someone else not known to be offline: with no one, the job stays
                    // where it will be seen soonest.
                    let mut unavailable: Vec<&str> = presence
                        .iter()
                        .filter(|(_, seen)| seen.online == Some(false))
                        .map(|(device, _)| device.as_str())
                        .collect();
                    unavailable.push(&from);
                    let declined: Vec<String> =
                        job.declined_by().into_iter().map(str::to_owned).collect();
                    unavailable.extend(declined.iter().map(String::as_str));
                    let next =
                        overdue.and_then(|ms| Some((ms, self.choose(&state, &job, &unavailable)?)));
                    if let Some((offline_ms, next)) = next {
                        self.withdraw(
                            &job,
                            &from,
                            now,
                            "given to another operative while this handheld was offline",
                        );
                        job.transition(
                            now,
                            RepairStatus::Raised,
                            Happened::Reassigned {
                                from: from.clone(),
                                offline_ms,
                            },
                        );
                        give(&mut job, next, now);
                    }
                }
                None => {}
            }
            let alert_open = job
                .alert
                .as_ref()
                .is_some_and(|alert| self.open_alert(alert).is_ok());
            // A close missed (the gateway was down when it happened) is caught here.
            if job.alert.is_some() && !alert_open && job.alert_cleared_at.is_none() {
                cleared(&mut job, now);
            }
            if let Some(after_ms) =
                rules::needs_attention(&job, alert_open, now, self.settings.attention_ms)
            {
                job.attention_at = Some(now);
                job.transition(
                    now,
                    RepairStatus::Completed,
                    Happened::NeedsAttention { after_ms },
                );
                tracing::warn!(job = %job.id, "a completed repair's alert has not cleared");
            }
            if job != before {
                self.commit(&mut state, job, &[], now)?;
            } else if self.send_pending(&mut job, now)? {
                // Stored but not sent before (a restart, or the client's queue full): sent now.
                state.live.insert(job.id.clone(), job.clone());
                let _ = self.events.send(job);
            }
        }
        Ok(())
    }

    /// Staff withdraw job `id` at `now`: its handheld is told, and it is done with. `None` when
    /// there is no such job; a job already finished is answered as it is.
    pub fn cancel(&self, id: &str, now: TimestampMs) -> Result<Option<Repair>, RepairError> {
        let mut state = self.lock();
        let found = match state.live.get(id) {
            Some(job) => Some(job.clone()),
            None => self.store.job(id)?,
        };
        let Some(mut job) = found else {
            return Ok(None);
        };
        if !job.status.is_open() {
            return Ok(Some(job));
        }
        if let Some(device) = job.device().map(str::to_owned) {
            self.withdraw(&job, &device, now, "withdrawn by staff");
        }
        job.transition(now, RepairStatus::Cancelled, Happened::Cancelled);
        self.commit(&mut state, job, &[], now).map(Some)
    }

    /// Tells the handheld a job was taken from that it no longer has it (it gets this when it
    /// comes back, from its session).
    fn withdraw(&self, job: &Repair, from: &str, now: TimestampMs, why: &str) {
        let Ok(device) = DeviceId::new(from) else {
            return;
        };
        let cancel = JobCancel {
            id: job.id.clone(),
            reason: Some(why.to_owned()),
        };
        if let Err(e) = self.sender.send_cancel(&device, cancel, now) {
            tracing::warn!(job = %job.id, %device, error = %e, "could not withdraw the repair");
        }
    }

    /// Files a tenant's heating report at `now`: linked to the job already open for the home's
    /// boiler, or to a job raised from its open alert, or to a job it raises itself. A second
    /// report for the same boiler links to the same job.
    pub fn file_heating_report(
        &self,
        new: NewHeatingReport,
        now: TimestampMs,
    ) -> Result<(HeatingReport, Repair), RepairError> {
        let mut state = self.lock();
        let asset = self
            .boilers
            .with_boilers(|b| b.register().iter().find(|a| a.uprn == new.uprn).cloned())
            .ok_or(RepairError::UnknownHome(new.uprn))?;
        let id = self.store.next_report_id()?;
        let open_alert = self
            .boilers
            .alerts(&asset.asset)
            .and_then(|alerts| alerts.open().max_by_key(|a| a.severity).cloned());
        let open_job = state
            .live
            .values()
            .filter(|j| j.asset == asset.asset && j.status.is_open())
            .min_by_key(|j| j.raised_at)
            .cloned();
        let (mut job, linked) = match (open_job, &open_alert) {
            (Some(job), _) => (job, Linked::OpenJob),
            (None, Some(alert)) => {
                let new_job = NewRepair {
                    asset: asset.asset.clone(),
                    description: describe(alert),
                    priority: rules::priority_for(alert.severity),
                    due: None,
                    origin: Origin::Tenant { report: id.clone() },
                    alert: Some(AlertRef::of(alert)),
                    named: None,
                };
                (self.new_job(&mut state, new_job, now)?, Linked::OpenAlert)
            }
            (None, None) => {
                let new_job = NewRepair {
                    asset: asset.asset.clone(),
                    description: new
                        .description
                        .clone()
                        .unwrap_or_else(|| "Tenant reports a heating problem".to_owned()),
                    priority: self.settings.tenant_priority,
                    due: None,
                    origin: Origin::Tenant { report: id.clone() },
                    alert: None,
                    named: None,
                };
                (self.new_job(&mut state, new_job, now)?, Linked::Raised)
            }
        };
        if job.tenant_reports.len() < MAX_LINKED_REPORTS {
            job.tenant_reports.push(id.clone());
        }
        let status = job.status;
        job.transition(now, status, Happened::TenantReport { report: id.clone() });
        let report = HeatingReport {
            id,
            uprn: new.uprn,
            asset: asset.asset,
            description: new.description,
            contact: new.contact,
            filed_at: now,
            job: job.id.clone(),
            linked,
            alert: open_alert.as_ref().map(AlertRef::of),
            comments: Vec::new(),
        };
        let job = self.commit(&mut state, job, std::slice::from_ref(&report), now)?;
        Ok((report, job))
    }

    /// When the oldest job that can still change was raised: operatives' updates since then
    /// are what a restart replays.
    pub fn replay_from(&self) -> Option<TimestampMs> {
        self.lock().live.values().map(|j| j.raised_at).min()
    }

    /// The job `id`.
    pub fn job(&self, id: &str) -> Result<Option<Repair>, RepairError> {
        if let Some(job) = self.lock().live.get(id) {
            return Ok(Some(job.clone()));
        }
        Ok(self.store.job(id)?)
    }

    /// Every job, in the order raised.
    pub fn jobs(&self) -> Result<Vec<Repair>, RepairError> {
        Ok(self.store.jobs()?)
    }

    /// The jobs for `asset` still open or watching their alert, in the order raised.
    pub fn live_for_asset(&self, asset: &str) -> Vec<Repair> {
        self.lock()
            .live
            .values()
            .filter(|j| j.asset == asset)
            .cloned()
            .collect()
    }

    /// Keeps a tenant's comment on heating report `id`, received at `now`, once per front
    /// end's id; `None` when there is no such report. The job does not move.
    pub fn comment(
        &self,
        id: &str,
        comment: NewComment,
        now: TimestampMs,
    ) -> Result<Option<CommentAdded>, RepairError> {
        // Under the lock, so that two sends of one comment at once keep it once.
        let _state = self.lock();
        let Some(mut report) = self.store.report(id)? else {
            return Ok(None);
        };
        let added = add_comment(&mut report.comments, &report.id, comment, now);
        if let CommentAdded::New(_) = &added {
            self.store.save(&[], std::slice::from_ref(&report))?;
        }
        Ok(Some(added))
    }

    /// The heating report `id`.
    pub fn report(&self, id: &str) -> Result<Option<HeatingReport>, RepairError> {
        Ok(self.store.report(id)?)
    }

    /// Every heating report, in the order filed.
    pub fn reports(&self) -> Result<Vec<HeatingReport>, RepairError> {
        Ok(self.store.reports()?)
    }
}

/// Gives `job` to `device` at `now`, at a new revision, to be sent.
fn give(job: &mut Repair, device: String, now: TimestampMs) {
    job.rev = job.rev.saturating_add(1);
    job.dispatch = Some(Dispatch {
        device: device.clone(),
        rev: job.rev,
        at: now,
        sent_at: None,
    });
    job.transition(
        now,
        RepairStatus::Dispatched,
        Happened::Dispatched { device },
    );
}

/// Notes on `job` that its alert was found cleared at `now`: after completion, that is the proof
/// the repair worked; before, it is only noted (the job is still to be done).
fn cleared(job: &mut Repair, now: TimestampMs) {
    job.alert_cleared_at = Some(now);
    let status = job.status;
    job.transition(now, status, Happened::AlertCleared);
}

/// What a job raised from `alert` says is wrong.
fn describe(alert: &Alert) -> String {
    let what = match alert.kind {
        crate::boilers::AlertKind::PressureLow => "Low system pressure",
        crate::boilers::AlertKind::PressureHigh => "High system pressure",
        crate::boilers::AlertKind::Fault => "Boiler fault or lockout",
        crate::boilers::AlertKind::Diagnostic => "Boiler asks for a service",
        crate::boilers::AlertKind::ShortCycling => "Boiler short cycling",
        crate::boilers::AlertKind::NotCondensing => "Boiler not condensing",
        crate::boilers::AlertKind::EfficiencyFalling => "Boiler efficiency falling",
        crate::boilers::AlertKind::Silent => "Boiler hub silent",
        crate::boilers::AlertKind::PressureForecast => "Pressure falling: loss forecast",
    };
    let evidence = alert
        .evidence
        .first()
        .map(|e| format!(" ({} {} {})", e.what, e.value, e.unit))
        .unwrap_or_default();
    format!("{what}{evidence}")
}
