//! The test vectors in `proto/vectors/`: for each of `proto::examples::all()`, `NAME.cbor` is the
//! message exactly as `proto::encode` writes it and `NAME.json` the same message as JSON, for
//! people. Third parties test their codecs against them, so they change only on purpose:
//!
//! - `vectors_are_up_to_date` fails when the code would now write different bytes, or when a file
//!   is missing or left over;
//! - `committed_vectors_decode_to_the_examples` decodes each committed `.cbor` file, so that what
//!   a third party reads from it is what we mean by it.
//!
//! - `every_vector_rebuilds_from_its_json` encodes each `.json` file with a generic CBOR encoder
//!   following the rule in `fieldsync.cddl` ("Encoding rules") and compares the bytes with the
//!   `.cbor` file: a third party can rebuild every vector from its JSON. The JSON therefore gives
//!   each float's exact value (a single-precision reading as its exact decimal expansion, not the
//!   shortest decimal that rounds to it).
//! - `replayed_vectors_are_acked_through_each_devices_last_record` checks that each device's
//!   sequence in the envelope vectors starts at 1 and leaves no hole, so that a fresh gateway
//!   replaying them acks each device through its last record, as the CDDL says.
//!
//! The rebuild check with Python's cbor2, from `proto/vectors/` (not run in CI; with cbor2 6.3.0
//! all 19 vectors rebuild):
//!
//! ```python
//! import cbor2, glob, json, struct
//! def shortest(encoder, value):  # RFC 8949 section 4.1: the shortest width that holds the value
//!     for fmt, head in ((">e", 0xf9), (">f", 0xfa)):
//!         try:
//!             if struct.unpack(fmt, struct.pack(fmt, value))[0] == value:
//!                 return encoder.write(bytes([head]) + struct.pack(fmt, value))
//!         except (OverflowError, struct.error):
//!             pass
//!     encoder.write(b"\xfb" + struct.pack(">d", value))
//! for path in sorted(glob.glob("*.json")):
//!     rebuilt = cbor2.dumps(json.load(open(path)), encoders={float: shortest})
//!     assert rebuilt == open(path[:-5] + ".cbor", "rb").read(), path
//! ```
//!
//! After a deliberate change, re-bless with
//! `FIELDSYNC_BLESS=1 cargo test -p fieldsync-proto --test vectors` and commit the files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proto::examples;

const BLESS_VAR: &str = "FIELDSYNC_BLESS";
const BLESS_COMMAND: &str = "FIELDSYNC_BLESS=1 cargo test -p fieldsync-proto --test vectors";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Every vector file's name and the contents the code produces for it today.
fn expected_files() -> Vec<(String, Vec<u8>)> {
    examples::all()
        .into_iter()
        .flat_map(|(name, example)| {
            let cbor = example.encode().unwrap_or_else(|e| panic!("{name}: {e}"));
            // The message's own JSON, in its field order, with every float as exact as in CBOR.
            let mut json: Json =
                serde_json::from_str(&serde_json::to_string(&example).unwrap()).unwrap();
            json.exact_floats_from(&serde_cbor::from_slice(&cbor).unwrap());
            let mut json = serde_json::to_string_pretty(&json).unwrap();
            json.push('\n');
            [
                (format!("{name}.cbor"), cbor),
                (format!("{name}.json"), json.into_bytes()),
            ]
        })
        .collect()
}

/// The vector files in the directory now.
fn files_on_disk() -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(vectors_dir()) else {
        return BTreeSet::new();
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cbor") || name.ends_with(".json"))
        .collect()
}

/// Rewrites the vectors, once per test run, when `FIELDSYNC_BLESS=1`; both tests call it first so
/// that neither reads files the other is about to replace.
fn bless_if_asked() {
    static BLESSED: OnceLock<()> = OnceLock::new();
    if std::env::var_os(BLESS_VAR).is_some_and(|value| value == "1") {
        BLESSED.get_or_init(write_vectors);
    }
}

fn write_vectors() {
    let dir = vectors_dir();
    fs::create_dir_all(&dir).unwrap();
    let expected = expected_files();
    let keep: BTreeSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    for leftover in files_on_disk()
        .iter()
        .filter(|name| !keep.contains(name.as_str()))
    {
        fs::remove_file(dir.join(leftover)).unwrap();
    }
    for (name, contents) in &expected {
        fs::write(dir.join(name), contents).unwrap();
    }
}

#[test]
fn vectors_are_up_to_date() {
    bless_if_asked();
    let dir = vectors_dir();
    let expected = expected_files();
    let mut problems: Vec<String> = expected
        .iter()
        .filter_map(|(name, contents)| match fs::read(dir.join(name)) {
            Ok(on_disk) if on_disk == *contents => None,
            Ok(_) => Some(format!("{name} differs from what the code writes")),
            Err(e) => Some(format!("{name} cannot be read: {e}")),
        })
        .collect();
    let known: BTreeSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    problems.extend(
        files_on_disk()
            .into_iter()
            .filter(|name| !known.contains(name.as_str()))
            .map(|name| format!("{name} belongs to no example")),
    );
    assert!(
        problems.is_empty(),
        "the test vectors in {} are out of date:\n  {}\n\
         The wire format is a published contract: if the change is deliberate (and keeps to the \
         versioning rules in proto/fieldsync.cddl), re-bless with\n  {BLESS_COMMAND}\n\
         and commit the vectors with the change.",
        dir.display(),
        problems.join("\n  "),
    );
}

#[test]
fn committed_vectors_decode_to_the_examples() {
    bless_if_asked();
    for (name, example) in examples::all() {
        let path = vectors_dir().join(format!("{name}.cbor"));
        let bytes = fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; bless with {BLESS_COMMAND}", path.display()));
        match example.decode_same_type(&bytes) {
            Ok(decoded) => assert_eq!(decoded, example, "{name}"),
            Err(e) => panic!("{}: does not decode: {e}", path.display()),
        }
    }
}

#[test]
fn every_vector_rebuilds_from_its_json() {
    bless_if_asked();
    for (name, _) in examples::all() {
        let read = |ext: &str| fs::read(vectors_dir().join(format!("{name}.{ext}"))).unwrap();
        let json: Json = serde_json::from_slice(&read("json")).unwrap();
        let mut rebuilt = Vec::new();
        json.encode(&mut rebuilt);
        assert_eq!(
            rebuilt,
            read("cbor"),
            "{name}.cbor is not what a generic encoder makes of {name}.json"
        );
    }
}

/// What `fieldsync.cddl` ("Sequence numbers and acks") promises a third party replaying the
/// envelope vectors in order against a fresh gateway: each device's sequence starts at 1 and
/// leaves no number unaccounted for (every one is a record or lies in a gap below the gap's own
/// record), so the cumulative ack reaches each device's last record; and the ack vectors, which
/// answer the hub, say so.
#[test]
fn replayed_vectors_are_acked_through_each_devices_last_record() {
    use proto::{examples::Example, RecordBody};
    use std::collections::BTreeMap;

    let mut held: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut acks = Vec::new();
    for (name, example) in examples::all() {
        match example {
            Example::Envelope(envelope) => {
                let numbers = held.entry(envelope.dev.to_string()).or_default();
                for record in &envelope.recs {
                    assert!(numbers.insert(record.seq), "{name}: {} twice", record.seq);
                    if let RecordBody::Gap(gap) = &record.body {
                        assert!(gap.to < record.seq, "{name}: a gap reaching past itself");
                        numbers.extend(gap.from..=gap.to);
                    }
                }
            }
            Example::Ack(ack) => acks.push((name, ack.thru)),
            Example::Down(_) | Example::State(_) => {}
        }
    }
    // The cumulative ack: the highest N with all of 1..=N held.
    let acked = |numbers: &BTreeSet<u64>| (1..).take_while(|n| numbers.contains(n)).last();
    let mut through = BTreeMap::new();
    for (device, numbers) in &held {
        let last = numbers.last().copied();
        assert_eq!(acked(numbers), last, "{device} leaves a hole: {numbers:?}");
        through.insert(device.as_str(), last.unwrap_or(0));
    }
    assert_eq!(
        through,
        BTreeMap::from([
            ("cab-rcv07", 5),
            ("hub-b004512", 66),
            ("hub-b004513", 1),
            ("op-ph0193", 1)
        ])
    );
    for (name, thru) in acks {
        assert_eq!(thru, through["hub-b004512"], "{name} answers the hub");
    }
}

/// A JSON value that keeps its objects' order (serde_json's own `Value` sorts keys here).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Integer(i128),
    Float(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Replaces every float with the one at the same place in `cbor`, which holds the value
    /// exactly: serde_json writes a single-precision reading as the shortest decimal that rounds to
    /// it (1.3007812 for 1.30078125), which as a double is another number.
    fn exact_floats_from(&mut self, cbor: &serde_cbor::Value) {
        use serde_cbor::Value;
        match (self, cbor) {
            (Json::Float(f), Value::Float(exact)) => *f = *exact,
            (Json::Array(items), Value::Array(cbor_items)) => {
                for (item, cbor_item) in items.iter_mut().zip(cbor_items) {
                    item.exact_floats_from(cbor_item);
                }
            }
            (Json::Object(entries), Value::Map(map)) => {
                for (key, item) in entries {
                    item.exact_floats_from(&map[&Value::Text(key.clone())]);
                }
            }
            _ => {}
        }
    }

    /// The generic encoding the CDDL's "Encoding rules" give: JSON integers as CBOR integers,
    /// other numbers as floats in the shortest of half, single and double that holds the value
    /// exactly (RFC 8949 section 4.1, preferred serialization), every length definite and in its
    /// shortest form, object entries in the JSON's order.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.push(0xf6),
            Json::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Json::Integer(i) if *i >= 0 => head(out, 0, u64::try_from(*i).unwrap()),
            Json::Integer(i) => head(out, 1, u64::try_from(-1 - *i).unwrap()),
            Json::Float(f) => {
                let half = half::f16::from_f64(*f);
                #[allow(clippy::float_cmp)] // exactness is the point
                if half.to_f64() == *f {
                    out.push(0xf9);
                    out.extend_from_slice(&half.to_be_bytes());
                } else if f64::from(*f as f32) == *f {
                    out.push(0xfa);
                    out.extend_from_slice(&(*f as f32).to_be_bytes());
                } else {
                    out.push(0xfb);
                    out.extend_from_slice(&f.to_be_bytes());
                }
            }
            Json::Text(text) => {
                head(out, 3, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
            Json::Array(items) => {
                head(out, 4, items.len() as u64);
                items.iter().for_each(|item| item.encode(out));
            }
            Json::Object(entries) => {
                head(out, 5, entries.len() as u64);
                for (key, item) in entries {
                    Json::Text(key.clone()).encode(out);
                    item.encode(out);
                }
            }
        }
    }
}

/// A CBOR head: major type and argument, the argument in its shortest form.
fn head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Null => serializer.serialize_none(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Integer(i) => serializer.serialize_i128(*i),
            Json::Float(f) => serializer.serialize_f64(*f),
            Json::Text(text) => serializer.serialize_str(text),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                items
                    .iter()
                    .try_for_each(|item| seq.serialize_element(item))?;
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, item)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> serde::de::Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Json, E> {
                Ok(Json::Integer(i.into()))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Json, E> {
                Ok(Json::Integer(u.into()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Json, E> {
                Ok(Json::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Text(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}
