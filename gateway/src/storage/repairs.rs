//! What the repairs desk stores: repair jobs and tenants' heating reports, behind the
//! [`RepairStore`] trait ([`super::embedded::SledRepairStore`] keeps them in the gateway's one
//! database). Every write is durable on return.

use super::StoreError;
use crate::repairs::{HeatingReport, Repair};

/// Repair jobs and heating reports, durable on return of every write.
pub trait RepairStore: Send + Sync + 'static {
    /// A fresh job id, never issued before on this store (`RP-` and a number).
    fn next_job_id(&self) -> Result<String, StoreError>;

    /// A fresh heating report id, never issued before on this store (`HR-` and a number).
    fn next_report_id(&self) -> Result<String, StoreError>;

    /// Stores changed jobs and reports, all or none: a tenant's report and the job it links
    /// to change together.
    fn save(&self, jobs: &[Repair], reports: &[HeatingReport]) -> Result<(), StoreError>;

    /// The job `id`.
    fn job(&self, id: &str) -> Result<Option<Repair>, StoreError>;

    /// Every job, in the order they were raised.
    fn jobs(&self) -> Result<Vec<Repair>, StoreError>;

    /// The heating report `id`.
    fn report(&self, id: &str) -> Result<Option<HeatingReport>, StoreError>;

    /// Every heating report, in the order they were filed.
    fn reports(&self) -> Result<Vec<HeatingReport>, StoreError>;
}
