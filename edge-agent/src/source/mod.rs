//! Sensor input for boiler hubs: readings from JSON lines, an OpenTherm Gateway or an in-process
//! channel, assembled into one [`proto::Telemetry`] sample per sampling interval.
//!
//! ```text
//!  stdin, file, FIFO ─────► LineSource ────┐
//!  OTGW tty, file, TCP ───► OtgwSource ────┼─ Reading ─► Sampler ─ Telemetry ─► sink (outbox)
//!  simulator, test ───────► ChannelSource ─┘                ▲
//!                          interval: watch<Duration> (agent config, downlink `Config`)
//! ```
//!
//! - [`Source`]: yields [`Reading`]s, one field's value each, because OpenTherm delivers one data
//!   id per frame. [`LineSource`] (`line`), [`OtgwSource`] (`otgw`) and [`ChannelSource`]
//!   (`channel`) implement it; `lines` holds the line reading they share, `serial` the tty that
//!   is reopened when it fails, `replay` the pacing of a saved capture, `command` what the agent
//!   writes back to an OTGW (`PS=0`, and `PM=` polling).
//! - [`Sampler`] (`sampler`): the latest value of each field, and the staleness rule. No I/O.
//! - [`run`], [`spawn`], [`spawn_with`] (`task`): the task that reads a source, samples on the
//!   interval, and hands samples to the sink until shutdown.
//! - [`SourceStats`] (`stats`): what was read, skipped and produced, for health reports.
//! - [`SourceMonitor`] (`monitor`): the running source's kind, state and counters, for the
//!   agent's status API.
//!
//! The agent calls [`spawn`] with a [`SourceConfig`]; the simulator and tests call [`spawn_with`]
//! with a [`ChannelSource`].

mod channel;
pub mod command;
mod line;
pub mod lines;
mod monitor;
pub mod otgw;
mod reading;
pub mod replay;
mod sampler;
pub mod serial;
mod stats;
mod task;

use std::future::Future;
use std::io;
use std::path::PathBuf;

pub use channel::{channel, ChannelSource};
pub use command::{OtgwCommands, Poller, MIN_POLL_EVERY_S, POLL_SPACING};
pub use line::LineSource;
pub use monitor::{SourceMonitor, SourceState, SourceView};
pub use otgw::OtgwSource;
pub use reading::{Answer, Reading};
pub use sampler::{Sampler, STALE_AFTER_INTERVALS};
pub use stats::{FrameSkips, Link, SourceStats, StatsSnapshot};
pub use task::{
    run, sample_interval, spawn, spawn_with, RunningSource, SourceConfig, DEFAULT_INTERVAL,
    MIN_INTERVAL,
};

/// Where readings come from.
///
/// Implemented with `async fn` in each impl; the trait spells out `+ Send` so that the sampling
/// task can be spawned. Static dispatch only: the agent runs one source per hub, chosen once.
pub trait Source: Send {
    /// The next reading, or `Ok(None)` once the input has ended for good (end of a file, stdin
    /// closed, every sender of a channel dropped). A TCP source never ends; it reconnects.
    ///
    /// Must be cancel-safe: the sampling task drops this future whenever a sample falls due and
    /// calls again afterwards, and nothing (such as a partly read line) may be lost by that.
    fn next_reading(&mut self)
        -> impl Future<Output = Result<Option<Reading>, SourceError>> + Send;

    /// The source's counters.
    fn stats(&self) -> &SourceStats;
}

/// Why a source stopped. Bad input never stops one: it is counted and skipped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input file, FIFO or tty could not be opened.
    #[error("cannot open sensor input {path}")]
    Open {
        /// The path configured.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the input failed (not a TCP drop, which is retried).
    #[error("reading the sensor input failed")]
    Read(#[source] io::Error),
    /// The configured asset id is not one proto accepts.
    #[error("invalid boiler asset id")]
    Asset(#[source] proto::Invalid),
    /// Whoever receives the samples has gone: nothing more can be delivered.
    #[error("the telemetry sink is closed")]
    SinkClosed,
}
