//! Device identity: which devices may connect to the embedded broker, and with what secret.
//!
//! - [`DeviceRegistry`]: issues a device its secret (`gateway devices add`), revokes it
//!   (`gateway devices revoke`) and lists who has one, through the storage seam's
//!   [`CredentialStore`]; only the secret's hash is stored;
//! - [`secret`]: generating, hashing and verifying secrets (argon2id);
//! - [`keys`]: devices' Ed25519 key pairs, made at issue, and the gateway's own signing key;
//! - [`signatures`]: the ingest's and the dispatchers' side of signed messages: each envelope
//!   checked against its device's key, acks and downlink signed with the gateway's;
//! - [`auth`]: the broker's decision on each connection (client id = device id = username, the
//!   secret, not revoked), and the gateway's own client, whose secret lives only in memory;
//! - [`snippet`]: the agent's configuration for a newly issued secret.

pub mod auth;
pub mod keys;
pub mod secret;
pub mod signatures;
pub mod snippet;

use std::sync::Arc;

use proto::signed::{SigningKey, VerifyingKey};
use proto::{DeviceId, TimestampMs};

use crate::clock::SharedClock;
use crate::storage::{CredentialStore, DeviceCredential, Revoked, Store, StoreError};
pub use auth::{AuthRefusal, Authenticator};
pub use secret::Secret;
pub use signatures::Signatures;

/// What the registry can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device has a credential already; replacing it must be asked for.
    #[error(
        "{device} already has a credential (issued {}{revoked}); `gateway devices add {device} \
         --replace` issues a new one, and the old one stops working",
        rfc3339(*issued)
    )]
    Exists {
        /// The device.
        device: DeviceId,
        /// When its credential was issued.
        issued: TimestampMs,
        /// ", revoked" when it is.
        revoked: &'static str,
    },
    /// The id is one of the gateway's own MQTT clients, which a device may never be.
    #[error("{0} is the gateway's own MQTT client id; a device cannot have it")]
    Reserved(DeviceId),
    /// The device has no credential to revoke.
    #[error("{0} has no credential (see `gateway devices list`)")]
    Unknown(DeviceId),
    /// The secret could not be made or hashed.
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored time as RFC 3339 (UTC, seconds), for people.
pub fn rfc3339(ms: TimestampMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// A credential just issued: the only time its secret and its private key exist outside the
/// device. `Debug` shows neither.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The device.
    pub device: DeviceId,
    /// Its secret, to put in the agent's configuration.
    pub secret: Secret,
    /// Its Ed25519 private key, which signs its envelopes: for the agent's configuration.
    pub signing_key: SigningKey,
    /// The gateway's public key, which the agent checks acks and downlink messages with.
    pub gateway_key: VerifyingKey,
    /// Whether an earlier credential was replaced.
    pub replaced: bool,
}

/// A device as `gateway devices list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The device.
    pub device: DeviceId,
    /// When its credential was issued.
    pub issued: TimestampMs,
    /// When it was revoked, if it was.
    pub revoked: Option<TimestampMs>,
}

/// The registry of devices' credentials.
#[derive(Clone)]
pub struct DeviceRegistry {
    credentials: Arc<dyn CredentialStore>,
    /// The ingest's registry, where a device with a credential is also marked provisioned (so
    /// its records are not flagged as from an unknown device).
    ingest: Arc<dyn Store>,
    /// Client ids the gateway's own clients use, which no device may take.
    reserved: Vec<String>,
    clock: SharedClock,
}

impl DeviceRegistry {
    /// A registry over `credentials`, marking added devices provisioned in `ingest`; `reserved`
    /// are the gateway's own client ids.
    pub fn new(
        credentials: Arc<dyn CredentialStore>,
        ingest: Arc<dyn Store>,
        reserved: Vec<String>,
        clock: SharedClock,
    ) -> Self {
        Self {
            credentials,
            ingest,
            reserved,
            clock,
        }
    }

    /// Issues `device` a fresh secret, durably (only its hash is kept), unless it has one and
    /// `replace` is false. A replaced secret stops working at once, and a revoked device is
    /// reinstated by its new one.
    pub fn add(&self, device: &DeviceId, replace: bool) -> Result<Issued, DeviceError> {
        if self.reserved.iter().any(|id| id == device.as_str()) {
            return Err(DeviceError::Reserved(device.clone()));
        }
        let secret = Secret::generate()?;
        let signing_key = keys::generate()?;
        let gateway_key = self.gateway_key()?.verifying_key();
        let credential = DeviceCredential {
            hash: secret::hash(&secret)?,
            public_key: Some(signing_key.verifying_key().to_bytes().to_vec()),
            issued: self.clock.now_ms(),
            revoked: None,
        };
        let replaced = if replace {
            let had = self.credentials.credential(device)?.is_some();
            self.credentials.replace(device, &credential)?;
            had
        } else if !self.credentials.insert_new(device, &credential)? {
            let existing = self.credentials.credential(device)?;
            return Err(DeviceError::Exists {
                device: device.clone(),
                issued: existing.as_ref().map_or(0, |c| c.issued),
                revoked: match existing.and_then(|c| c.revoked) {
                    Some(_) => ", revoked",
                    None => "",
                },
            });
        } else {
            false
        };
        self.ingest.provision(std::slice::from_ref(device))?;
        Ok(Issued {
            device: device.clone(),
            secret,
            signing_key,
            gateway_key,
            replaced,
        })
    }

    /// The gateway's signing key: made and stored the first time it is asked for (by the first
    /// start, or the first `gateway devices add`), the same ever after.
    pub fn gateway_key(&self) -> Result<SigningKey, DeviceError> {
        keys::gateway_key(self.credentials.as_ref())
    }

    /// The public key `device`'s envelopes must verify with: none if it has no credential, a
    /// revoked one, or one issued before devices had keys.
    pub fn device_key(&self, device: &DeviceId) -> Result<Option<VerifyingKey>, StoreError> {
        Ok(self
            .credentials
            .credential(device)?
            .filter(|credential| credential.revoked.is_none())
            .and_then(|credential| credential.public_key)
            .and_then(|bytes| keys::public_key(&bytes)))
    }

    /// Revokes `device`'s credential: from now on it cannot connect. Its records stay. A
    /// device already connected keeps its connection until it drops (the embedded broker cannot
    /// disconnect a client); a gateway restart drops them all.
    pub fn revoke(&self, device: &DeviceId) -> Result<Revoked, DeviceError> {
        match self.credentials.revoke(device, self.clock.now_ms())? {
            Revoked::Unknown => Err(DeviceError::Unknown(device.clone())),
            revoked => Ok(revoked),
        }
    }

    /// Every device with a credential, by id.
    pub fn list(&self) -> Result<Vec<Listed>, DeviceError> {
        Ok(self
            .credentials
            .credentials()?
            .into_iter()
            .map(|(device, credential)| Listed {
                device,
                issued: credential.issued,
                revoked: credential.revoked,
            })
            .collect())
    }

    /// `device`'s stored credential.
    pub(crate) fn credential(
        &self,
        device: &DeviceId,
    ) -> Result<Option<DeviceCredential>, StoreError> {
        self.credentials.credential(device)
    }
}
