//! The soak: the whole demo at high speed for a set time, sampling this process's resident memory
//! and open files, then judging them against stated bounds. A leak, a task that never ends or a
//! queue that grows with time shows as growth after warm-up, which a short test cannot see.
//!
//! Run it in release mode (`cargo run --release -p firmware-sim -- soak --minutes 30`); the
//! bounds and a measured run are in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use crate::demo::{self, DemoConfig};
use crate::SimError;

/// One reading of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Since the soak started.
    pub at: Duration,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub open_files: u64,
    /// Records the gateway had stored.
    pub records_stored: u64,
}

/// What a healthy soak stays within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The share of the run treated as warm-up (caches filling, trees growing to their working
    /// size): growth is measured from the first sample after it.
    pub warm_up: f64,
    /// Resident memory may grow by at most this many bytes after warm-up.
    pub max_rss_growth_bytes: u64,
    /// Resident memory may never exceed this.
    pub max_rss_bytes: u64,
    /// Open files may grow by at most this many after warm-up.
    pub max_open_files_growth: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            warm_up: 0.25,
            max_rss_growth_bytes: 64 * 1024 * 1024,
            max_rss_bytes: 1024 * 1024 * 1024,
            max_open_files_growth: 16,
        }
    }
}

/// A bound a soak broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Breach {
    /// Memory grew after warm-up.
    #[error("resident memory grew by {grew} bytes after warm-up (bound {bound})")]
    RssGrowth {
        /// How much.
        grew: u64,
        /// The bound.
        bound: u64,
    },
    /// Memory passed the ceiling.
    #[error("resident memory reached {peak} bytes (bound {bound})")]
    RssPeak {
        /// The peak.
        peak: u64,
        /// The bound.
        bound: u64,
    },
    /// Open files grew after warm-up.
    #[error("open files grew by {grew} after warm-up (bound {bound})")]
    OpenFiles {
        /// How many.
        grew: u64,
        /// The bound.
        bound: u64,
    },
    /// Nothing was stored: the soak proved nothing.
    #[error("the gateway stored no records during the soak")]
    Idle,
    /// Too few samples to judge growth.
    #[error("only {0} samples: run longer or sample more often")]
    TooShort(usize),
}

/// Judges `samples` (in time order) against `bounds`: every bound broken, empty if none.
pub fn judge(samples: &[Sample], bounds: &Bounds) -> Vec<Breach> {
    let mut breaches = Vec::new();
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return vec![Breach::TooShort(0)];
    };
    let warm_until = first.at + (last.at - first.at).mul_f64(bounds.warm_up.clamp(0.0, 0.9));
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_until).collect();
    if after.len() < 3 {
        return vec![Breach::TooShort(samples.len())];
    }
    let baseline = after[0];
    let peak_after = after.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let grew = peak_after.saturating_sub(baseline.rss_bytes);
    if grew > bounds.max_rss_growth_bytes {
        breaches.push(Breach::RssGrowth {
            grew,
            bound: bounds.max_rss_growth_bytes,
        });
    }
    let peak = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    if peak > bounds.max_rss_bytes {
        breaches.push(Breach::RssPeak {
            peak,
            bound: bounds.max_rss_bytes,
        });
    }
    let files_peak = after.iter().map(|s| s.open_files).max().unwrap_or(0);
    let files_grew = files_peak.saturating_sub(baseline.open_files);
    if files_grew > bounds.max_open_files_growth {
        breaches.push(Breach::OpenFiles {
            grew: files_grew,
            bound: bounds.max_open_files_growth,
        });
    }
    if last.records_stored <= first.records_stored {
        breaches.push(Breach::Idle);
    }
    breaches
}

/// This process's resident set size in bytes, from /proc (0 where there is no /proc).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// This process's open file descriptors (0 where there is no /proc).
pub fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// Runs the demo described by `config` for `duration`, sampling every `every`; returns the
/// samples, for [`judge`].
pub async fn run(
    config: DemoConfig,
    duration: Duration,
    every: Duration,
) -> Result<Vec<Sample>, SimError> {
    let every = every.max(Duration::from_millis(100));
    let mut soak = demo::Demo::prepare(config).await?;
    println!("{}", soak.directory());
    soak.launch();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < duration {
        ticks.tick().await;
        let sample = Sample {
            at: started.elapsed(),
            rss_bytes: resident_bytes(),
            open_files: open_files(),
            records_stored: soak.summary().records_stored,
        };
        println!(
            "soak {:>6.0} s  rss {:>7.1} MiB  files {:>4}  records {:>9}",
            sample.at.as_secs_f64(),
            sample.rss_bytes as f64 / (1024.0 * 1024.0),
            sample.open_files,
            sample.records_stored
        );
        samples.push(sample);
    }
    soak.stop().await.close().await;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn samples(rss_mib: &[u64], files: &[u64]) -> Vec<Sample> {
        rss_mib
            .iter()
            .zip(files)
            .enumerate()
            .map(|(i, (rss, files))| Sample {
                at: Duration::from_secs(i as u64 * 10),
                rss_bytes: rss * MIB,
                open_files: *files,
                records_stored: i as u64 * 1000,
            })
            .collect()
    }

    #[test]
    fn growth_during_warm_up_is_allowed_and_a_flat_run_passes() {
        let run = samples(
            &[40, 120, 150, 151, 150, 152, 151, 150],
            &[50, 80, 82, 82, 81, 82, 82, 82],
        );
        assert_eq!(judge(&run, &Bounds::default()), vec![]);
    }

    #[test]
    fn a_leak_after_warm_up_and_leaking_files_are_breaches() {
        let run = samples(
            &[40, 120, 150, 180, 210, 240, 270, 300],
            &[50, 80, 82, 90, 100, 110, 120, 130],
        );
        let breaches = judge(&run, &Bounds::default());
        assert!(
            matches!(breaches[0], Breach::RssGrowth { .. }),
            "{breaches:?}"
        );
        assert!(
            matches!(breaches[1], Breach::OpenFiles { .. }),
            "{breaches:?}"
        );
    }

    #[test]
    fn an_idle_or_short_soak_proves_nothing() {
        let mut run = samples(&[40, 41, 41, 41, 41], &[50, 50, 50, 50, 50]);
        for sample in &mut run {
            sample.records_stored = 7;
        }
        assert_eq!(judge(&run, &Bounds::default()), vec![Breach::Idle]);
        assert_eq!(
            judge(&run[..2], &Bounds::default()),
            vec![Breach::TooShort(2)]
        );
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(resident_bytes() > 0);
        assert!(open_files() > 0);
    }
}
