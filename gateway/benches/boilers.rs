//! The boilers' cost, measured in one run: telemetry ingested with rollups and alerts on, as a
//! ratio to plain ingest of the same batches; one asset's year of daily efficiency and one day of
//! raw samples read back with a 10,000-boiler register loaded (p50, p99); the estate of those
//! 10,000 ranked by gas wasted over a month and a year; and the bytes a sample costs on disk, raw
//! and rolled up, with a year of an estate sized from them.
//!
//! `cargo bench -p gateway --bench boilers` (a plain `main` that prints its figures). Options
//! through the environment: `ASSETS` (default 200) hubs each sending `BATCHES` (default 20)
//! batches of 100 one-minute samples for the ratio; `REGISTER` (default 10,000) assets loaded for
//! the reads; `DAYS` (default 365) of one-minute samples for the asset read back; `READS`
//! (default 100) timed reads of each kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike};
use chrono_tz::Europe::London;
use gateway::boilers::desk::{BoilerDesk, BoilerDeskSettings};
use gateway::boilers::efficiency::{daily_efficiency, month_bounds, year_bounds};
use gateway::boilers::follow::FeedBoilers;
use gateway::boilers::periods::Level;
use gateway::boilers::{BoilersConfig, Meters, Rollup, TelemetryLog};
use gateway::storage::{AssetLog, IncomingBatch, Storage, Store, StoreSettings};
use proto::{DeviceId, Record, RecordBody, Telemetry, TimestampMs, TopicKind};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Monday 5 January 2026, 00:00 UTC: where every series starts.
const START_MS: TimestampMs = 1_767_571_200_000;
const BATCH: u64 = 100;
/// Batches per store call, as the ingest's group commit hands them over under load.
const GROUP: usize = 16;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hub(i: u64) -> DeviceId {
    DeviceId::new(format!("hub-{i:05}")).unwrap()
}

fn asset(i: u64) -> String {
    format!("B-{i:05}")
}

/// A register of `n` assets, each read by its own hub, with gas and heat meters.
fn register_csv(n: u64) -> String {
    let mut csv =
        String::from("asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{},{},\"{} Test Road, UB10 8BE\",Vaillant,ecoTEC plus 832,32,2019-03-01,yes,yes,{}\n",
            asset(i),
            100_000_000 + i,
            i + 1,
            hub(i).as_str()
        ));
    }
    csv
}

/// A hub's one-minute sample number `n` (from 0): a boiler cycling through a day, its counters
/// climbing.
fn sample(asset: &str, n: u64) -> Telemetry {
    let minute = n % 1440;
    let firing = (360..600).contains(&minute) || (1020..1320).contains(&minute);
    // Minutes fired so far: 540 a day, in two periods.
    let fired = (n / 1440) * 540 + minute.clamp(360, 600) - 360 + minute.clamp(1020, 1320) - 1020;
    let wobble = (n % 7) as f32;
    Telemetry {
        asset: asset.to_owned(),
        flow: Some(if firing { 62.0 + wobble } else { 35.0 }),
        ret: Some(if firing { 48.0 + wobble / 2.0 } else { 33.0 }),
        bar: Some(1.45 - (n % 100) as f32 / 10_000.0),
        modu: Some(if firing { 55.0 } else { 0.0 }),
        flame: Some(firing),
        ch: Some(firing),
        dhw_on: Some(false),
        fault: Some(false),
        starts: Some((fired / 30) as u32),
        hours: Some((fired / 60) as u32),
        // About 17.6 kW of gas in, 16 kW of heat out, while firing.
        gas: Some(12_000.0 + fired as f64 * 0.027),
        heat: Some(30_000.0 + fired as f64 * 0.267),
        ..Telemetry::default()
    }
}

/// Batch `b` (from 0) of hub `i`: samples `b*100 .. b*100+99`, sequence numbers from 1.
fn batch(i: u64, b: u64) -> IncomingBatch {
    let device = hub(i);
    let name = asset(i);
    let records: Vec<Record> = (b * BATCH..(b + 1) * BATCH)
        .map(|n| Record {
            seq: n + 1,
            ts: START_MS + n as i64 * MINUTE_MS,
            body: RecordBody::Telemetry(sample(&name, n)),
            boot: None,
            mono: None,
        })
        .collect();
    let received = START_MS + ((b + 1) * BATCH) as i64 * MINUTE_MS;
    IncomingBatch {
        topic: device.topic(TopicKind::Up),
        device,
        payload: bytes::Bytes::new(),
        received,
        sent: received,
        boot: None,
        mono: None,
        records,
        refused: Vec::new(),
    }
}

fn open(dir: &Path, register: &str) -> (Storage, Arc<BoilerDesk>) {
    let storage = Storage::open_embedded(dir, StoreSettings::default()).unwrap();
    let desk = BoilerDesk::open(
        BoilersConfig::default(),
        storage.boilers.clone(),
        BoilerDeskSettings {
            grace_ms: 15 * MINUTE_MS,
            raw_retention_ms: 400 * DAY_MS,
            tz: London,
        },
    )
    .unwrap();
    let report = desk.import_assets(register.as_bytes()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    (storage, Arc::new(desk))
}

/// Stores every hub's batches, round-robin as they would arrive, through `store`; samples/s.
fn ingest_all(store: &dyn Store, assets: u64, batches: u64) -> f64 {
    let all: Vec<IncomingBatch> = (0..batches)
        .flat_map(|b| (0..assets).map(move |i| batch(i, b)))
        .collect();
    let started = Instant::now();
    for group in all.chunks(GROUP) {
        let outcomes = store.ingest(group).unwrap();
        assert!(outcomes.iter().all(|o| o.stored.len() == BATCH as usize));
    }
    (assets * batches * BATCH) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn time_reads(reads: u64, mut read: impl FnMut(u64)) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..reads)
        .map(|n| {
            let started = Instant::now();
            read(n);
            started.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let assets = env_or("ASSETS", 200);
    let batches = env_or("BATCHES", 20);
    let register_size = env_or("REGISTER", 10_000);
    let days = env_or("DAYS", 365);
    let reads = env_or("READS", 100);
    println!(
        "boilers ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. The ratio: the same batches into two fresh stores, one plain, one feeding the desk.
    let register = register_csv(assets);
    let plain_dir = tempfile::tempdir().unwrap();
    let (plain, _) = open(plain_dir.path(), &register);
    let plain_rate = ingest_all(plain.ingest.as_ref(), assets, batches);
    let fed_dir = tempfile::tempdir().unwrap();
    let (fed, desk) = open(fed_dir.path(), &register);
    let feeding = FeedBoilers::new(fed.ingest.clone(), desk.clone());
    let fed_rate = ingest_all(&feeding, assets, batches);
    println!(
        "ingest, {assets} hubs × {batches} batches × {BATCH} samples: plain {plain_rate:.0} samples/s, \
         with rollups and alerts {fed_rate:.0} samples/s, ratio {:.2}",
        fed_rate / plain_rate
    );
    drop((plain, fed, feeding, desk));

    // 2. Reads with a large register, and 3. bytes per sample, from one asset's long history.
    let dir = tempfile::tempdir().unwrap();
    let (storage, desk) = open(dir.path(), &register_csv(register_size));
    let feeding = FeedBoilers::new(storage.ingest.clone(), desk.clone());
    let samples = days * 1440;
    // Whole batches, covering every day in full.
    let history: Vec<IncomingBatch> = (0..samples.div_ceil(BATCH)).map(|b| batch(0, b)).collect();
    let before = dir_bytes(dir.path());
    let started = Instant::now();
    for group in history.chunks(GROUP) {
        feeding.ingest(group).unwrap();
    }
    let fill_s = started.elapsed().as_secs_f64();
    drop(history);
    let after = dir_bytes(dir.path());
    println!(
        "history: {samples} samples ({days} days) for one asset with {register_size} assets \
         registered, stored in {fill_s:.1} s ({:.0} samples/s)",
        samples as f64 / fill_s
    );

    let log = AssetLog::new(storage.boilers.as_ref(), "B-00000");
    let first_day = DateTime::from_timestamp_millis(START_MS)
        .unwrap()
        .with_timezone(&London)
        .date_naive();
    let last_day = first_day + chrono::Days::new(days - 1);
    let efficiency = BoilersConfig::default().efficiency;
    let meters = Meters {
        gas: true,
        heat: true,
    };
    let (p50, p99) = time_reads(reads, |_| {
        let series =
            daily_efficiency(&log, first_day, last_day, London, meters, &efficiency).unwrap();
        assert_eq!(series.len(), days as usize);
    });
    println!(
        "a {days}-day daily efficiency series: p50 {:.2} ms, p99 {:.2} ms (goal p99 ≤ 50 ms)",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = time_reads(reads, |n| {
        let from = START_MS + (n % days) as i64 * DAY_MS;
        let raw = log.samples_in(from, from + DAY_MS).unwrap();
        assert_eq!(raw.len(), 1440);
    });
    println!(
        "a day of raw samples (1,440): p50 {:.2} ms, p99 {:.2} ms (goal p99 ≤ 50 ms)",
        ms(p50),
        ms(p99)
    );

    // 4. The estate ranked by gas wasted over a month and a year, every boiler on the register
    // given the first one's stored months (its days and hours are not needed: a whole month
    // is read from its month).
    let months = storage
        .boilers
        .periods_in("B-00000", Level::Month, TimestampMs::MIN, TimestampMs::MAX)
        .unwrap();
    let months: Vec<(Level, Rollup)> = months.into_iter().map(|m| (Level::Month, m)).collect();
    for i in 1..register_size {
        storage.boilers.replace_periods(&asset(i), &months).unwrap();
    }
    let year = first_day.year();
    let (month_start, month_end) = month_bounds(year, 6, London).unwrap();
    let (year_start, year_end) = year_bounds(year, London).unwrap();
    for (what, start, end) in [
        ("a month", month_start, month_end),
        ("a year", year_start, year_end),
    ] {
        let (p50, p99) = time_reads(reads.div_ceil(10), |_| {
            let estate = desk.estate(start, end).unwrap();
            assert_eq!(estate.ranking.len(), register_size as usize);
        });
        println!(
            "the estate of {register_size} boilers ranked by gas wasted over {what}: p50 {:.1} ms, \
             p99 {:.1} ms",
            ms(p50),
            ms(p99)
        );
    }

    let per_sample = (after - before) as f64 / samples as f64;
    let hours = samples / 60;
    println!(
        "on disk: {:.1} MiB for {samples} samples and {hours} hourly rollups: {per_sample:.0} bytes \
         per sample, rollups included",
        (after - before) as f64 / (1024.0 * 1024.0)
    );
}
