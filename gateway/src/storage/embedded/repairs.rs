//! [`SledRepairStore`]: the repairs desk's [`RepairStore`] on sled, trees in the gateway's
//! database.
//!
//! - `repair_jobs`: the job's number (big-endian, fixed width) → job, so jobs read back in the
//!   order they were raised;
//! - `heating_reports`: the report's number (likewise) → report.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::decode_stored;
use crate::repairs::{HeatingReport, Repair};
use crate::storage::repairs::RepairStore;
use crate::storage::StoreError;

const JOB_PREFIX: &str = "RP-";
const REPORT_PREFIX: &str = "HR-";

/// Repair jobs and heating reports in sled.
#[derive(Debug, Clone)]
pub struct SledRepairStore {
    db: sled::Db,
    jobs: sled::Tree,
    reports: sled::Tree,
}

impl SledRepairStore {
    /// Opens the repairs' trees in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            jobs: db.open_tree("repair_jobs")?,
            reports: db.open_tree("heating_reports")?,
        })
    }

    fn fresh(&self, prefix: &str) -> Result<String, StoreError> {
        // sled's ids survive restarts and only grow; +1 so the first is 1, not 0.
        Ok(format!("{prefix}{}", self.db.generate_id()? + 1))
    }
}

/// The key of id `prefix` + number; `None` for an id this store never issued.
fn key(prefix: &str, id: &str) -> Option<[u8; 8]> {
    let number: u64 = id.strip_prefix(prefix)?.parse().ok()?;
    Some(number.to_be_bytes())
}

fn corrupt(id: &str) -> StoreError {
    StoreError::Corrupt {
        key: id.to_owned(),
        reason: "not an id this store issues".into(),
    }
}

impl RepairStore for SledRepairStore {
    fn next_job_id(&self) -> Result<String, StoreError> {
        self.fresh(JOB_PREFIX)
    }

    fn next_report_id(&self) -> Result<String, StoreError> {
        self.fresh(REPORT_PREFIX)
    }

    fn save(&self, jobs: &[Repair], reports: &[HeatingReport]) -> Result<(), StoreError> {
        let jobs = jobs
            .iter()
            .map(|job| {
                let key = key(JOB_PREFIX, &job.id).ok_or_else(|| corrupt(&job.id))?;
                Ok((key, proto::encode_value(job)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let reports = reports
            .iter()
            .map(|report| {
                let key = key(REPORT_PREFIX, &report.id).ok_or_else(|| corrupt(&report.id))?;
                Ok((key, proto::encode_value(report)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        (&self.jobs, &self.reports)
            .transaction(|(job_tree, report_tree)| {
                for (key, value) in &jobs {
                    job_tree.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, value) in &reports {
                    report_tree.insert(key.as_slice(), value.as_slice())?;
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

    fn job(&self, id: &str) -> Result<Option<Repair>, StoreError> {
        let Some(key) = key(JOB_PREFIX, id) else {
            return Ok(None);
        };
        self.jobs
            .get(key)?
            .map(|bytes| decode_stored(id.as_bytes(), &bytes))
            .transpose()
    }

    fn jobs(&self) -> Result<Vec<Repair>, StoreError> {
        self.jobs
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }

    fn report(&self, id: &str) -> Result<Option<HeatingReport>, StoreError> {
        let Some(key) = key(REPORT_PREFIX, id) else {
            return Ok(None);
        };
        self.reports
            .get(key)?
            .map(|bytes| decode_stored(id.as_bytes(), &bytes))
            .transpose()
    }

    fn reports(&self) -> Result<Vec<HeatingReport>, StoreError> {
        self.reports
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_stored(&key, &value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::repairs::model::{Happened, Linked, Origin, RepairStatus, Transition};
    use proto::Priority;

    fn store(dir: &std::path::Path) -> SledRepairStore {
        // Waits for the lock a store closed just before may still hold (a reopen).
        let db = super::super::open_db(dir, 8 << 20).unwrap();
        SledRepairStore::open(&db).unwrap()
    }

    fn job(id: &str) -> Repair {
        Repair {
            id: id.into(),
            asset: "HIL-B-0001".into(),
            uprn: 100_021_445_102,
            address: "4 Swakeleys Road, Ickenham UB10 8BE".into(),
            description: "No heating".into(),
            priority: Priority::Urgent,
            due: 2_000,
            raised_at: 1_000,
            origin: Origin::Staff {
                name: "amira".into(),
            },
            alert: None,
            named: None,
            status: RepairStatus::Raised,
            rev: 1,
            dispatch: None,
            completed_at: None,
            alert_cleared_at: None,
            attention_at: None,
            tenant_reports: Vec::new(),
            applied: Vec::new(),
            history: vec![Transition {
                at: 1_000,
                status: RepairStatus::Raised,
                happened: Happened::Raised,
            }],
        }
    }

    #[test]
    fn jobs_and_reports_are_kept_together_in_raising_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second, report_id) = {
            let store = store(dir.path());
            let first = store.next_job_id().unwrap();
            let second = store.next_job_id().unwrap();
            let report_id = store.next_report_id().unwrap();
            assert!(first.starts_with("RP-") && report_id.starts_with("HR-"));
            let mut linked = job(&second);
            linked.tenant_reports.push(report_id.clone());
            let report = HeatingReport {
                id: report_id.clone(),
                uprn: linked.uprn,
                asset: linked.asset.clone(),
                description: Some("Cold radiators".into()),
                contact: None,
                filed_at: 1_500,
                job: second.clone(),
                linked: Linked::Raised,
                alert: None,
                comments: Vec::new(),
            };
            store.save(&[job(&first), linked], &[report]).unwrap();
            (first, second, report_id)
        };
        let store = store(dir.path());
        let ids: Vec<String> = store.jobs().unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, vec![first.clone(), second.clone()]);
        assert_eq!(
            store.job(&second).unwrap().unwrap().tenant_reports,
            vec![report_id.clone()]
        );
        assert_eq!(store.report(&report_id).unwrap().unwrap().job, second);
        assert_eq!(store.reports().unwrap().len(), 1);
        // Ids it never issued are simply not there.
        assert_eq!(store.job("MB-1").unwrap(), None);
        assert_eq!(store.job("RP-x").unwrap(), None);
        assert!(store.save(&[job("nonsense")], &[]).is_err());
        // Fresh ids never repeat after a reopen.
        assert_ne!(store.next_job_id().unwrap(), first);
    }
}
