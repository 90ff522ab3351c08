//! Residents' missed-bin reports as the gateway runs them: stored through the storage seam ([`crate::storage::reports`]), decided,
//! dispatched and closed by the [`desk`] from the crews' evidence, which [`follow`] feeds from the
//! ingest; [`open311_backend`] shows them to residents' front ends. The rules themselves are in [`crate::missed_bins`]; [`dispatch`] sends return jobs.

pub mod desk;
pub mod dispatch;
pub mod follow;
pub mod open311_backend;

pub use crate::storage::{ImportOrStoreError, Inserted, ReportStore};
pub use desk::{DeskError, DeskEvent, DeskSettings, NewReport, NewUnplaced, Placing, ReportDesk};
pub use dispatch::{DispatchError, JobSender, MqttJobSender};
pub use open311_backend::DeskOpen311;
#[cfg(test)]
mod tests;
