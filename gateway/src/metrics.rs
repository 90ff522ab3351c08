//! The gateway's counters, rendered as Prometheus text for `GET /metrics`. Plain atomics: the
//! ingest path bumps them per batch and must not wait on a lock to do so.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the ingest loop and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// MQTT messages received on device topics.
    pub messages_in: AtomicU64,
    /// Records stored for the first time.
    pub records_stored: AtomicU64,
    /// Records received again (replays, resends) and not stored twice.
    pub duplicates: AtomicU64,
    /// Messages refused into the quarantine.
    pub quarantined: AtomicU64,
    /// Of which envelopes refused for their signature: unsigned while signing is required, or
    /// not signed by the device their topic names.
    pub envelopes_unverified: AtomicU64,
    /// Records of batches refused (the rest of each batch stored), first refusals only.
    pub records_refused: AtomicU64,
    /// Quarantine entries evicted (oldest first, over the caps or the retention) since start.
    pub quarantine_evicted: AtomicU64,
    /// Quarantine entries held now (a gauge).
    pub quarantine_entries: AtomicU64,
    /// Bytes the quarantine takes now (a gauge).
    pub quarantine_bytes: AtomicU64,
    /// Acks published to devices.
    pub acks_sent: AtomicU64,
    /// Batches from devices that are not provisioned.
    pub unknown_device_batches: AtomicU64,
    /// Sum of ingest lag (receipt to ack) in microseconds.
    pub ingest_lag_us_sum: AtomicU64,
    /// Number of lag observations.
    pub ingest_lag_count: AtomicU64,
    /// Largest ingest lag seen, in microseconds.
    pub ingest_lag_us_max: AtomicU64,
    /// Times the MQTT connection was lost.
    pub mqtt_disconnects: AtomicU64,
    /// Reports decided, by decision: refused, rejected (with evidence), accepted (open).
    pub reports_refused: AtomicU64,
    /// See `reports_refused`.
    pub reports_rejected: AtomicU64,
    /// See `reports_refused`.
    pub reports_accepted: AtomicU64,
    /// Reports that repeated an earlier one and returned it.
    pub report_duplicates: AtomicU64,
    /// Reports closed by a crew's confirmation.
    pub reports_closed: AtomicU64,
    /// Reports whose resident's personal data was purged after the retention.
    pub reports_purged: AtomicU64,
    /// Staff API requests refused for their token: none, unknown, revoked or malformed (401).
    pub staff_unauthenticated: AtomicU64,
    /// Staff API requests refused for their token's role (403).
    pub staff_forbidden: AtomicU64,
    /// Return jobs sent to devices.
    pub jobs_dispatched: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one ingest-lag observation.
    pub fn observe_lag(&self, lag: std::time::Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        Self::add(&self.ingest_lag_us_sum, us);
        Self::add(&self.ingest_lag_count, 1);
        self.ingest_lag_us_max.fetch_max(us, Ordering::Relaxed);
    }

    /// Sets the quarantine's gauges and eviction count from the store's figures.
    pub fn set_quarantine(&self, usage: crate::storage::QuarantineUsage) {
        self.quarantine_entries
            .store(usage.entries, Ordering::Relaxed);
        self.quarantine_bytes.store(usage.bytes, Ordering::Relaxed);
        self.quarantine_evicted
            .store(usage.evicted, Ordering::Relaxed);
    }

    /// Counts a newly filed report by the rules' decision.
    pub fn count_report_decision(&self, status: crate::missed_bins::ReportStatus) {
        use crate::missed_bins::ReportStatus;
        let counter = match status {
            ReportStatus::Refused => &self.reports_refused,
            ReportStatus::Rejected => &self.reports_rejected,
            ReportStatus::Open | ReportStatus::InProgress | ReportStatus::Closed => {
                &self.reports_accepted
            }
        };
        Self::add(counter, 1);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let counters = [
            (
                "fieldsync_messages_in_total",
                "MQTT messages received on device topics.",
                &self.messages_in,
            ),
            (
                "fieldsync_records_stored_total",
                "Records stored for the first time.",
                &self.records_stored,
            ),
            (
                "fieldsync_duplicate_records_total",
                "Records received again and not stored twice.",
                &self.duplicates,
            ),
            (
                "fieldsync_quarantined_total",
                "Messages refused into the quarantine.",
                &self.quarantined,
            ),
            (
                "fieldsync_envelopes_unverified_total",
                "Envelopes quarantined for their signature: unsigned, or not by their topic's device.",
                &self.envelopes_unverified,
            ),
            (
                "fieldsync_records_refused_total",
                "Records of batches refused and named in the ack (the rest stored).",
                &self.records_refused,
            ),
            (
                "fieldsync_quarantine_evicted_total",
                "Quarantine entries evicted, oldest first, over the caps or the retention.",
                &self.quarantine_evicted,
            ),
            (
                "fieldsync_acks_sent_total",
                "Acks published to devices.",
                &self.acks_sent,
            ),
            (
                "fieldsync_unknown_device_batches_total",
                "Batches from devices that are not provisioned.",
                &self.unknown_device_batches,
            ),
            (
                "fieldsync_mqtt_disconnects_total",
                "Times the gateway's MQTT connection was lost.",
                &self.mqtt_disconnects,
            ),
            (
                "fieldsync_report_duplicates_total",
                "Missed-bin reports that repeated an earlier one.",
                &self.report_duplicates,
            ),
            (
                "fieldsync_staff_unauthenticated_total",
                "Staff API requests refused for want of a valid token (401).",
                &self.staff_unauthenticated,
            ),
            (
                "fieldsync_staff_forbidden_total",
                "Staff API requests refused because the token's role may not (403).",
                &self.staff_forbidden,
            ),
            (
                "fieldsync_reports_purged_total",
                "Closed missed-bin reports whose resident's personal data was purged.",
                &self.reports_purged,
            ),
            (
                "fieldsync_reports_closed_total",
                "Missed-bin reports closed by a crew's confirmation.",
                &self.reports_closed,
            ),
            (
                "fieldsync_return_jobs_dispatched_total",
                "Return jobs sent to crews' devices.",
                &self.jobs_dispatched,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP fieldsync_report_decisions_total Missed-bin reports by the rules' decision.\n\
             # TYPE fieldsync_report_decisions_total counter\n\
             fieldsync_report_decisions_total{{decision=\"refused\"}} {}\n\
             fieldsync_report_decisions_total{{decision=\"rejected\"}} {}\n\
             fieldsync_report_decisions_total{{decision=\"accepted\"}} {}",
            get(&self.reports_refused),
            get(&self.reports_rejected),
            get(&self.reports_accepted),
        );
        let _ = writeln!(
            out,
            "# HELP fieldsync_quarantine_entries Quarantine entries held.\n\
             # TYPE fieldsync_quarantine_entries gauge\n\
             fieldsync_quarantine_entries {}\n\
             # HELP fieldsync_quarantine_bytes Bytes the quarantine takes.\n\
             # TYPE fieldsync_quarantine_bytes gauge\n\
             fieldsync_quarantine_bytes {}",
            get(&self.quarantine_entries),
            get(&self.quarantine_bytes),
        );
        let seconds = |us: u64| us as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP fieldsync_ingest_lag_seconds Time from a batch's receipt to its ack.\n\
             # TYPE fieldsync_ingest_lag_seconds summary\n\
             fieldsync_ingest_lag_seconds_sum {}\n\
             fieldsync_ingest_lag_seconds_count {}\n\
             # HELP fieldsync_ingest_lag_max_seconds Largest receipt-to-ack time seen.\n\
             # TYPE fieldsync_ingest_lag_max_seconds gauge\n\
             fieldsync_ingest_lag_max_seconds {}",
            seconds(get(&self.ingest_lag_us_sum)),
            get(&self.ingest_lag_count),
            seconds(get(&self.ingest_lag_us_max)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_lag() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.records_stored, 50);
        metrics.set_quarantine(crate::storage::QuarantineUsage {
            entries: 3,
            bytes: 900,
            evicted: 7,
        });
        metrics.observe_lag(std::time::Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains("fieldsync_records_stored_total 50\n"),
            "{text}"
        );
        assert!(
            text.contains("fieldsync_quarantine_evicted_total 7\n"),
            "{text}"
        );
        assert!(text.contains("fieldsync_quarantine_bytes 900\n"), "{text}");
        assert!(
            text.contains("fieldsync_ingest_lag_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("fieldsync_ingest_lag_max_seconds 0.003"),
            "{text}"
        );
    }
}
