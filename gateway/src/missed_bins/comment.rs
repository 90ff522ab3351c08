//! Residents' comments on their reports, as front ends send them on (FixMyStreet's `POST
//! servicerequestupdates`): kept on the report for staff, never shown in public reads, and taken
//! once per front end's update id, since a front end that did not hear our answer sends the same
//! comment again.

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::report::{Contact, Report};

/// The most comments one report keeps: each is up to a few kilobytes, and a report is read
/// whole, so the number is bounded whatever a front end sends.
pub const MAX_COMMENTS: usize = 100;

/// A comment on a report, as stored. Personal data (the contact) stays on the report, for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Our id for it, `{report id}-c{n}`, apart from the ids of the report's own updates
    /// (`{report id}-{n}`) so a front end storing both never confuses them.
    pub id: String,
    /// The front end's id for it (FixMyStreet's `update_id`), by which a repeat is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When we received it (UTC ms, the gateway's clock).
    pub received_at: TimestampMs,
    /// When the resident made it, as the front end says (UTC ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_at: Option<TimestampMs>,
    /// What the resident wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The status the front end shows the report in (FixMyStreet's `OPEN`, `FIXED`, `REOPEN`…),
    /// kept for staff: a comment does not move the report, only the crews' evidence does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_end_status: Option<String>,
    /// Who made it and how to reach them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// The front end's id for the resident's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// A photo the resident attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
}

/// A comment as it arrives, before it has our id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewComment {
    /// The front end's id for it.
    pub client_id: Option<String>,
    /// When the resident made it.
    pub made_at: Option<TimestampMs>,
    /// What the resident wrote.
    pub text: Option<String>,
    /// The status the front end shows.
    pub front_end_status: Option<String>,
    /// Who made it.
    pub contact: Option<Contact>,
    /// The front end's account id.
    pub account_id: Option<String>,
    /// A photo.
    pub media_url: Option<String>,
}

/// What adding a comment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentAdded {
    /// Kept under this id.
    New(String),
    /// The front end had sent it already: kept before under this id, nothing changed.
    Again(String),
    /// The report keeps [`MAX_COMMENTS`] already; nothing kept.
    Full,
}

impl Report {
    /// Keeps `comment`, received at `now`, unless the front end sent it before (same client
    /// id) or the report is full.
    pub fn add_comment(&mut self, comment: NewComment, now: TimestampMs) -> CommentAdded {
        add_comment(&mut self.comments, &self.id, comment, now)
    }
}

/// Keeps `comment` on the report (or other request) `owner` in `comments`, received at `now`,
/// unless the front end sent it before (same client id) or there are [`MAX_COMMENTS`] already:
/// what every kind of resident's request does with their comments.
pub fn add_comment(
    comments: &mut Vec<Comment>,
    owner: &str,
    comment: NewComment,
    now: TimestampMs,
) -> CommentAdded {
    if let Some(client_id) = &comment.client_id {
        let earlier = comments
            .iter()
            .find(|kept| kept.client_id.as_ref() == Some(client_id));
        if let Some(earlier) = earlier {
            return CommentAdded::Again(earlier.id.clone());
        }
    }
    if comments.len() >= MAX_COMMENTS {
        return CommentAdded::Full;
    }
    let id = format!("{owner}-c{}", comments.len());
    comments.push(Comment {
        id: id.clone(),
        client_id: comment.client_id,
        received_at: now,
        made_at: comment.made_at,
        text: comment.text,
        front_end_status: comment.front_end_status,
        contact: comment.contact,
        account_id: comment.account_id,
        media_url: comment.media_url,
    });
    CommentAdded::New(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missed_bins::rules::{Decision, ReportRequest};
    use proto::BinStream;

    fn report() -> Report {
        Report::file(
            "MB-3".into(),
            &ReportRequest {
                uprn: 1,
                stream: BinStream::Refuse,
            },
            Decision::Accepted {
                collection_day: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
                crew_recorded_collected: None,
            },
            0,
        )
    }

    fn comment(client_id: Option<&str>, text: &str) -> NewComment {
        NewComment {
            client_id: client_id.map(str::to_owned),
            text: Some(text.into()),
            ..NewComment::default()
        }
    }

    #[test]
    fn a_repeat_of_a_front_ends_id_is_the_same_comment() {
        let mut report = report();
        let history = report.history.clone();
        assert_eq!(
            report.add_comment(comment(Some("248"), "Still not emptied"), 10),
            CommentAdded::New("MB-3-c0".into())
        );
        assert_eq!(
            report.add_comment(comment(Some("248"), "Still not emptied"), 20),
            CommentAdded::Again("MB-3-c0".into())
        );
        assert_eq!(
            report.add_comment(comment(None, "Thanks"), 30),
            CommentAdded::New("MB-3-c1".into())
        );
        assert_eq!(report.comments.len(), 2);
        assert_eq!(report.comments[0].received_at, 10);
        // A comment never moves the report.
        assert_eq!(report.history, history);
    }

    #[test]
    fn a_report_keeps_a_bounded_number_of_comments() {
        let mut report = report();
        for i in 0..MAX_COMMENTS {
            let added = report.add_comment(comment(Some(&i.to_string()), "x"), 0);
            assert!(matches!(added, CommentAdded::New(_)));
        }
        assert_eq!(
            report.add_comment(comment(Some("new"), "x"), 0),
            CommentAdded::Full
        );
        // A repeat is still recognised when full.
        assert_eq!(
            report.add_comment(comment(Some("0"), "x"), 0),
            CommentAdded::Again("MB-3-c0".into())
        );
    }
}
