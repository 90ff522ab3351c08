//! What the credentials' trees share: an entry inserted only if its key is free, and revoked
//! by compare and swap, so that a replacement issued meanwhile is neither lost nor revoked
//! unseen. Devices' ([`super::devices`]) and staff's and integrations' ([`super::access`])
//! credentials are both kept this way.

use proto::TimestampMs;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::decode_stored;
use crate::storage::{Revoked, StoreError};

/// A stored credential that can be revoked.
pub(super) trait Revocable: Serialize + DeserializeOwned {
    /// When it was revoked, if it was.
    fn revoked_at(&self) -> Option<TimestampMs>;
    /// Marks it revoked at `at`.
    fn revoke_at(&mut self, at: TimestampMs);
}

/// Stores `value` under `key` unless the key has one; false if it has. Flushed on success.
pub(super) fn insert_new<T: Revocable>(
    db: &sled::Db,
    tree: &sled::Tree,
    key: &[u8],
    value: &T,
) -> Result<bool, StoreError> {
    let bytes = proto::encode_value(value)?;
    if tree
        .compare_and_swap(key, None::<&[u8]>, Some(bytes))?
        .is_err()
    {
        return Ok(false);
    }
    db.flush()?;
    Ok(true)
}

/// Marks the entry under `key` revoked at `at`, unless it already is. Flushed when changed.
pub(super) fn revoke<T: Revocable>(
    db: &sled::Db,
    tree: &sled::Tree,
    key: &[u8],
    at: TimestampMs,
) -> Result<Revoked, StoreError> {
    loop {
        let Some(current) = tree.get(key)? else {
            return Ok(Revoked::Unknown);
        };
        let mut entry: T = decode_stored(key, &current)?;
        if let Some(when) = entry.revoked_at() {
            return Ok(Revoked::Already(when));
        }
        entry.revoke_at(at);
        let bytes = proto::encode_value(&entry)?;
        if tree
            .compare_and_swap(key, Some(current), Some(bytes))?
            .is_ok()
        {
            db.flush()?;
            return Ok(Revoked::Now);
        }
    }
}
