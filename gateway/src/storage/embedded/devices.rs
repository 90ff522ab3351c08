//! [`SledCredentialStore`]: the device registry's [`CredentialStore`] on sled, one tree in the
//! gateway's database.
//!
//! - `device_credentials`: device id → [`DeviceCredential`]. A device id is the whole key, so
//!   no separator is needed.
//! - `gateway_keys`: `signing` → the gateway's Ed25519 signing key, 32 bytes.

use proto::{DeviceId, TimestampMs};

use super::decode_stored;
use super::revocable::{self, Revocable};
use crate::storage::devices::{CredentialStore, DeviceCredential, Revoked};
use crate::storage::StoreError;

/// Devices' credentials in sled.
#[derive(Debug, Clone)]
pub struct SledCredentialStore {
    db: sled::Db,
    credentials: sled::Tree,
    keys: sled::Tree,
}

/// The gateway's signing key's entry in `gateway_keys`.
const SIGNING_KEY: &[u8] = b"signing";

impl SledCredentialStore {
    /// Opens the credentials' tree in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            credentials: db.open_tree("device_credentials")?,
            keys: db.open_tree("gateway_keys")?,
        })
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<DeviceCredential, StoreError> {
        decode_stored(key, bytes)
    }
}

impl Revocable for DeviceCredential {
    fn revoked_at(&self) -> Option<TimestampMs> {
        self.revoked
    }

    fn revoke_at(&mut self, at: TimestampMs) {
        self.revoked = Some(at);
    }
}

impl CredentialStore for SledCredentialStore {
    fn insert_new(
        &self,
        device: &DeviceId,
        credential: &DeviceCredential,
    ) -> Result<bool, StoreError> {
        revocable::insert_new(
            &self.db,
            &self.credentials,
            device.as_str().as_bytes(),
            credential,
        )
    }

    fn replace(&self, device: &DeviceId, credential: &DeviceCredential) -> Result<(), StoreError> {
        let value = proto::encode_value(credential)?;
        self.credentials.insert(device.as_str().as_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    fn revoke(&self, device: &DeviceId, at: TimestampMs) -> Result<Revoked, StoreError> {
        revocable::revoke::<DeviceCredential>(
            &self.db,
            &self.credentials,
            device.as_str().as_bytes(),
            at,
        )
    }

    fn credential(&self, device: &DeviceId) -> Result<Option<DeviceCredential>, StoreError> {
        let key = device.as_str().as_bytes();
        self.credentials
            .get(key)?
            .map(|bytes| Self::decode(key, &bytes))
            .transpose()
    }

    fn credentials(&self) -> Result<Vec<(DeviceId, DeviceCredential)>, StoreError> {
        let mut all = Vec::new();
        for entry in self.credentials.iter() {
            let (key, bytes) = entry?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let device = DeviceId::new(id.clone()).map_err(|e| StoreError::Corrupt {
                key: id,
                reason: e.to_string(),
            })?;
            all.push((device, Self::decode(&key, &bytes)?));
        }
        Ok(all)
    }

    fn signing_key_or_insert(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let swapped =
            self.keys
                .compare_and_swap(SIGNING_KEY, None::<&[u8]>, Some(&candidate[..]))?;
        let stored = match swapped {
            Ok(()) => {
                self.db.flush()?;
                return Ok(*candidate);
            }
            Err(existing) => existing.current,
        };
        stored
            .as_deref()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: "gateway_keys/signing".into(),
                reason: "the gateway's signing key is not 32 bytes".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SledCredentialStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let store = SledCredentialStore::open(&db).unwrap();
        (dir, store)
    }

    fn credential(hash: &str) -> DeviceCredential {
        DeviceCredential {
            hash: hash.to_owned(),
            public_key: Some(vec![7; 32]),
            issued: 1_000,
            revoked: None,
        }
    }

    #[test]
    fn a_device_gets_one_credential_unless_replaced() {
        let (_dir, store) = store();
        let cab = DeviceId::new("cab-1").unwrap();
        assert!(store.insert_new(&cab, &credential("first")).unwrap());
        assert!(!store.insert_new(&cab, &credential("second")).unwrap());
        assert_eq!(store.credential(&cab).unwrap().unwrap().hash, "first");
        store.replace(&cab, &credential("third")).unwrap();
        assert_eq!(store.credential(&cab).unwrap().unwrap().hash, "third");
        assert_eq!(store.credentials().unwrap().len(), 1);
    }

    #[test]
    fn the_gateways_key_is_made_once_and_kept() {
        let (_dir, store) = store();
        assert_eq!(store.signing_key_or_insert(&[1; 32]).unwrap(), [1; 32]);
        assert_eq!(store.signing_key_or_insert(&[2; 32]).unwrap(), [1; 32]);
        let cab = DeviceId::new("cab-1").unwrap();
        store.insert_new(&cab, &credential("h")).unwrap();
        let stored = store.credential(&cab).unwrap().unwrap();
        assert_eq!(stored.public_key, Some(vec![7; 32]));
    }

    #[test]
    fn revoking_is_kept_and_said_once() {
        let (_dir, store) = store();
        let cab = DeviceId::new("cab-1").unwrap();
        let other = DeviceId::new("cab-2").unwrap();
        assert_eq!(store.revoke(&cab, 5).unwrap(), Revoked::Unknown);
        store.insert_new(&cab, &credential("h")).unwrap();
        assert_eq!(store.revoke(&cab, 5).unwrap(), Revoked::Now);
        assert_eq!(store.revoke(&cab, 9).unwrap(), Revoked::Already(5));
        assert_eq!(store.credential(&cab).unwrap().unwrap().revoked, Some(5));
        assert_eq!(store.credential(&other).unwrap(), None);
        // A revoked device is not free to be added again by accident.
        assert!(!store.insert_new(&cab, &credential("again")).unwrap());
    }
}
