//! What the device registry's credentials are, as every backend keeps them: per device, the
//! argon2 hash of the secret the device presents to the broker (never the secret), when it was
//! issued and when, if ever, it was revoked. A revoked entry is kept, so `gateway devices list`
//! still shows the device and re-adding it is a deliberate act. The embedded backend's tree is in
//! [`super::embedded::devices`].

use proto::{DeviceId, TimestampMs};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One device's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCredential {
    /// The secret's argon2 hash as a PHC string (algorithm, parameters, salt and hash), so the
    /// parameters can be raised later without invalidating what was issued.
    pub hash: String,
    /// When it was issued (gateway clock).
    pub issued: TimestampMs,
    /// When it was revoked (gateway clock); a revoked device cannot connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<TimestampMs>,
}

/// What [`CredentialStore::revoke`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The device's credential is revoked from now.
    Now,
    /// It was already revoked, at this time.
    Already(TimestampMs),
    /// The device has no credential.
    Unknown,
}

/// Devices' credentials. Every method is durable on return: a device told it is revoked stays
/// revoked through a crash.
pub trait CredentialStore: Send + Sync + 'static {
    /// Stores `credential` for `device` unless it has one (active or revoked); false if it has.
    /// Atomic, so that two gateways adding the same device cannot both issue a secret.
    fn insert_new(
        &self,
        device: &DeviceId,
        credential: &DeviceCredential,
    ) -> Result<bool, StoreError>;

    /// Stores `credential` for `device`, replacing whatever it had (a new secret for a device
    /// whose secret was lost or revoked).
    fn replace(&self, device: &DeviceId, credential: &DeviceCredential) -> Result<(), StoreError>;

    /// Marks `device`'s credential revoked at `at`, unless it already is.
    fn revoke(&self, device: &DeviceId, at: TimestampMs) -> Result<Revoked, StoreError>;

    /// `device`'s credential, if it has one.
    fn credential(&self, device: &DeviceId) -> Result<Option<DeviceCredential>, StoreError>;

    /// Every device with a credential, by id.
    fn credentials(&self) -> Result<Vec<(DeviceId, DeviceCredential)>, StoreError>;
}
