//! What the device registry's credentials are, as every backend keeps them: per device, the
//! argon2 hash of the secret the device presents to the broker (never the secret), the public
//! half of the Ed25519 key it signs its envelopes with, when it was issued and when, if ever, it
//! was revoked; and the gateway's own Ed25519 signing key, made once. A revoked entry is kept, so `gateway devices list`
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
    /// The device's Ed25519 public key, which its envelopes must verify with. Absent on
    /// credentials issued before devices signed: such a device's envelopes are accepted only
    /// while `signing.required` is off, until `gateway devices add --replace` gives it a key.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub public_key: Option<Vec<u8>>,
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

    /// The gateway's Ed25519 signing key (its 32 secret bytes): the one stored, or else
    /// `candidate`, stored now. Atomic, so that gateways sharing a store agree on one key, and
    /// durable, since every device is configured with its public half. The store's directory is
    /// therefore as secret as the key itself.
    fn signing_key_or_insert(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError>;
}
