//! [`SledReportStore`]: the report desk's [`ReportStore`] on sled, trees in the gateway's
//! database beside the records reports are decided from.
//!
//! - `reports`: report id → report.
//! - `report_keys`: "uprn/stream/day" → report id, so that a second report of the same missed bin
//!   finds the first (inserted with the report in one transaction).
//! - `report_jobs`: return job id → report id, so that a crew's confirmation of a job closes its
//!   report.
//! - `properties`: UPRN → property.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::missed_bins::{Property, PropertyRegister, Report};
use crate::storage::reports::{Inserted, ReportStore};
use crate::storage::StoreError;

/// The most a stored report or property may be when read back.
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Reports and the register in sled.
#[derive(Debug, Clone)]
pub struct SledReportStore {
    db: sled::Db,
    reports: sled::Tree,
    keys: sled::Tree,
    jobs: sled::Tree,
    properties: sled::Tree,
}

impl SledReportStore {
    /// Opens the report trees in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            reports: db.open_tree("reports")?,
            keys: db.open_tree("report_keys")?,
            jobs: db.open_tree("report_jobs")?,
            properties: db.open_tree("properties")?,
        })
    }
}

impl ReportStore for SledReportStore {
    /// A fresh report id, never issued before on this store (`MB-` and a number).
    fn next_id(&self) -> Result<String, StoreError> {
        // sled's ids survive restarts and only grow; +1 so the first report is MB-1, not MB-0.
        Ok(format!("MB-{}", self.db.generate_id()? + 1))
    }

    /// Stores a newly filed report, unless one of the same missed bin (its [`Report::key`]) is
    /// already stored: then returns that one and stores nothing.
    fn insert_new(&self, report: &Report) -> Result<Inserted, StoreError> {
        let value = proto::encode_value(report)?;
        let key = report.key().map(|key| key.to_string());
        let outcome = (&self.reports, &self.keys).transaction(|(reports, keys)| {
            if let Some(key) = &key {
                if let Some(existing) = keys.get(key.as_bytes())? {
                    return Ok(Some(existing));
                }
                keys.insert(key.as_bytes(), report.id.as_bytes())?;
            }
            reports.insert(report.id.as_bytes(), value.as_slice())?;
            Ok::<_, ConflictableTransactionError<StoreError>>(None)
        });
        let existing = match outcome {
            Ok(existing) => existing,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        match existing {
            Some(id) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                let report = self.get(&id)?.ok_or_else(|| StoreError::Corrupt {
                    key: key.unwrap_or_default(),
                    reason: format!("names report {id}, which is not stored"),
                })?;
                Ok(Inserted::Duplicate(Box::new(report)))
            }
            None => {
                self.db.flush()?;
                Ok(Inserted::New)
            }
        }
    }

    /// Stores a changed report (and its job's index entry).
    fn save(&self, report: &Report) -> Result<(), StoreError> {
        let value = proto::encode_value(report)?;
        if let Some(job) = &report.job_id {
            self.jobs.insert(job.as_bytes(), report.id.as_bytes())?;
        }
        self.reports.insert(report.id.as_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// The report `id`.
    fn get(&self, id: &str) -> Result<Option<Report>, StoreError> {
        self.reports
            .get(id.as_bytes())?
            .map(|bytes| decode(id.as_bytes(), &bytes))
            .transpose()
    }

    /// The report whose return job is `job`.
    fn by_job(&self, job: &str) -> Result<Option<Report>, StoreError> {
        match self.jobs.get(job.as_bytes())? {
            Some(id) => self.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Every report, in id order.
    fn all(&self) -> Result<Vec<Report>, StoreError> {
        self.reports
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    /// Stores `properties`, replacing any with the same UPRN.
    fn save_properties(&self, properties: &[&Property]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for property in properties {
            batch.insert(&property.uprn.to_be_bytes(), proto::encode_value(property)?);
        }
        self.properties.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The register as stored.
    fn load_register(&self) -> Result<PropertyRegister, StoreError> {
        let mut register = PropertyRegister::new();
        for item in self.properties.iter() {
            let (key, value) = item?;
            register.insert(decode(&key, &value)?);
        }
        Ok(register)
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    proto::decode_value(bytes, MAX_VALUE_BYTES).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}
