//! The agent's side of signed messages ([`proto::signed`]): every batch is signed with the
//! device's key (its id as `kid`, its `up` topic as AAD), and an ack or downlink message is
//! acted on only if the gateway's key verifies it for the topic it came on. Anything else is
//! ignored: never applied, so a spoofed ack cannot make the device delete a record, nor a spoofed
//! job reach the crew; the receiver counts it and the health record reports the count.
//!
//! With `signing.required` off (while migrating), bare acks and jobs are acted on too and batches
//! are signed only if a key is configured; a signed message is still checked.

use std::borrow::Cow;

use proto::signed::{self, SignError, SigningKey, VerifyError, VerifyingKey};
use proto::DeviceId;

use crate::config::{ConfigError, SigningConfig};

/// The key id the gateway signs with.
pub const GATEWAY_KID: &str = "gateway";

/// Why a message from the gateway's side was ignored.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// Not signed, while signatures are required.
    #[error("unsigned, and signatures are required")]
    Unsigned,
    /// Signed, but no gateway key is configured to check it with.
    #[error("signed, and no gateway key is configured to check it")]
    NoGatewayKey,
    /// Not a valid signed message, or not the gateway's signature for this topic.
    #[error("not signed by the gateway for this topic: {0}")]
    Bad(#[from] VerifyError),
}

/// The device's signing key, the gateway's public key, and whether signatures are required.
#[derive(Clone)]
pub struct Signing {
    device: DeviceId,
    key: Option<SigningKey>,
    gateway: Option<VerifyingKey>,
    required: bool,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("device", &self.device)
            .field("signs", &self.key.is_some())
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Signing {
    /// The signing of `device` as `config` sets it (validated: keys that parse, both or none).
    pub fn from_config(device: DeviceId, config: &SigningConfig) -> Result<Self, ConfigError> {
        let invalid = |option: &str, e: signed::KeyError| {
            ConfigError::Invalid(format!("signing.{option}: {e}"))
        };
        let key = config
            .key
            .as_ref()
            .map(|key| signed::signing_key_from_hex(key.reveal()))
            .transpose()
            .map_err(|e| invalid("key", e))?;
        let gateway = config
            .gateway_key
            .as_deref()
            .map(signed::verifying_key_from_hex)
            .transpose()
            .map_err(|e| invalid("gateway_key", e))?;
        Ok(Self {
            device,
            key,
            gateway,
            required: config.required,
        })
    }

    /// Whether bare acks and jobs are ignored.
    pub fn required(&self) -> bool {
        self.required
    }

    /// `envelope`, encoded, as published on `topic`: signed, if the device has a key.
    pub fn seal(&self, topic: &str, envelope: Vec<u8>) -> Result<Vec<u8>, SignError> {
        match &self.key {
            Some(key) => signed::sign(&envelope, topic, self.device.as_str(), key),
            None => Ok(envelope),
        }
    }

    /// The ack or downlink message inside `payload`, received on `topic`, if the gateway signed
    /// it for that topic (or it is bare and signatures are not required).
    pub fn open<'a>(&self, topic: &str, payload: &'a [u8]) -> Result<Cow<'a, [u8]>, Ignored> {
        if !signed::is_signed(payload) {
            return match self.required {
                true => Err(Ignored::Unsigned),
                false => Ok(Cow::Borrowed(payload)),
            };
        }
        let gateway = self.gateway.ok_or(Ignored::NoGatewayKey)?;
        let opened = signed::open(payload, topic, |kid| {
            (kid == GATEWAY_KID).then_some(gateway)
        })?;
        Ok(Cow::Owned(opened.payload))
    }
}

#[cfg(test)]
mod tests {
    use proto::TopicKind;

    use super::*;
    use crate::config::PrivateKey;

    fn keyed(device: &SigningKey, gateway: &SigningKey, required: bool) -> Signing {
        let config = SigningConfig {
            required,
            key: Some(PrivateKey::new(signed::key_hex(&device.to_bytes()))),
            gateway_key: Some(signed::key_hex(&gateway.verifying_key().to_bytes())),
        };
        Signing::from_config(DeviceId::new("cab-1").unwrap(), &config).unwrap()
    }

    #[test]
    fn only_the_gateways_signature_for_this_topic_is_acted_on() {
        let (device, gateway, intruder) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
        );
        let signing = keyed(&device, &gateway, true);
        let cab1 = DeviceId::new("cab-1").unwrap();
        let (ack, down) = (cab1.topic(TopicKind::Ack), cab1.topic(TopicKind::Down));
        let message = b"an encoded ack".to_vec();
        let by = |key: &SigningKey, kid: &str, topic: &str| {
            signed::sign(&message, topic, kid, key).unwrap()
        };

        let genuine = by(&gateway, GATEWAY_KID, &ack);
        assert_eq!(signing.open(&ack, &genuine).unwrap().as_ref(), message);
        // Unsigned; signed by anyone else, as the gateway or not; signed for another topic or
        // another device's.
        assert_eq!(signing.open(&ack, &message), Err(Ignored::Unsigned));
        assert!(matches!(
            signing.open(&ack, &by(&intruder, GATEWAY_KID, &ack)),
            Err(Ignored::Bad(VerifyError::BadSignature(_)))
        ));
        assert!(matches!(
            signing.open(&ack, &by(&intruder, "cab-1", &ack)),
            Err(Ignored::Bad(VerifyError::UnknownSigner(_)))
        ));
        assert!(signing.open(&down, &genuine).is_err());
        let others = DeviceId::new("cab-2").unwrap().topic(TopicKind::Ack);
        assert!(signing
            .open(&ack, &by(&gateway, GATEWAY_KID, &others))
            .is_err());
        assert!(signing.open(&ack, &[0xD2, 0x84]).is_err());

        // Optional: bare messages pass, a bad signature still does not.
        let optional = keyed(&device, &gateway, false);
        assert_eq!(optional.open(&ack, &message).unwrap().as_ref(), message);
        assert!(optional
            .open(&ack, &by(&intruder, GATEWAY_KID, &ack))
            .is_err());
        let unkeyed = Signing::from_config(
            cab1.clone(),
            &SigningConfig {
                required: false,
                key: None,
                gateway_key: None,
            },
        )
        .unwrap();
        assert_eq!(unkeyed.open(&ack, &genuine), Err(Ignored::NoGatewayKey));
        assert_eq!(unkeyed.seal(&ack, message.clone()).unwrap(), message);
    }

    #[test]
    fn batches_are_signed_by_the_device_for_its_up_topic() {
        let (device, gateway) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let signing = keyed(&device, &gateway, true);
        let up = DeviceId::new("cab-1").unwrap().topic(TopicKind::Up);
        let sealed = signing.seal(&up, b"batch".to_vec()).unwrap();
        let public = device.verifying_key();
        let opened = signed::open(&sealed, &up, |kid| (kid == "cab-1").then_some(public)).unwrap();
        assert_eq!(opened.payload, b"batch");
        assert!(!format!("{signing:?}").contains(&signed::key_hex(&device.to_bytes())));
    }
}
