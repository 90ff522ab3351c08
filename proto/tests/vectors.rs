//! The test vectors in `proto/vectors/`: for each of `proto::examples::all()`, `NAME.cbor` is the
//! message exactly as `proto::encode` writes it and `NAME.json` the same message as JSON, for
//! people. Third parties test their codecs against them, so they change only on purpose:
//!
//! - `vectors_are_up_to_date` fails when the code would now write different bytes, or when a file
//!   is missing or left over;
//! - `committed_vectors_decode_to_the_examples` decodes each committed `.cbor` file, so that what
//!   a third party reads from it is what we mean by it.
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
            let mut json = serde_json::to_string_pretty(&example).unwrap();
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
         versioning rules in DESIGN.md section 3), re-bless with\n  {BLESS_COMMAND}\n\
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
