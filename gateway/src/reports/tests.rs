//! The desk end to end over the embedded store: filing, dispatch, closing from evidence,
//! duplicates, and what survives a restart.

use std::sync::{Arc, Mutex};

use proto::{
    BinStream, Collection, DeviceId, Job, Outcome, Position, Record, RecordBody, RoundEvent,
    RoundPhase, TimestampMs,
};

use super::*;
use crate::metrics::Metrics;
use crate::missed_bins::{MissedBins, ReportStatus};
use crate::storage::{Storage, StoreSettings, StoredRecord};

/// Tuesday 24 November 2026 (GMT, so local time is UTC), at `h:m`.
fn tue(h: i64, m: i64) -> TimestampMs {
    1_795_478_400_000 + (h * 60 + m) * 60_000
}

const ROUND: &str = "HIL-TUE-1";
const FIRST: u64 = 100_021_445_101;
const SECOND: u64 = 100_021_445_102;

#[derive(Default)]
struct RecordingSender {
    sent: Mutex<Vec<(DeviceId, Job)>>,
}

impl JobSender for RecordingSender {
    fn send_job(
        &self,
        device: &DeviceId,
        job: Job,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        self.sent.lock().unwrap().push((device.clone(), job));
        Ok(())
    }

    fn send_cancel(
        &self,
        _device: &DeviceId,
        _cancel: proto::JobCancel,
        _now: TimestampMs,
    ) -> Result<(), DispatchError> {
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    storage: Storage,
    sender: Arc<RecordingSender>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
        Self {
            _dir: dir,
            storage,
            sender: Arc::default(),
        }
    }

    fn desk(&self) -> ReportDesk {
        let store = self.storage.reports.clone();
        ReportDesk::open(
            MissedBins::new(Default::default(), Default::default()),
            store,
            self.sender.clone(),
            DeskSettings {
                max_clock_skew_ms: 300_000,
                ..Default::default()
            },
            Arc::new(Metrics::default()),
        )
        .unwrap()
    }

    fn sent(&self) -> Vec<(DeviceId, Job)> {
        self.sender.sent.lock().unwrap().clone()
    }
}

fn with_register(desk: &ReportDesk) {
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/properties.csv"
    ))
    .unwrap();
    let report = desk.import_properties(csv.as_slice()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

fn cab() -> DeviceId {
    DeviceId::new("cab-rcv07").unwrap()
}

fn stored(seq: u64, ts: TimestampMs, body: RecordBody) -> StoredRecord {
    StoredRecord {
        received: ts,
        sent: ts,
        record: Record {
            seq,
            ts,
            body,
            boot: None,
            mono: None,
        },
        placed: None,
    }
}

fn collection(
    seq: u64,
    ts: TimestampMs,
    uprn: u64,
    outcome: Outcome,
    job: Option<&str>,
) -> StoredRecord {
    stored(
        seq,
        ts,
        RecordBody::Collection(Collection {
            uprn: Some(uprn),
            stream: BinStream::Refuse,
            outcome,
            pos: Position {
                lat: 51.5624,
                lon: -0.4462,
                acc: 5.0,
            },
            vehicle: "RCV07".into(),
            round: ROUND.into(),
            job: job.map(Into::into),
            photo: None,
            note: None,
        }),
    )
}

fn round_started(seq: u64, ts: TimestampMs) -> StoredRecord {
    stored(
        seq,
        ts,
        RecordBody::RoundEvent(RoundEvent {
            round: ROUND.into(),
            vehicle: "RCV07".into(),
            phase: RoundPhase::Started,
        }),
    )
}

fn report_of(uprn: u64) -> NewReport {
    NewReport {
        uprn,
        stream: BinStream::Refuse,
        description: Some("bin still full".into()),
        contact: None,
    }
}

#[test]
fn a_bin_the_crew_found_not_presented_is_rejected_with_evidence() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    desk.observe(
        &cab(),
        &[
            round_started(1, tue(7, 0)),
            collection(2, tue(7, 42), FIRST, Outcome::NotPresented, None),
        ],
        tue(7, 42),
    )
    .unwrap();

    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(report.status, ReportStatus::Rejected);
    assert_eq!(
        report.history[0].evidence.as_ref().unwrap().as_str(),
        "cab-rcv07#2"
    );
    let notes = desk.status_notes(&report).join(" ");
    assert!(notes.contains("07:42"), "{notes}");
    assert!(fixture.sent().is_empty());
}

#[test]
fn an_accepted_report_is_dispatched_to_the_round_and_closed_by_its_job() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    desk.observe(
        &cab(),
        &[
            round_started(1, tue(7, 0)),
            collection(2, tue(7, 50), SECOND, Outcome::Collected, None),
        ],
        tue(7, 50),
    )
    .unwrap();

    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(report.status, ReportStatus::InProgress);
    let sent = fixture.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, cab());
    let job_id = report.job_id.clone().unwrap();
    assert_eq!(sent[0].1.id, job_id);

    // The crew returns the next morning and confirms the job.
    let wed = tue(24 + 9, 0);
    desk.observe(
        &cab(),
        &[collection(3, wed, FIRST, Outcome::Collected, Some(&job_id))],
        wed,
    )
    .unwrap();
    let closed = desk.report(&report.id).unwrap().unwrap();
    assert_eq!(closed.status, ReportStatus::Closed);
    assert_eq!(
        closed
            .history
            .last()
            .unwrap()
            .evidence
            .as_ref()
            .unwrap()
            .as_str(),
        "cab-rcv07#3"
    );
}

#[test]
fn a_report_waits_for_a_device_on_its_round_then_is_dispatched() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    // The round's end has passed with no word from any crew.
    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(report.status, ReportStatus::Open);
    assert!(fixture.sent().is_empty());

    let wed = tue(24 + 7, 0);
    desk.observe(&cab(), &[round_started(1, wed)], wed).unwrap();
    assert_eq!(fixture.sent().len(), 1);
    assert_eq!(
        desk.report(&report.id).unwrap().unwrap().status,
        ReportStatus::InProgress
    );
}

#[test]
fn a_configured_dispatch_rule_sends_jobs_to_the_configured_device_only() {
    let fixture = Fixture::new();
    let store = fixture.storage.reports.clone();
    let returns = DeviceId::new("cab-returns").unwrap();
    let desk = ReportDesk::open(
        MissedBins::new(Default::default(), Default::default()),
        store,
        fixture.sender.clone(),
        DeskSettings {
            dispatch: crate::config::DispatchRule::Configured,
            round_devices: [(ROUND.to_owned(), vec![returns.clone()])].into(),
            max_clock_skew_ms: 300_000,
        },
        Arc::new(Metrics::default()),
    )
    .unwrap();
    with_register(&desk);
    desk.observe(&cab(), &[round_started(1, tue(7, 0))], tue(7, 0))
        .unwrap();
    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(report.status, ReportStatus::InProgress);
    assert_eq!(fixture.sent()[0].0, returns);
}

#[test]
fn a_second_report_of_a_bin_is_its_own_report_following_the_first() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    desk.observe(&cab(), &[round_started(1, tue(7, 0))], tue(7, 0))
        .unwrap();
    let contact = |name: &str| crate::missed_bins::Contact {
        name: Some(name.into()),
        email: Some(format!("{}@example.org", name.to_lowercase())),
        phone: None,
    };
    let first = desk
        .file(
            NewReport {
                contact: Some(contact("Ada")),
                ..report_of(FIRST)
            },
            tue(18, 0),
        )
        .unwrap();
    assert_eq!(first.status, ReportStatus::InProgress);
    let second = desk
        .file(
            NewReport {
                contact: Some(contact("Bo")),
                ..report_of(FIRST)
            },
            tue(19, 0),
        )
        .unwrap();

    // Its own id and its own resident, in the case's status, with no job of its own.
    assert_ne!(second.id, first.id);
    assert_eq!(second.linked_to.as_deref(), Some(first.id.as_str()));
    assert_eq!(second.status, ReportStatus::InProgress);
    assert_eq!(second.job_id, None);
    assert_eq!(second.contact.as_ref().unwrap().name.as_deref(), Some("Bo"));
    let case = desk.report(&first.id).unwrap().unwrap();
    assert_eq!(case.linked, vec![second.id.clone()]);
    assert_eq!(case.contact.as_ref().unwrap().name.as_deref(), Some("Ada"));
    let note = desk.status_notes(&second).join(" ");
    assert!(note.contains("already been reported"), "{note}");
    assert!(note.contains("A crew was sent"), "{note}");
    // One case, one return job.
    assert_eq!(fixture.sent().len(), 1);

    // The crew empties it: both close, with the same transition, after a restart too.
    let desk = fixture.desk();
    let job = first.job_id.clone().unwrap();
    let wed = tue(24 + 9, 0);
    desk.observe(
        &cab(),
        &[collection(3, wed, FIRST, Outcome::Collected, Some(&job))],
        wed,
    )
    .unwrap();
    let case = desk.report(&first.id).unwrap().unwrap();
    let linked = desk.report(&second.id).unwrap().unwrap();
    assert_eq!(case.status, ReportStatus::Closed);
    assert_eq!(linked.status, ReportStatus::Closed);
    assert_eq!(linked.history.last(), case.history.last());
    assert_eq!(linked.history.len(), 2);
    // A third report of the emptied bin is told so.
    let third = desk.file(report_of(FIRST), tue(24 + 10, 0)).unwrap();
    assert_eq!(third.status, ReportStatus::Closed);
    assert!(desk.status_notes(&third)[0].contains("Our crew collected"));
}

#[test]
fn a_case_takes_a_bounded_number_of_linked_reports() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    let first = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    for i in 0..crate::missed_bins::report::MAX_LINKED {
        let linked = desk.file(report_of(FIRST), tue(18, 1) + i as i64).unwrap();
        assert_eq!(linked.linked_to.as_deref(), Some(first.id.as_str()));
    }
    let beyond = desk.file(report_of(FIRST), tue(19, 0)).unwrap();
    assert_eq!(beyond.id, first.id);
}

#[test]
fn an_unknown_property_is_an_error() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    assert!(matches!(
        desk.file(report_of(999), tue(18, 0)),
        Err(DeskError::Report(_))
    ));
}

#[test]
fn the_register_and_open_reports_survive_a_restart() {
    let fixture = Fixture::new();
    let id = {
        let desk = fixture.desk();
        with_register(&desk);
        desk.file(report_of(FIRST), tue(18, 0)).unwrap().id
    };
    let desk = fixture.desk();
    assert!(desk.with_missed(|m| m.register().get(FIRST).is_some()));
    // A later confirmation of that bin still closes the report opened before the restart.
    let wed = tue(24 + 9, 0);
    desk.observe(
        &cab(),
        &[collection(5, wed, FIRST, Outcome::Collected, None)],
        wed,
    )
    .unwrap();
    assert_eq!(
        desk.report(&id).unwrap().unwrap().status,
        ReportStatus::Closed
    );
}

#[test]
fn a_device_clock_far_off_is_corrected_by_its_offset() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    // The cab's clock says Monday; the gateway received it on Tuesday at 07:42.
    let wrong = tue(7, 42) - 24 * 60 * 60 * 1000;
    let record = StoredRecord {
        received: tue(7, 42),
        sent: wrong,
        record: collection(2, wrong, FIRST, Outcome::NotPresented, None).record,
        placed: None,
    };
    desk.observe(&cab(), &[record], tue(7, 42)).unwrap();
    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(report.status, ReportStatus::Rejected);
}

#[test]
fn a_late_confirmation_closes_the_report_when_it_arrives() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    // Emptied on Wednesday morning; the cab was out of signal until Thursday.
    let emptied = tue(24 + 9, 0);
    let arrived = tue(48 + 9, 0);
    let late = StoredRecord {
        received: arrived,
        sent: arrived,
        record: collection(5, emptied, FIRST, Outcome::Collected, None).record,
        placed: None,
    };
    desk.observe(&cab(), &[late], arrived).unwrap();
    let closed = desk.report(&report.id).unwrap().unwrap();
    let last = closed.history.last().unwrap();
    assert_eq!(last.status, ReportStatus::Closed);
    assert_eq!(last.at, arrived);
    assert_eq!(
        last.reason,
        crate::missed_bins::Reason::Collected { at: emptied }
    );
}

#[test]
fn a_residents_comment_is_kept_once_on_the_report_without_moving_it() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    let report = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    let comment = crate::missed_bins::NewComment {
        client_id: Some("248".into()),
        text: Some("Still full".into()),
        ..Default::default()
    };
    let added = desk
        .comment(&report.id, comment.clone(), tue(19, 0))
        .unwrap();
    let id = format!("{}-c0", report.id);
    assert_eq!(
        added,
        Some(crate::missed_bins::CommentAdded::New(id.clone()))
    );
    assert_eq!(
        desk.comment(&report.id, comment.clone(), tue(19, 30))
            .unwrap(),
        Some(crate::missed_bins::CommentAdded::Again(id))
    );
    assert_eq!(desk.comment("MB-999", comment, tue(19, 0)).unwrap(), None);
    let stored = desk.report(&report.id).unwrap().unwrap();
    assert_eq!(stored.comments.len(), 1);
    assert_eq!(stored.comments[0].received_at, tue(19, 0));
    assert_eq!(stored.history, report.history);
}

/// Every change of every case the desk makes, each seen as an update in FixMyStreet's feed with
/// words for the resident: filings (refused, rejected, accepted), dispatch, a second reporter
/// linked, a return visit the crew could not complete, and the crew going back and emptying it.
#[test]
fn every_change_of_a_case_is_an_update_with_words() {
    use crate::open311::{Open311Backend, UpdateSearch};

    let fixture = Fixture::new();
    let desk = Arc::new(fixture.desk());
    with_register(&desk);
    const THIRD: u64 = 100_021_445_103;
    // 09:00: too early for no. 6; the crew finds no. 4 not put out.
    let refused = desk.file(report_of(THIRD), tue(9, 0)).unwrap();
    assert_eq!(refused.status, ReportStatus::Refused);
    desk.observe(
        &cab(),
        &[collection(
            1,
            tue(9, 10),
            SECOND,
            Outcome::NotPresented,
            None,
        )],
        tue(9, 10),
    )
    .unwrap();
    // 18:00: no. 4's resident is told of the crew's record; no. 2's report is accepted and its
    // return job goes to the cab; a neighbour reports no. 2's bin too.
    let rejected = desk.file(report_of(SECOND), tue(18, 0)).unwrap();
    assert_eq!(rejected.status, ReportStatus::Rejected);
    let case = desk.file(report_of(FIRST), tue(18, 0)).unwrap();
    assert_eq!(case.status, ReportStatus::InProgress);
    let linked = desk.file(report_of(FIRST), tue(18, 30)).unwrap();
    assert_eq!(linked.linked_to.as_deref(), Some(case.id.as_str()));
    let wed = |h: i64, m: i64| tue(24 + h, m);
    let job = desk.report(&case.id).unwrap().unwrap().job_id.unwrap();
    // 10:05 the crew finds the way blocked: both residents hear why, not "action scheduled".
    desk.observe(
        &cab(),
        &[collection(
            3,
            wed(10, 5),
            FIRST,
            Outcome::BlockedAccess,
            Some(&job),
        )],
        wed(10, 5),
    )
    .unwrap();
    for id in [&case.id, &linked.id] {
        let report = desk.report(id).unwrap().unwrap();
        assert_eq!(report.status, ReportStatus::Rejected, "{report:?}");
        let last = desk.status_notes(&report).pop().unwrap();
        assert!(last.contains("access was blocked"), "{last}");
        assert!(last.contains("next collection day"), "{last}");
    }
    // 14:00 the crew goes back on the same job and empties it.
    desk.observe(
        &cab(),
        &[collection(
            4,
            wed(14, 0),
            FIRST,
            Outcome::Collected,
            Some(&job),
        )],
        wed(14, 0),
    )
    .unwrap();
    assert_eq!(
        desk.report(&linked.id).unwrap().unwrap().status,
        ReportStatus::Closed
    );

    let clock: crate::clock::SharedClock = Arc::new(crate::clock::FixedClock::default());
    let access = crate::access::AccessRegistry::new(fixture.storage.access.clone(), clock.clone());
    let open311 = DeskOpen311::new(desk.clone(), access, clock);
    let updates = open311
        .updates(&UpdateSearch {
            from: chrono::DateTime::from_timestamp_millis(tue(0, 0)).unwrap(),
            to: chrono::DateTime::from_timestamp_millis(wed(23, 0)).unwrap(),
            limit: 1000,
        })
        .unwrap();
    let of = |id: &str| -> Vec<(&str, &str)> {
        updates
            .iter()
            .filter(|u| u.request_id == id)
            .map(|u| {
                (
                    u.status.as_str(),
                    u.external_status_code.as_deref().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(of(&refused.id), vec![("no_further_action", "refused")]);
    assert_eq!(of(&rejected.id), vec![("no_further_action", "rejected")]);
    let steps = vec![
        ("open", "open"),
        ("action_scheduled", "in_progress"),
        ("no_further_action", "rejected"),
        ("fixed", "closed"),
    ];
    assert_eq!(of(&case.id), steps);
    // The neighbour's starts where the case was when it was linked.
    assert_eq!(of(&linked.id), steps[1..]);
    // One update per transition of every report, none without words.
    let transitions: usize = desk
        .reports_since(i64::MIN)
        .unwrap()
        .iter()
        .map(|r| r.history.len())
        .sum();
    assert_eq!(updates.len(), transitions);
    assert!(
        updates.iter().all(|u| u.description.len() > 40),
        "{updates:?}"
    );
    // The dispatch says by when.
    let dispatched = updates
        .iter()
        .find(|u| u.request_id == case.id && u.status.as_str() == "action_scheduled")
        .unwrap();
    assert!(
        dispatched
            .description
            .contains("emptied by 5pm on Wednesday 25 November"),
        "{}",
        dispatched.description
    );
}

#[test]
fn a_report_that_names_no_property_waits_for_staff_then_is_decided_where_placed() {
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    desk.observe(&cab(), &[round_started(1, tue(7, 0))], tue(7, 0))
        .unwrap();
    let far = crate::missed_bins::LatLon {
        lat: 51.5642,
        lon: -0.4462,
    };
    let report = desk
        .file_unplaced(
            NewUnplaced {
                stream: BinStream::Refuse,
                pin: Some(far),
                description: Some("bin still full".into()),
                contact: None,
            },
            tue(18, 0),
        )
        .unwrap();
    assert_eq!(report.status, ReportStatus::Open);
    assert_eq!(report.uprn, None);
    assert_eq!(report.pin, Some(far));
    // No crew is sent anywhere, even after a sweep.
    desk.dispatch_all_waiting(tue(18, 5)).unwrap();
    assert!(fixture.sent().is_empty());
    assert!(desk.status_notes(&report)[0].contains("within 50 m"));

    let Placing::Placed(placed) = desk.place(&report.id, FIRST, tue(18, 10)).unwrap() else {
        panic!("not placed");
    };
    assert_eq!(placed.uprn, Some(FIRST));
    assert_eq!(placed.status, ReportStatus::InProgress);
    assert_eq!(placed.history.len(), 3);
    assert_eq!(fixture.sent().len(), 1);
    assert!(matches!(
        desk.place(&report.id, SECOND, tue(18, 20)).unwrap(),
        Placing::AlreadyPlaced(_)
    ));
    assert_eq!(
        desk.place("MB-999", FIRST, tue(18, 20)).unwrap(),
        Placing::NoSuchReport
    );
    assert!(desk.place(&report.id, 999, tue(18, 20)).is_ok());
    // A neighbour's far pin about the same bin, placed there too: linked, no second job.
    let neighbour = desk
        .file_unplaced(
            NewUnplaced {
                stream: BinStream::Refuse,
                pin: Some(far),
                description: None,
                contact: None,
            },
            tue(18, 30),
        )
        .unwrap();
    let Placing::Placed(linked) = desk.place(&neighbour.id, FIRST, tue(18, 40)).unwrap() else {
        panic!("not placed");
    };
    assert_eq!(linked.linked_to.as_deref(), Some(report.id.as_str()));
    assert_eq!(linked.status, ReportStatus::InProgress);
    assert_eq!(linked.history.len(), 2, "{:?}", linked.history);
    assert_eq!(fixture.sent().len(), 1);
    // Survives a restart as an ordinary open case on its property.
    let desk = fixture.desk();
    let wed = tue(24 + 9, 0);
    let job = placed.job_id.clone().unwrap();
    desk.observe(
        &cab(),
        &[collection(2, wed, FIRST, Outcome::Collected, Some(&job))],
        wed,
    )
    .unwrap();
    assert_eq!(
        desk.report(&report.id).unwrap().unwrap().status,
        ReportStatus::Closed
    );
}

/// A resident's contact details, words and comments stay on their report while it is open and
/// for the retention after it closes, then are purged from the store itself: read back from it,
/// no report holds them, and the history and the crew's evidence are still there.
#[test]
fn residents_details_are_purged_from_the_store_the_retention_after_their_report_closes() {
    const DAY: i64 = 24 * 60 * 60 * 1000;
    const RETENTION: i64 = 90 * DAY;
    let fixture = Fixture::new();
    let desk = fixture.desk();
    with_register(&desk);
    desk.observe(
        &cab(),
        &[
            round_started(1, tue(7, 0)),
            collection(2, tue(7, 42), FIRST, Outcome::NotPresented, None),
        ],
        tue(7, 42),
    )
    .unwrap();
    let with_contact = |uprn| NewReport {
        contact: Some(crate::missed_bins::Contact {
            name: Some("Ann Example".into()),
            email: Some("ann@example.org".into()),
            phone: Some("07700900123".into()),
        }),
        description: Some("Ann here, bin left again".into()),
        ..report_of(uprn)
    };
    // Closed at once (rejected from the crew's evidence), and one left open (accepted).
    let closed = desk.file(with_contact(FIRST), tue(18, 0)).unwrap();
    assert_eq!(closed.status, ReportStatus::Rejected);
    let comment = crate::missed_bins::NewComment {
        client_id: Some("248".into()),
        text: Some("Ann again: still there".into()),
        account_id: Some("fms-77".into()),
        ..Default::default()
    };
    desk.comment(&closed.id, comment, tue(19, 0)).unwrap();
    let open = desk.file(with_contact(SECOND), tue(18, 0)).unwrap();
    assert!(open.is_open());

    let store = fixture.storage.reports.clone();
    let holding = || -> Vec<String> {
        let all = store.all().unwrap();
        all.iter()
            .filter(|r| {
                let stored = serde_json::to_string(r).unwrap();
                ["Ann", "ann@example.org", "07700900123", "fms-77"]
                    .iter()
                    .any(|personal| stored.contains(personal))
            })
            .map(|r| r.id.clone())
            .collect()
    };
    assert_eq!(
        desk.purge_residents(tue(18, 0) + RETENTION - 1, RETENTION)
            .unwrap(),
        0
    );
    assert_eq!(holding(), [closed.id.clone(), open.id.clone()]);

    assert_eq!(
        desk.purge_residents(tue(18, 0) + RETENTION, RETENTION)
            .unwrap(),
        1
    );
    assert_eq!(holding(), std::slice::from_ref(&open.id));
    let purged = store.get(&closed.id).unwrap().unwrap();
    assert_eq!(purged.contact_purged_at, Some(tue(18, 0) + RETENTION));
    assert_eq!(purged.history, closed.history);
    assert_eq!(
        purged.history[0].evidence.as_ref().unwrap().as_str(),
        "cab-rcv07#2"
    );
    // Again changes nothing.
    assert_eq!(
        desk.purge_residents(tue(18, 0) + 2 * RETENTION, RETENTION)
            .unwrap(),
        0
    );
}
