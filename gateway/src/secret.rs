//! Secrets the gateway issues: devices' broker passwords, staff's bearer tokens and
//! integrations' Open311 `api_key`s. Each is generated from the operating system's random
//! source, shown once, and kept only as an argon2id hash (a PHC string), so a copy of the store
//! does not let anyone connect as a device, call the staff API or file reports.
//!
//! A secret is 32 random bytes, not a password: no dictionary or brute force can find it from
//! its hash, so argon2's memory-hardness buys nothing here, while its memory is paid on every
//! check (every broker connection, two at a time, and every staff request whose token is not
//! yet cached) and kept by the allocator afterwards. With the password settings (19 MiB, two
//! passes) the whole demo in one process grew to about 1 GiB; so the hash is argon2id with
//! 1 MiB and one pass (about a millisecond). The PHC string records the parameters, so changing
//! them later invalidates nothing already issued.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq;

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// The longest password the broker will hash: a genuine one is `2 * SECRET_BYTES` characters,
/// and anything far longer is only work for the gateway.
pub const MAX_SECRET_LEN: usize = 256;

/// A secret as issued: lowercase hex of [`SECRET_BYTES`] random bytes. Its `Debug` does not show
/// it, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The secret's text, to hand to the device (or the gateway's own client) and nowhere else.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// Why a secret could not be made or hashed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// argon2 refused its parameters or the salt (a bug, not an input).
    #[error("could not hash the secret: {0}")]
    Hash(String),
}

/// argon2's memory per hash, KiB.
const MEMORY_KIB: u32 = 1024;

fn hasher() -> Result<Argon2<'static>, SecretError> {
    let params =
        Params::new(MEMORY_KIB, 1, 1, None).map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// `secret`'s argon2id hash as a PHC string, with a fresh random salt.
pub fn hash(secret: &Secret) -> Result<String, SecretError> {
    let hashed: PasswordHash = hasher()?
        .hash_password(secret.reveal().as_bytes())
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(hashed.to_string())
}

/// Whether `candidate` is the secret `phc` is the hash of. An unreadable hash or an overlong
/// candidate verifies nothing.
pub fn verify(phc: &str, candidate: &str) -> bool {
    if candidate.len() > MAX_SECRET_LEN {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters come from the PHC string; the default instance only supplies the
    // algorithm's code.
    Argon2::default()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_and_nothing_else_does() {
        let secret = Secret::generate().unwrap();
        assert_eq!(secret.reveal().len(), 2 * SECRET_BYTES);
        let phc = hash(&secret).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(!phc.contains(secret.reveal()));
        assert!(verify(&phc, secret.reveal()));
        assert!(!verify(&phc, Secret::generate().unwrap().reveal()));
        assert!(!verify(&phc, ""));
        assert!(!verify(&phc, &"a".repeat(MAX_SECRET_LEN + 1)));
        assert!(!verify("not a hash", secret.reveal()));
    }

    #[test]
    fn secrets_differ_and_never_show_in_debug() {
        let (a, b) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        assert_ne!(a, b);
        assert!(a.matches(a.reveal()) && !a.matches(b.reveal()));
        assert!(!format!("{a:?}").contains(a.reveal()));
    }
}
