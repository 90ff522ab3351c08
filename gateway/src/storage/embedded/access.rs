//! [`SledAccessStore`]: staff's and integrations' [`AccessStore`] on sled, one tree in the
//! gateway's database.
//!
//! - `access_credentials`: a kind byte (`s` staff, `i` integration) then the holder's name →
//!   [`AccessCredential`]. The kind has a fixed width, so no separator is needed.

use proto::TimestampMs;

use super::decode_stored;
use super::revocable::{self, Revocable};
use crate::storage::access::{AccessCredential, AccessStore, HolderKind};
use crate::storage::{Revoked, StoreError};

/// Staff's and integrations' credentials in sled.
#[derive(Debug, Clone)]
pub struct SledAccessStore {
    db: sled::Db,
    credentials: sled::Tree,
}

fn prefix(kind: HolderKind) -> u8 {
    match kind {
        HolderKind::Staff => b's',
        HolderKind::Integration => b'i',
    }
}

fn key(kind: HolderKind, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(prefix(kind));
    key.extend_from_slice(name.as_bytes());
    key
}

impl SledAccessStore {
    /// Opens the credentials' tree in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            credentials: db.open_tree("access_credentials")?,
        })
    }
}

impl Revocable for AccessCredential {
    fn revoked_at(&self) -> Option<TimestampMs> {
        self.revoked
    }

    fn revoke_at(&mut self, at: TimestampMs) {
        self.revoked = Some(at);
    }
}

impl AccessStore for SledAccessStore {
    fn insert_new(
        &self,
        kind: HolderKind,
        name: &str,
        credential: &AccessCredential,
    ) -> Result<bool, StoreError> {
        revocable::insert_new(&self.db, &self.credentials, &key(kind, name), credential)
    }

    fn replace(
        &self,
        kind: HolderKind,
        name: &str,
        credential: &AccessCredential,
    ) -> Result<(), StoreError> {
        let value = proto::encode_value(credential)?;
        self.credentials.insert(key(kind, name), value)?;
        self.db.flush()?;
        Ok(())
    }

    fn revoke(&self, kind: HolderKind, name: &str, at: TimestampMs) -> Result<Revoked, StoreError> {
        revocable::revoke::<AccessCredential>(&self.db, &self.credentials, &key(kind, name), at)
    }

    fn credential(
        &self,
        kind: HolderKind,
        name: &str,
    ) -> Result<Option<AccessCredential>, StoreError> {
        let key = key(kind, name);
        self.credentials
            .get(&key)?
            .map(|bytes| decode_stored(&key, &bytes))
            .transpose()
    }

    fn credentials(&self, kind: HolderKind) -> Result<Vec<(String, AccessCredential)>, StoreError> {
        let mut all = Vec::new();
        for entry in self.credentials.scan_prefix([prefix(kind)]) {
            let (key, bytes) = entry?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            all.push((name, decode_stored(&key, &bytes)?));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn credential(hash: &str, role: Option<Role>) -> AccessCredential {
        AccessCredential {
            hash: hash.to_owned(),
            role,
            issued: 1_000,
            revoked: None,
        }
    }

    #[test]
    fn staff_and_integrations_are_apart_and_revoking_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let store = SledAccessStore::open(&db).unwrap();
        let (staff, integration) = (HolderKind::Staff, HolderKind::Integration);
        assert!(store
            .insert_new(staff, "ops", &credential("a", Some(Role::Admin)))
            .unwrap());
        assert!(!store
            .insert_new(staff, "ops", &credential("b", Some(Role::Viewer)))
            .unwrap());
        assert!(store
            .insert_new(integration, "ops", &credential("c", None))
            .unwrap());
        assert_eq!(
            store.credential(staff, "ops").unwrap().unwrap().role,
            Some(Role::Admin)
        );
        assert_eq!(
            store.credential(integration, "ops").unwrap().unwrap().hash,
            "c"
        );
        assert_eq!(store.credentials(staff).unwrap().len(), 1);
        assert_eq!(store.revoke(staff, "ops", 5).unwrap(), Revoked::Now);
        assert_eq!(store.revoke(staff, "ops", 9).unwrap(), Revoked::Already(5));
        assert_eq!(store.revoke(staff, "nobody", 9).unwrap(), Revoked::Unknown);
        assert_eq!(
            store
                .credential(integration, "ops")
                .unwrap()
                .unwrap()
                .revoked,
            None
        );
        store
            .replace(staff, "ops", &credential("d", Some(Role::Viewer)))
            .unwrap();
        assert_eq!(
            store.credential(staff, "ops").unwrap().unwrap().revoked,
            None
        );
    }
}
