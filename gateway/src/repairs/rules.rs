//! The rules of repair jobs, pure functions over data and a time: when a job is due, which
//! operative takes it (by patch, least loaded, or named), when an operative's silence means
//! giving the job to someone else, how an operative's report moves a job, which alerts raise a
//! job by themselves, and when a completed job whose alert has not cleared needs a look.

use std::collections::BTreeMap;

use proto::{JobStatus, Priority, TimestampMs};
use serde::{Deserialize, Serialize};

use super::model::{Repair, RepairStatus};
use crate::boilers::{Alert, AlertKind, Severity};
use crate::missed_bins::bin_days::postcode_of;

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A repairs operative and their handheld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operative {
    /// Their handheld's device id: jobs go to its `down` topic.
    pub device: String,
    /// Their name, for staff (never logged).
    pub name: String,
    /// The postcode districts (outward codes, `UB10`) or whole postcodes they cover. Default:
    /// none.
    #[serde(default)]
    pub patch: Vec<String>,
}

/// How a job's operative is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignRule {
    /// The operative whose patch covers the home's postcode (the least loaded of them), else the
    /// least loaded of all.
    Patch,
    /// The operative with the fewest open jobs (the first configured on a tie).
    #[default]
    LeastLoaded,
    /// The operative staff named when raising the job, else the least loaded.
    Named,
}

/// The due time of a job of `priority` raised at `now`: the usual social-housing targets
/// (emergency 24 hours, urgent 3 days, routine 28 days, planned 90 days), in elapsed time.
pub fn due_by(priority: Priority, now: TimestampMs) -> TimestampMs {
    let within = match priority {
        Priority::Emergency => DAY_MS,
        Priority::Urgent => 3 * DAY_MS,
        Priority::Routine => 28 * DAY_MS,
        Priority::Planned => 90 * DAY_MS,
    };
    now.saturating_add(within)
}

/// The priority of a job raised from an alert of `severity`.
pub fn priority_for(severity: Severity) -> Priority {
    match severity {
        Severity::Critical => Priority::Emergency,
        Severity::High => Priority::Urgent,
        Severity::Warning | Severity::Info => Priority::Routine,
    }
}

/// Whether `patch` covers the postcode at the end of `address`: its outward code or the whole
/// postcode, without regard to case or spaces.
pub fn covers(patch: &[String], address: &str) -> bool {
    let Some(postcode) = postcode_of(address) else {
        return false;
    };
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let outward = postcode.split(' ').next().unwrap_or_default().to_owned();
    let whole = squash(&postcode);
    patch.iter().any(|p| {
        let p = squash(p);
        p == outward || p == whole
    })
}

/// The operative to give a job to, by `rule`: `load` is each device's open jobs, `address` the
/// home's, `named` the operative staff named, `exclude` devices not to choose (the one a job is
/// being taken from, and others known to be offline). `None` when there is no operative to
/// choose.
pub fn choose_operative<'a>(
    rule: AssignRule,
    operatives: &'a [Operative],
    load: &BTreeMap<String, usize>,
    address: &str,
    named: Option<&str>,
    exclude: &[&str],
) -> Option<&'a Operative> {
    let candidates: Vec<&Operative> = operatives
        .iter()
        .filter(|o| !exclude.contains(&o.device.as_str()))
        .collect();
    let least_loaded = |among: &[&'a Operative]| -> Option<&'a Operative> {
        // min_by_key keeps the first of equals: configuration order breaks ties.
        among
            .iter()
            .copied()
            .min_by_key(|o| load.get(&o.device).copied().unwrap_or(0))
    };
    match rule {
        AssignRule::Named => named
            .and_then(|named| candidates.iter().copied().find(|o| o.device == named))
            .or_else(|| least_loaded(&candidates)),
        AssignRule::Patch => {
            let in_patch: Vec<&Operative> = candidates
                .iter()
                .copied()
                .filter(|o| covers(&o.patch, address))
                .collect();
            least_loaded(&in_patch).or_else(|| least_loaded(&candidates))
        }
        AssignRule::LeastLoaded => least_loaded(&candidates),
    }
}

/// What the gateway knows of a device's presence (its retained state, when last heard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// Online or offline from its last state message; `None` if it never sent one.
    pub online: Option<bool>,
    /// When the gateway last heard from it.
    pub last_seen: Option<TimestampMs>,
}

/// How long the device a job was dispatched at `dispatched_at` has been offline at `now`, for
/// the job's sake: from when it went offline or from the dispatch, whichever is later (a device
/// offline for a week has kept this job waiting only since it was sent). `None` while online.
pub fn offline_for(
    presence: Presence,
    dispatched_at: TimestampMs,
    now: TimestampMs,
) -> Option<i64> {
    if presence.online == Some(true) {
        return None;
    }
    let since = presence
        .last_seen
        .unwrap_or(dispatched_at)
        .max(dispatched_at);
    Some(now.saturating_sub(since).max(0))
}

/// Whether a job in `status` whose device has been offline `offline_ms` goes to another
/// operative: only before the operative is at the home (once there, the job is theirs), and
/// only past `limit_ms`.
pub fn should_reassign(status: RepairStatus, offline_ms: i64, limit_ms: i64) -> bool {
    matches!(
        status,
        RepairStatus::Dispatched | RepairStatus::Accepted | RepairStatus::EnRoute
    ) && offline_ms >= limit_ms
}

/// What an operative's report does to a job in `current`: its new status, or `None` when the
/// job is done or withdrawn and the report changes nothing. A job cancelled on the handheld
/// (the operative declined it) goes back to waiting for an operative.
pub fn apply_update(current: RepairStatus, reported: JobStatus) -> Option<RepairStatus> {
    if !current.is_open() {
        return None;
    }
    Some(match reported {
        JobStatus::Accepted => RepairStatus::Accepted,
        JobStatus::EnRoute => RepairStatus::EnRoute,
        JobStatus::Arrived => RepairStatus::Arrived,
        JobStatus::Completed => RepairStatus::Completed,
        JobStatus::NoAccess => RepairStatus::NoAccess,
        JobStatus::PartsNeeded => RepairStatus::PartsNeeded,
        JobStatus::Cancelled => RepairStatus::Raised,
    })
}

/// The job an alert raises by itself, as (priority, description), when `enabled`: a critical
/// lockout or fault, or pressure below the critical threshold (0.5 bar by default). Other
/// alerts wait for staff.
pub fn auto_raise(enabled: bool, alert: &Alert) -> Option<(Priority, String)> {
    if !enabled || alert.severity != Severity::Critical || alert.closed_at_ms.is_some() {
        return None;
    }
    let description = match alert.kind {
        AlertKind::Fault => "Boiler in lockout or fault (raised by its critical alert)",
        AlertKind::PressureLow => "Boiler pressure critically low (raised by its critical alert)",
        _ => return None,
    };
    Some((Priority::Emergency, description.to_owned()))
}

/// How long after completion `job` has gone with its alert still open, when that is at least
/// `attention_ms` and it has not been flagged yet: then it needs a look.
pub fn needs_attention(
    job: &Repair,
    alert_open: bool,
    now: TimestampMs,
    attention_ms: i64,
) -> Option<i64> {
    let completed = job.completed_at?;
    if job.status != RepairStatus::Completed
        || job.alert.is_none()
        || !alert_open
        || job.attention_at.is_some()
        || job.alert_cleared_at.is_some()
    {
        return None;
    }
    let after = now.saturating_sub(completed);
    (after >= attention_ms).then_some(after)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::repairs::model::{AlertRef, Origin};

    /// Tuesday 24 November 2026, 10:00 UTC.
    const T0: TimestampMs = 1_795_514_400_000;

    fn operative(device: &str, patch: &[&str]) -> Operative {
        Operative {
            device: device.into(),
            name: format!("Operative {device}"),
            patch: patch.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn crew() -> Vec<Operative> {
        vec![
            operative("hh-1", &["UB10"]),
            operative("hh-2", &["UB8", "HA4 0AA"]),
            operative("hh-3", &[]),
        ]
    }

    fn load(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect()
    }

    fn chosen(
        rule: AssignRule,
        load: &BTreeMap<String, usize>,
        address: &str,
        named: Option<&str>,
        exclude: &[&str],
    ) -> Option<String> {
        let crew = crew();
        choose_operative(rule, &crew, load, address, named, exclude).map(|o| o.device.clone())
    }

    #[test]
    fn the_patch_rule_takes_the_operative_covering_the_postcode_else_the_least_loaded() {
        let busy = load(&[("hh-1", 5), ("hh-2", 1), ("hh-3", 0)]);
        let at = |address| chosen(AssignRule::Patch, &busy, address, None, &[]);
        // Busy or not, the patch's operative.
        assert_eq!(
            at("4 Swakeleys Road, Ickenham UB10 8BE").as_deref(),
            Some("hh-1")
        );
        // What the register does not write as a postcode is not read as one.
        assert_eq!(
            at("1 High Street, Uxbridge ub8 1ab").as_deref(),
            Some("hh-3")
        );
        assert_eq!(
            at("1 High Street, Uxbridge UB8 1AB").as_deref(),
            Some("hh-2")
        );
        // A whole postcode in a patch.
        assert_eq!(
            at("2 Field End Road, Ruislip HA4 0AA").as_deref(),
            Some("hh-2")
        );
        // Outside every patch, or no postcode at all: the least loaded.
        assert_eq!(at("9 Other Road, Harrow HA1 1AA").as_deref(), Some("hh-3"));
        assert_eq!(at("Flat 2").as_deref(), Some("hh-3"));
        // UB1 is not UB10.
        assert!(!covers(&["UB1".into()], "4 Swakeleys Road UB10 8BE"));
    }

    #[test]
    fn least_loaded_breaks_ties_by_configuration_order_and_skips_the_excluded() {
        let even = load(&[]);
        assert_eq!(
            chosen(AssignRule::LeastLoaded, &even, "x", None, &[]).as_deref(),
            Some("hh-1")
        );
        assert_eq!(
            chosen(AssignRule::LeastLoaded, &even, "x", None, &["hh-1"]).as_deref(),
            Some("hh-2")
        );
        let uneven = load(&[("hh-1", 2), ("hh-2", 1), ("hh-3", 1)]);
        assert_eq!(
            chosen(AssignRule::LeastLoaded, &uneven, "x", None, &[]).as_deref(),
            Some("hh-2")
        );
        assert_eq!(
            choose_operative(AssignRule::LeastLoaded, &[], &even, "x", None, &[]),
            None
        );
    }

    #[test]
    fn the_named_rule_takes_the_named_operative_if_configured_else_the_least_loaded() {
        let busy = load(&[("hh-3", 9)]);
        assert_eq!(
            chosen(AssignRule::Named, &busy, "x", Some("hh-3"), &[]).as_deref(),
            Some("hh-3")
        );
        assert_eq!(
            chosen(AssignRule::Named, &busy, "x", Some("nobody"), &[]).as_deref(),
            Some("hh-1")
        );
        // Being taken from the named one (offline): someone else.
        assert_eq!(
            chosen(AssignRule::Named, &busy, "x", Some("hh-3"), &["hh-3"]).as_deref(),
            Some("hh-1")
        );
    }

    #[test]
    fn a_job_is_reassigned_only_before_arrival_and_only_past_the_offline_limit() {
        let limit = 2 * HOUR_MS;
        let offline = Presence {
            online: Some(false),
            last_seen: Some(T0 - 5 * HOUR_MS),
        };
        // Offline since before the dispatch: counted from the dispatch.
        assert_eq!(offline_for(offline, T0, T0 + HOUR_MS), Some(HOUR_MS));
        let later = offline_for(offline, T0, T0 + 2 * HOUR_MS).unwrap();
        assert!(should_reassign(RepairStatus::Dispatched, later, limit));
        assert!(should_reassign(RepairStatus::EnRoute, later, limit));
        assert!(!should_reassign(RepairStatus::Dispatched, HOUR_MS, limit));
        assert!(!should_reassign(RepairStatus::Arrived, later, limit));
        assert!(!should_reassign(RepairStatus::Completed, later, limit));
        // Went offline after the dispatch: counted from then.
        let went = Presence {
            online: Some(false),
            last_seen: Some(T0 + HOUR_MS),
        };
        assert_eq!(offline_for(went, T0, T0 + 2 * HOUR_MS), Some(HOUR_MS));
        // Online: never.
        let online = Presence {
            online: Some(true),
            last_seen: Some(T0 - 9 * HOUR_MS),
        };
        assert_eq!(offline_for(online, T0, T0 + 9 * HOUR_MS), None);
        // Never heard from: since the dispatch.
        assert_eq!(offline_for(Presence::default(), T0, T0 + 3), Some(3));
    }

    #[test]
    fn operatives_reports_move_an_open_job_and_nothing_moves_a_finished_one() {
        use RepairStatus as S;
        assert_eq!(
            apply_update(S::Dispatched, JobStatus::Accepted),
            Some(S::Accepted)
        );
        assert_eq!(
            apply_update(S::Accepted, JobStatus::EnRoute),
            Some(S::EnRoute)
        );
        assert_eq!(
            apply_update(S::EnRoute, JobStatus::Arrived),
            Some(S::Arrived)
        );
        assert_eq!(
            apply_update(S::Arrived, JobStatus::PartsNeeded),
            Some(S::PartsNeeded)
        );
        assert_eq!(
            apply_update(S::PartsNeeded, JobStatus::Arrived),
            Some(S::Arrived)
        );
        assert_eq!(
            apply_update(S::Arrived, JobStatus::NoAccess),
            Some(S::NoAccess)
        );
        assert_eq!(
            apply_update(S::Arrived, JobStatus::Completed),
            Some(S::Completed)
        );
        assert_eq!(
            apply_update(S::Accepted, JobStatus::Cancelled),
            Some(S::Raised)
        );
        assert_eq!(apply_update(S::Completed, JobStatus::Arrived), None);
        assert_eq!(apply_update(S::Cancelled, JobStatus::Accepted), None);
    }

    fn alert(kind: AlertKind, severity: Severity) -> Alert {
        Alert {
            asset: "HIL-B-0001".into(),
            kind,
            severity,
            opened_at_ms: T0,
            evidence: Vec::new(),
            ack: None,
            closed_at_ms: None,
            closing_evidence: Vec::new(),
        }
    }

    #[test]
    fn only_critical_lockouts_and_pressure_raise_a_job_and_only_when_enabled() {
        let lockout = alert(AlertKind::Fault, Severity::Critical);
        let low = alert(AlertKind::PressureLow, Severity::Critical);
        assert_eq!(auto_raise(false, &lockout), None);
        assert_eq!(auto_raise(true, &lockout).unwrap().0, Priority::Emergency);
        assert!(auto_raise(true, &low).is_some());
        assert_eq!(
            auto_raise(true, &alert(AlertKind::PressureLow, Severity::Warning)),
            None
        );
        assert_eq!(
            auto_raise(true, &alert(AlertKind::Silent, Severity::Critical)),
            None
        );
    }

    fn completed_job(at: TimestampMs) -> Repair {
        Repair {
            id: "RP-1".into(),
            asset: "HIL-B-0001".into(),
            uprn: 1,
            address: String::new(),
            description: String::new(),
            priority: Priority::Urgent,
            due: at,
            raised_at: at,
            origin: Origin::Alert,
            alert: Some(AlertRef::of(&alert(AlertKind::Fault, Severity::Critical))),
            named: None,
            status: RepairStatus::Completed,
            rev: 1,
            dispatch: None,
            completed_at: Some(at),
            alert_cleared_at: None,
            attention_at: None,
            tenant_reports: Vec::new(),
            applied: Vec::new(),
            history: Vec::new(),
        }
    }

    #[test]
    fn a_completed_job_whose_alert_stays_open_past_the_limit_needs_attention_once() {
        let limit = 4 * HOUR_MS;
        let mut job = completed_job(T0);
        assert_eq!(needs_attention(&job, true, T0 + HOUR_MS, limit), None);
        assert_eq!(needs_attention(&job, true, T0 + limit, limit), Some(limit));
        // Cleared: fine.
        assert_eq!(needs_attention(&job, false, T0 + limit, limit), None);
        job.attention_at = Some(T0 + limit);
        assert_eq!(needs_attention(&job, true, T0 + 2 * limit, limit), None);
        // Not completed: not this rule's business.
        let mut open = completed_job(T0);
        open.status = RepairStatus::Arrived;
        assert_eq!(needs_attention(&open, true, T0 + limit, limit), None);
    }

    #[test]
    fn due_times_follow_the_priority_bands() {
        assert_eq!(due_by(Priority::Emergency, T0), T0 + DAY_MS);
        assert_eq!(due_by(Priority::Urgent, T0), T0 + 3 * DAY_MS);
        assert_eq!(due_by(Priority::Routine, T0), T0 + 28 * DAY_MS);
        assert_eq!(priority_for(Severity::Critical), Priority::Emergency);
    }
}
