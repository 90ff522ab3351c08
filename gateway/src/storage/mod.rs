//! The storage seam: all the gateway's durable state, behind traits named for what each part
//! needs, so that a PostgreSQL backend can follow the embedded one without changing anything
//! above this module. No database type appears outside it.
//!
//! - [`ingest`]: devices' records once each, progress for acks, the device registry, clock
//!   anchors and the quarantine ([`Store`]);
//! - [`reports`]: residents' missed-bin reports and the property register ([`ReportStore`]);
//! - [`boilers`]: boiler telemetry, rollups, the asset register and alert state
//!   ([`BoilerStore`]), and [`AssetLog`], one boiler's telemetry as the domain reads it;
//! - [`repairs`]: repair jobs and tenants' heating reports ([`RepairStore`]);
//! - [`write_back`]: one ingested group's boiler telemetry written once, at its end;
//! - [`devices`]: devices' credentials for the broker ([`CredentialStore`]);
//! - [`access`]: staff's bearer tokens and integrations' Open311 keys ([`AccessStore`]);
//! - [`quarantine`]: what refused messages are kept as;
//! - [`embedded`]: the backend on sled, one directory for a whole site.
//!
//! [`Storage`] opens all of them at once; every error is a [`StoreError`].

pub mod access;
pub mod boilers;
pub mod devices;
pub mod embedded;
mod error;
pub mod ingest;
pub mod quarantine;
pub mod repairs;
pub mod reports;
pub mod write_back;

use std::path::Path;
use std::sync::Arc;

pub use access::{AccessCredential, AccessStore, HolderKind};
pub use boilers::{AssetLog, BoilerStore};
pub use devices::{CredentialStore, DeviceCredential, Revoked};
pub use embedded::{Migrated, SledStore};
pub use error::{BackendError, StoreError};
pub use ingest::{BatchOutcome, DeviceInfo, IncomingBatch, Store, StoreSettings, StoredRecord};
pub use quarantine::{QuarantineEntry, QuarantineLimits, QuarantineUsage, Refused};
pub use repairs::RepairStore;
pub use reports::{ImportOrStoreError, Inserted, ReportStore};

/// Every store the gateway uses, opened together on one backend.
#[derive(Clone)]
pub struct Storage {
    /// Devices' records, progress, registry and quarantine.
    pub ingest: Arc<dyn Store>,
    /// Missed-bin reports and the property register.
    pub reports: Arc<dyn ReportStore>,
    /// Boiler telemetry, rollups, the asset register and alerts.
    pub boilers: Arc<dyn BoilerStore>,
    /// Devices' credentials for the broker.
    pub devices: Arc<dyn CredentialStore>,
    /// Staff's and integrations' credentials.
    pub access: Arc<dyn AccessStore>,
    /// Repair jobs and tenants' heating reports.
    pub repairs: Arc<dyn RepairStore>,
}

impl Storage {
    /// Opens (or creates) the embedded backend in `dir`, migrating an older format.
    pub fn open_embedded(dir: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        embedded::open(dir, settings)
    }
}
