//! The repairs desk against a real (temporary) store and boiler desk: jobs sent exactly once
//! across restarts, moved by operatives' updates once each, taken from a handheld offline too
//! long, closing their alert's loop, and tenants' reports linked to the job for their boiler.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proto::{
    DeviceId, Job, JobCancel, JobStatus, JobUpdate, Priority, Record, RecordBody, Telemetry,
    TimestampMs,
};

use super::desk::{NewHeatingReport, RepairDesk, RepairSettings};
use super::model::{Happened, Linked, NewRepair, Origin, RepairStatus};
use super::rules::{AssignRule, Operative, Presence};
use crate::boilers::follow::FeedBoilers;
use crate::boilers::{AlertEvent, AlertKind, BoilerDesk, BoilerDeskSettings, BoilersConfig};
use crate::repairs::AlertRef;
use crate::reports::{DispatchError, JobSender};
use crate::storage::{IncomingBatch, Storage, Store, StoreSettings, StoredRecord};

/// Tuesday 24 November 2026, 10:00 UTC.
const T0: TimestampMs = 1_795_514_400_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

const REGISTER: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham UB10 8BE\",Worcester Bosch,Greenstar 30i,30,2019-03-14,no,no,hub-0001
HIL-B-0002,100021445103,\"6 Swakeleys Road, Ickenham UB10 8BE\",Vaillant,ecoTEC plus 832,32,,no,no,hub-0002
";

/// Records what it is handed; refuses everything while `down` is set.
#[derive(Default)]
struct Recorder {
    jobs: Mutex<Vec<(String, Job)>>,
    cancels: Mutex<Vec<(String, String)>>,
    down: std::sync::atomic::AtomicBool,
}

impl Recorder {
    fn jobs(&self) -> Vec<(String, String, u32)> {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .map(|(d, j)| (d.clone(), j.id.clone(), j.rev))
            .collect()
    }
}

impl JobSender for Recorder {
    fn send_job(
        &self,
        device: &DeviceId,
        job: Job,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(DispatchError::Encode(proto::EncodeError::TooLarge {
                size: 0,
                max: 0,
            }));
        }
        self.jobs.lock().unwrap().push((device.to_string(), job));
        Ok(())
    }

    fn send_cancel(
        &self,
        device: &DeviceId,
        cancel: JobCancel,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        self.cancels
            .lock()
            .unwrap()
            .push((device.to_string(), cancel.id));
        Ok(())
    }
}

fn settings() -> RepairSettings {
    RepairSettings {
        operatives: vec![
            Operative {
                device: "hh-1".into(),
                name: "Ada".into(),
                patch: vec!["UB10".into()],
            },
            Operative {
                device: "hh-2".into(),
                name: "Grace".into(),
                patch: Vec::new(),
            },
        ],
        rule: AssignRule::LeastLoaded,
        offline_limit_ms: 2 * HOUR,
        auto_raise: false,
        attention_ms: 24 * HOUR,
        tenant_priority: Priority::Urgent,
    }
}

struct Site {
    repairs: RepairDesk,
    boilers: Arc<BoilerDesk>,
    records: Arc<dyn Store>,
}

fn open(dir: &std::path::Path, sender: Arc<Recorder>, settings: RepairSettings) -> Site {
    let storage = Storage::open_embedded(dir, StoreSettings::default()).unwrap();
    let boilers = Arc::new(
        BoilerDesk::open(
            BoilersConfig::default(),
            storage.boilers.clone(),
            BoilerDeskSettings {
                grace_ms: 5 * MIN,
                raw_retention_ms: 90 * 24 * HOUR,
                tz: chrono_tz::Europe::London,
            },
        )
        .unwrap(),
    );
    if boilers.with_boilers(|b| b.register().is_empty()) {
        boilers.import_assets(REGISTER.as_bytes()).unwrap();
    }
    let records: Arc<dyn Store> =
        Arc::new(FeedBoilers::new(storage.ingest.clone(), boilers.clone()));
    let repairs =
        RepairDesk::open(storage.repairs.clone(), sender, boilers.clone(), settings).unwrap();
    Site {
        repairs,
        boilers,
        records,
    }
}

fn staff_job(asset: &str) -> NewRepair {
    NewRepair {
        asset: asset.into(),
        description: "No hot water".into(),
        priority: Priority::Urgent,
        due: None,
        origin: Origin::Staff {
            name: "amira".into(),
        },
        alert: None,
        named: None,
    }
}

fn update(seq: u64, job: &str, status: JobStatus) -> StoredRecord {
    StoredRecord {
        received: T0,
        sent: T0,
        record: Record {
            seq,
            ts: T0,
            body: RecordBody::JobUpdate(JobUpdate {
                job: job.into(),
                status,
                pos: None,
                note: None,
            }),
            boot: None,
            mono: None,
        },
        placed: None,
    }
}

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

/// The hub's samples at `bar` for minutes `minutes` after `T0`.
fn samples(minutes: std::ops::Range<i64>, bar: f32) -> IncomingBatch {
    let received = T0 + minutes.end * MIN;
    IncomingBatch {
        device: dev("hub-0001"),
        topic: "fieldsync/v1/hub-0001/up".into(),
        payload: bytes::Bytes::new(),
        received,
        sent: received,
        boot: None,
        mono: None,
        records: minutes
            .map(|m| Record {
                seq: m as u64 + 1,
                ts: T0 + m * MIN,
                body: RecordBody::Telemetry(Telemetry {
                    asset: "HIL-B-0001".into(),
                    bar: Some(bar),
                    ret: Some(45.0),
                    ..Telemetry::default()
                }),
                boot: None,
                mono: None,
            })
            .collect(),
        refused: Vec::new(),
    }
}

fn online(devices: &[&str]) -> BTreeMap<String, Presence> {
    devices
        .iter()
        .map(|d| {
            let seen = Presence {
                online: Some(true),
                last_seen: Some(T0),
            };
            ((*d).to_owned(), seen)
        })
        .collect()
}

#[test]
fn a_job_is_sent_once_and_a_restart_neither_resends_it_nor_loses_an_unsent_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(Recorder::default());
    let (sent_id, unsent_id) = {
        let site = open(dir.path(), first.clone(), settings());
        let job = site.repairs.raise(staff_job("HIL-B-0001"), T0).unwrap();
        assert_eq!(job.status, RepairStatus::Dispatched);
        assert!(job.dispatch.as_ref().unwrap().sent_at.is_some());
        // The broker's client will not take the next one: stored, not sent.
        first.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let unsent = site.repairs.raise(staff_job("HIL-B-0002"), T0).unwrap();
        assert_eq!(unsent.dispatch.as_ref().unwrap().sent_at, None);
        (job.id, unsent.id)
    };
    assert_eq!(first.jobs(), vec![("hh-1".into(), sent_id.clone(), 1)]);

    let second = Arc::new(Recorder::default());
    let site = open(dir.path(), second.clone(), settings());
    site.repairs
        .tick(T0 + MIN, &online(&["hh-1", "hh-2"]))
        .unwrap();
    site.repairs
        .tick(T0 + 2 * MIN, &online(&["hh-1", "hh-2"]))
        .unwrap();
    // Least loaded: the second job went to the other operative, and only it is sent now.
    assert_eq!(second.jobs(), vec![("hh-2".into(), unsent_id.clone(), 1)]);
    let job = site.repairs.job(&unsent_id).unwrap().unwrap();
    assert!(job.dispatch.unwrap().sent_at.is_some());
}

#[test]
fn operatives_updates_move_a_job_once_each_and_only_from_its_handheld() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender, settings());
    let job = site.repairs.raise(staff_job("HIL-B-0001"), T0).unwrap();
    let hh1 = dev("hh-1");
    let updates = [
        update(1, &job.id, JobStatus::Accepted),
        update(2, &job.id, JobStatus::EnRoute),
        update(3, &job.id, JobStatus::Arrived),
        update(4, &job.id, JobStatus::PartsNeeded),
    ];
    site.repairs.observe(&hh1, &updates, T0 + MIN).unwrap();
    // Replayed after a restart, say: nothing changes.
    site.repairs.observe(&hh1, &updates, T0 + 2 * MIN).unwrap();
    // Another handheld's word does not move it.
    site.repairs
        .observe(
            &dev("hh-2"),
            &[update(9, &job.id, JobStatus::Completed)],
            T0 + 3 * MIN,
        )
        .unwrap();
    let now = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!(now.status, RepairStatus::PartsNeeded);
    let statuses: Vec<RepairStatus> = now.history.iter().map(|t| t.status).collect();
    use RepairStatus as S;
    assert_eq!(
        statuses,
        vec![
            S::Raised,
            S::Dispatched,
            S::Accepted,
            S::EnRoute,
            S::Arrived,
            S::PartsNeeded
        ]
    );
    site.repairs
        .observe(
            &hh1,
            &[update(5, &job.id, JobStatus::Completed)],
            T0 + 4 * MIN,
        )
        .unwrap();
    let done = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!(done.status, RepairStatus::Completed);
    assert_eq!(done.completed_at, Some(T0 + 4 * MIN));
    // Finished and answering no alert: no longer live, still in the store.
    assert!(site.repairs.live_for_asset("HIL-B-0001").is_empty());
}

#[test]
fn a_job_on_a_handheld_offline_past_the_limit_goes_to_another_operative() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender.clone(), settings());
    let job = site.repairs.raise(staff_job("HIL-B-0001"), T0).unwrap();
    let mut presence = online(&["hh-2"]);
    presence.insert(
        "hh-1".into(),
        Presence {
            online: Some(false),
            last_seen: Some(T0 - HOUR),
        },
    );
    site.repairs.tick(T0 + HOUR, &presence).unwrap();
    assert_eq!(
        site.repairs.job(&job.id).unwrap().unwrap().device(),
        Some("hh-1")
    );
    site.repairs.tick(T0 + 2 * HOUR, &presence).unwrap();
    let moved = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!(moved.device(), Some("hh-2"));
    assert_eq!(moved.rev, 2);
    assert!(moved
        .history
        .iter()
        .any(|t| matches!(&t.happened, Happened::Reassigned { from, .. } if from == "hh-1")));
    assert_eq!(
        sender.jobs(),
        vec![
            ("hh-1".into(), job.id.clone(), 1),
            ("hh-2".into(), job.id.clone(), 2)
        ]
    );
    assert_eq!(
        *sender.cancels.lock().unwrap(),
        vec![("hh-1".into(), job.id.clone())]
    );
    // Offline too, with no one else to take it: it stays where it is.
    presence.insert(
        "hh-2".into(),
        Presence {
            online: Some(false),
            last_seen: Some(T0),
        },
    );
    site.repairs.tick(T0 + 5 * HOUR, &presence).unwrap();
    let kept = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!((kept.device(), kept.rev), (Some("hh-2"), 2));
    // Staff withdraw it: its handheld is told.
    let cancelled = site
        .repairs
        .cancel(&job.id, T0 + 6 * HOUR)
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, RepairStatus::Cancelled);
    assert_eq!(sender.cancels.lock().unwrap().last().unwrap().0, "hh-2");
    assert_eq!(site.repairs.cancel("RP-999", T0).unwrap(), None);
    // The old handheld's late word no longer moves it.
    site.repairs
        .observe(
            &dev("hh-1"),
            &[update(1, &job.id, JobStatus::Completed)],
            T0 + 3 * HOUR,
        )
        .unwrap();
    assert_eq!(
        site.repairs.job(&job.id).unwrap().unwrap().status,
        RepairStatus::Cancelled
    );
}

fn open_low_pressure(site: &Site) -> crate::boilers::Alert {
    site.records.ingest(&[samples(0..5, 0.4)]).unwrap();
    site.boilers
        .alerts("HIL-B-0001")
        .unwrap()
        .get(AlertKind::PressureLow)
        .unwrap()
        .clone()
}

#[test]
fn an_alert_that_clears_after_its_repair_is_completed_closes_with_the_job_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender, settings());
    let alert = open_low_pressure(&site);
    let job = site
        .repairs
        .raise_for_alert(
            &AlertRef::of(&alert),
            Origin::Alert,
            None,
            None,
            None,
            T0 + 6 * MIN,
        )
        .unwrap();
    assert_eq!(job.priority, Priority::Emergency);
    assert!(
        job.description.starts_with("Low system pressure"),
        "{}",
        job.description
    );
    // One job for one alert.
    assert!(site
        .repairs
        .raise_for_alert(&AlertRef::of(&alert), Origin::Alert, None, None, None, T0)
        .is_err());
    site.repairs
        .observe(
            &dev("hh-1"),
            &[update(1, &job.id, JobStatus::Completed)],
            T0 + 10 * MIN,
        )
        .unwrap();
    // Refilled: the alert closes, and the desk hears of it.
    let mut alerts = site.boilers.subscribe();
    site.records.ingest(&[samples(10..20, 1.5)]).unwrap();
    let closed = std::iter::from_fn(|| alerts.try_recv().ok())
        .find(|e| matches!(e, AlertEvent::Closed(_)))
        .unwrap();
    site.repairs.on_alert(&closed, T0 + 20 * MIN).unwrap();
    let done = site.repairs.job(&job.id).unwrap().unwrap();
    assert!(done.alert_cleared_at.unwrap() >= done.completed_at.unwrap());
    assert!(done
        .history
        .iter()
        .any(|t| t.happened == Happened::AlertCleared));
    assert!(site.repairs.live_for_asset("HIL-B-0001").is_empty());
}

#[test]
fn a_completed_repair_whose_alert_stays_open_is_flagged_once_past_the_attention_time() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender, settings());
    let alert = open_low_pressure(&site);
    let job = site
        .repairs
        .raise_for_alert(&AlertRef::of(&alert), Origin::Alert, None, None, None, T0)
        .unwrap();
    site.repairs
        .observe(
            &dev("hh-1"),
            &[update(1, &job.id, JobStatus::Completed)],
            T0 + HOUR,
        )
        .unwrap();
    let presence = online(&["hh-1", "hh-2"]);
    site.repairs.tick(T0 + 2 * HOUR, &presence).unwrap();
    assert_eq!(
        site.repairs.job(&job.id).unwrap().unwrap().attention_at,
        None
    );
    site.repairs.tick(T0 + 25 * HOUR, &presence).unwrap();
    site.repairs.tick(T0 + 26 * HOUR, &presence).unwrap();
    let flagged = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!(flagged.attention_at, Some(T0 + 25 * HOUR));
    let flags = flagged
        .history
        .iter()
        .filter(|t| matches!(t.happened, Happened::NeedsAttention { .. }))
        .count();
    assert_eq!(flags, 1);
}

#[test]
fn a_critical_alert_raises_a_job_by_itself_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender.clone(), settings());
    let alert = open_low_pressure(&site);
    assert_eq!(alert.severity, crate::boilers::Severity::Critical);
    site.repairs
        .on_alert(&AlertEvent::Opened(alert.clone()), T0)
        .unwrap();
    assert!(site.repairs.jobs().unwrap().is_empty());
    drop(site);

    let site = open(
        dir.path(),
        sender,
        RepairSettings {
            auto_raise: true,
            ..settings()
        },
    );
    site.repairs
        .on_alert(&AlertEvent::Opened(alert.clone()), T0)
        .unwrap();
    site.repairs
        .on_alert(&AlertEvent::Escalated(alert), T0)
        .unwrap();
    let jobs = site.repairs.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].origin, Origin::Alert);
    assert_eq!(jobs[0].priority, Priority::Emergency);
}

#[test]
fn tenants_reports_link_to_the_open_job_or_alert_or_raise_one_and_a_second_links_to_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender.clone(), settings());
    let report = |uprn| NewHeatingReport {
        uprn,
        description: Some("No heating since last night".into()),
        contact: None,
    };
    // Nothing open on B-0002: the report raises the job, and a second links to it.
    let (first, job) = site
        .repairs
        .file_heating_report(report(100_021_445_103), T0)
        .unwrap();
    assert_eq!(first.linked, Linked::Raised);
    assert_eq!(
        job.origin,
        Origin::Tenant {
            report: first.id.clone()
        }
    );
    let (second, same) = site
        .repairs
        .file_heating_report(report(100_021_445_103), T0 + MIN)
        .unwrap();
    assert_eq!((second.linked, &same.id), (Linked::OpenJob, &job.id));
    assert_eq!(
        same.tenant_reports,
        vec![first.id.clone(), second.id.clone()]
    );
    assert_eq!(sender.jobs().len(), 1, "one job, sent once");

    // An alert open on B-0001: the report raises the job from it.
    open_low_pressure(&site);
    let (third, from_alert) = site
        .repairs
        .file_heating_report(report(100_021_445_102), T0)
        .unwrap();
    assert_eq!(third.linked, Linked::OpenAlert);
    assert!(from_alert.alert.is_some());
    assert_eq!(third.alert, from_alert.alert);
    // No boiler there.
    assert!(site.repairs.file_heating_report(report(1), T0).is_err());
    assert_eq!(site.repairs.reports().unwrap().len(), 3);
}

mod open311 {
    use super::*;
    use crate::clock::{ClockTime, FixedClock};
    use crate::open311::{
        Contact, Location, NewRequestUpdate, NewServiceRequest, Open311Backend, Open311Status,
        RequestFilter, Subject, UpdateSearch, UpdateStatus,
    };
    use crate::repairs::HeatingOpen311;

    fn heating_report(uprn: u64) -> NewServiceRequest {
        NewServiceRequest {
            subject: Subject::Heating,
            location: Location::uprn(uprn),
            description: Some("Radiators cold".into()),
            contact: Contact {
                email: Some("tenant@example.org".into()),
                ..Contact::default()
            },
            media_urls: Vec::new(),
        }
    }

    #[test]
    fn a_tenants_report_links_to_the_open_alerts_job_and_its_notes_follow_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let sender = Arc::new(Recorder::default());
        let site = open(dir.path(), sender.clone(), settings());
        let alert = open_low_pressure(&site);
        let repairs = Arc::new(site.repairs);
        let job = repairs
            .raise_for_alert(&AlertRef::of(&alert), Origin::Alert, None, None, None, T0)
            .unwrap();
        let clock = Arc::new(FixedClock::default());
        clock.set(chrono::DateTime::from_timestamp_millis(T0 + MIN).unwrap());
        let backend =
            HeatingOpen311::new(repairs.clone(), clock.clone(), chrono_tz::Europe::London);

        let first = backend.create(heating_report(100_021_445_102)).unwrap();
        let second = backend.create(heating_report(100_021_445_102)).unwrap();
        assert_ne!(first.id, second.id);
        let linked = repairs.job(&job.id).unwrap().unwrap();
        assert_eq!(
            linked.tenant_reports,
            vec![first.id.clone(), second.id.clone()]
        );
        assert_eq!(sender.jobs().len(), 1, "the job was sent once");

        let shown = backend.get(&first.id).unwrap().unwrap();
        assert_eq!(shown.status, Open311Status::Open);
        assert_eq!(shown.extended_status, UpdateStatus::ActionScheduled);
        assert!(
            shown.status_notes.starts_with(&format!(
                "A repair for the boiler at your home was already booked (job {})",
                job.id
            )),
            "{}",
            shown.status_notes
        );
        assert_eq!(shown.address_id, Some(100_021_445_102));

        let hh1 = dev("hh-1");
        repairs
            .observe(&hh1, &[update(1, &job.id, JobStatus::Arrived)], T0 + HOUR)
            .unwrap();
        repairs
            .observe(
                &hh1,
                &[update(2, &job.id, JobStatus::PartsNeeded)],
                T0 + HOUR + MIN,
            )
            .unwrap();
        let notes = backend.get(&first.id).unwrap().unwrap().status_notes;
        assert!(notes.contains("The engineer arrived at 11:00"), "{notes}");
        assert!(notes.contains("needs parts"), "{notes}");
        repairs
            .observe(
                &hh1,
                &[update(3, &job.id, JobStatus::Completed)],
                T0 + 2 * HOUR,
            )
            .unwrap();
        let done = backend.get(&second.id).unwrap().unwrap();
        assert_eq!(
            (done.status, done.extended_status),
            (Open311Status::Closed, UpdateStatus::Fixed)
        );
        assert!(
            done.status_notes.contains("completed the repair"),
            "{}",
            done.status_notes
        );

        // The updates feed: the filing, then what the tenant hears of, in order, ids for good.
        let search = UpdateSearch {
            from: chrono::DateTime::from_timestamp_millis(T0).unwrap(),
            to: chrono::DateTime::from_timestamp_millis(T0 + 3 * HOUR).unwrap(),
            limit: 1000,
        };
        let feed: Vec<(String, UpdateStatus)> = backend
            .updates(&search)
            .unwrap()
            .into_iter()
            .filter(|u| u.request_id == first.id)
            .map(|u| (u.update_id, u.status))
            .collect();
        let statuses: Vec<UpdateStatus> = feed.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            statuses,
            vec![
                UpdateStatus::ActionScheduled,
                UpdateStatus::InProgress,
                UpdateStatus::InProgress,
                UpdateStatus::Fixed
            ]
        );
        assert_eq!(feed[0].0, format!("{}-0", first.id));
        assert_eq!(backend.updates(&search).unwrap().len(), 8);

        // Listed as the heating service; a tenant's comment is kept once.
        let RequestFilter::Search(mut search) =
            crate::open311::form::request_filter(&[], clock.now(), chrono_tz::Europe::London)
                .unwrap()
        else {
            panic!("not a search");
        };
        assert_eq!(
            backend
                .list(&RequestFilter::Search(search.clone()))
                .unwrap()
                .len(),
            2
        );
        search.subjects = vec![Subject::MissedBin(proto::BinStream::Refuse)];
        assert!(backend
            .list(&RequestFilter::Search(search))
            .unwrap()
            .is_empty());
        let comment = NewRequestUpdate {
            request_id: first.id.clone(),
            client_update_id: Some("fms-7".into()),
            description: Some("Still cold upstairs".into()),
            status: Some("OPEN".into()),
            updated: None,
            contact: Contact::default(),
            media_url: None,
        };
        let kept = backend.add_update(comment.clone()).unwrap();
        assert_eq!(backend.add_update(comment).unwrap(), kept);
        assert_eq!(
            repairs.report(&first.id).unwrap().unwrap().comments.len(),
            1
        );

        // A home with no boiler on the register is an unknown address.
        assert!(matches!(
            backend.create(heating_report(1)),
            Err(crate::open311::BackendError::UnknownAddress(_))
        ));
    }
}

#[test]
fn a_job_declined_on_the_handheld_goes_to_another_operative_and_never_back() {
    let dir = tempfile::tempdir().unwrap();
    let sender = Arc::new(Recorder::default());
    let site = open(dir.path(), sender.clone(), settings());
    let job = site.repairs.raise(staff_job("HIL-B-0001"), T0).unwrap();
    site.repairs
        .observe(
            &dev("hh-1"),
            &[update(1, &job.id, JobStatus::Cancelled)],
            T0 + MIN,
        )
        .unwrap();
    let moved = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!((moved.device(), moved.rev), (Some("hh-2"), 2));
    site.repairs
        .observe(
            &dev("hh-2"),
            &[update(1, &job.id, JobStatus::Cancelled)],
            T0 + 2 * MIN,
        )
        .unwrap();
    // Everyone declined: it waits for staff, tick after tick.
    for minute in 3..6 {
        site.repairs
            .tick(T0 + minute * MIN, &online(&["hh-1", "hh-2"]))
            .unwrap();
    }
    let waiting = site.repairs.job(&job.id).unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.device()),
        (RepairStatus::Raised, None)
    );
    assert_eq!(sender.jobs().len(), 2);
}
