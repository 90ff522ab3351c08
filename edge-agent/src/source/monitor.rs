//! What the agent shows about its sensor source in `GET /v1/status` and in its health records:
//! which kind, for which boiler, its counters, and whether it is still running, ended (a replayed
//! file, stdin closed) or failed (a path that cannot be opened). The agent's wiring owns the task
//! through [`SourceMonitor::watch`].
//!
//! Health records carry the source's state as [`proto::SourceHealth`]: [`SourceMonitor::report`]
//! gives it for each record, and calls the source `silent` when it is running but has given no
//! reading since the previous record; [`source_health`] is that rule, free of I/O.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use proto::{SourceHealth, SourceStatus};
use serde::Serialize;
use tokio::task::AbortHandle;

use super::{Link, RunningSource, SourceConfig, SourceStats, StatsSnapshot};

/// A clonable view of the running source; every clone sees the same task.
#[derive(Debug, Clone)]
pub struct SourceMonitor {
    kind: &'static str,
    asset: String,
    stats: SourceStats,
    /// Set once, when the task ends: `None` for a normal end, the error otherwise.
    end: Arc<OnceLock<Option<String>>>,
    /// The readings counter at the last health record; [`NOT_REPORTED`] before the first.
    reported: Arc<AtomicU64>,
}

/// [`SourceMonitor::reported`] before any health record.
const NOT_REPORTED: u64 = u64::MAX;

/// The longest reason a health record carries, in bytes: enough for an error and its cause, well
/// within proto's 1000-byte limit on text, and little on a 4G link sent every health interval.
pub const MAX_WHY_BYTES: usize = 200;

/// Whether the source still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Reading and sampling.
    Running,
    /// Running, but its serial port or TCP connection is lost: it is waiting to reopen it.
    Reconnecting,
    /// Running, but the OTGW is in `PS=1` summary mode: it prints no frames, only a summary line
    /// when asked, which is read but holds fewer values (send it `PS=0`).
    SummaryMode,
    /// Its input ended (the end of a file, stdin closed) or the agent stopped it.
    Ended,
    /// It stopped on an error; see [`SourceView::error`].
    Failed,
}

/// The source, for the status API.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    /// The configured kind: `stdin`, `line`, `otgw_tcp` or `otgw_file`.
    pub kind: &'static str,
    /// The boiler's asset id that samples carry.
    pub asset: String,
    /// Running (or reconnecting, or stuck in summary mode), ended or failed.
    pub state: SourceState,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What it read, skipped and produced since the agent started.
    pub counters: StatsSnapshot,
    /// What the next health record says of it (`silent` counted from the last record).
    pub health: SourceHealth,
}

impl SourceMonitor {
    /// Watches `running`, started from `config` for boiler `asset`. Returns the monitor and the
    /// future that waits for the task and records how it ended; dropping that future (the agent's
    /// shutdown giving up on it) aborts the task.
    pub fn watch(
        config: &SourceConfig,
        asset: impl Into<String>,
        running: RunningSource,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let monitor = Self {
            kind: config.kind(),
            asset: asset.into(),
            stats: running.stats,
            end: Arc::new(OnceLock::new()),
            reported: Arc::new(AtomicU64::new(NOT_REPORTED)),
        };
        let end = Arc::clone(&monitor.end);
        let task = running.task;
        // Made before the future, so that dropping it unpolled aborts the task too.
        let abort = AbortOnDrop(task.abort_handle());
        let supervise = async move {
            let _abort = abort;
            let outcome = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error_chain(&error)),
                Err(join) => Some(format!("the source's task failed: {join}")),
            };
            // Only this future sets it, once.
            let _ = end.set(outcome);
        };
        (monitor, supervise)
    }

    /// The source's counters.
    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// The source now.
    pub fn view(&self) -> SourceView {
        let (state, error) = self.state();
        let counters = self.stats.snapshot();
        let reported = Some(self.reported.load(Ordering::Relaxed)).filter(|&n| n != NOT_REPORTED);
        SourceView {
            kind: self.kind,
            asset: self.asset.clone(),
            health: source_health(state, error.as_deref(), counters.readings, reported),
            state,
            error,
            counters,
        }
    }

    /// The source's state for a health record, and the mark from which the next one tells
    /// whether readings came in between.
    pub fn report(&self) -> SourceHealth {
        let (state, error) = self.state();
        let readings = self.stats.snapshot().readings;
        let before = self.reported.swap(readings, Ordering::Relaxed);
        let reported = Some(before).filter(|&n| n != NOT_REPORTED);
        source_health(state, error.as_deref(), readings, reported)
    }

    fn state(&self) -> (SourceState, Option<String>) {
        match self.end.get() {
            None if self.stats.link() == Link::Down => (SourceState::Reconnecting, None),
            None if self.stats.summary_mode() => (SourceState::SummaryMode, None),
            None => (SourceState::Running, None),
            Some(None) => (SourceState::Ended, None),
            Some(Some(error)) => (SourceState::Failed, Some(error.clone())),
        }
    }
}

/// What a health record says of a source in `state` (with `error` if it failed) that has
/// accepted `readings` readings, `reported` of them by the previous record (`None`: no record
/// yet). A running source is `silent` when no reading came since the previous record; before the
/// first record it has had no interval to be silent in.
pub fn source_health(
    state: SourceState,
    error: Option<&str>,
    readings: u64,
    reported: Option<u64>,
) -> SourceHealth {
    let (st, why) = match state {
        SourceState::Running if reported == Some(readings) => (
            SourceStatus::Silent,
            Some("no reading since the last health record"),
        ),
        SourceState::Running => (SourceStatus::Ok, None),
        SourceState::Reconnecting => (
            SourceStatus::Reconnecting,
            Some("the serial port or TCP connection is lost; reopening"),
        ),
        SourceState::SummaryMode => (
            SourceStatus::Summary,
            Some("the OTGW is in PS=1 summary mode: fewer values; send it PS=0"),
        ),
        SourceState::Ended => (SourceStatus::Ended, Some("the input ended")),
        SourceState::Failed => (SourceStatus::Failed, Some(error.unwrap_or("failed"))),
    };
    SourceHealth {
        st,
        why: why.map(|why| within(why, MAX_WHY_BYTES).to_owned()),
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn within(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Aborts the task when the supervising future is dropped before it finished.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        // A no-op once the task has finished.
        self.0.abort();
    }
}

/// The error and its causes, `: `-separated, as one line for the status API.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::source::{channel, spawn, spawn_with, Reading};

    #[tokio::test]
    async fn reports_running_then_ended() {
        let (readings, source) = channel(4);
        let (_interval_tx, interval) = watch::channel(Duration::from_secs(60));
        let (sink, mut samples) = mpsc::channel(4);
        let running = spawn_with(
            source,
            "B-1".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let (monitor, supervise) = SourceMonitor::watch(&SourceConfig::Stdin, "B-1", running);
        let supervisor = tokio::spawn(supervise);
        readings.send(Reading::Flow(50.0)).await.unwrap();
        assert_eq!(monitor.view().state, SourceState::Running);
        drop(readings);
        assert!(samples.recv().await.is_some());
        supervisor.await.unwrap();
        let view = monitor.view();
        assert_eq!((view.state, view.error), (SourceState::Ended, None));
        assert_eq!((view.kind, view.asset.as_str()), ("stdin", "B-1"));
        assert_eq!(view.counters.samples, 1);
    }

    #[tokio::test]
    async fn reports_a_failure_with_its_cause() {
        let config = SourceConfig::Line {
            path: "/nonexistent/fieldsync/sensor".into(),
        };
        let (_interval_tx, interval) = watch::channel(Duration::from_secs(60));
        let (sink, _samples) = mpsc::channel(4);
        let running = spawn(
            config.clone(),
            "B-1".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let (monitor, supervise) = SourceMonitor::watch(&config, "B-1", running);
        supervise.await;
        let view = monitor.view();
        assert_eq!(view.state, SourceState::Failed);
        let error = view.error.unwrap();
        assert!(
            error.contains("/nonexistent/fieldsync/sensor") && error.contains("No such file"),
            "{error}"
        );
    }

    #[test]
    fn health_says_what_the_source_is_doing() {
        let st = |state, error, readings, reported| {
            let health = source_health(state, error, readings, reported);
            (health.st, health.why.is_some())
        };
        assert_eq!(
            st(SourceState::Running, None, 5, None),
            (SourceStatus::Ok, false)
        );
        assert_eq!(
            st(SourceState::Running, None, 5, Some(3)),
            (SourceStatus::Ok, false)
        );
        // Nothing since the last record: silent.
        assert_eq!(
            st(SourceState::Running, None, 5, Some(5)),
            (SourceStatus::Silent, true)
        );
        assert_eq!(
            st(SourceState::SummaryMode, None, 5, Some(5)).0,
            SourceStatus::Summary
        );
        assert_eq!(
            st(SourceState::Reconnecting, None, 0, None).0,
            SourceStatus::Reconnecting
        );
        assert_eq!(st(SourceState::Ended, None, 0, None).0, SourceStatus::Ended);
        let failed = source_health(SourceState::Failed, Some("cannot open /dev/otgw"), 0, None);
        assert_eq!(failed.st, SourceStatus::Failed);
        assert_eq!(failed.why.as_deref(), Some("cannot open /dev/otgw"));
        // A long error is cut to what proto accepts, at a character boundary.
        let long = format!("x{}", "é".repeat(MAX_WHY_BYTES));
        let cut = source_health(SourceState::Failed, Some(&long), 0, None)
            .why
            .unwrap();
        assert_eq!(cut.len(), MAX_WHY_BYTES - 1);
    }

    #[tokio::test]
    async fn each_report_counts_silence_from_the_last() {
        let (readings, source) = channel(4);
        let (_interval_tx, interval) = watch::channel(Duration::from_secs(60));
        let (sink, _samples) = mpsc::channel(4);
        let running = spawn_with(
            source,
            "B-1".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let stats = running.stats.clone();
        let (monitor, _supervise) = SourceMonitor::watch(&SourceConfig::Stdin, "B-1", running);
        assert_eq!(monitor.report().st, SourceStatus::Ok);
        assert_eq!(monitor.view().health.st, SourceStatus::Silent);
        assert_eq!(monitor.report().st, SourceStatus::Silent);
        readings.send(Reading::Flow(50.0)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while stats.snapshot().readings == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(monitor.view().health.st, SourceStatus::Ok);
        assert_eq!(monitor.report().st, SourceStatus::Ok);
        assert_eq!(monitor.report().st, SourceStatus::Silent);
    }

    #[tokio::test]
    async fn dropping_the_supervisor_aborts_the_task() {
        let (_readings, source) = channel(4);
        let (_interval_tx, interval) = watch::channel(Duration::from_secs(60));
        let (sink, _samples) = mpsc::channel(4);
        let running = spawn_with(
            source,
            "B-1".into(),
            interval,
            sink,
            CancellationToken::new(),
        )
        .unwrap();
        let handle = running.task.abort_handle();
        let (_monitor, supervise) = SourceMonitor::watch(&SourceConfig::Stdin, "B-1", running);
        drop(supervise);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !handle.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
}
