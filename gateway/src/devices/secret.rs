//! Devices' secrets are the gateway's shared kind of secret ([`crate::secret`]): generated,
//! hashed with argon2id and verified there, for devices, staff tokens and integrations' keys
//! alike.

pub use crate::secret::{hash, verify, Secret, SecretError, MAX_SECRET_LEN};
