//! What the agent shows about its sensor source in `GET /v1/status`: which kind, for which boiler,
//! its counters, and whether it is still running, ended (a replayed file, stdin closed) or failed
//! (a path that cannot be opened). The agent's wiring owns the task through
//! [`SourceMonitor::watch`].

use std::future::Future;
use std::sync::{Arc, OnceLock};

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
}

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
        let (state, error) = match self.end.get() {
            None if self.stats.link() == Link::Down => (SourceState::Reconnecting, None),
            None if self.stats.summary_mode() => (SourceState::SummaryMode, None),
            None => (SourceState::Running, None),
            Some(None) => (SourceState::Ended, None),
            Some(Some(error)) => (SourceState::Failed, Some(error.clone())),
        };
        SourceView {
            kind: self.kind,
            asset: self.asset.clone(),
            state,
            error,
            counters: self.stats.snapshot(),
        }
    }
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
