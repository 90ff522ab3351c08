//! Residents' missed-bin reports as the gateway runs them: stored in sled ([`store`]), decided,
//! dispatched and closed by the [`desk`] from the crews' evidence, which [`follow`] feeds from the
//! ingest; [`open311_backend`] shows them to residents' front ends. The rules themselves are in [`crate::missed_bins`]; [`dispatch`] sends return jobs.

pub mod desk;
pub mod dispatch;
pub mod follow;
pub mod open311_backend;
pub mod store;

pub use desk::{DeskError, DeskEvent, DeskSettings, NewReport, ReportDesk};
pub use dispatch::{DispatchError, JobSender, MqttJobSender};
pub use open311_backend::DeskOpen311;
pub use store::{ImportOrStoreError, Inserted, ReportStore};
#[cfg(test)]
mod tests;
