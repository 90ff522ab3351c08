//! How long a resident's personal data stays on their report: until the report closes
//! (collected, rejected or refused: nothing more will happen to it) and then a set time, after
//! which [`Report::forget_resident`] takes out everything that is the resident's (their contact
//! details, their words, their photos, their pin, what they sent on as comments and their front
//! end's account ids), leaving the report's history and the crews' evidence, which are the
//! council's record of the service. Pure: the desk applies it on the clock.

use proto::TimestampMs;

use super::report::Report;

/// When `report` closed: the time of its last transition, once nothing more is waited for.
/// `None` while it is open (a report waiting for staff to place it included).
pub fn closed_at(report: &Report) -> Option<TimestampMs> {
    if report.is_open() {
        return None;
    }
    report.history.last().map(|t| t.at)
}

/// Whether `report` still holds its resident's personal data and should not, `retention_ms`
/// after it closed, at `now`.
pub fn purge_due(report: &Report, now: TimestampMs, retention_ms: i64) -> bool {
    report.holds_resident_data()
        && closed_at(report).is_some_and(|closed| closed.saturating_add(retention_ms) <= now)
}

impl Report {
    /// Whether anything of the resident's is still on the report.
    pub fn holds_resident_data(&self) -> bool {
        self.contact.is_some()
            || self.description.is_some()
            || self.pin.is_some()
            || self.comments.iter().any(|c| {
                c.contact.is_some()
                    || c.account_id.is_some()
                    || c.text.is_some()
                    || c.media_url.is_some()
            })
    }

    /// Takes out the resident's personal data, at `now`. A comment keeps its ids and times, so a
    /// front end resending it is still answered with the same id, and nothing else.
    pub fn forget_resident(&mut self, now: TimestampMs) {
        self.contact = None;
        self.description = None;
        self.pin = None;
        for comment in &mut self.comments {
            comment.contact = None;
            comment.account_id = None;
            comment.text = None;
            comment.media_url = None;
        }
        self.contact_purged_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::comment::NewComment;
    use crate::missed_bins::report::Contact;
    use crate::missed_bins::rules::{Decision, Refusal, ReportRequest};
    use crate::missed_bins::ReportStatus;
    use proto::BinStream;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn report(decision: Decision) -> Report {
        let mut report = Report::file(
            "MB-1".into(),
            &ReportRequest {
                uprn: 1,
                stream: BinStream::Refuse,
            },
            decision,
            0,
        );
        report.contact = Some(Contact {
            name: Some("Ann Example".into()),
            email: Some("ann@example.org".into()),
            phone: Some("07700900123".into()),
        });
        report.description = Some("Ann at no. 2: bin left again".into());
        report.add_comment(
            NewComment {
                client_id: Some("248".into()),
                text: Some("Still there".into()),
                account_id: Some("fms-77".into()),
                ..NewComment::default()
            },
            5,
        );
        report
    }

    #[test]
    fn an_open_report_keeps_its_residents_details_and_a_closed_one_for_the_retention() {
        let open = report(Decision::Accepted {
            collection_day: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            crew_recorded_collected: None,
        });
        assert_eq!(open.status, ReportStatus::Open);
        assert!(!purge_due(&open, 1000 * DAY, 90 * DAY));

        let refused = report(Decision::Refused {
            reason: Refusal::NoCollectionDay,
        });
        assert_eq!(closed_at(&refused), Some(0));
        assert!(!purge_due(&refused, 90 * DAY - 1, 90 * DAY));
        assert!(purge_due(&refused, 90 * DAY, 90 * DAY));
    }

    #[test]
    fn forgetting_takes_out_all_that_is_the_residents_and_keeps_the_record() {
        let mut refused = report(Decision::Refused {
            reason: Refusal::NoCollectionDay,
        });
        let history = refused.history.clone();
        refused.forget_resident(90 * DAY);
        assert!(!refused.holds_resident_data());
        assert!(!purge_due(&refused, 1000 * DAY, 90 * DAY));
        assert_eq!(refused.history, history);
        assert_eq!(refused.contact_purged_at, Some(90 * DAY));
        assert_eq!(refused.comments[0].client_id.as_deref(), Some("248"));
        let stored = serde_json::to_string(&refused).unwrap();
        for personal in [
            "Ann",
            "ann@example.org",
            "07700900123",
            "Still there",
            "fms-77",
        ] {
            assert!(!stored.contains(personal), "{personal} in {stored}");
        }
    }
}
