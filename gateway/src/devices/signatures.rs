//! The gateway's side of signed messages ([`proto::signed`]): every envelope is checked against
//! the key of the device its topic names, and every ack and downlink message is signed with the
//! gateway's key, so that neither a device nor anyone else on the broker can publish as another
//! device, and no one but the gateway can make a device delete what it holds.
//!
//! With `signing.required` on (the default) an unsigned envelope is refused. Off, for migrating
//! agents that do not sign yet, a bare envelope is taken as before, a signed one is still checked
//! (a bad signature is never taken), an ack is signed when the envelope it answers was, and a
//! downlink message when its device has a key.

use proto::signed::{self, SignError, SigningKey, VerifyError, VerifyingKey};
use proto::DeviceId;

use super::keys::GATEWAY_KID;
use super::DeviceRegistry;

/// Why an envelope's signature was not good enough: the quarantine's reason.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// Not signed, while signing is required.
    #[error("unsigned envelope: the gateway requires envelopes signed by their device")]
    Unsigned,
    /// Signed under another device's id than the topic's.
    #[error("envelope signed as {signer:?} on {device}'s topic")]
    OtherSigner {
        /// The topic's device.
        device: DeviceId,
        /// Who the signature says signed it (cut to the key id's limit by the decoder).
        signer: String,
    },
    /// The topic's device has no key: no credential, a revoked one, or one from before keys.
    #[error("{0} has no active signing key (gateway devices add {0} --replace issues one)")]
    NoKey(DeviceId),
    /// Not a valid signed message, or its signature does not verify with the device's key.
    #[error("bad signature: {0}")]
    Bad(VerifyError),
    /// The device registry could not be read; refused, to be redelivered.
    #[error("the device registry is unreadable: {0}")]
    Store(String),
}

/// An envelope whose signature is settled, as its encoded bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked<'a> {
    /// Signed by its device: the envelope inside.
    Signed(Vec<u8>),
    /// Unsigned, taken because signing is not required.
    Bare(&'a [u8]),
}

/// The gateway's signatures: its key, the registry's device keys, and whether signing is
/// required.
#[derive(Clone)]
pub struct Signatures {
    key: SigningKey,
    registry: DeviceRegistry,
    required: bool,
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signatures")
            .field(
                "public_key",
                &signed::key_hex(&self.key.verifying_key().to_bytes()),
            )
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Signatures {
    /// Signs with `key`, checks envelopes against `registry`'s device keys.
    pub fn new(key: SigningKey, registry: DeviceRegistry, required: bool) -> Self {
        Self {
            key,
            registry,
            required,
        }
    }

    /// Whether unsigned envelopes are refused and everything sent is signed.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The gateway's public key, which agents are configured with.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The envelope in `payload`, received on `topic`, `device`'s `up` topic.
    pub fn check_envelope<'a>(
        &self,
        device: &DeviceId,
        topic: &str,
        payload: &'a [u8],
    ) -> Result<Checked<'a>, Unverified> {
        if !signed::is_signed(payload) {
            return match self.required {
                true => Err(Unverified::Unsigned),
                false => Ok(Checked::Bare(payload)),
            };
        }
        let key = self
            .registry
            .device_key(device)
            .map_err(|e| Unverified::Store(e.to_string()))?;
        let opened = signed::open(payload, topic, |kid| {
            if kid == device.as_str() {
                key
            } else {
                None
            }
        });
        match opened {
            Ok(opened) => Ok(Checked::Signed(opened.payload)),
            Err(VerifyError::UnknownSigner(signer)) if signer != device.as_str() => {
                Err(Unverified::OtherSigner {
                    device: device.clone(),
                    signer,
                })
            }
            Err(VerifyError::UnknownSigner(_)) => Err(Unverified::NoKey(device.clone())),
            Err(e) => Err(Unverified::Bad(e)),
        }
    }

    /// `payload`, an encoded ack for `topic`, as published: signed unless signing is optional
    /// and the envelope it answers was bare (an agent that does not sign cannot read a signed
    /// ack).
    pub fn seal_ack(
        &self,
        topic: &str,
        payload: Vec<u8>,
        envelope_signed: bool,
    ) -> Result<Vec<u8>, SignError> {
        self.seal(topic, payload, self.required || envelope_signed)
    }

    /// `payload`, an encoded downlink message for `device` on `topic`, as published: signed
    /// unless signing is optional and the device has no key (it does not sign, so it cannot
    /// check either). Every downlink sender goes through here.
    pub fn seal_down(
        &self,
        device: &DeviceId,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SignError> {
        // An unreadable registry signs: a signing agent ignores a bare message.
        let has_key = !matches!(self.registry.device_key(device), Ok(None));
        self.seal(topic, payload, self.required || has_key)
    }

    fn seal(&self, topic: &str, payload: Vec<u8>, sign: bool) -> Result<Vec<u8>, SignError> {
        match sign {
            true => signed::sign(&payload, topic, GATEWAY_KID, &self.key),
            false => Ok(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proto::TopicKind;

    use super::*;
    use crate::clock::FixedClock;
    use crate::devices::Issued;
    use crate::storage::{Storage, StoreSettings};

    struct Fixture {
        _dir: tempfile::TempDir,
        registry: DeviceRegistry,
        cab1: Issued,
        cab2: Issued,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open_embedded(dir.path(), StoreSettings::default()).unwrap();
        let registry = DeviceRegistry::new(
            storage.devices.clone(),
            storage.ingest.clone(),
            vec!["gw".into()],
            Arc::new(FixedClock::default()),
        );
        let cab1 = registry.add(&id("cab-1"), false).unwrap();
        let cab2 = registry.add(&id("cab-2"), false).unwrap();
        Fixture {
            _dir: dir,
            registry,
            cab1,
            cab2,
        }
    }

    fn id(text: &str) -> DeviceId {
        DeviceId::new(text).unwrap()
    }

    fn signatures(fixture: &Fixture, required: bool) -> Signatures {
        let key = fixture.registry.gateway_key().unwrap();
        Signatures::new(key, fixture.registry.clone(), required)
    }

    #[test]
    fn an_envelope_is_taken_only_signed_by_its_topics_device() {
        let f = fixture();
        let required = signatures(&f, true);
        let (cab1, topic) = (id("cab-1"), id("cab-1").topic(TopicKind::Up));
        let envelope = b"an encoded envelope".to_vec();
        let sign = |kid: &str, key: &SigningKey, topic: &str| {
            signed::sign(&envelope, topic, kid, key).unwrap()
        };

        let good = sign("cab-1", &f.cab1.signing_key, &topic);
        assert_eq!(
            required.check_envelope(&cab1, &topic, &good),
            Ok(Checked::Signed(envelope.clone()))
        );
        // cab-2 signing as itself on cab-1's topic, or as cab-1 with its own key.
        let as_itself = sign("cab-2", &f.cab2.signing_key, &topic);
        assert!(matches!(
            required.check_envelope(&cab1, &topic, &as_itself),
            Err(Unverified::OtherSigner { signer, .. }) if signer == "cab-2"
        ));
        let as_cab1 = sign("cab-1", &f.cab2.signing_key, &topic);
        assert!(matches!(
            required.check_envelope(&cab1, &topic, &as_cab1),
            Err(Unverified::Bad(VerifyError::BadSignature(_)))
        ));
        // cab-1's own envelope replayed onto cab-2's topic.
        let cab2_topic = id("cab-2").topic(TopicKind::Up);
        assert!(required
            .check_envelope(&id("cab-2"), &cab2_topic, &good)
            .is_err());
        // Unsigned.
        assert_eq!(
            required.check_envelope(&cab1, &topic, &envelope),
            Err(Unverified::Unsigned)
        );
        // A device without a credential, and a revoked one.
        let stranger = id("cab-9");
        let stranger_topic = stranger.topic(TopicKind::Up);
        let by_stranger = sign("cab-9", &f.cab1.signing_key, &stranger_topic);
        assert_eq!(
            required.check_envelope(&stranger, &stranger_topic, &by_stranger),
            Err(Unverified::NoKey(stranger.clone()))
        );
        f.registry.revoke(&cab1).unwrap();
        assert_eq!(
            required.check_envelope(&cab1, &topic, &good),
            Err(Unverified::NoKey(cab1.clone()))
        );
    }

    #[test]
    fn optional_signing_takes_bare_envelopes_but_never_a_bad_signature() {
        let f = fixture();
        let optional = signatures(&f, false);
        let (cab1, topic) = (id("cab-1"), id("cab-1").topic(TopicKind::Up));
        let envelope = b"an encoded envelope".to_vec();
        assert_eq!(
            optional.check_envelope(&cab1, &topic, &envelope),
            Ok(Checked::Bare(&envelope))
        );
        let forged = signed::sign(&envelope, &topic, "cab-1", &f.cab2.signing_key).unwrap();
        assert!(optional.check_envelope(&cab1, &topic, &forged).is_err());
    }

    #[test]
    fn acks_and_downlink_are_signed_by_the_gateway_unless_the_device_cannot_read_them() {
        let f = fixture();
        let gateway = f.cab1.gateway_key;
        let ack_topic = id("cab-1").topic(TopicKind::Ack);
        let down_topic = id("cab-1").topic(TopicKind::Down);
        let opens = |bytes: &[u8], topic: &str| {
            signed::open(bytes, topic, |kid| (kid == GATEWAY_KID).then_some(gateway))
                .map(|opened| opened.payload)
        };
        let required = signatures(&f, true);
        assert_eq!(required.public_key(), gateway);
        let ack = required
            .seal_ack(&ack_topic, b"ack".to_vec(), false)
            .unwrap();
        assert_eq!(opens(&ack, &ack_topic), Ok(b"ack".to_vec()));
        let down = required
            .seal_down(&id("cab-9"), &down_topic, b"job".to_vec())
            .unwrap();
        assert_eq!(opens(&down, &down_topic), Ok(b"job".to_vec()));

        let optional = signatures(&f, false);
        assert_eq!(
            optional.seal_ack(&ack_topic, b"ack".to_vec(), false),
            Ok(b"ack".to_vec())
        );
        assert!(signed::is_signed(
            &optional
                .seal_ack(&ack_topic, b"ack".to_vec(), true)
                .unwrap()
        ));
        assert!(signed::is_signed(
            &optional
                .seal_down(&id("cab-1"), &down_topic, b"job".to_vec())
                .unwrap()
        ));
        assert_eq!(
            optional.seal_down(&id("cab-9"), &down_topic, b"job".to_vec()),
            Ok(b"job".to_vec())
        );
        // The key never shows in Debug.
        let secret = signed::key_hex(&f.registry.gateway_key().unwrap().to_bytes());
        assert!(!format!("{required:?}").contains(&secret));
        assert!(!format!("{:?}", f.cab1).contains(&signed::key_hex(&f.cab1.signing_key.to_bytes())));
    }
}
