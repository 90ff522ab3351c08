//! Ed25519 keys the registry makes: a device's pair when it is issued its credential (the public
//! half kept, the private half shown once, in the agent's configuration), and the gateway's own
//! signing key, made the first time it is needed and kept through the storage seam.

use proto::signed::{SigningKey, VerifyingKey};

use super::secret::SecretError;
use super::DeviceError;
use crate::storage::CredentialStore;

/// The key id the gateway signs acks and downlink messages with.
pub const GATEWAY_KID: &str = "gateway";

/// A fresh Ed25519 signing key from the operating system's random source. dalek's `Debug`
/// shows only the public half.
pub fn generate() -> Result<SigningKey, SecretError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The gateway's signing key: the stored one, or a new one stored now.
pub fn gateway_key(store: &dyn CredentialStore) -> Result<SigningKey, DeviceError> {
    let candidate = generate()?;
    let stored = store.signing_key_or_insert(&candidate.to_bytes())?;
    Ok(SigningKey::from_bytes(&stored))
}

/// A stored public key, if it is one.
pub fn public_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let bytes = <[u8; 32]>::try_from(bytes).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}
