//! What the report desk stores: residents' missed-bin reports and the property register, behind
//! the [`ReportStore`] trait ([`super::embedded::SledReportStore`] keeps them beside the records
//! they are decided from, so one directory holds a whole site). Every write is durable on
//! return.

use std::io::Read;

use proto::TimestampMs;

use super::StoreError;
use crate::missed_bins::{ImportError, ImportReport, Property, PropertyRegister, Report};

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportOrStoreError {
    /// The CSV could not be read at all.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`ReportStore::insert_new`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The report is new and now stored.
    New,
    /// A report of the same missed bin was already stored, the case: the report is stored linked
    /// to it ([`Report::link_to`]) as `report` shows, and `case` lists it.
    Linked {
        /// The new report as stored, following the case.
        report: Box<Report>,
        /// The case, as stored.
        case: Box<Report>,
    },
    /// A report of the same missed bin was already stored and takes no more linked reports
    /// ([`crate::missed_bins::report::MAX_LINKED`]): nothing was stored; this is the case.
    Full(Box<Report>),
}

/// Reports and the property register, durable on return of every write.
pub trait ReportStore: Send + Sync + 'static {
    /// A fresh report id, never issued before on this store (`MB-` and a number).
    fn next_id(&self) -> Result<String, StoreError>;

    /// Stores a newly filed report (or one just placed on a property, replacing it). When one of
    /// the same missed bin (its [`Report::key`]) is
    /// already stored, the new one is linked to it ([`Report::link_to`]) and both are stored.
    /// Atomic: of two reports of one missed bin filed at once, one is the case and the other is
    /// linked to it.
    fn insert_new(&self, report: &Report) -> Result<Inserted, StoreError>;

    /// Stores changed reports (and their return jobs' index entries), all or none: a case and
    /// the reports linked to it change together.
    fn save_all(&self, reports: &[Report]) -> Result<(), StoreError>;

    /// Stores a changed report (and its return job's index entry).
    fn save(&self, report: &Report) -> Result<(), StoreError> {
        self.save_all(std::slice::from_ref(report))
    }

    /// The report `id`.
    fn get(&self, id: &str) -> Result<Option<Report>, StoreError>;

    /// The report whose return job is `job`.
    fn by_job(&self, job: &str) -> Result<Option<Report>, StoreError>;

    /// Every report, in id order.
    fn all(&self) -> Result<Vec<Report>, StoreError>;

    /// Every report filed at or after `since`.
    fn filed_since(&self, since: TimestampMs) -> Result<Vec<Report>, StoreError> {
        let mut reports = self.all()?;
        reports.retain(|report| report.created_at >= since);
        Ok(reports)
    }

    /// Stores `properties`, replacing any with the same UPRN, all or none.
    fn save_properties(&self, properties: &[&Property]) -> Result<(), StoreError>;

    /// The register as stored.
    fn load_register(&self) -> Result<PropertyRegister, StoreError>;
}

/// Imports properties from `csv` into `register` and stores the register: all of it or, if
/// storing fails, none of it (`register` is left as it was).
pub fn import_properties(
    store: &dyn ReportStore,
    register: &mut PropertyRegister,
    csv: impl Read,
) -> Result<ImportReport, ImportOrStoreError> {
    let mut staged = register.clone();
    let report = staged.import_csv(csv)?;
    store.save_properties(&staged.iter().collect::<Vec<_>>())?;
    *register = staged;
    Ok(report)
}
