//! The embedded broker's decision on each connection. A device connects with its id as both
//! client id and username, and its secret as password; an unknown or revoked device, a wrong
//! secret, or a client id that is not the username is refused. Tying the client id to the
//! username matters: the broker keeps one session per client id, so a device allowed to pick
//! another's client id could take over that device's session and the jobs queued for it.
//!
//! The gateway's own clients (its ingest and the broker's start-up probe) have a secret of their
//! own, generated at every start and kept only in memory: never printed, never stored.
//!
//! Refusals are counted by kind and logged at most once a minute per kind, since anyone who can
//! reach the port can repeat them at will.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use proto::DeviceId;

use super::secret::{self, Secret, SecretError};
use super::DeviceRegistry;
use crate::log_throttle::Throttle;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthRefusal {
    /// The client id is not a device id (nor one of the gateway's own).
    NotADevice,
    /// The username is not the client id.
    UsernameNotClientId,
    /// The device has no credential.
    UnknownDevice,
    /// The device's credential is revoked.
    Revoked,
    /// The password is not the device's secret (or not the gateway's, for its own clients).
    WrongSecret,
    /// The registry could not be read; refused, since nothing can be checked.
    StoreFailed,
}

impl AuthRefusal {
    const ALL: [Self; 6] = [
        Self::NotADevice,
        Self::UsernameNotClientId,
        Self::UnknownDevice,
        Self::Revoked,
        Self::WrongSecret,
        Self::StoreFailed,
    ];

    /// A short name, for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotADevice => "client id is not a device id",
            Self::UsernameNotClientId => "username is not the client id",
            Self::UnknownDevice => "unknown device",
            Self::Revoked => "revoked device",
            Self::WrongSecret => "wrong password",
            Self::StoreFailed => "device registry unreadable",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// How often each kind of refusal is logged, at most.
const LOG_EVERY_MS: i64 = 60_000;

/// The broker's authenticator.
pub struct Authenticator {
    registry: DeviceRegistry,
    /// Client ids of the gateway's own clients.
    internal: Vec<String>,
    /// Their secret, this run's only.
    secret: Secret,
    refused: [AtomicU64; AuthRefusal::ALL.len()],
    throttles: Mutex<[Throttle; AuthRefusal::ALL.len()]>,
}

impl Authenticator {
    /// Checks devices against `registry`, and the gateway's own `internal` client ids against
    /// a secret generated now.
    pub fn new(registry: DeviceRegistry, internal: Vec<String>) -> Result<Self, SecretError> {
        Ok(Self {
            registry,
            internal,
            secret: Secret::generate()?,
            refused: Default::default(),
            throttles: Default::default(),
        })
    }

    /// The gateway's own client ids.
    pub fn internal_clients(&self) -> &[String] {
        &self.internal
    }

    /// The secret the gateway's own clients present, with their client id as username.
    pub fn internal_secret(&self) -> &Secret {
        &self.secret
    }

    /// Whether the connection may proceed; a refusal is counted and (throttled) logged.
    pub fn authenticate(&self, client_id: &str, username: &str, password: &str) -> bool {
        let Err(refusal) = self.decide(client_id, username, password) else {
            return true;
        };
        self.refused[refusal.index()].fetch_add(1, Ordering::Relaxed);
        let now = self.registry.clock.now_ms();
        let logged = self
            .throttles
            .lock()
            .map(|mut throttles| throttles[refusal.index()].hit(now, LOG_EVERY_MS))
            .unwrap_or(None);
        if let Some(unlogged) = logged {
            // The client id is the outsider's text: escaped and cut, never the password.
            let shown: String = client_id.chars().take(64).collect();
            tracing::warn!(
                client_id = ?shown,
                reason = refusal.as_str(),
                similar_since_last_line = unlogged,
                "refused an MQTT connection"
            );
        }
        false
    }

    /// Connections refused so far, by kind.
    pub fn refused(&self) -> Vec<(AuthRefusal, u64)> {
        AuthRefusal::ALL
            .iter()
            .map(|r| (*r, self.refused[r.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// The decision, without its bookkeeping.
    pub fn decide(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<(), AuthRefusal> {
        if username != client_id {
            return Err(AuthRefusal::UsernameNotClientId);
        }
        if self.internal.iter().any(|id| id == client_id) {
            return match self.secret.matches(password) {
                true => Ok(()),
                false => Err(AuthRefusal::WrongSecret),
            };
        }
        let device = DeviceId::new(client_id).map_err(|_| AuthRefusal::NotADevice)?;
        let credential = match self.registry.credential(&device) {
            Ok(Some(credential)) => credential,
            Ok(None) => return Err(AuthRefusal::UnknownDevice),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the device registry; refusing connections");
                return Err(AuthRefusal::StoreFailed);
            }
        };
        if credential.revoked.is_some() {
            return Err(AuthRefusal::Revoked);
        }
        match secret::verify(&credential.hash, password) {
            true => Ok(()),
            false => Err(AuthRefusal::WrongSecret),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::storage::{Storage, StoreSettings};

    #[test]
    fn each_refusal_is_counted_by_kind_and_odd_input_is_only_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
        let registry = DeviceRegistry::new(
            storage.devices.clone(),
            storage.ingest.clone(),
            vec!["gw".into()],
            Arc::new(FixedClock::default()),
        );
        let cab = registry
            .add(&DeviceId::new("cab-1").unwrap(), false)
            .unwrap();
        let auth = Authenticator::new(registry.clone(), vec!["gw".into()]).unwrap();
        let gateway_secret = auth.internal_secret().reveal().to_owned();

        assert!(auth.authenticate("cab-1", "cab-1", cab.secret.reveal()));
        assert!(auth.authenticate("gw", "gw", &gateway_secret));
        assert!(!auth.authenticate("gw", "gw", cab.secret.reveal()));
        assert!(!auth.authenticate("cab-1", "cab-1", &gateway_secret));
        assert!(!auth.authenticate("cab-2", "cab-2", cab.secret.reveal()));
        assert!(!auth.authenticate("cab/1", "cab/1", cab.secret.reveal()));
        assert!(!auth.authenticate("cab-1", "gw", &gateway_secret));
        let huge = "é".repeat(40_000);
        assert!(!auth.authenticate(&huge, &huge, &huge));
        assert!(!auth.authenticate("cab-1", "cab-1", &huge));
        registry.revoke(&DeviceId::new("cab-1").unwrap()).unwrap();
        assert!(!auth.authenticate("cab-1", "cab-1", cab.secret.reveal()));

        let counts: std::collections::HashMap<_, _> = auth.refused().into_iter().collect();
        assert_eq!(counts[&AuthRefusal::WrongSecret], 3);
        assert_eq!(counts[&AuthRefusal::UnknownDevice], 1);
        assert_eq!(counts[&AuthRefusal::NotADevice], 2);
        assert_eq!(counts[&AuthRefusal::UsernameNotClientId], 1);
        assert_eq!(counts[&AuthRefusal::Revoked], 1);
        assert_eq!(counts[&AuthRefusal::StoreFailed], 0);
    }
}
