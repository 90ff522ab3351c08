//! The report desk: files residents' reports against the crews' evidence, dispatches return jobs,
//! and closes reports when a crew confirms the bin emptied. It owns the missed-bin state and is
//! the one place where reports change, so that every change is stored, counted and announced.
//!
//! Everything here is synchronous and durable on return: HTTP handlers and the ingest follower call
//! it from blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::NaiveDate;
use proto::{BinStream, DeviceId, RecordBody, TimestampMs};
use serde::Serialize;
use tokio::sync::broadcast;

use super::dispatch::JobSender;
use crate::config::DispatchRule;
use crate::metrics::Metrics;
use crate::missed_bins::retention;
use crate::missed_bins::{
    CommentAdded, Confirmation, Contact, EvidenceRef, ImportReport, LatLon, MissedBins, NewComment,
    Report, ReportError, ReportRequest, ReportStatus, RoundProgress,
};
use crate::storage::reports::{import_properties, ImportOrStoreError, Inserted, ReportStore};
use crate::storage::{StoreError, StoredRecord};

/// Why the desk could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The rules could not decide (an unknown property, say).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The register's CSV could not be read at all.
    #[error(transparent)]
    Import(#[from] ImportOrStoreError),
}

/// A resident's report as it arrives (from Open311 or the staff API).
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    /// The property.
    pub uprn: u64,
    /// Which bin.
    pub stream: BinStream,
    /// The resident's words.
    pub description: Option<String>,
    /// How to reach them.
    pub contact: Option<Contact>,
}

/// A resident's report whose location named no property we collect from (a pin far from any):
/// kept for staff to place ([`ReportDesk::place`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewUnplaced {
    /// Which bin.
    pub stream: BinStream,
    /// Where the resident put the pin, if they did.
    pub pin: Option<LatLon>,
    /// The resident's words.
    pub description: Option<String>,
    /// How to reach them.
    pub contact: Option<Contact>,
}

/// What [`ReportDesk::place`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Placing {
    /// Placed and decided: the report as it now is.
    Placed(Report),
    /// The report already had a property; nothing changed.
    AlreadyPlaced(Report),
    /// There is no such report.
    NoSuchReport,
}

/// What the desk tells listeners (the server-sent events).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A report was filed or changed status.
    Report {
        /// The report's id.
        id: String,
        /// Its status now.
        status: ReportStatus,
        /// The property; none while the report waits for staff to place it.
        uprn: Option<u64>,
    },
    /// A crew recorded a collection on a round.
    Round {
        /// The round.
        round: String,
        /// The council's local day.
        date: NaiveDate,
        /// The property, when matched.
        uprn: Option<u64>,
        /// What the crew recorded.
        outcome: proto::Outcome,
    },
}

/// Settings the desk needs beyond the missed-bin rules.
#[derive(Debug, Clone, Default)]
pub struct DeskSettings {
    /// Which device takes a return job.
    pub dispatch: DispatchRule,
    /// Configured devices for a round's return jobs, by round.
    pub round_devices: BTreeMap<String, Vec<DeviceId>>,
    /// Clock skew (ms) beyond which a record's own time is corrected by its device's offset.
    pub max_clock_skew_ms: i64,
}

/// What the desk keeps in memory, behind one lock.
struct DeskState {
    missed: MissedBins,
    /// Open reports by property, to find the ones a confirmation closes.
    open_by_uprn: HashMap<u64, Vec<String>>,
    /// The device that last sent a crew record for each round, and when.
    round_device: HashMap<String, (DeviceId, TimestampMs)>,
}

/// The report desk. Cheap to share behind an `Arc`.
pub struct ReportDesk {
    state: Mutex<DeskState>,
    store: Arc<dyn ReportStore>,
    dispatcher: Arc<dyn JobSender>,
    settings: DeskSettings,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<DeskEvent>,
}

impl ReportDesk {
    /// A desk over `store`, with the register and open reports loaded from it.
    pub fn open(
        missed: MissedBins,
        store: Arc<dyn ReportStore>,
        dispatcher: Arc<dyn JobSender>,
        settings: DeskSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeskError> {
        let mut missed = missed;
        *missed.register_mut() = store.load_register()?;
        let mut open_by_uprn: HashMap<u64, Vec<String>> = HashMap::new();
        // Cases only: a linked report follows its case and is never settled on its own.
        let open_cases = store
            .all()?
            .into_iter()
            .filter(|report| report.is_open() && report.linked_to.is_none());
        for report in open_cases {
            // An unplaced report waits for staff, not for a crew.
            if let Some(uprn) = report.uprn {
                open_by_uprn.entry(uprn).or_default().push(report.id);
            }
        }
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            state: Mutex::new(DeskState {
                missed,
                open_by_uprn,
                round_device: HashMap::new(),
            }),
            store,
            dispatcher,
            settings,
            metrics,
            events,
        })
    }

    /// Follows report and round changes.
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, DeskState> {
        // Every change is stored before the in-memory state moves on, so a panic mid-change
        // leaves nothing the store does not also say.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Files a resident's report at `now`: refused, rejected with the crew's evidence, or
    /// accepted and dispatched. A second report of the same missed bin is a report of its own,
    /// linked to the first (the case): it is in the case's status and follows it from then on.
    pub fn file(&self, new: NewReport, now: TimestampMs) -> Result<Report, DeskError> {
        let mut state = self.lock();
        let request = ReportRequest {
            uprn: new.uprn,
            stream: new.stream,
        };
        let id = self.store.next_id()?;
        let mut report = state.missed.file_report(id, &request, now)?;
        report.description = new.description;
        report.contact = new.contact;
        match self.store.insert_new(&report)? {
            Inserted::New => {}
            Inserted::Linked { report, .. } => {
                Metrics::add(&self.metrics.report_duplicates, 1);
                self.announce(&report);
                return Ok(*report);
            }
            Inserted::Full(case) => {
                Metrics::add(&self.metrics.report_duplicates, 1);
                tracing::warn!(case = %case.id, "a case has as many linked reports as it takes");
                return Ok(*case);
            }
        }
        self.metrics.count_report_decision(report.status);
        if let (true, Some(uprn)) = (report.is_open(), report.uprn) {
            self.open_case(&mut state, &mut report, uprn, now)?;
        }
        self.announce(&report);
        Ok(report)
    }

    /// Files a report whose location named no property, at `now`: open, with no return job,
    /// for staff to place.
    pub fn file_unplaced(&self, new: NewUnplaced, now: TimestampMs) -> Result<Report, DeskError> {
        let state = self.lock();
        let reach_m = state.missed.matching().report_reach_m();
        let mut report = Report::unplaced(self.store.next_id()?, new.stream, new.pin, reach_m, now);
        report.description = new.description;
        report.contact = new.contact;
        self.store.insert_new(&report)?;
        tracing::info!(report = %report.id, "a report named no property; kept for staff to place");
        self.announce(&report);
        Ok(report)
    }

    /// Places unplaced report `id` on property `uprn` at `now` (staff found the address): it is
    /// decided there as if filed so, linked to the case if that bin is already reported, and an
    /// accepted one is dispatched.
    pub fn place(&self, id: &str, uprn: u64, now: TimestampMs) -> Result<Placing, DeskError> {
        let mut state = self.lock();
        let Some(mut report) = self.store.get(id)? else {
            return Ok(Placing::NoSuchReport);
        };
        if report.uprn.is_some() {
            return Ok(Placing::AlreadyPlaced(report));
        }
        let request = ReportRequest {
            uprn,
            stream: report.stream,
        };
        let decision = state.missed.decide(&request, now)?;
        report.place(uprn, decision, now);
        // Stored as a report just filed is: linked to the case if that bin is already reported,
        // so one case keeps one return job.
        let mut report = match self.store.insert_new(&report)? {
            Inserted::New => report,
            Inserted::Linked { report, .. } => {
                Metrics::add(&self.metrics.report_duplicates, 1);
                self.announce(&report);
                return Ok(Placing::Placed(*report));
            }
            Inserted::Full(_) => {
                self.store.save(&report)?;
                report
            }
        };
        if report.is_open() {
            self.open_case(&mut state, &mut report, uprn, now)?;
        }
        self.announce(&report);
        Ok(Placing::Placed(report))
    }

    /// Counts an open report among its property's open cases and sends its return job.
    fn open_case(
        &self,
        state: &mut DeskState,
        report: &mut Report,
        uprn: u64,
        now: TimestampMs,
    ) -> Result<(), DeskError> {
        state
            .open_by_uprn
            .entry(uprn)
            .or_default()
            .push(report.id.clone());
        self.try_dispatch(state, report, now)
    }

    /// Sends an open report's return job to a device on its round, if one is known; the report
    /// then moves to `in_progress`. Without a device it stays open until one appears.
    fn try_dispatch(
        &self,
        state: &mut DeskState,
        report: &mut Report,
        now: TimestampMs,
    ) -> Result<(), DeskError> {
        let Some(round) = report
            .uprn
            .and_then(|uprn| state.missed.register().get(uprn))
            .map(|p| p.round.clone())
        else {
            return Ok(());
        };
        let configured = || {
            self.settings
                .round_devices
                .get(&round)
                .and_then(|devices| devices.first().cloned())
        };
        let device = match self.settings.dispatch {
            DispatchRule::LastOnRound => state
                .round_device
                .get(&round)
                .map(|(device, _)| device.clone())
                .or_else(configured),
            DispatchRule::Configured => configured(),
        };
        let Some(device) = device else {
            tracing::info!(report = %report.id, %round, "no device known for the round yet");
            return Ok(());
        };
        let job_id = format!("RJ-{}", report.id);
        let job = state.missed.return_job(report, job_id.clone(), now)?;
        let due = job.due;
        if let Err(e) = self.dispatcher.send_job(&device, job, now) {
            tracing::warn!(report = %report.id, %device, error = %e, "could not dispatch");
            return Ok(());
        }
        if report.dispatch(job_id, Some(due), now).is_ok() {
            self.save_case(report)?;
            Metrics::add(&self.metrics.jobs_dispatched, 1);
        }
        Ok(())
    }

    /// Stores `case` after its latest transition, with every report linked to it taking the same
    /// transition, all in one write; announces the linked ones (the caller announces the case).
    fn save_case(&self, case: &Report) -> Result<(), DeskError> {
        let Some(latest) = case.history.last() else {
            return Ok(());
        };
        let mut changed = vec![case.clone()];
        for id in &case.linked {
            if let Some(mut linked) = self.store.get(id)? {
                linked.follow(latest);
                changed.push(linked);
            }
        }
        self.store.save_all(&changed)?;
        for linked in &changed[1..] {
            self.announce(linked);
        }
        Ok(())
    }

    /// Dispatches every open report on `round` that has no job yet.
    fn dispatch_waiting(
        &self,
        state: &mut DeskState,
        round: &str,
        now: TimestampMs,
    ) -> Result<(), DeskError> {
        let waiting: Vec<String> = state
            .open_by_uprn
            .iter()
            .filter(|(uprn, _)| {
                state
                    .missed
                    .register()
                    .get(**uprn)
                    .is_some_and(|p| p.round == round)
            })
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        for id in waiting {
            if let Some(mut report) = self.store.get(&id)? {
                if report.status == ReportStatus::Open && report.job_id.is_none() {
                    self.try_dispatch(state, &mut report, now)?;
                    self.announce(&report);
                }
            }
        }
        Ok(())
    }

    /// Takes in crew records a device sent (collections and round events; others are ignored):
    /// records them as evidence, closes the reports they settle, and dispatches reports waiting
    /// for a device on their round. Observing a record twice changes nothing.
    pub fn observe(
        &self,
        device: &DeviceId,
        records: &[StoredRecord],
        now: TimestampMs,
    ) -> Result<(), DeskError> {
        let mut state = self.lock();
        for stored in records {
            let ts = self.evidence_time(stored);
            let evidence = EvidenceRef::record(device.as_str(), stored.record.seq);
            match &stored.record.body {
                RecordBody::Collection(collection) => {
                    let observed = state.missed.observe_collection(evidence, ts, collection);
                    if !observed.fresh {
                        continue;
                    }
                    let fresh_device = note_round_device(&mut state, &collection.round, device, ts);
                    let confirmation = observed.confirmation;
                    self.close_settled(&mut state, &confirmation, now)?;
                    let _ = self.events.send(DeskEvent::Round {
                        round: collection.round.clone(),
                        date: state.missed.calendar().local_date(ts),
                        uprn: confirmation.uprn(),
                        outcome: collection.outcome,
                    });
                    if fresh_device {
                        self.dispatch_waiting(&mut state, &collection.round, now)?;
                    }
                }
                RecordBody::RoundEvent(event) => {
                    let fresh = state.missed.observe_round_event(evidence, ts, event);
                    if fresh && note_round_device(&mut state, &event.round, device, ts) {
                        self.dispatch_waiting(&mut state, &event.round, now)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The time to judge a crew record by: as the gateway placed it when storing it
    /// ([`crate::record_time`]: by its boot's clock anchor, or by the batch's offset). A record
    /// stored before placement existed gets the batch-offset rule here, as it did then.
    fn evidence_time(&self, stored: &StoredRecord) -> TimestampMs {
        if let Some(placed) = stored.placed {
            return placed.at;
        }
        let offset = stored.received.saturating_sub(stored.sent);
        if offset.saturating_abs() > self.settings.max_clock_skew_ms {
            stored.record.ts.saturating_add(offset)
        } else {
            stored.record.ts
        }
    }

    /// Closes the open reports that `confirmation` settles: its return job, or that property and
    /// bin emptied after the report.
    fn close_settled(
        &self,
        state: &mut DeskState,
        confirmation: &Confirmation,
        now: TimestampMs,
    ) -> Result<(), DeskError> {
        let mut candidates: Vec<String> = confirmation
            .uprn()
            .and_then(|uprn| state.open_by_uprn.get(&uprn).cloned())
            .unwrap_or_default();
        if let Some(job) = &confirmation.job {
            if let Some(report) = self.store.by_job(job)? {
                candidates.push(report.id);
            }
        }
        candidates.sort();
        candidates.dedup();
        for id in candidates {
            let Some(mut report) = self.store.get(&id)? else {
                continue;
            };
            if report.linked_to.is_some() {
                continue;
            }
            if report.should_close(confirmation) && report.close(confirmation, now).is_ok() {
                self.save_case(&report)?;
                if let Some(ids) = report.uprn.and_then(|u| state.open_by_uprn.get_mut(&u)) {
                    ids.retain(|open| *open != report.id);
                }
                Metrics::add(&self.metrics.reports_closed, 1);
                self.announce(&report);
            } else if report.return_failed_by(confirmation)
                && report.return_not_completed(confirmation, now).is_ok()
            {
                // Not open any more, but still found by its job: a crew going back on the same
                // job and emptying the bin closes it.
                self.save_case(&report)?;
                if let Some(ids) = report.uprn.and_then(|u| state.open_by_uprn.get_mut(&u)) {
                    ids.retain(|open| *open != report.id);
                }
                self.announce(&report);
            }
        }
        Ok(())
    }

    fn announce(&self, report: &Report) {
        let _ = self.events.send(DeskEvent::Report {
            id: report.id.clone(),
            status: report.status,
            uprn: report.uprn,
        });
    }

    /// Dispatches open reports still without a job, on every round (a periodic sweep: a device
    /// may have been unreachable when they were filed).
    pub fn dispatch_all_waiting(&self, now: TimestampMs) -> Result<(), DeskError> {
        let mut state = self.lock();
        let rounds: Vec<String> = state.round_device.keys().cloned().collect();
        let configured = self.settings.round_devices.keys().cloned();
        let mut all: Vec<String> = rounds.into_iter().chain(configured).collect();
        all.sort();
        all.dedup();
        for round in all {
            self.dispatch_waiting(&mut state, &round, now)?;
        }
        Ok(())
    }

    /// Imports properties from CSV into the register and stores them; bad rows are reported.
    pub fn import_properties(&self, csv: impl Read) -> Result<ImportReport, DeskError> {
        let mut state = self.lock();
        Ok(import_properties(
            self.store.as_ref(),
            state.missed.register_mut(),
            csv,
        )?)
    }

    /// Keeps a resident's comment on report `id`, received at `now`: `None` when there is no
    /// such report. Stored only when new; the report's status does not change.
    pub fn comment(
        &self,
        id: &str,
        comment: NewComment,
        now: TimestampMs,
    ) -> Result<Option<CommentAdded>, DeskError> {
        // Under the lock, so that two sends of one comment at once keep it once.
        let _state = self.lock();
        let Some(mut report) = self.store.get(id)? else {
            return Ok(None);
        };
        let added = report.add_comment(comment, now);
        if let CommentAdded::New(_) = &added {
            self.store.save(&report)?;
        }
        Ok(Some(added))
    }

    /// The report `id`.
    pub fn report(&self, id: &str) -> Result<Option<Report>, DeskError> {
        Ok(self.store.get(id)?)
    }

    /// Takes the resident's personal data out of every report closed `retention_ms` or more
    /// before `now` ([`crate::missed_bins::retention`]), in one write; says how many. Under the
    /// desk's lock, so no change to a report made meanwhile is lost.
    pub fn purge_residents(&self, now: TimestampMs, retention_ms: i64) -> Result<usize, DeskError> {
        let _state = self.lock();
        let mut due: Vec<Report> = self
            .store
            .all()?
            .into_iter()
            .filter(|report| retention::purge_due(report, now, retention_ms))
            .collect();
        for report in &mut due {
            report.forget_resident(now);
        }
        if !due.is_empty() {
            self.store.save_all(&due)?;
            Metrics::add(&self.metrics.reports_purged, due.len() as u64);
            tracing::info!(
                reports = due.len(),
                "purged residents' personal data from closed reports"
            );
        }
        Ok(due.len())
    }

    /// Reports filed at or after `since`.
    pub fn reports_since(&self, since: TimestampMs) -> Result<Vec<Report>, DeskError> {
        Ok(self.store.filed_since(since)?)
    }

    /// Runs `f` with the missed-bin state (register, calendar, evidence) for a read.
    pub fn with_missed<T>(&self, f: impl FnOnce(&MissedBins) -> T) -> T {
        f(&self.lock().missed)
    }

    /// A round's progress on a local day.
    pub fn round_progress(&self, round: &str, date: NaiveDate) -> RoundProgress {
        self.lock().missed.round_progress(round, date)
    }

    /// A report's history as plain-English notes, oldest first.
    pub fn status_notes(&self, report: &Report) -> Vec<String> {
        report.status_notes(self.lock().missed.calendar())
    }
}

/// Remembers `device` as the latest on `round`; true when it was not the latest before (a new
/// device, which may take waiting return jobs).
fn note_round_device(
    state: &mut DeskState,
    round: &str,
    device: &DeviceId,
    ts: TimestampMs,
) -> bool {
    match state.round_device.get_mut(round) {
        Some((known, at)) if known == device => {
            *at = (*at).max(ts);
            false
        }
        // An older record from another device (a backlog draining): keep the latest.
        Some((_, at)) if *at > ts => false,
        _ => {
            state
                .round_device
                .insert(round.to_owned(), (device.clone(), ts));
            true
        }
    }
}
