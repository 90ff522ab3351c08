//! A repair job's progress in plain English, for the tenant whose report follows it: how their
//! report came to the job, then what happened (booked, on the way, arrived, parts needed, no
//! access, fixed), times in the council's zone. Nothing about the operative but their role, and
//! nothing from the operative's own notes (written for colleagues, not tenants).

use chrono::DateTime;
use chrono_tz::Tz;
use proto::{JobStatus, TimestampMs};

use super::model::{Happened, HeatingReport, Linked, Repair, RepairStatus, Transition};
use crate::boilers::AlertKind;
use crate::open311::{Open311Status, UpdateStatus};

/// "14:05 on Wednesday 25 November".
fn when(at: TimestampMs, tz: Tz) -> String {
    let local = DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .with_timezone(&tz);
    format!("{} on {}", local.format("%H:%M"), local.format("%A %-d %B"))
}

fn alert_words(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::PressureLow => "low water pressure",
        AlertKind::PressureHigh => "high water pressure",
        AlertKind::Fault => "a fault",
        AlertKind::Diagnostic => "that it needs a service",
        AlertKind::ShortCycling => "that it is switching on and off too often",
        AlertKind::NotCondensing => "that it is running inefficiently",
        AlertKind::EfficiencyFalling => "that its efficiency is falling",
        AlertKind::Silent => "that its monitor has stopped reporting",
        AlertKind::PressureForecast => "that its pressure is falling",
    }
}

/// How the report came to its job.
pub fn linked_note(report: &HeatingReport, job: &Repair) -> String {
    match report.linked {
        Linked::OpenJob => format!(
            "A repair for the boiler at your home was already booked (job {}); your report has \
             been added to it.",
            job.id
        ),
        Linked::OpenAlert => {
            let what = report
                .alert
                .as_ref()
                .map_or("a problem", |a| alert_words(a.kind));
            format!(
                "Our monitoring had already picked up {what} on the boiler at your home; a repair \
                 has been raised (job {}) and your report added to it.",
                job.id
            )
        }
        Linked::Raised => format!(
            "Thank you: a repair has been raised for the boiler at your home (job {}).",
            job.id
        ),
    }
}

/// What one change to the job tells the tenant; `None` for changes that are not theirs to hear
/// of (a report linked, the job waiting for an engineer's rota).
pub fn note(transition: &Transition, job: &Repair, tz: Tz) -> Option<String> {
    Some(match &transition.happened {
        Happened::Dispatched { .. } => format!(
            "An engineer has been booked; the repair is due by {}.",
            when(job.due, tz)
        ),
        Happened::Reassigned { .. } => {
            "Your repair has been passed to another engineer.".to_owned()
        }
        Happened::Update { status, .. } => match status {
            JobStatus::Accepted => "The engineer has accepted the job.".to_owned(),
            JobStatus::EnRoute => "The engineer is on the way.".to_owned(),
            JobStatus::Arrived => format!("The engineer arrived at {}.", when(transition.at, tz)),
            JobStatus::PartsNeeded => {
                "The engineer needs parts and will come back to finish the repair.".to_owned()
            }
            JobStatus::NoAccess => {
                "The engineer could not get in; we will contact you to arrange another visit."
                    .to_owned()
            }
            JobStatus::Completed => {
                format!(
                    "The engineer completed the repair at {}.",
                    when(transition.at, tz)
                )
            }
            // Declined on the handheld: the next booking is what the tenant hears of.
            JobStatus::Cancelled => return None,
        },
        Happened::AlertCleared if job.completed_at.is_some() => {
            "The boiler's readings are back to normal.".to_owned()
        }
        Happened::NeedsAttention { .. } => {
            "The boiler's readings have not recovered since the repair; our repairs team is \
             looking into it."
                .to_owned()
        }
        Happened::Cancelled => "The repair was cancelled.".to_owned(),
        Happened::Raised
        | Happened::Waiting
        | Happened::TenantReport { .. }
        | Happened::AlertCleared => return None,
    })
}

/// The report's status notes: how it came to the job, then everything the job has been through.
pub fn status_notes(report: &HeatingReport, job: &Repair, tz: Tz) -> String {
    let mut notes = vec![linked_note(report, job)];
    for transition in &job.history {
        if let Some(note) = note(transition, job, tz) {
            if notes.last() != Some(&note) {
                notes.push(note);
            }
        }
    }
    notes.join(" ")
}

/// The job's status in GeoReport v2's two words.
pub fn open311_status(status: RepairStatus) -> Open311Status {
    if status.is_open() {
        Open311Status::Open
    } else {
        Open311Status::Closed
    }
}

/// The job's status in FixMyStreet's extended statuses: booked is action scheduled, at the home
/// (or waiting on parts) in progress, done fixed.
pub fn update_status(status: RepairStatus) -> UpdateStatus {
    match status {
        RepairStatus::Raised => UpdateStatus::Open,
        RepairStatus::Dispatched
        | RepairStatus::Accepted
        | RepairStatus::EnRoute
        | RepairStatus::NoAccess => UpdateStatus::ActionScheduled,
        RepairStatus::Arrived | RepairStatus::PartsNeeded => UpdateStatus::InProgress,
        RepairStatus::Completed => UpdateStatus::Fixed,
        RepairStatus::Cancelled => UpdateStatus::NoFurtherAction,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::repairs::model::{Dispatch, Origin};
    use proto::Priority;

    /// Wednesday 25 November 2026, 10:00 UTC (London is on UTC in November).
    const T0: TimestampMs = 1_795_600_800_000;

    fn job() -> Repair {
        let mut job = Repair {
            id: "RP-4".into(),
            asset: "HIL-B-0001".into(),
            uprn: 1,
            address: String::new(),
            description: String::new(),
            priority: Priority::Urgent,
            due: T0 + 24 * 3_600_000,
            raised_at: T0,
            origin: Origin::Alert,
            alert: None,
            named: None,
            status: RepairStatus::Raised,
            rev: 1,
            dispatch: Some(Dispatch {
                device: "hh-1".into(),
                rev: 1,
                at: T0,
                sent_at: Some(T0),
            }),
            completed_at: None,
            alert_cleared_at: None,
            attention_at: None,
            tenant_reports: Vec::new(),
            applied: Vec::new(),
            history: Vec::new(),
        };
        job.transition(T0, RepairStatus::Raised, Happened::Raised);
        job.transition(
            T0,
            RepairStatus::Dispatched,
            Happened::Dispatched {
                device: "hh-1".into(),
            },
        );
        job
    }

    fn update(job: &mut Repair, at: TimestampMs, status: JobStatus, to: RepairStatus) {
        job.transition(
            at,
            to,
            Happened::Update {
                status,
                note: Some("boiler cupboard behind the fridge".into()),
                device: "hh-1".into(),
                seq: 1,
            },
        );
    }

    #[test]
    fn the_notes_follow_the_job_from_booking_to_fixed_in_the_tenants_words() {
        let mut job = job();
        let report = HeatingReport {
            id: "HR-5".into(),
            uprn: 1,
            asset: job.asset.clone(),
            description: None,
            contact: None,
            filed_at: T0,
            job: job.id.clone(),
            linked: Linked::OpenJob,
            alert: None,
            comments: Vec::new(),
        };
        update(
            &mut job,
            T0 + 3_600_000,
            JobStatus::Arrived,
            RepairStatus::Arrived,
        );
        update(
            &mut job,
            T0 + 4_000_000,
            JobStatus::PartsNeeded,
            RepairStatus::PartsNeeded,
        );
        update(
            &mut job,
            T0 + 90_000_000,
            JobStatus::Completed,
            RepairStatus::Completed,
        );
        job.completed_at = Some(T0 + 90_000_000);
        let notes = status_notes(&report, &job, chrono_tz::Europe::London);
        assert_eq!(
            notes,
            "A repair for the boiler at your home was already booked (job RP-4); your report has \
             been added to it. An engineer has been booked; the repair is due by 10:00 on \
             Thursday 26 November. The engineer arrived at 11:00 on Wednesday 25 November. The \
             engineer needs parts and will come back to finish the repair. The engineer \
             completed the repair at 11:00 on Thursday 26 November."
        );
        // The operative's own note is not shown to the tenant.
        assert!(!notes.contains("fridge"));
        assert_eq!(
            update_status(RepairStatus::Dispatched),
            UpdateStatus::ActionScheduled
        );
        assert_eq!(update_status(RepairStatus::Completed), UpdateStatus::Fixed);
        assert_eq!(
            open311_status(RepairStatus::PartsNeeded),
            Open311Status::Open
        );
    }
}
