//! The embedded backend: every store on one sled database in one directory, so one flush makes
//! a group of writes durable and one directory holds a whole site. sled's types stay in here.
//!
//! - [`ingest`]: [`SledStore`], devices' records; [`keys`] gives its keys' layout,
//!   [`migrate`] upgrades older stores, [`quarantine`] keeps what was refused, bounded;
//! - [`reports`]: [`SledReportStore`], reports and the property register;
//! - [`boilers`]: [`SledBoilerStore`], boiler telemetry, rollups, assets and alerts;
//! - [`devices`]: [`SledCredentialStore`], devices' credentials for the broker;
//! - [`access`]: [`SledAccessStore`], staff's tokens and integrations' Open311 keys;
//!   [`revocable`] is what both credentials' trees share.
//! - [`repairs`]: [`SledRepairStore`], repair jobs and tenants' heating reports.

pub mod access;
pub mod boilers;
pub mod devices;
pub mod ingest;
pub mod keys;
pub mod migrate;
pub mod quarantine;
pub mod repairs;
pub mod reports;
mod revocable;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use access::SledAccessStore;
pub use boilers::SledBoilerStore;
pub use devices::SledCredentialStore;
pub use ingest::SledStore;
pub use migrate::Migrated;
pub use repairs::SledRepairStore;
pub use reports::SledReportStore;

use super::{BackendError, Storage, StoreError, StoreSettings};

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Backend(BackendError::new(error))
    }
}

/// Opens every store in `dir`.
pub(super) fn open(dir: &Path, settings: StoreSettings) -> Result<Storage, StoreError> {
    let ingest = SledStore::open_with(dir, settings)?;
    let reports = SledReportStore::open(ingest.db())?;
    let boilers = SledBoilerStore::open(ingest.db())?;
    let devices = SledCredentialStore::open(ingest.db())?;
    let access = SledAccessStore::open(ingest.db())?;
    let repairs = SledRepairStore::open(ingest.db())?;
    Ok(Storage {
        ingest: Arc::new(ingest),
        reports: Arc::new(reports),
        boilers: Arc::new(boilers),
        devices: Arc::new(devices),
        access: Arc::new(access),
        repairs: Arc::new(repairs),
    })
}

/// sled's log segment size for new stores. sled writes any node over a quarter of a segment
/// to a file of its own, created, written and synced for that one write: at sled's default
/// (512 KiB) a leaf of a few record runs or sample hours passes that, and the boilers
/// benchmark spent a sixth of its time creating files. At 4 MiB nodes stay in the log.
const SEGMENT_BYTES: usize = 4 << 20;
/// The segment size of stores made before [`SEGMENT_BYTES`]: sled refuses to open a store with
/// another size than it was made with.
const SEGMENT_BYTES_BEFORE: usize = 512 << 10;

/// Opens the database in `dir`, with a page cache of `cache_bytes`.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = |segment: usize| {
        sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(segment)
            // Durability comes from the explicit flush before every ack, not a timer.
            .flush_every_ms(None)
    };
    match open_when_unlocked(&config(SEGMENT_BYTES)) {
        // Made with the old segment size: sled says so as `Unsupported`, having changed nothing.
        Err(sled::Error::Unsupported(_)) => Ok(open_when_unlocked(&config(SEGMENT_BYTES_BEFORE))?),
        result => Ok(result?),
    }
}

/// The most a stored value may be when read back: a format 1 quarantined message up to the
/// broker's packet limit, with room for its topic and reason (a record is far smaller).
const MAX_VALUE_BYTES: usize = 2 * proto::MAX_MESSAGE_BYTES;
/// How long [`open_when_unlocked`] waits for a store closed in this process to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled, waiting up to [`LOCK_WAIT`] for the directory's lock. sled 0.34 releases it only
/// when its thread pool lets go of the file, shortly after the last handle drops, so opening again
/// straight after closing (a gateway restarted within one process, and the tests) can find it
/// still held. A lock held by another process is still refused, after the wait.
fn open_when_unlocked(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled 0.34 reports a held lock only in the message of an `Other` I/O error.
            Err(error) if error.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Decodes a stored value, naming its key when it cannot.
fn decode_stored<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    proto::decode_value(bytes, MAX_VALUE_BYTES).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}
