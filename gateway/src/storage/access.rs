//! What staff's and integrations' credentials are, as every backend keeps them: per holder
//! (a kind and a name), the argon2 hash of the secret they present (never the secret), a staff
//! token's role, when it was issued and when, if ever, it was revoked. A revoked entry is kept, so
//! `gateway staff list` still shows it and re-adding the name is a deliberate act. The embedded
//! backend's tree is in [`super::embedded::access`].

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::{Revoked, StoreError};
use crate::access::Role;

/// Who holds a credential: staff (a bearer token for the staff API) or an integration (an
/// Open311 `api_key` for a residents' front end). The two are apart: a staff token is never an
/// `api_key`, nor the other way round, even under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HolderKind {
    /// A member of staff (or a staff tool) with a role.
    Staff,
    /// A residents' front end (FixMyStreet, the council's CRM) calling Open311.
    Integration,
}

/// One holder's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCredential {
    /// The secret's argon2 hash as a PHC string (algorithm, parameters, salt and hash).
    pub hash: String,
    /// A staff token's role; none for an integration's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// When it was issued (gateway clock).
    pub issued: TimestampMs,
    /// When it was revoked (gateway clock); a revoked credential opens nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<TimestampMs>,
}

/// Staff's and integrations' credentials. Every method is durable on return: a token told it
/// is revoked stays revoked through a crash.
pub trait AccessStore: Send + Sync + 'static {
    /// Stores `credential` for `kind`/`name` unless it has one (active or revoked); false if
    /// it has. Atomic, so that two gateways adding the same name cannot both issue a secret.
    fn insert_new(
        &self,
        kind: HolderKind,
        name: &str,
        credential: &AccessCredential,
    ) -> Result<bool, StoreError>;

    /// Stores `credential` for `kind`/`name`, replacing whatever it had.
    fn replace(
        &self,
        kind: HolderKind,
        name: &str,
        credential: &AccessCredential,
    ) -> Result<(), StoreError>;

    /// Marks `kind`/`name`'s credential revoked at `at`, unless it already is.
    fn revoke(&self, kind: HolderKind, name: &str, at: TimestampMs) -> Result<Revoked, StoreError>;

    /// `kind`/`name`'s credential, if it has one.
    fn credential(
        &self,
        kind: HolderKind,
        name: &str,
    ) -> Result<Option<AccessCredential>, StoreError>;

    /// Every credential of `kind`, by name.
    fn credentials(&self, kind: HolderKind) -> Result<Vec<(String, AccessCredential)>, StoreError>;
}
