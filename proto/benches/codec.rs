//! How fast the codec turns a boiler hub's typical uplink batch (100 one-minute telemetry samples,
//! `proto::examples::telemetry_batch(100)`) into bytes and back, in records per second, and how
//! many bytes per record CBOR costs against JSON of the same envelope: the figures behind
//! docs/BENCHMARKS.md. `decode` is `proto::decode::<Envelope>` (all or nothing), `decode_batch`
//! what the gateway runs (`proto::decode_batch`, record by record).
//!
//! `signed/*`: what a signature costs, signing and verifying a batch (device and gateway) and an
//! ack (gateway and device), as `proto::signed` does it.
//!
//! Run with `cargo bench -p fieldsync-proto --bench codec`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use proto::signed::{self, SigningKey};
use proto::{examples, Envelope, MAX_MESSAGE_BYTES};

/// Records per batch: what a hub sampling once a minute has to send after 100 minutes offline.
const BATCH_RECORDS: usize = 100;

fn encode_and_decode(c: &mut Criterion) {
    let batch = examples::telemetry_batch(BATCH_RECORDS);
    let bytes = proto::encode(&batch, MAX_MESSAGE_BYTES).unwrap();
    let mut group = c.benchmark_group("telemetry_batch_100");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    group.bench_function("encode", |b| {
        b.iter(|| proto::encode(black_box(&batch), MAX_MESSAGE_BYTES).unwrap())
    });
    group.bench_function("decode", |b| {
        b.iter(|| proto::decode::<Envelope>(black_box(&bytes), MAX_MESSAGE_BYTES).unwrap())
    });
    // What the gateway runs: the same checks, one record at a time.
    group.bench_function("decode_batch", |b| {
        b.iter(|| proto::decode_batch(black_box(&bytes), MAX_MESSAGE_BYTES).unwrap())
    });
    group.finish();
}

/// Signing and verifying (COSE_Sign1, Ed25519, bound to the topic): the same batch as a device
/// signs it, and an ack as the gateway signs it and a device verifies it.
fn sign_and_verify(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let verifying = key.verifying_key();
    let batch =
        proto::encode(&examples::telemetry_batch(BATCH_RECORDS), MAX_MESSAGE_BYTES).unwrap();
    let ack = proto::encode(&examples::ack(), MAX_MESSAGE_BYTES).unwrap();
    let (up, down) = ("fieldsync/v1/hub-0001/up", "fieldsync/v1/hub-0001/ack");
    let signed_batch = signed::sign(&batch, up, "hub-0001", &key).unwrap();
    let signed_ack = signed::sign(&ack, down, "gateway", &key).unwrap();
    let mut group = c.benchmark_group("signed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_telemetry_batch_100", |b| {
        b.iter(|| signed::sign(black_box(&batch), up, "hub-0001", &key).unwrap())
    });
    group.bench_function("verify_telemetry_batch_100", |b| {
        b.iter(|| signed::open(black_box(&signed_batch), up, |_| Some(verifying)).unwrap())
    });
    group.bench_function("sign_ack", |b| {
        b.iter(|| signed::sign(black_box(&ack), down, "gateway", &key).unwrap())
    });
    group.bench_function("verify_ack", |b| {
        b.iter(|| signed::open(black_box(&signed_ack), down, |_| Some(verifying)).unwrap())
    });
    group.finish();
}

/// Prints the batch's size per record in CBOR and in compact JSON. Sizes are exact, so they need
/// no statistics: they are printed rather than measured.
fn report_sizes() {
    let batch = examples::telemetry_batch(BATCH_RECORDS);
    let cbor = proto::encode(&batch, MAX_MESSAGE_BYTES).unwrap().len();
    let json = serde_json::to_vec(&batch).unwrap().len();
    let per_record = |total: usize| total as f64 / BATCH_RECORDS as f64;
    println!("telemetry_batch_100 encoded size:");
    println!(
        "  CBOR {cbor} bytes ({:.1} per record), JSON {json} bytes ({:.1} per record), \
         CBOR/JSON {:.2}",
        per_record(cbor),
        per_record(json),
        cbor as f64 / json as f64
    );
}

criterion_group!(benches, encode_and_decode, sign_and_verify);

// `criterion_main!` with one more step: the sizes, printed before the timings.
fn main() {
    report_sizes();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
