//! `fieldsync.cddl` against the code: every example message, as `proto::encode` writes it, must
//! match the schema, and messages the decoder refuses (a missing field, a wrong type, a value out
//! of range, an unknown kind) must not match it. A third party builds clients from the CDDL
//! alone, so where the two disagree, the schema is what needs fixing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strategies;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use cddl::ast::CDDL;
use cddl::validator::cbor::CBORValidator;
use cddl::validator::cbor_value::decode_cbor;
use cddl::validator::Validator;
use proptest::prelude::*;
use proto::examples::{self, Example};
use proto::{Ack, Down, Envelope, Message, State, MAX_MESSAGE_BYTES};
use serde_cbor::Value;

const SCHEMA: &str = include_str!("../fieldsync.cddl");

/// The schema parsed with `rule` as its root (the `cddl` crate validates against the first rule),
/// or with its own first rule for `None`. Parsed once per rule: parsing takes a quarter of a second
/// in a debug build, validating a message a millisecond.
fn schema_rooted_at(rule: Option<&str>) -> &'static CDDL<'static> {
    static SCHEMAS: OnceLock<Mutex<HashMap<Option<String>, &'static CDDL<'static>>>> =
        OnceLock::new();
    let mut schemas = SCHEMAS.get_or_init(Default::default).lock().unwrap();
    schemas.entry(rule.map(str::to_owned)).or_insert_with(|| {
        let root = rule.map_or(String::new(), |rule| format!("root = {rule}\n"));
        let text: &'static str = Box::leak(format!("{root}{}", anchor_regexps(SCHEMA)).into());
        Box::leak(Box::new(cddl::cddl_from_str(text, true).unwrap()))
    })
}

/// Anchors every `.regexp` pattern. RFC 8610 gives `.regexp` XSD semantics, where a pattern
/// matches the whole string, but the `cddl` crate searches for it anywhere in the string (so
/// `"a/b"` would pass as a device id). The schema stays standard; the test adapts it.
fn anchor_regexps(schema: &str) -> String {
    const CONTROL: &str = ".regexp \"";
    let mut out = String::with_capacity(schema.len());
    let mut rest = schema;
    while let Some(start) = rest.find(CONTROL) {
        let pattern_start = start + CONTROL.len();
        let pattern_len = rest[pattern_start..]
            .find('"')
            .expect("a .regexp pattern ends with a quote");
        let pattern = &rest[pattern_start..pattern_start + pattern_len];
        out.push_str(&rest[..pattern_start]);
        out.push_str(&format!("^(?:{pattern})$"));
        rest = &rest[pattern_start + pattern_len..];
    }
    out.push_str(rest);
    out
}

/// Validates `bytes` against `rule` (the schema's root for `None`), with the validator's complaint
/// on failure. What `cddl::validate_cbor_from_slice` does, without parsing the schema each time.
fn check_rooted(rule: Option<&str>, bytes: &[u8]) -> Result<(), String> {
    let cbor = decode_cbor(bytes).map_err(|e| e.to_string())?;
    CBORValidator::new(schema_rooted_at(rule), cbor, None)
        .validate()
        .map_err(|e| e.to_string())
}

/// Validates `bytes` against `rule`.
fn check(rule: &str, bytes: &[u8]) -> Result<(), String> {
    check_rooted(Some(rule), bytes)
}

/// Whether the decoder for `rule`'s message type accepts `bytes`.
fn decoder_accepts(rule: &str, bytes: &[u8]) -> bool {
    match rule {
        Envelope::NAME => proto::decode::<Envelope>(bytes, MAX_MESSAGE_BYTES).is_ok(),
        Ack::NAME => proto::decode::<Ack>(bytes, MAX_MESSAGE_BYTES).is_ok(),
        Down::NAME => proto::decode::<Down>(bytes, MAX_MESSAGE_BYTES).is_ok(),
        State::NAME => proto::decode::<State>(bytes, MAX_MESSAGE_BYTES).is_ok(),
        other => panic!("no message type {other}"),
    }
}

/// A message edited from an example: the rule it claims to follow, the CBOR value, and what was
/// changed, for failure messages.
struct Case {
    rule: &'static str,
    value: Value,
    change: String,
}

impl Case {
    /// Asserts that the schema and the decoder both refuse the message.
    fn assert_refused(&self) {
        let bytes = serde_cbor::to_vec(&self.value).unwrap();
        let what = format!("{} with {}", self.rule, self.change);
        assert!(
            check(self.rule, &bytes).is_err(),
            "the schema accepts {what}"
        );
        assert!(
            !decoder_accepts(self.rule, &bytes),
            "the decoder accepts {what}, which the schema refuses"
        );
    }

    /// Asserts that the schema and the decoder both accept the message.
    fn assert_accepted(&self) {
        let bytes = serde_cbor::to_vec(&self.value).unwrap();
        let what = format!("{} with {}", self.rule, self.change);
        if let Err(e) = check(self.rule, &bytes) {
            panic!("the schema refuses {what}: {e}");
        }
        assert!(
            decoder_accepts(self.rule, &bytes),
            "the decoder refuses {what}, which the schema accepts"
        );
    }
}

/// An example's encoding as a CBOR value, and the rule it follows.
fn editable(example: impl Into<Example>) -> (&'static str, Value) {
    let example = example.into();
    let value = serde_cbor::from_slice(&example.encode().unwrap()).unwrap();
    (example.rule(), value)
}

/// `example` with `new` at `path` (map keys and array indices joined by `/`), replacing what was
/// there or adding a key.
fn with(example: impl Into<Example>, path: &str, new: Value) -> Case {
    let (rule, mut value) = editable(example);
    let change = format!("{path} = {new:?}");
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    match at(&mut value, parent) {
        Value::Map(map) => {
            map.insert(text(last), new);
        }
        Value::Array(items) => items[last.parse::<usize>().unwrap()] = new,
        other => panic!("cannot set {last} in {other:?}"),
    }
    Case {
        rule,
        value,
        change,
    }
}

/// `example` without the map entry at `path`.
fn without(example: impl Into<Example>, path: &str) -> Case {
    let (rule, mut value) = editable(example);
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    match at(&mut value, parent) {
        Value::Map(map) => map.remove(&text(key)).unwrap(),
        other => panic!("no key {key} in {other:?}"),
    };
    Case {
        rule,
        value,
        change: format!("{path} left out"),
    }
}

/// The value at `path` in `value`: map keys and array indices joined by `/`; `""` is `value`.
fn at<'v>(value: &'v mut Value, path: &str) -> &'v mut Value {
    let steps = path.split('/').filter(|step| !step.is_empty());
    steps.fold(value, |value, step| match value {
        Value::Map(map) => map
            .get_mut(&text(step))
            .unwrap_or_else(|| panic!("no key {step}")),
        Value::Array(items) => &mut items[step.parse::<usize>().unwrap()],
        other => panic!("cannot step into {other:?} with {step}"),
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

#[test]
fn every_example_matches_its_rule() {
    for (name, example) in examples::all() {
        let bytes = example.encode().unwrap();
        if let Err(e) = check(example.rule(), &bytes) {
            panic!("{name} does not match `{}`: {e}", example.rule());
        }
    }
}

#[test]
fn every_example_matches_the_root_rule() {
    for (name, example) in examples::all() {
        let bytes = example.encode().unwrap();
        if let Err(e) = check_rooted(None, &bytes) {
            panic!("{name} does not match the root rule: {e}");
        }
    }
}

#[test]
fn examples_do_not_match_other_rules() {
    for (name, example) in examples::all() {
        let bytes = example.encode().unwrap();
        for rule in [Envelope::NAME, Ack::NAME, Down::NAME, State::NAME] {
            if rule != example.rule() {
                assert!(check(rule, &bytes).is_err(), "{name} matches `{rule}`");
            }
        }
    }
}

#[test]
fn refuses_missing_required_fields() {
    for case in [
        without(examples::envelope_gap(), "dev"),
        without(examples::envelope_telemetry_full(), "recs/0/seq"),
        without(
            examples::envelope_collection_full(),
            "recs/0/body/col/pos/lat",
        ),
        without(examples::envelope_health(), "recs/0/body/hlt/ver"),
        without(examples::ack(), "thru"),
        without(examples::ack(), "v"),
        without(examples::down_job_repair(), "body/job/kind/repair/prio"),
        without(examples::state_offline(), "online"),
    ] {
        case.assert_refused();
    }
}

#[test]
fn refuses_wrong_types() {
    for case in [
        with(examples::envelope_gap(), "dev", Value::Integer(5)),
        with(examples::envelope_gap(), "recs/0/seq", text("48198")),
        with(
            examples::envelope_telemetry_full(),
            "recs/0/body/tel/flame",
            Value::Integer(1),
        ),
        with(
            examples::envelope_telemetry_sparse(),
            "recs/0/body/tel/flow",
            text("hot"),
        ),
        with(examples::ack(), "thru", Value::Integer(-1)),
        with(
            examples::down_config(),
            "body/config/rev",
            Value::Float(7.5),
        ),
        with(examples::state_online(), "online", text("yes")),
    ] {
        case.assert_refused();
    }
}

#[test]
fn refuses_values_out_of_range() {
    let collection = examples::envelope_collection_full;
    let telemetry = examples::envelope_telemetry_full;
    for case in [
        with(collection(), "recs/0/body/col/pos/lat", Value::Float(90.5)),
        with(
            collection(),
            "recs/0/body/col/pos/lon",
            Value::Float(-180.5),
        ),
        with(collection(), "recs/0/body/col/pos/acc", Value::Float(-1.0)),
        with(collection(), "recs/0/body/col/uprn", Value::Integer(0)),
        with(collection(), "recs/0/body/col/photo", text("not-a-hash")),
        with(collection(), "recs/0/body/col/vehicle", text("")),
        with(telemetry(), "recs/0/body/tel/bar", Value::Float(12.0)),
        with(telemetry(), "recs/0/body/tel/fflags", Value::Integer(256)),
        with(
            examples::envelope_health(),
            "recs/0/body/hlt/batt",
            Value::Integer(101),
        ),
        with(
            examples::envelope_health_hub(),
            "recs/0/body/hlt/src/st",
            text("stuck"),
        ),
        with(
            examples::envelope_health_hub(),
            "recs/0/body/hlt/src/why",
            text(&"x".repeat(1001)),
        ),
        with(examples::envelope_gap(), "recs/0/seq", Value::Integer(0)),
        with(examples::envelope_gap(), "dev", text("hub/b004512")),
        with(examples::envelope_gap(), "v", Value::Integer(2)),
        with(examples::envelope_gap(), "sent", Value::Integer(-1)),
        with(
            examples::down_config(),
            "body/config/batch_max",
            Value::Integer(1001),
        ),
        with(
            examples::down_job_return(),
            "body/job/rev",
            Value::Integer(0),
        ),
    ] {
        case.assert_refused();
    }
}

#[test]
fn refuses_unknown_enum_values_and_kinds() {
    let unknown_kind = Value::Map([(text("fire"), Value::Map(Default::default()))].into());
    for case in [
        with(
            examples::envelope_collection_lift_sensor(),
            "recs/0/body/col/stream",
            text("compost"),
        ),
        with(examples::envelope_gap(), "recs/0/body", unknown_kind),
        with(
            examples::down_job_repair(),
            "body/job/kind/repair/prio",
            text("whenever"),
        ),
    ] {
        case.assert_refused();
    }
}

#[test]
fn refuses_a_body_with_two_kinds() {
    let (_, mut collection) = editable(examples::envelope_collection_full());
    let collection = at(&mut collection, "recs/0/body/col").clone();
    with(examples::envelope_gap(), "recs/0/body/col", collection).assert_refused();
}

#[test]
fn refuses_a_batch_over_the_record_limit() {
    // The smallest record: the `cddl` crate takes milliseconds per record in a debug build.
    let (_, mut round) = editable(examples::envelope_round_started());
    let record = at(&mut round, "recs/0").clone();
    let records = Value::Array(vec![record; proto::MAX_BATCH_RECORDS + 1]);
    with(examples::envelope_round_started(), "recs", records).assert_refused();
}

#[test]
fn accepts_unknown_fields_anywhere() {
    let future = || Value::Array(vec![Value::Integer(1), Value::Null]);
    for case in [
        with(
            examples::envelope_collection_full(),
            "added_in_1_1",
            future(),
        ),
        with(
            examples::envelope_collection_full(),
            "recs/0/added_in_1_1",
            future(),
        ),
        with(
            examples::envelope_collection_full(),
            "recs/0/body/col/pos/added_in_1_1",
            future(),
        ),
        with(
            examples::envelope_telemetry_sparse(),
            "recs/0/body/tel/added_in_1_1",
            future(),
        ),
        with(
            examples::envelope_health_hub(),
            "recs/0/body/hlt/src/added_in_1_1",
            future(),
        ),
        with(examples::ack(), "added_in_1_1", future()),
        with(
            examples::down_job_return(),
            "body/job/kind/return/added_in_1_1",
            future(),
        ),
        with(
            examples::down_config(),
            "body/config/added_in_1_1",
            future(),
        ),
        with(examples::state_online(), "added_in_1_1", future()),
    ] {
        case.assert_accepted();
    }
}

#[test]
fn accepts_floats_of_every_width() {
    // serde_cbor writes 51.5 as a half, 1.45 as a single and 51.56184 as a double; another encoder
    // may write any of them wider.
    let case = with(
        examples::envelope_collection_full(),
        "recs/0/body/col/pos/acc",
        Value::Float(3.5),
    );
    let mut bytes = serde_cbor::to_vec(&case.value).unwrap();
    assert!(
        bytes.windows(3).any(|w| w == [0xf9, 0x43, 0x00]),
        "3.5 should be a half"
    );
    // Re-encode the half as a double, which a less careful encoder would write.
    let at_half = bytes
        .windows(3)
        .position(|w| w == [0xf9, 0x43, 0x00])
        .unwrap();
    let double = [0xfb, 0x40, 0x0c, 0, 0, 0, 0, 0, 0];
    bytes.splice(at_half..at_half + 3, double);
    check("envelope", &bytes).unwrap();
    assert!(decoder_accepts("envelope", &bytes));
}

#[test]
fn anchoring_wraps_each_pattern() {
    assert_eq!(
        anchor_regexps(r#"a = tstr .regexp "x+" b = tstr .regexp "[0-9]""#),
        r#"a = tstr .regexp "^(?:x+)$" b = tstr .regexp "^(?:[0-9])$""#
    );
}

proptest! {
    // Each case parses nothing (the schema is parsed once per rule) and validates in about a
    // millisecond in a debug build.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_messages_match_the_schema(message in strategies::message()) {
        let bytes = message.encode().unwrap();
        if let Err(e) = check(message.rule(), &bytes) {
            return Err(TestCaseError::fail(format!("{e}\n{message:?}")));
        }
    }
}

/// One step into a CBOR value: a map's key or an array's index.
#[derive(Clone)]
enum Step {
    Key(Value),
    Index(usize),
}

/// The path of every node of `value`, `value` itself first.
fn every_path(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Map(map) => {
            for (key, item) in map {
                prefix.push(Step::Key(key.clone()));
                every_path(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Step::Index(i));
                every_path(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_at<'v>(value: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(value, |value, step| match (value, step) {
        (Value::Map(map), Step::Key(key)) => map.get_mut(key).unwrap(),
        (Value::Array(items), Step::Index(i)) => &mut items[*i],
        _ => unreachable!("paths come from the value"),
    })
}

fn describe(path: &[Step]) -> String {
    let steps: Vec<String> = path
        .iter()
        .map(|step| match step {
            Step::Key(Value::Text(key)) => key.clone(),
            Step::Key(key) => format!("{key:?}"),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    format!("/{}", steps.join("/"))
}

/// The optional fields of the structure `map` is, told by the keys it must have, so that each
/// absent one can be sent as `null`.
fn optional_keys(map: &std::collections::BTreeMap<Value, Value>) -> &'static [&'static str] {
    let has = |key: &str| map.contains_key(&text(key));
    if has("recs") || (has("seq") && has("body")) {
        &["boot", "mono"]
    } else if has("stream") && has("vehicle") {
        &["uprn", "job", "photo", "note"]
    } else if has("asset") && !has("addr") {
        &[
            "flow",
            "ret",
            "dhw",
            "out",
            "exh",
            "setp",
            "bar",
            "modu",
            "flame",
            "ch",
            "dhw_on",
            "fault",
            "fflags",
            "oem",
            "starts",
            "hours",
            "gas",
            "heat",
            "sflags",
            "diag",
            "odiag",
            "inval",
            "unsup",
            "scfg",
            "smem",
            "max_kw",
            "min_modu",
            "dhw_flow",
            "room",
            "dhw_setp",
            "max_setp",
            "fail_starts",
            "flame_low",
            "pump_starts",
            "dhw_pump_starts",
            "dhw_starts",
            "pump_hours",
            "dhw_pump_hours",
            "dhw_hours",
        ]
    } else if has("status") {
        &["pos", "note"]
    } else if has("depth") {
        &["batt", "rssi"]
    } else if has("thru") {
        &["rej"]
    } else if has("id") && !has("rev") {
        &["reason"]
    } else if has("rev") && !has("id") {
        &["sample_s", "health_s", "batch_max", "linger_ms"]
    } else {
        &[]
    }
}

/// Every wrong encoding of `value` this test makes, each one edit away from it: each map as an
/// array of its values; each text key as bytes and as an integer; each field's value as `null`,
/// and each absent optional field present as `null`; each text value as bytes and as a one-entry
/// map (an enum value written as serde's externally tagged form); each float as the integer of the
/// same value where it has one; each integer as a float; each value under a CBOR tag.
fn wrong_encodings(value: &Value) -> Vec<(String, Value)> {
    let mut paths = Vec::new();
    every_path(value, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    let mut edit = |path: &[Step], what: String, change: &dyn Fn(&mut Value)| {
        let mut edited = value.clone();
        change(node_at(&mut edited, path));
        out.push((format!("{} {what}", describe(path)), edited));
    };
    for path in &paths {
        let mut node = value.clone();
        let node = node_at(&mut node, path).clone();
        edit(path, "tagged".into(), &|v| {
            *v = Value::Tag(1, Box::new(v.clone()));
        });
        match &node {
            Value::Map(map) => {
                edit(path, "as an array".into(), &|v| {
                    let Value::Map(map) = v else { unreachable!() };
                    *v = Value::Array(map.values().cloned().collect());
                });
                for (i, key) in map.keys().enumerate() {
                    let Value::Text(name) = key else { continue };
                    let (key, name) = (key.clone(), name.clone());
                    let rekey = |new: Value| {
                        let key = key.clone();
                        move |v: &mut Value| {
                            let Value::Map(map) = v else { unreachable!() };
                            let item = map.remove(&key).unwrap();
                            map.insert(new.clone(), item);
                        }
                    };
                    edit(
                        path,
                        format!("key {name} as bytes"),
                        &rekey(Value::Bytes(name.clone().into_bytes())),
                    );
                    edit(
                        path,
                        format!("key {name} as the integer {i}"),
                        &rekey(Value::Integer(i as i128)),
                    );
                    edit(path, format!("{name} null"), &|v| {
                        let Value::Map(map) = v else { unreachable!() };
                        map.insert(key.clone(), Value::Null);
                    });
                }
                for &absent in optional_keys(map) {
                    if !map.contains_key(&text(absent)) {
                        edit(path, format!("absent {absent} as null"), &|v| {
                            let Value::Map(map) = v else { unreachable!() };
                            map.insert(text(absent), Value::Null);
                        });
                    }
                }
            }
            Value::Text(s) => {
                let s = s.clone();
                edit(path, "as bytes".into(), &|v| {
                    *v = Value::Bytes(s.clone().into_bytes());
                });
                edit(path, "as a one-entry map to null".into(), &|v| {
                    *v = Value::Map([(text(&s), Value::Null)].into());
                });
            }
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                let integer = *f as i128;
                edit(path, format!("as the integer {integer}"), &|v| {
                    *v = Value::Integer(integer);
                });
            }
            Value::Integer(i) => {
                let float = *i as f64;
                edit(path, format!("as the float {float}"), &|v| {
                    *v = Value::Float(float);
                });
            }
            _ => {}
        }
    }
    out
}

/// Whether the decoder refuses `bytes` as a `rule` message. A batch is also decoded record by
/// record: there a wrong encoding must be refused whole or land among the refused records.
fn decoder_refuses(rule: &str, bytes: &[u8]) -> bool {
    if decoder_accepts(rule, bytes) {
        return false;
    }
    if rule == Envelope::NAME {
        return match proto::decode_batch(bytes, MAX_MESSAGE_BYTES) {
            Ok(batch) => !batch.refused.is_empty(),
            Err(_) => true,
        };
    }
    true
}

#[test]
fn a_corpus_of_wrong_encodings_is_refused_by_the_decoder_and_the_schema() {
    let mut count = 0;
    let mut problems = Vec::new();
    for (name, example) in examples::all() {
        let (rule, value) = editable(example);
        for (change, wrong) in wrong_encodings(&value) {
            let bytes = serde_cbor::to_vec(&wrong).unwrap();
            count += 1;
            if check(rule, &bytes).is_ok() {
                problems.push(format!("the schema accepts {name} with {change}"));
            }
            if !decoder_refuses(rule, &bytes) {
                problems.push(format!("the decoder accepts {name} with {change}"));
            }
        }
    }
    println!("{count} wrong encodings of the vectors, each refused by the decoder and the schema");
    assert!(
        problems.is_empty(),
        "{} of {count} wrong encodings got through:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
