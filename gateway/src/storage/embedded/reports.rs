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

    /// Stores a newly filed report, or links it to the case already stored under its key.
    fn insert_new(&self, report: &Report) -> Result<Inserted, StoreError> {
        let value = proto::encode_value(report)?;
        let key = report.key().map(|key| key.to_string());
        let outcome = (&self.reports, &self.keys).transaction(|(reports, keys)| {
            let Some(key) = &key else {
                reports.insert(report.id.as_bytes(), value.as_slice())?;
                return Ok(Inserted::New);
            };
            let Some(case_id) = keys.get(key.as_bytes())? else {
                keys.insert(key.as_bytes(), report.id.as_bytes())?;
                reports.insert(report.id.as_bytes(), value.as_slice())?;
                return Ok(Inserted::New);
            };
            let abort = ConflictableTransactionError::Abort;
            let case_bytes = reports.get(&case_id)?.ok_or_else(|| {
                abort(StoreError::Corrupt {
                    key: key.clone(),
                    reason: format!(
                        "names report {}, which is not stored",
                        String::from_utf8_lossy(&case_id)
                    ),
                })
            })?;
            let mut case: Report = decode(&case_id, &case_bytes).map_err(abort)?;
            let mut linked = report.clone();
            if !linked.link_to(&mut case) {
                return Ok(Inserted::Full(Box::new(case)));
            }
            let encode =
                |r: &Report| proto::encode_value(r).map_err(|e| abort(StoreError::from(e)));
            reports.insert(case_id.as_ref(), encode(&case)?)?;
            reports.insert(linked.id.as_bytes(), encode(&linked)?)?;
            Ok(Inserted::Linked {
                report: Box::new(linked),
                case: Box::new(case),
            })
        });
        let inserted = match outcome {
            Ok(inserted) => inserted,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        if !matches!(inserted, Inserted::Full(_)) {
            self.db.flush()?;
        }
        Ok(inserted)
    }

    /// Stores changed reports (and their jobs' index entries), all or none.
    fn save_all(&self, changed: &[Report]) -> Result<(), StoreError> {
        let values = changed
            .iter()
            .map(|report| Ok((report, proto::encode_value(report)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        (&self.reports, &self.jobs)
            .transaction(|(reports, jobs)| {
                for (report, value) in &values {
                    if let Some(job) = &report.job_id {
                        jobs.insert(job.as_bytes(), report.id.as_bytes())?;
                    }
                    reports.insert(report.id.as_bytes(), value.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => e.into(),
            })?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::missed_bins::{Reason, ReportStatus};

    /// A closed report as a gateway before linked reports wrote it (CBOR, as `proto::encode_value`
    /// wrote it): filed, dispatched, collected, with a resident's contact.
    const BEFORE_LINKING: &str = "aa626964644d422d37647570726e1b0000001749be21ee6673747265616d667265667573656e636f6c6c656374696f6e5f6461796a323032362d31312d32346a637265617465645f61741b000001a20eb6f1006673746174757366636c6f73656467686973746f727983a36261741b000001a20eb6f10066737461747573646f70656e66726561736f6ea166726561736f6e686163636570746564a36261741b000001a20eb7db60667374617475736b696e5f70726f677265737366726561736f6ea266726561736f6e7572657475726e5f6a6f625f64697370617463686564636a6f6267524a2d4d422d37a46261741b000001a211f37e606673746174757366636c6f73656466726561736f6ea266726561736f6e69636f6c6c65637465646261741b000001a211f37e606865766964656e63656b6361622d72637630372335666a6f625f696467524a2d4d422d3767636f6e74616374a2646e616d656c416461204c6f76656c61636565656d61696c6f616461406578616d706c652e6f72676b6465736372697074696f6e6f42696e206e6f7420656d7074696564";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn store() -> (tempfile::TempDir, SledReportStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, SledReportStore::open(&db).unwrap())
    }

    #[test]
    fn reports_stored_before_linking_still_open() {
        let (_dir, store) = store();
        store
            .reports
            .insert("MB-7".as_bytes(), unhex(BEFORE_LINKING))
            .unwrap();
        let report = store.get("MB-7").unwrap().unwrap();
        assert_eq!(report.status, ReportStatus::Closed);
        assert_eq!(report.history.len(), 3);
        assert_eq!(report.uprn, Some(100_021_445_102));
        assert_eq!(report.pin, None);
        assert_eq!(
            report.history[1].reason,
            Reason::ReturnJobDispatched {
                job: "RJ-MB-7".into(),
                due: None
            }
        );
        assert_eq!(report.linked_to, None);
        assert!(report.linked.is_empty());
        assert!(report.comments.is_empty());
        assert_eq!(
            report.contact.unwrap().email.as_deref(),
            Some("ada@example.org")
        );
        // And it reads back the same once written in today's shape.
        let again = store.get("MB-7").unwrap().unwrap();
        store.save(&again).unwrap();
        assert_eq!(store.get("MB-7").unwrap().unwrap(), again);
    }

    #[test]
    fn a_second_report_of_a_key_is_stored_linked_with_its_case_in_one_write() {
        let (_dir, store) = store();
        let mut first: Report = proto::decode_value(&unhex(BEFORE_LINKING), 1 << 20).unwrap();
        first.id = "MB-1".into();
        first.job_id = None;
        assert_eq!(store.insert_new(&first).unwrap(), Inserted::New);
        let second = Report {
            id: "MB-2".into(),
            contact: None,
            ..first.clone()
        };
        let Inserted::Linked { report, case } = store.insert_new(&second).unwrap() else {
            panic!("not linked");
        };
        assert_eq!(report.linked_to.as_deref(), Some("MB-1"));
        assert_eq!(case.linked, vec!["MB-2".to_owned()]);
        assert_eq!(store.get("MB-1").unwrap().unwrap(), *case);
        assert_eq!(store.get("MB-2").unwrap().unwrap(), *report);
        assert_eq!(store.all().unwrap().len(), 2);
    }
}
