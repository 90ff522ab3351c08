//! Who may call the gateway over HTTP: staff, by a bearer token with a [`Role`], and residents'
//! front ends (integrations), by an Open311 `api_key`.
//!
//! - [`AccessRegistry`]: issues a named holder its secret (`gateway staff add`, `gateway
//!   integrations add`), revokes and lists, through the storage seam's
//!   [`AccessStore`]; only the secret's argon2id hash is stored ([`crate::secret`], shared
//!   with devices). It checks a presented token in constant time and remembers, in memory only,
//!   a digest of the tokens it has verified so that argon2 runs once per token, not per request.
//! - [`roles`]: the roles and the table of what each may do.
//!
//! A token is `NAME.SECRET`: the name finds its record without a scan, the secret (64 hex
//! digits) proves it. It is printed once, when issued, and never logged: [`Token`]'s `Debug`
//! hides it.

pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use proto::TimestampMs;
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;
use crate::secret::{self, Secret, SecretError};
use crate::storage::{AccessCredential, AccessStore, HolderKind, Revoked, StoreError};
pub use roles::{Action, Role};

/// The longest holder name.
pub const MAX_NAME_LEN: usize = 64;

/// The longest token worth looking at: a name, a dot and a secret's 64 hex digits.
const MAX_TOKEN_LEN: usize = MAX_NAME_LEN + 1 + secret::MAX_SECRET_LEN;

/// What the registry can fail with when issuing, revoking or listing.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The name has a credential already; replacing it must be asked for.
    #[error(
        "{name} already has a {what} (issued {}{revoked}); add --replace to issue a new one, \
         and the old one stops working",
        crate::devices::rfc3339(*issued)
    )]
    Exists {
        /// The holder.
        name: String,
        /// "staff token" or "Open311 api_key".
        what: &'static str,
        /// When its credential was issued.
        issued: TimestampMs,
        /// ", revoked" when it is.
        revoked: &'static str,
    },
    /// The name is not one a holder can have.
    #[error("{0:?} is not a name: 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
    /// There is no such holder to revoke.
    #[error("{0} has no credential (see the list)")]
    Unknown(String),
    /// The secret could not be made or hashed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented token or key opens nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not of the form `NAME.SECRET`, or far too long.
    #[error("not a token")]
    Malformed,
    /// No holder has this name.
    #[error("unknown token")]
    Unknown,
    /// The holder's credential is revoked.
    #[error("revoked token")]
    Revoked,
    /// The secret is not the holder's.
    #[error("wrong token")]
    WrongSecret,
    /// The store could not be read: nothing can be checked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An issued token or key, `NAME.SECRET`: to hand to its holder and nowhere else. Its `Debug`
/// does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// The token's text.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

/// A credential just issued: the only time its token exists outside its holder.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The holder's name.
    pub name: String,
    /// The token (or api_key).
    pub token: Token,
    /// Whether an earlier credential was replaced.
    pub replaced: bool,
}

/// A holder as the lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The holder's name.
    pub name: String,
    /// A staff token's role.
    pub role: Option<Role>,
    /// When its credential was issued.
    pub issued: TimestampMs,
    /// When it was revoked, if it was.
    pub revoked: Option<TimestampMs>,
}

/// The member of staff a verified token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// The token's name (a person, or a staff tool), recorded on what they do.
    pub name: String,
    /// Their role.
    pub role: Role,
}

impl Staff {
    /// Whether they may do `action`.
    pub fn may(&self, action: Action) -> bool {
        self.role.may(action)
    }
}

/// A digest of a secret verified once, with the hash it was verified against: a later request
/// with the same secret against the same stored hash needs no argon2. SHA-256 of 32 random bytes
/// gives nothing to search; and it lives only in this process's memory.
type Verified = (String, ring::digest::Digest);

/// Staff's and integrations' credentials. Cheap to clone.
#[derive(Clone)]
pub struct AccessRegistry {
    store: Arc<dyn AccessStore>,
    clock: SharedClock,
    /// At most one entry per stored holder; only verified secrets enter it.
    verified: Arc<Mutex<HashMap<(HolderKind, String), Verified>>>,
}

fn what(kind: HolderKind) -> &'static str {
    match kind {
        HolderKind::Staff => "staff token",
        HolderKind::Integration => "Open311 api_key",
    }
}

/// Whether `name` may name a holder.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AccessRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn AccessStore>, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            verified: Arc::default(),
        }
    }

    /// Issues a staff token named `name` with `role`, unless the name has one and `replace` is
    /// false. A replaced token stops working at once.
    pub fn add_staff(&self, name: &str, role: Role, replace: bool) -> Result<Issued, AccessError> {
        self.add(HolderKind::Staff, name, Some(role), replace)
    }

    /// Issues an integration (a residents' front end) an Open311 `api_key`, as
    /// [`Self::add_staff`] does a token.
    pub fn add_integration(&self, name: &str, replace: bool) -> Result<Issued, AccessError> {
        self.add(HolderKind::Integration, name, None, replace)
    }

    fn add(
        &self,
        kind: HolderKind,
        name: &str,
        role: Option<Role>,
        replace: bool,
    ) -> Result<Issued, AccessError> {
        if !is_valid_name(name) {
            return Err(AccessError::BadName(name.to_owned()));
        }
        let secret = Secret::generate()?;
        let credential = AccessCredential {
            hash: secret::hash(&secret)?,
            role,
            issued: self.clock.now_ms(),
            revoked: None,
        };
        let replaced = if replace {
            let had = self.store.credential(kind, name)?.is_some();
            self.store.replace(kind, name, &credential)?;
            had
        } else if !self.store.insert_new(kind, name, &credential)? {
            let existing = self.store.credential(kind, name)?;
            return Err(AccessError::Exists {
                name: name.to_owned(),
                what: what(kind),
                issued: existing.as_ref().map_or(0, |c| c.issued),
                revoked: match existing.and_then(|c| c.revoked) {
                    Some(_) => ", revoked",
                    None => "",
                },
            });
        } else {
            false
        };
        Ok(Issued {
            name: name.to_owned(),
            token: Token(format!("{name}.{}", secret.reveal())),
            replaced,
        })
    }

    /// Revokes `kind`/`name`'s credential: from the next request on it opens nothing.
    pub fn revoke(&self, kind: HolderKind, name: &str) -> Result<Revoked, AccessError> {
        match self.store.revoke(kind, name, self.clock.now_ms())? {
            Revoked::Unknown => Err(AccessError::Unknown(name.to_owned())),
            revoked => Ok(revoked),
        }
    }

    /// Every holder of `kind`, by name.
    pub fn list(&self, kind: HolderKind) -> Result<Vec<Listed>, AccessError> {
        Ok(self
            .store
            .credentials(kind)?
            .into_iter()
            .map(|(name, credential)| Listed {
                name,
                role: credential.role,
                issued: credential.issued,
                revoked: credential.revoked,
            })
            .collect())
    }

    /// The member of staff whose bearer token `token` is.
    pub fn staff(&self, token: &str) -> Result<Staff, Refusal> {
        let (name, credential) = self.check(HolderKind::Staff, token)?;
        // A staff credential without a role was not written by this registry.
        let role = credential.role.ok_or(Refusal::Unknown)?;
        Ok(Staff { name, role })
    }

    /// The integration whose Open311 `api_key` `key` is, by name.
    pub fn integration(&self, key: &str) -> Result<String, Refusal> {
        self.check(HolderKind::Integration, key)
            .map(|(name, _)| name)
    }

    /// The holder `presented` proves to be, with its credential as stored now (so a revocation
    /// takes effect at the next request, whatever was verified before).
    fn check(
        &self,
        kind: HolderKind,
        presented: &str,
    ) -> Result<(String, AccessCredential), Refusal> {
        if presented.len() > MAX_TOKEN_LEN {
            return Err(Refusal::Malformed);
        }
        let (name, secret) = presented.split_once('.').ok_or(Refusal::Malformed)?;
        if !is_valid_name(name) {
            return Err(Refusal::Malformed);
        }
        let credential = self.store.credential(kind, name)?.ok_or(Refusal::Unknown)?;
        if credential.revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let key = (kind, name.to_owned());
        let remembered = self.lock().get(&key).is_some_and(|(hash, known)| {
            *hash == credential.hash && bool::from(known.as_ref().ct_eq(digest.as_ref()))
        });
        if !remembered {
            if !secret::verify(&credential.hash, secret) {
                return Err(Refusal::WrongSecret);
            }
            self.lock()
                .insert(key.clone(), (credential.hash.clone(), digest));
        }
        Ok((key.1, credential))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(HolderKind, String), Verified>> {
        // The map is only ever replaced entry by entry: a panic elsewhere leaves it usable.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::storage::{Storage, StoreSettings};

    fn registry() -> (tempfile::TempDir, AccessRegistry) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
        let registry = AccessRegistry::new(storage.access.clone(), Arc::new(FixedClock::default()));
        (dir, registry)
    }

    #[test]
    fn a_token_names_its_holder_and_proves_it_until_revoked() {
        let (_dir, registry) = registry();
        let issued = registry
            .add_staff("ann", Role::WasteSupervisor, false)
            .unwrap();
        let token = issued.token.reveal().to_owned();
        assert!(token.starts_with("ann.") && token.len() == 4 + 64);
        let expected = Staff {
            name: "ann".into(),
            role: Role::WasteSupervisor,
        };
        // Twice: the second is answered from the digest.
        assert_eq!(registry.staff(&token).unwrap(), expected);
        assert_eq!(registry.staff(&token).unwrap(), expected);
        let wrong = format!("ann.{}", "0".repeat(64));
        assert!(matches!(registry.staff(&wrong), Err(Refusal::WrongSecret)));
        assert!(matches!(registry.staff("bob.00"), Err(Refusal::Unknown)));
        assert!(matches!(registry.staff("ann"), Err(Refusal::Malformed)));
        assert!(matches!(registry.staff("a/b.00"), Err(Refusal::Malformed)));
        assert!(matches!(
            registry.staff(&"é".repeat(10_000)),
            Err(Refusal::Malformed)
        ));
        // A staff token is not an api_key.
        assert!(matches!(
            registry.integration(&token),
            Err(Refusal::Unknown)
        ));

        registry.revoke(HolderKind::Staff, "ann").unwrap();
        assert!(matches!(registry.staff(&token), Err(Refusal::Revoked)));
    }

    #[test]
    fn a_replaced_token_stops_working_and_names_are_not_reissued_by_accident() {
        let (_dir, registry) = registry();
        let first = registry.add_integration("fixmystreet", false).unwrap();
        assert_eq!(
            registry.integration(first.token.reveal()).unwrap(),
            "fixmystreet"
        );
        assert!(matches!(
            registry.add_integration("fixmystreet", false),
            Err(AccessError::Exists { .. })
        ));
        let second = registry.add_integration("fixmystreet", true).unwrap();
        assert!(second.replaced);
        assert!(matches!(
            registry.integration(first.token.reveal()),
            Err(Refusal::WrongSecret)
        ));
        assert!(registry.integration(second.token.reveal()).is_ok());
        assert!(matches!(
            registry.add_staff("has.dot", Role::Viewer, false),
            Err(AccessError::BadName(_))
        ));
        let listed = registry.list(HolderKind::Integration).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "fixmystreet");
        assert!(!format!("{second:?}").contains(second.token.reveal()));
    }
}
