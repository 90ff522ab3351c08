//! A refuse crew walking its rounds through its cab's agent, over the agent's local HTTP API as
//! the in-cab app does: `POST /v1/rounds/{id}/start`, a `POST /v1/collections` per property in
//! round order, then `…/complete`; then the next round. Before each round the crew goes back for
//! any missed bins the gateway sent it as return jobs (`GET /v1/jobs`). Within a shift the crew
//! works the rounds the register says are due that day, one pass per bin due, as the gateway's
//! missed-bin rules expect; without a shift it works every round in turn, one bin a pass.
//!
//! The rounds come from a property register in the gateway's CSV format (see
//! `gateway::missed_bins::import`); the demo's default is `data/hillingdon.csv`, built in. Each
//! pass over a round collects one stream (refuse one week, recycling the next…), from the
//! properties that have it. What the crew finds ([`visit`]) and the GPS fix it records
//! ([`gps_fix`]) are pure functions of a seeded RNG. Now and then the crew misses a bin: it drives
//! past and records nothing, which is what a resident's report and a return job are for. Each
//! visit, and each round's end, is told to whoever listens ([`CrewConfig::passes`]: the demo's
//! residents).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use gateway::missed_bins::{ImportError, LatLon, PropertyRegister, Schedule};
use proto::{BinStream, JobKind, Outcome, Position};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::boiler::normal;
use crate::clock::SimClock;
use crate::http::{retry_transient, HttpError, JsonClient};
use crate::operative::JobView;

/// The built-in register: 33 Hillingdon properties on three rounds.
pub const HILLINGDON_CSV: &str = include_str!("../data/hillingdon.csv");

/// Metres per degree of latitude.
const METRES_PER_DEGREE: f64 = 111_320.0;
/// A refuse lorry's average speed between stops on a residential street, m/s (about 12 km/h).
const LORRY_SPEED_M_S: f64 = 3.3;
/// Time between rounds (tipping the load, a break), simulated.
const BETWEEN_ROUNDS: Duration = Duration::from_secs(20 * 60);
/// How often, simulated, a crew whose rounds are done looks for return jobs.
const RETURNS_EVERY: Duration = Duration::from_secs(30 * 60);
/// A detour back to a missed bin, simulated.
const RETURN_TRIP: Duration = Duration::from_secs(10 * 60);
/// The share of bins the crew misses, driving past without recording anything.
const MISSED_SHARE: f64 = 1.0 / 15.0;

/// What a crew tells its listeners as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum CrewEvent {
    /// The crew has been past a property on `round`: `outcome` is what it recorded, `None` if it
    /// missed the bin.
    Passed {
        /// The round.
        round: String,
        /// The property.
        uprn: u64,
        /// The bin.
        stream: BinStream,
        /// What the crew recorded.
        outcome: Option<Outcome>,
    },
    /// The crew completed `round`.
    RoundCompleted {
        /// The round.
        round: String,
    },
}

/// A property on a round, as the crew's app knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The property's UPRN.
    pub uprn: u64,
    /// Where it is.
    pub at: LatLon,
    /// The bins it has.
    pub streams: Vec<BinStream>,
    /// Its collection days.
    pub schedule: Schedule,
}

impl Stop {
    /// Whether the crew empties its `stream` bin on `day` (`None`: any day).
    pub fn collects_on(&self, stream: BinStream, day: Option<NaiveDate>) -> bool {
        self.streams.contains(&stream) && day.is_none_or(|day| self.schedule.is_collection_day(day))
    }
}

/// A round: its id and its properties in the order the crew reaches them.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The round's id.
    pub id: String,
    /// Its properties, in round order.
    pub stops: Vec<Stop>,
}

impl Round {
    /// The streams collected on the round, in [`BinStream::ALL`]'s order.
    pub fn streams(&self) -> Vec<BinStream> {
        BinStream::ALL
            .into_iter()
            .filter(|s| self.stops.iter().any(|stop| stop.streams.contains(s)))
            .collect()
    }

    /// The streams due on the round on `day`, in [`BinStream::ALL`]'s order.
    pub fn streams_due(&self, day: NaiveDate) -> Vec<BinStream> {
        BinStream::ALL
            .into_iter()
            .filter(|s| {
                self.stops
                    .iter()
                    .any(|stop| stop.collects_on(*s, Some(day)))
            })
            .collect()
    }
}

/// Reads the rounds from a register CSV file, or from the built-in one when `path` is `None`.
/// Rows the gateway's importer refuses are skipped with a warning.
pub fn load_rounds(path: Option<&Path>) -> Result<Vec<Round>, ImportError> {
    Ok(rounds_of(&parse_register(&register_csv(path)?)?))
}

/// The register CSV at `path`, or the built-in one when `path` is `None`.
pub fn register_csv(path: Option<&Path>) -> Result<Cow<'static, [u8]>, ImportError> {
    match path {
        Some(path) => std::fs::read(path)
            .map(Cow::Owned)
            .map_err(|source| ImportError::Open {
                path: path.to_owned(),
                source,
            }),
        None => Ok(Cow::Borrowed(HILLINGDON_CSV.as_bytes())),
    }
}

/// Parses a register CSV with the gateway's importer. Rows it refuses are skipped with a warning
/// (naming the line, never the address).
pub fn parse_register(csv: &[u8]) -> Result<PropertyRegister, ImportError> {
    let mut register = PropertyRegister::new();
    let report = register.import_csv(csv)?;
    for error in &report.errors {
        tracing::warn!(
            line = error.line,
            "skipping a property register row that does not parse"
        );
    }
    Ok(register)
}

/// Every round on `register`, sorted by id.
pub fn rounds_of(register: &PropertyRegister) -> Vec<Round> {
    register
        .rounds()
        .into_iter()
        .map(|id| Round {
            id: id.to_owned(),
            stops: register
                .on_round(id)
                .into_iter()
                .map(|p| Stop {
                    uprn: p.uprn,
                    at: p.position,
                    streams: p.streams.clone(),
                    schedule: p.schedule.clone(),
                })
                .collect(),
        })
        .collect()
}

/// What the crew found at a property and where the cab's GPS put it.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// The outcome; `None` when the crew missed the bin and recorded nothing.
    pub outcome: Option<Outcome>,
    /// The fix recorded with it.
    pub pos: Position,
    /// The crew's note, if any.
    pub note: Option<&'static str>,
    /// How long the stop took (wheeling the bin, the lift), simulated.
    pub dwell: Duration,
}

/// What the crew finds at `stop` for `stream`: mostly collected; a few bins not put out; now and
/// then a contaminated recycling, garden or food bin, tagged and left; and one in fifteen missed,
/// the crew driving past and recording nothing (a bad day, so that the demo shows return visits).
pub fn visit(stop: &Stop, stream: BinStream, rng: &mut impl Rng) -> Visit {
    let roll: f64 = rng.gen();
    let can_contaminate = matches!(
        stream,
        BinStream::Recycling | BinStream::Garden | BinStream::Food | BinStream::Glass
    );
    let (outcome, note) = if roll < 0.055 {
        (Some(Outcome::NotPresented), None)
    } else if roll < 0.085 && can_contaminate {
        (
            Some(Outcome::Contaminated),
            Some("Wrong items in the bin; tagged and left."),
        )
    } else if roll > 1.0 - MISSED_SHARE {
        (None, None)
    } else {
        (Some(Outcome::Collected), None)
    };
    let dwell = match outcome {
        Some(Outcome::Collected) => rng.gen_range(25.0..70.0),
        None => 0.0,
        _ => rng.gen_range(10.0..30.0),
    };
    Visit {
        outcome,
        pos: gps_fix(stop.at, rng),
        note,
        dwell: Duration::from_secs_f64(dwell),
    }
}

/// A GPS fix from a cab stopped outside a property at `at`: the lorry is on the road, several
/// metres from the property's point, and the receiver's error grows with its reported accuracy
/// (mostly 3–8 m; worse under trees and between tall buildings).
pub fn gps_fix(at: LatLon, rng: &mut impl Rng) -> Position {
    let accuracy: f64 = match rng.gen_range(0..100) {
        0..=69 => rng.gen_range(3.0..8.0),
        70..=94 => rng.gen_range(8.0..20.0),
        _ => rng.gen_range(20.0..45.0),
    };
    let kerb_m = rng.gen_range(5.0..12.0);
    let bearing = rng.gen_range(0.0..std::f64::consts::TAU);
    let error_m = accuracy / std::f64::consts::SQRT_2;
    let north = kerb_m * bearing.cos() + error_m * normal(rng);
    let east = kerb_m * bearing.sin() + error_m * normal(rng);
    let lat = at.lat + north / METRES_PER_DEGREE;
    let lon = at.lon + east / (METRES_PER_DEGREE * at.lat.to_radians().cos().max(0.01));
    Position {
        lat: (lat * 1e6).round() / 1e6,
        lon: (lon * 1e6).round() / 1e6,
        acc: ((accuracy * 10.0).round() / 10.0) as f32,
    }
}

/// A crew's settings.
#[derive(Debug, Clone)]
pub struct CrewConfig {
    /// The vehicle's fleet id.
    pub vehicle: String,
    /// The rounds it works, in turn.
    pub rounds: Vec<Round>,
    /// Seeds what it finds and its GPS.
    pub seed: u64,
    /// Rounds to work before stopping; `None` to go on until stopped.
    pub max_rounds: Option<u64>,
    /// When, in simulated UTC time of day, rounds may start (first, last); `None` for any time.
    pub shift: Option<(NaiveTime, NaiveTime)>,
    /// Told of every property passed and every round completed, if set.
    pub passes: Option<mpsc::UnboundedSender<CrewEvent>>,
}

/// A council's usual collection hours: rounds start from 06:30 and none starts after 14:00.
pub fn usual_shift() -> (NaiveTime, NaiveTime) {
    (
        NaiveTime::from_hms_opt(6, 30, 0).unwrap_or(NaiveTime::MIN),
        NaiveTime::from_hms_opt(14, 0, 0).unwrap_or(NaiveTime::MIN),
    )
}

/// How long from `now` until a round may start within `shift` (zero if one may start now).
pub fn until_shift(now: DateTime<Utc>, (first, last): (NaiveTime, NaiveTime)) -> Duration {
    let time = now.time();
    if time >= first && time <= last {
        return Duration::ZERO;
    }
    let today = now.date_naive();
    let day = if time < first {
        today
    } else {
        today.succ_opt().unwrap_or(today)
    };
    (day.and_time(first).and_utc() - now)
        .to_std()
        .unwrap_or_default()
}

/// A crew's progress, shared with whoever reports on it.
#[derive(Debug, Default)]
pub struct CrewStats {
    /// Collections the agent accepted.
    pub collections: AtomicU64,
    /// Rounds completed.
    pub rounds_completed: AtomicU64,
    /// Requests the agent refused for good (not retried).
    pub refused: AtomicU64,
    /// Return jobs (residents' missed bins) done.
    pub returns: AtomicU64,
    /// Which of the crew's rounds it is on (an index into [`CrewConfig::rounds`]).
    pub round: AtomicUsize,
    /// Properties visited on the current round.
    pub visited: AtomicUsize,
    /// Properties to visit on the current round.
    pub to_visit: AtomicUsize,
}

/// Works `config`'s rounds through the agent API at `api` until `stop` (or `max_rounds`).
/// Requests the agent cannot take right now (unreachable, 5xx, a full outbox) are retried, as the
/// app keeps a record until the agent has it; a request refused as invalid is counted and skipped.
pub async fn run(
    api: JsonClient,
    config: CrewConfig,
    clock: SimClock,
    stats: Arc<CrewStats>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    if config.rounds.is_empty() {
        tracing::warn!(vehicle = %config.vehicle, "the crew has no rounds");
        return;
    }
    // Within a shift: the (round, bin) passes done on the day they were done.
    let mut done: (Option<NaiveDate>, Vec<(usize, BinStream)>) = (None, Vec::new());
    for pass in 0u64.. {
        if config.max_rounds.is_some_and(|max| pass >= max) || stop.is_cancelled() {
            return;
        }
        let (index, stream, day) = match config.shift {
            None => {
                // Every round in turn, one bin a pass: refuse, then recycling…
                let index = usize::try_from(pass).unwrap_or(0) % config.rounds.len();
                let streams = config.rounds[index].streams();
                let week = usize::try_from(pass).unwrap_or(0) / config.rounds.len();
                let Some(&stream) = streams.get(week % streams.len().max(1)) else {
                    continue;
                };
                (index, stream, None)
            }
            Some(shift) => {
                let wait = until_shift(clock.now(), shift);
                if !wait.is_zero() {
                    tracing::info!(
                        vehicle = %config.vehicle,
                        wait_min = wait.as_secs() / 60,
                        "waiting for the collection shift"
                    );
                    if !clock.sleep(wait, &stop).await {
                        return;
                    }
                }
                let today = clock.now().date_naive();
                if done.0 != Some(today) {
                    done = (Some(today), Vec::new());
                }
                let next = config.rounds.iter().enumerate().find_map(|(index, round)| {
                    round
                        .streams_due(today)
                        .into_iter()
                        .find(|stream| !done.1.contains(&(index, *stream)))
                        .map(|stream| (index, stream))
                });
                let Some((index, stream)) = next else {
                    // The day's rounds are done (or none is due): back for missed bins as
                    // residents report them, while the shift lasts.
                    if !return_jobs(&api, &config, &mut rng, clock, &stats, &stop).await
                        || !clock.sleep(RETURNS_EVERY, &stop).await
                    {
                        return;
                    }
                    continue;
                };
                done.1.push((index, stream));
                (index, stream, Some(today))
            }
        };
        let round = &config.rounds[index];
        let stops: Vec<&Stop> = round
            .stops
            .iter()
            .filter(|s| s.collects_on(stream, day))
            .collect();
        if !return_jobs(&api, &config, &mut rng, clock, &stats, &stop).await {
            return;
        }
        stats.round.store(index, Ordering::Relaxed);
        stats.visited.store(0, Ordering::Relaxed);
        stats.to_visit.store(stops.len(), Ordering::Relaxed);
        tracing::info!(vehicle = %config.vehicle, round = %round.id, stream = stream.as_str(),
            properties = stops.len(), "round starting");

        let change = json!({ "vehicle": config.vehicle });
        let start = format!("/v1/rounds/{}/start", round.id);
        if !post(&api, &start, &change, &stats, &stop).await {
            return;
        }
        let mut previous: Option<LatLon> = None;
        for property in stops {
            let here = visit(property, stream, &mut rng);
            let travel_m = previous.map_or(0.0, |p| p.distance_m(property.at));
            let travel = Duration::from_secs_f64(travel_m / LORRY_SPEED_M_S);
            if !clock.sleep(travel + here.dwell, &stop).await {
                return;
            }
            previous = Some(property.at);
            let tell = |outcome| {
                if let Some(passes) = &config.passes {
                    let _ = passes.send(CrewEvent::Passed {
                        round: round.id.clone(),
                        uprn: property.uprn,
                        stream,
                        outcome,
                    });
                }
            };
            let Some(outcome) = here.outcome else {
                tell(None);
                continue;
            };
            let mut body = json!({
                "uprn": property.uprn,
                "stream": stream,
                "outcome": outcome,
                "pos": here.pos,
                "vehicle": config.vehicle,
                "round": round.id,
            });
            if let Some(note) = here.note {
                body["note"] = json!(note);
            }
            if !post(&api, "/v1/collections", &body, &stats, &stop).await {
                return;
            }
            stats.collections.fetch_add(1, Ordering::Relaxed);
            stats.visited.fetch_add(1, Ordering::Relaxed);
            tell(Some(outcome));
        }
        let complete = format!("/v1/rounds/{}/complete", round.id);
        if !post(&api, &complete, &change, &stats, &stop).await {
            return;
        }
        stats.rounds_completed.fetch_add(1, Ordering::Relaxed);
        if let Some(passes) = &config.passes {
            let _ = passes.send(CrewEvent::RoundCompleted {
                round: round.id.clone(),
            });
        }
        tracing::info!(vehicle = %config.vehicle, round = %round.id, "round completed");
        if !clock.sleep(BETWEEN_ROUNDS, &stop).await {
            return;
        }
    }
}

/// Goes back for the bins residents reported missed: each open return job on the cab is
/// accepted, driven to, collected (a confirmation carrying the job's id, which closes the report
/// at the gateway) and completed. False if stopped first.
async fn return_jobs(
    api: &JsonClient,
    config: &CrewConfig,
    rng: &mut StdRng,
    clock: SimClock,
    stats: &CrewStats,
    stop: &CancellationToken,
) -> bool {
    let jobs: Vec<JobView> = match api.get("/v1/jobs").await {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::debug!(%error, "cannot list the cab's jobs");
            return true;
        }
    };
    for job in jobs.iter().filter(|job| job.is_open()) {
        let JobKind::ReturnCollection(back) = &job.kind else {
            continue;
        };
        tracing::info!(vehicle = %config.vehicle, job = %job.id, "going back for a missed bin");
        let status = format!("/v1/jobs/{}/status", job.id);
        if job.status.is_none()
            && !post(api, &status, &json!({"status": "accepted"}), stats, stop).await
        {
            return false;
        }
        if !clock.sleep(RETURN_TRIP, stop).await {
            return false;
        }
        let round = config
            .rounds
            .iter()
            .find(|r| r.stops.iter().any(|s| s.uprn == back.uprn))
            .or(config.rounds.first())
            .map_or_else(|| "RETURNS".to_owned(), |r| r.id.clone());
        let at = LatLon {
            lat: back.pos.lat,
            lon: back.pos.lon,
        };
        let body = json!({
            "uprn": back.uprn,
            "stream": back.stream,
            "outcome": Outcome::Collected,
            "pos": gps_fix(at, rng),
            "vehicle": config.vehicle,
            "round": round,
            "job": job.id,
        });
        if !post(api, "/v1/collections", &body, stats, stop).await {
            return false;
        }
        stats.collections.fetch_add(1, Ordering::Relaxed);
        if !post(api, &status, &json!({"status": "completed"}), stats, stop).await {
            return false;
        }
        stats.returns.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// Posts `body` until the agent takes it; false if stopped first. A refusal for good is counted
/// and logged, and the crew carries on (true).
pub(crate) async fn post(
    api: &JsonClient,
    path: &str,
    body: &serde_json::Value,
    stats: &CrewStats,
    stop: &CancellationToken,
) -> bool {
    match post_retrying(api, path, body, stop).await {
        Some(Ok(_)) => true,
        Some(Err(error)) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "the agent refused a record");
            true
        }
        None => false,
    }
}

/// Posts until the agent answers other than with a transient error; `None` if stopped first.
pub(crate) async fn post_retrying(
    api: &JsonClient,
    path: &str,
    body: &serde_json::Value,
    stop: &CancellationToken,
) -> Option<Result<serde_json::Value, HttpError>> {
    retry_transient(stop, || api.post(path, body)).await
}

/// Splits `rounds` between `crews` crews: crew `i` takes rounds `i`, `i + crews`, … (and when
/// there are more crews than rounds, shares one).
pub fn assign_rounds(rounds: &[Round], crews: usize) -> Vec<Vec<Round>> {
    (0..crews)
        .map(|crew| {
            let mine: Vec<Round> = rounds
                .iter()
                .skip(crew)
                .step_by(crews.max(1))
                .cloned()
                .collect();
            if mine.is_empty() && !rounds.is_empty() {
                vec![rounds[crew % rounds.len()].clone()]
            } else {
                mine
            }
        })
        .collect()
}

/// Counts per outcome, for tests and summaries.
pub fn tally(visits: &[Visit]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for visit in visits {
        let name = visit.outcome.map_or("missed", Outcome::as_str);
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_register_has_three_rounds_in_order() {
        let rounds = load_rounds(None).unwrap();
        let ids: Vec<&str> = rounds.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["HIL-MONTHU-3", "HIL-TUE-1", "HIL-WED-2"]);
        assert_eq!(rounds.iter().map(|r| r.stops.len()).sum::<usize>(), 33);
        let tue = &rounds[1];
        assert_eq!(tue.stops[0].uprn, 100_021_445_101);
        assert_eq!(
            tue.streams(),
            [BinStream::Refuse, BinStream::Recycling, BinStream::Food]
        );
    }

    #[test]
    fn rounds_are_shared_between_crews() {
        let rounds = load_rounds(None).unwrap();
        let two = assign_rounds(&rounds, 2);
        assert_eq!(two[0].len(), 2);
        assert_eq!(two[1].len(), 1);
        let five = assign_rounds(&rounds, 5);
        assert!(five.iter().all(|mine| mine.len() == 1));
        assert_eq!(five[4][0].id, rounds[1].id);
    }

    #[test]
    fn most_bins_are_collected_and_fixes_land_near_the_property() {
        let rounds = load_rounds(None).unwrap();
        let stop = &rounds[1].stops[0];
        let mut rng = StdRng::seed_from_u64(1);
        let visits: Vec<Visit> = (0..2000)
            .map(|_| visit(stop, BinStream::Recycling, &mut rng))
            .collect();
        let counts = tally(&visits);
        assert!(counts["collected"] > 1600, "{counts:?}");
        assert!(counts["not_presented"] > 50, "{counts:?}");
        assert!(counts["contaminated"] > 20, "{counts:?}");
        assert!((90..=180).contains(&counts["missed"]), "{counts:?}");
        for v in &visits {
            proto::Validate::validate(&v.pos).unwrap();
            let at = LatLon {
                lat: v.pos.lat,
                lon: v.pos.lon,
            };
            // Kerb offset plus at most a few standard deviations of the stated accuracy.
            let distance = at.distance_m(stop.at);
            assert!(distance < 12.0 + 4.0 * f64::from(v.pos.acc), "{distance} m");
            assert!((3.0..=45.0).contains(&v.pos.acc));
        }
        let refuse: Vec<Visit> = (0..500)
            .map(|_| visit(stop, BinStream::Refuse, &mut rng))
            .collect();
        assert!(!tally(&refuse).contains_key("contaminated"));
    }

    #[test]
    fn rounds_start_within_the_shift() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let shift = usual_shift();
        assert_eq!(
            until_shift(at("2026-01-13T06:30:00Z"), shift),
            Duration::ZERO
        );
        assert_eq!(
            until_shift(at("2026-01-13T13:59:00Z"), shift),
            Duration::ZERO
        );
        assert_eq!(
            until_shift(at("2026-01-13T05:30:00Z"), shift),
            Duration::from_secs(3600)
        );
        assert_eq!(
            until_shift(at("2026-01-13T19:30:00Z"), shift),
            Duration::from_secs(11 * 3600)
        );
    }

    #[test]
    fn visits_are_reproducible_from_the_seed() {
        let rounds = load_rounds(None).unwrap();
        let stop = &rounds[0].stops[0];
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| visit(stop, BinStream::Refuse, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
