#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The signed forms against the contract: each signed vector in `vectors/signed/` is what
//! `proto::signed::sign` writes today for its example (Ed25519 signatures are deterministic, so
//! RFC 8032's first test key gives the same bytes every time), opens to its example on its topic,
//! and matches its rule in `fieldsync.cddl`. Re-bless with
//! `FIELDSYNC_BLESS=1 cargo test -p fieldsync-proto --test signed`.

use std::path::{Path, PathBuf};

use cddl::validator::cbor::CBORValidator;
use cddl::validator::cbor_value::decode_cbor;
use cddl::validator::Validator;
use proto::examples::{self, Example};
use proto::signed::{self, SigningKey};
use proto::MAX_MESSAGE_BYTES;

/// RFC 8032 §7.1, TEST 1: secret key, and the public key it gives.
const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn hex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/signed")
}

/// Each signed vector: its name, the example inside, its topic, its signer and its CDDL rule.
fn cases() -> Vec<(&'static str, Example, String, &'static str, &'static str)> {
    let envelope = examples::envelope_health();
    let device = envelope.dev.clone();
    let ack = examples::ack();
    let down = examples::down_job_return();
    vec![
        (
            "envelope_health",
            Example::from(envelope),
            format!("fieldsync/v1/{device}/up"),
            device.as_str(),
            "signed-envelope",
        ),
        (
            "ack",
            Example::from(ack),
            "fieldsync/v1/cab-rcv07/ack".to_owned(),
            "gateway",
            "signed-ack",
        ),
        (
            "down_job_return",
            Example::from(down),
            "fieldsync/v1/cab-rcv07/down".to_owned(),
            "gateway",
            "signed-down",
        ),
    ]
    .into_iter()
    .map(|(name, example, topic, kid, rule)| {
        // The signer outlives this function: leak the few bytes of a test's key ids.
        let kid: &'static str = Box::leak(kid.to_owned().into_boxed_str());
        (name, example, topic, kid, rule)
    })
    .collect()
}

#[test]
fn the_test_key_is_rfc_8032s() {
    let key = SigningKey::from_bytes(&hex(SECRET));
    assert_eq!(key.verifying_key().to_bytes(), hex(PUBLIC));
}

#[test]
fn signed_vectors_are_up_to_date_open_to_their_examples_and_match_the_cddl() {
    let key = SigningKey::from_bytes(&hex(SECRET));
    let bless = std::env::var_os("FIELDSYNC_BLESS").is_some_and(|v| v == "1");
    let schema = include_str!("../fieldsync.cddl");
    for (name, example, topic, kid, rule) in cases() {
        let payload = example.encode().unwrap();
        let signed_bytes = signed::sign(&payload, &topic, kid, &key).unwrap();
        let path = dir().join(format!("{name}.cose"));
        if bless {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &signed_bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            on_disk, signed_bytes,
            "{name}.cose differs from what the code writes"
        );

        let verifying = key.verifying_key();
        let opened = signed::open(&on_disk, &topic, |signer| {
            (signer == kid).then_some(verifying)
        })
        .unwrap();
        assert_eq!(opened.kid, kid);
        assert_eq!(opened.payload, payload);
        let decoded = example.decode_same_type(&opened.payload).unwrap();
        assert_eq!(decoded.encode().unwrap(), payload);
        assert!(on_disk.len() <= MAX_MESSAGE_BYTES);

        let matches = |rule: &str| {
            let rooted: &'static str =
                Box::leak(format!("root = {rule}\n{schema}").into_boxed_str());
            let cddl = cddl::cddl_from_str(rooted, true).unwrap();
            let cbor = decode_cbor(&on_disk).unwrap();
            CBORValidator::new(&cddl, cbor, None)
                .validate()
                .map_err(|e| e.to_string())
        };
        if let Err(e) = matches(rule) {
            panic!("{name}.cose does not match `{rule}`: {e}");
        }
        // The schema tells the signed forms apart by what is inside.
        for other in ["signed-envelope", "signed-ack", "signed-down"] {
            if other != rule {
                assert!(matches(other).is_err(), "{name}.cose matches `{other}`");
            }
        }
        // And the bare message is not a signed form.
        let bare = decode_cbor(&payload).unwrap();
        let rooted: &'static str = Box::leak(format!("root = {rule}\n{schema}").into_boxed_str());
        let cddl = cddl::cddl_from_str(rooted, true).unwrap();
        assert!(CBORValidator::new(&cddl, bare, None).validate().is_err());
    }
}
