//! Signed messages: an encoded message wrapped in COSE_Sign1 (RFC 9052 §4.2), tagged (18), with
//! EdDSA over Ed25519 (RFC 9053 §2.2), so that a device can tell a genuine ack or job from one
//! anyone on the broker published, and the gateway a device's batch from a forgery, whatever
//! broker sits between them.
//!
//! - The protected header holds exactly the algorithm (EdDSA, -8) and the signer's key id (`kid`,
//!   a device id, or the gateway's key name), nothing else; the unprotected header is empty.
//! - The payload is attached: the message as [`crate::encode`] writes it.
//! - The external AAD is the MQTT topic the message is published on, so a signature made for one
//!   device's topic (or for its `ack` rather than its `down`) verifies nowhere else.
//! - Verification is Ed25519's strict form (no malleable signatures, no small-order keys).
//!
//! [`sign`] and [`open`] do no I/O: keys come from the caller, who knows which key each `kid`
//! names. `fieldsync.cddl` gives the signed forms; `vectors/signed/` holds examples made with
//! RFC 8032's first test key.

use coset::iana;
use coset::{CoseSign1, CoseSign1Builder, Header, HeaderBuilder, TaggedCborSerializable};
use ed25519_dalek::{Signature, Signer};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::MAX_MESSAGE_BYTES;

/// The longest key id: a device id's limit.
pub const MAX_KEY_ID_LEN: usize = 64;

/// At most what signing adds to a message: the tag, the array, the protected header with the
/// longest key id, the empty unprotected header, the payload's byte-string head and the
/// signature. A payload of up to `MAX_MESSAGE_BYTES - SIGNED_OVERHEAD` bytes always signs.
pub const SIGNED_OVERHEAD: usize = 1 + 1 + (3 + 1 + 3 + 2 + MAX_KEY_ID_LEN) + 1 + 5 + (2 + 64);

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The key id is empty or longer than [`MAX_KEY_ID_LEN`].
    #[error("key id must be 1 to {MAX_KEY_ID_LEN} bytes")]
    KeyId,
    /// The signed message would exceed the message limit.
    #[error("the signed message would be {0} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// COSE encoding failed.
    #[error("cannot encode COSE_Sign1: {0}")]
    Encode(String),
}

/// Why a signed message was refused. Every refusal is one of these; none panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Over the message limit.
    #[error("signed message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a tagged COSE_Sign1.
    #[error("not a tagged COSE_Sign1: {0}")]
    NotCoseSign1(String),
    /// The headers are not exactly EdDSA and a key id.
    #[error("COSE headers must be exactly alg EdDSA and a kid, protected: {0}")]
    Headers(&'static str),
    /// No payload (a detached one is not part of the contract).
    #[error("no attached payload")]
    NoPayload,
    /// The key id names no key the caller knows.
    #[error("unknown signer {0:?}")]
    UnknownSigner(String),
    /// The signature does not verify over the payload and topic with the signer's key.
    #[error("bad signature from {0:?}")]
    BadSignature(String),
}

/// A message whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Who signed it.
    pub kid: String,
    /// The message, as encoded (decode it with [`crate::decode`]).
    pub payload: Vec<u8>,
}

fn protected(kid: &str) -> Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid.as_bytes().to_vec())
        .build()
}

/// Signs the encoded message `payload`, to be published on `topic`, as `kid` with `key`.
pub fn sign(
    payload: &[u8],
    topic: &str,
    kid: &str,
    key: &SigningKey,
) -> Result<Vec<u8>, SignError> {
    if kid.is_empty() || kid.len() > MAX_KEY_ID_LEN {
        return Err(SignError::KeyId);
    }
    let signed = CoseSign1Builder::new()
        .protected(protected(kid))
        .payload(payload.to_vec())
        .create_signature(topic.as_bytes(), |tbs| key.sign(tbs).to_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .map_err(|e| SignError::Encode(e.to_string()))?;
    if signed.len() > MAX_MESSAGE_BYTES {
        return Err(SignError::TooLarge(signed.len()));
    }
    Ok(signed)
}

/// Verifies a signed message received on `topic`, with the key `key_for` gives for its key id,
/// and returns the message inside.
pub fn open(
    bytes: &[u8],
    topic: &str,
    key_for: impl FnOnce(&str) -> Option<VerifyingKey>,
) -> Result<Opened, VerifyError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(VerifyError::TooLarge(bytes.len()));
    }
    let signed = CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| VerifyError::NotCoseSign1(e.to_string()))?;
    if signed.unprotected != Header::default() {
        return Err(VerifyError::Headers("the unprotected header must be empty"));
    }
    let header = &signed.protected.header;
    let kid = std::str::from_utf8(&header.key_id)
        .ok()
        .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KEY_ID_LEN)
        .ok_or(VerifyError::Headers("kid must be 1 to 64 bytes of UTF-8"))?
        .to_owned();
    // Exactly these two, and the algorithm as its number: anything else (crit, content type,
    // an IV, a text algorithm name) is refused rather than ignored.
    if *header != protected(&kid) {
        return Err(VerifyError::Headers(
            "alg must be EdDSA (-8), with only a kid besides",
        ));
    }
    let Some(payload) = signed.payload.clone() else {
        return Err(VerifyError::NoPayload);
    };
    let key = key_for(&kid).ok_or_else(|| VerifyError::UnknownSigner(kid.clone()))?;
    signed.verify_signature(topic.as_bytes(), |signature, tbs| {
        let signature =
            Signature::from_slice(signature).map_err(|_| VerifyError::BadSignature(kid.clone()))?;
        key.verify_strict(tbs, &signature)
            .map_err(|_| VerifyError::BadSignature(kid.clone()))
    })?;
    Ok(Opened { kid, payload })
}

/// Why the text of a key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not 64 hexadecimal digits.
    #[error("an Ed25519 key is 64 hexadecimal digits (32 bytes)")]
    Hex,
    /// 32 bytes that are not an Ed25519 public key.
    #[error("not an Ed25519 public key")]
    NotAPoint,
}

/// A key's 32 bytes as lowercase hexadecimal, the form configuration files carry.
pub fn key_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_bytes(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return Err(KeyError::Hex);
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError::Hex)?;
    }
    Ok(bytes)
}

/// A private (signing) key from its [`key_hex`] text.
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, KeyError> {
    key_bytes(text).map(|bytes| SigningKey::from_bytes(&bytes))
}

/// A public (verifying) key from its [`key_hex`] text.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&key_bytes(text)?).map_err(|_| KeyError::NotAPoint)
}

/// Whether `bytes` looks like a signed message (CBOR tag 18 first), as opposed to a bare one:
/// for a receiver that must tell the two apart while unsigned operation is still configured.
pub fn is_signed(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0xD2)
}

#[cfg(test)]
mod tests {
    use coset::CborSerializable;

    use super::*;

    /// RFC 8032 §7.1, TEST 1.
    const SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];
    const TOPIC: &str = "fieldsync/v1/cab-0042/ack";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&SECRET)
    }

    fn ack() -> Vec<u8> {
        crate::encode(&crate::examples::ack(), MAX_MESSAGE_BYTES).unwrap()
    }

    fn open_with(bytes: &[u8], topic: &str, key: &SigningKey) -> Result<Opened, VerifyError> {
        let verifying = key.verifying_key();
        open(bytes, topic, |kid| (kid == "gateway").then_some(verifying))
    }

    #[test]
    fn a_signed_message_opens_to_itself_on_its_topic_only() {
        let signed = sign(&ack(), TOPIC, "gateway", &key()).unwrap();
        assert!(is_signed(&signed) && !is_signed(&ack()));
        assert!(signed.len() <= ack().len() + SIGNED_OVERHEAD);
        let opened = open_with(&signed, TOPIC, &key()).unwrap();
        assert_eq!(
            opened,
            Opened {
                kid: "gateway".into(),
                payload: ack()
            }
        );
        // Another device's topic, or another kind on the same device, does not verify.
        for topic in ["fieldsync/v1/cab-0043/ack", "fieldsync/v1/cab-0042/down"] {
            assert_eq!(
                open_with(&signed, topic, &key()),
                Err(VerifyError::BadSignature("gateway".into()))
            );
        }
        // Another key, or an unknown signer.
        let other = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(
            open_with(&signed, TOPIC, &other),
            Err(VerifyError::BadSignature("gateway".into()))
        );
        let forged = sign(&ack(), TOPIC, "gatewax", &key()).unwrap();
        assert_eq!(
            open_with(&forged, TOPIC, &key()),
            Err(VerifyError::UnknownSigner("gatewax".into()))
        );
    }

    #[test]
    fn every_flipped_bit_is_refused_and_nothing_panics() {
        let signed = sign(&ack(), TOPIC, "gateway", &key()).unwrap();
        for byte in 0..signed.len() {
            for bit in 0..8 {
                let mut tampered = signed.clone();
                tampered[byte] ^= 1 << bit;
                assert!(
                    open_with(&tampered, TOPIC, &key()).is_err(),
                    "bit {bit} of byte {byte} flipped still verifies"
                );
            }
        }
        for cut in 0..signed.len() {
            assert!(open_with(&signed[..cut], TOPIC, &key()).is_err());
        }
    }

    #[test]
    fn only_the_contracts_headers_and_an_attached_payload_are_accepted() {
        let key = key();
        let build = |protected: Header, unprotected: Header, payload: Option<Vec<u8>>| {
            let mut builder = CoseSign1Builder::new()
                .protected(protected)
                .unprotected(unprotected);
            if let Some(payload) = payload {
                builder = builder.payload(payload);
            }
            builder
                .create_signature(TOPIC.as_bytes(), |tbs| key.sign(tbs).to_bytes().to_vec())
                .build()
        };
        let tagged = |m: CoseSign1| m.to_tagged_vec().unwrap();
        let with_kid = |b: HeaderBuilder| b.key_id(b"gateway".to_vec()).build();
        let cases = [
            // Another algorithm, none, or one with a content type.
            tagged(build(
                with_kid(HeaderBuilder::new().algorithm(iana::Algorithm::ES256)),
                Header::default(),
                Some(ack()),
            )),
            tagged(build(
                with_kid(HeaderBuilder::new()),
                Header::default(),
                Some(ack()),
            )),
            tagged(build(
                with_kid(
                    HeaderBuilder::new()
                        .algorithm(iana::Algorithm::EdDSA)
                        .content_format(iana::CoapContentFormat::Cbor),
                ),
                Header::default(),
                Some(ack()),
            )),
            // Anything unprotected, or no payload.
            tagged(build(
                protected("gateway"),
                HeaderBuilder::new().key_id(b"x".to_vec()).build(),
                Some(ack()),
            )),
            tagged(build(protected("gateway"), Header::default(), None)),
            // Untagged.
            build(protected("gateway"), Header::default(), Some(ack()))
                .to_vec()
                .unwrap(),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(
                open_with(case, TOPIC, &key).is_err(),
                "case {i} was accepted"
            );
        }
        assert!(matches!(
            open_with(&vec![0xD2; MAX_MESSAGE_BYTES + 1], TOPIC, &key),
            Err(VerifyError::TooLarge(_))
        ));
    }

    #[test]
    fn keys_read_back_from_their_hex_and_nothing_else_does() {
        let key = key();
        let text = key_hex(&key.to_bytes());
        assert_eq!(
            text,
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
        );
        assert_eq!(signing_key_from_hex(&text).unwrap().to_bytes(), SECRET);
        let public = key_hex(&key.verifying_key().to_bytes());
        assert_eq!(
            verifying_key_from_hex(&public).unwrap(),
            key.verifying_key()
        );
        for bad in [
            "",
            "9d61",
            &text[1..],
            &format!("{text}00"),
            &"zz".repeat(32),
            &"é".repeat(32),
        ] {
            assert_eq!(
                signing_key_from_hex(bad).err(),
                Some(KeyError::Hex),
                "{bad:?}"
            );
        }
        // The point (2, ...) is not on the curve: y = 2 has no x.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            verifying_key_from_hex(&key_hex(&off_curve)),
            Err(KeyError::NotAPoint)
        );
    }

    #[test]
    fn key_ids_and_sizes_are_bounded() {
        let key = key();
        assert_eq!(sign(&ack(), TOPIC, "", &key), Err(SignError::KeyId));
        let long = "k".repeat(MAX_KEY_ID_LEN + 1);
        assert_eq!(sign(&ack(), TOPIC, &long, &key), Err(SignError::KeyId));
        let longest = "k".repeat(MAX_KEY_ID_LEN);
        let fits = vec![0; MAX_MESSAGE_BYTES - SIGNED_OVERHEAD];
        assert!(sign(&fits, TOPIC, &longest, &key).is_ok());
        let over = vec![0; MAX_MESSAGE_BYTES];
        assert!(matches!(
            sign(&over, TOPIC, "gateway", &key),
            Err(SignError::TooLarge(_))
        ));
    }
}
