//! Boilers: what council homes' boiler hubs report, turned into what asset managers need. The
//! domain is pure logic: no I/O, no async, no store; everything in it is a function of what it
//! was given and of the time it was told. Only [`desk`] (the domain over the storage seam) and
//! [`follow`] (which feeds the desk from the ingest and the clock) do I/O.
//!
//! - [`register`]: the asset register, and whether a sample came from the asset's own hub.
//! - [`import`]: the register's CSV format and import, with errors by line.
//! - [`sample`]: a telemetry record as the domain reads it, units in its names.
//! - [`reading`]: plausibility checks per reading, ranges in one place.
//! - [`rollup`]: hourly rollups kept current as samples arrive, in any order.
//! - [`periods`]: days and months, stored and kept equal to their hours; any span read from
//!   the coarsest of them.
//! - [`efficiency`]: measured or estimated efficiency per hour, day and month.
//! - [`waste`]: gas wasted against each boiler's condensing potential, and the estate ranked.
//! - [`forecast`](mod@forecast): when a leaking system will fall below 1 bar.
//! - [`alerts`]: each boiler's alerts, opened and closed with evidence and hysteresis.
//! - [`desk`]: the domain over the storage seam: loads, folds, ticks, purges and persists.
//! - [`follow`]: new telemetry from the ingest and ticks from the clock, to the desk.
//!
//! The storage seam, as this domain needs it, is [`TelemetryLog`]: one boiler's raw samples,
//! reported gaps and hourly rollups, with range reads by time. The storage seam implements it
//! ([`crate::storage::AssetLog`]); [`MemoryLog`] is the reference implementation, and the
//! rollups' tests run against both.
//!
//! [`Boilers`] holds the register, the settings and each boiler's alert state together for the
//! gateway: [`Boilers::observe_sample`] for each telemetry record stored, [`Boilers::tick`] for
//! each boiler as the clock moves on.

pub mod alerts;
pub mod desk;
pub mod efficiency;
pub mod follow;
pub mod forecast;
pub mod import;
pub mod periods;
pub mod reading;
pub mod register;
pub mod rollup;
pub mod sample;
pub mod waste;

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use proto::{DeviceId, Telemetry, TimestampMs};
use serde::{Deserialize, Serialize};

pub use alerts::{
    Ack, AckError, Alert, AlertEvent, AlertKind, AlertThresholds, BoilerAlerts, Evidence, Severity,
};
pub use desk::{BoilerDesk, BoilerDeskError, BoilerDeskSettings};
pub use efficiency::{gas_kwh, Basis, CondensingCurve, Efficiency, EfficiencyConfig, Meters};
pub use forecast::{daily_minima, forecast, DailyMinimum, ForecastConfig, PressureForecast};
pub use import::{ImportError, ImportReport, RowError};
pub use periods::{daily_series, day_rollup, rollup_over};
pub use reading::{check, Checked, Implausible, PlausibleRanges, Range, Reading};
pub use register::{Asset, AssetRegister, SourceCheck};
pub use rollup::{
    counter_step, hourly_series, merge_period, CounterLimit, CounterLimits, CounterStep, Folded,
    MemoryLog, Roller, Rollup, RollupConfig, Stat, TelemetryLog, HOUR_MS,
};
pub use sample::{FaultFlags, GapSpan, Sample};
pub use waste::{rank, waste_over, BoilerFacts, Ranked, Waste, WasteConfig};

/// Every setting of the boiler domain, each with its documented default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BoilersConfig {
    /// What each reading may plausibly be.
    pub ranges: PlausibleRanges,
    /// How rollups are made.
    pub rollup: RollupConfig,
    /// How efficiency is worked out.
    pub efficiency: EfficiencyConfig,
    /// How waste is valued.
    pub waste: WasteConfig,
    /// How the pressure forecast is made.
    pub forecast: ForecastConfig,
    /// The alerts' thresholds.
    pub alerts: AlertThresholds,
}

/// What observing one telemetry record did.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The sample as checked: implausible readings removed.
    pub sample: Sample,
    /// The readings flagged as implausible.
    pub flagged: Vec<Implausible>,
    /// Why the sample itself is flagged (unknown asset, another hub's); `None` when it is not.
    /// A flagged sample is kept out of rollups, efficiency and alerts.
    pub source_flag: Option<String>,
    /// What folding it into the rollups did; `None` when it was flagged.
    pub folded: Option<Folded>,
    /// Alerts opened, escalated or closed by it.
    pub alerts: Vec<AlertEvent>,
}

/// What observing a gap record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGap {
    /// The hours (start, UTC ms) recomputed to show it.
    pub hours: Vec<TimestampMs>,
}

/// The asset register, the settings and each boiler's alerts, with the operations the gateway
/// needs. Storage stays with the caller: it passes each boiler's [`TelemetryLog`], persists the
/// register and the alert state ([`BoilerAlerts`] serializes) and publishes alert events.
#[derive(Debug, Clone, Default)]
pub struct Boilers {
    config: BoilersConfig,
    roller: Roller,
    register: AssetRegister,
    alerts: BTreeMap<String, BoilerAlerts>,
}

impl Boilers {
    /// The domain with an empty register.
    pub fn new(config: BoilersConfig) -> Self {
        Self {
            roller: Roller::new(config.rollup.clone()),
            config,
            register: AssetRegister::new(),
            alerts: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BoilersConfig {
        &self.config
    }

    /// The asset register.
    pub fn register(&self) -> &AssetRegister {
        &self.register
    }

    /// The asset register, to add or remove assets.
    pub fn register_mut(&mut self) -> &mut AssetRegister {
        &mut self.register
    }

    /// Imports assets from CSV into the register (see [`import`] for the format).
    pub fn import_assets(&mut self, reader: impl Read) -> Result<ImportReport, ImportError> {
        self.register.import_csv(reader)
    }

    /// A boiler's alert state, if it has any.
    pub fn alerts(&self, asset: &str) -> Option<&BoilerAlerts> {
        self.alerts.get(asset)
    }

    /// Restores a boiler's alert state (loaded from the store at start-up).
    pub fn restore_alerts(&mut self, asset: impl Into<String>, alerts: BoilerAlerts) {
        self.alerts.insert(asset.into(), alerts);
    }

    /// Staff acknowledge a boiler's open alert.
    pub fn acknowledge(
        &mut self,
        asset: &str,
        kind: AlertKind,
        ack: Ack,
    ) -> Result<&Alert, AckError> {
        match self.alerts.get_mut(asset) {
            Some(alerts) => alerts.acknowledge(kind, ack),
            None => Err(AckError::NotOpen {
                asset: asset.to_owned(),
                kind,
            }),
        }
    }

    /// A telemetry record from `hub`, taken at `ts` by the hub's clock and received at
    /// `received_ms` by the gateway's: checked against the register and the plausible ranges,
    /// folded into `log` (the asset's), and passed to its alerts. Replaying a record changes
    /// nothing.
    pub fn observe_sample<L: TelemetryLog>(
        &mut self,
        log: &mut L,
        hub: &DeviceId,
        telemetry: &Telemetry,
        ts: TimestampMs,
        received_ms: TimestampMs,
    ) -> Result<Observed, L::Error> {
        let Checked { sample, flagged } =
            check(Sample::from_telemetry(telemetry, ts), &self.config.ranges);
        let source_flag = self.register.check_source(&sample.asset, hub).reason(hub);
        if source_flag.is_some() {
            return Ok(Observed {
                sample,
                flagged,
                source_flag,
                folded: None,
                alerts: Vec::new(),
            });
        }
        let folded = self.roller.fold(log, &sample, received_ms)?;
        let alerts = match folded {
            Folded::TooLate | Folded::TooFarAhead => Vec::new(),
            // A duplicate is still a sign of life: it ends silence, and nothing else.
            _ => alerts_of(&mut self.alerts, &self.config, &sample.asset).on_sample(
                &sample,
                received_ms,
                &self.config.alerts,
            ),
        };
        Ok(Observed {
            sample,
            flagged,
            source_flag: None,
            folded: Some(folded),
            alerts,
        })
    }

    /// A hub's report that it dropped samples, as the time span the caller found for it (see
    /// [`GapSpan::between`]), for the asset whose `log` it is. Replaying it changes nothing.
    pub fn observe_gap<L: TelemetryLog>(
        &self,
        log: &mut L,
        gap: &GapSpan,
        now_ms: TimestampMs,
    ) -> Result<ObservedGap, L::Error> {
        Ok(ObservedGap {
            hours: self.roller.fold_gap(log, gap, now_ms)?,
        })
    }

    /// The clock, for one boiler at `now_ms`: silence; every hour completed since the last tick
    /// (at most two days' worth, so a long outage does not replay a year); and once a local day
    /// (in `tz`) is over, its efficiency and the pressure forecast. `grace_ms` lets late samples
    /// of a period arrive before it is judged.
    pub fn tick<L: TelemetryLog>(
        &mut self,
        log: &L,
        asset: &str,
        now_ms: TimestampMs,
        grace_ms: i64,
        tz: Tz,
    ) -> Result<Vec<AlertEvent>, L::Error> {
        let Some(registered) = self.register.get(asset) else {
            return Ok(Vec::new());
        };
        let meters = registered.meters;
        let config = &self.config;
        let alerts = alerts_of(&mut self.alerts, config, asset);
        let mut events = alerts.on_tick(now_ms, &config.alerts);
        let judged_ms = now_ms - grace_ms.max(0);

        let last_complete = rollup::hour_of(judged_ms) - HOUR_MS;
        let mut hour = alerts
            .newest_hour_ms()
            .map_or(last_complete, |newest| newest + HOUR_MS)
            .max(last_complete - 47 * HOUR_MS);
        while hour <= last_complete {
            let rollup = log
                .hour(hour)?
                .unwrap_or_else(|| Rollup::empty(hour, hour + HOUR_MS));
            events.extend(alerts.on_hour(&rollup, &config.alerts));
            hour += HOUR_MS;
        }

        let Some(today) = local_date(judged_ms, tz) else {
            return Ok(events);
        };
        let Some(yesterday) = today.pred_opt() else {
            return Ok(events);
        };
        let mut day = match alerts.newest_day_ms().and_then(|ms| local_date(ms, tz)) {
            Some(newest) => newest.succ_opt().unwrap_or(today),
            None => yesterday,
        }
        .max(yesterday - chrono::Days::new(30));
        let mut judged_a_day = false;
        while day <= yesterday {
            let (start, end) = rollup::day_bounds(day, tz);
            let rollup = rollup_over(log, start, end)?;
            let efficiency = efficiency::efficiency(&rollup, meters, &config.efficiency);
            events.extend(alerts.on_day(start, efficiency.as_ref(), &config.alerts));
            judged_a_day = true;
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        if judged_a_day {
            let window = config.forecast.window_days.max(1);
            let days: Vec<Rollup> = (0..window)
                .rev()
                .filter_map(|back| yesterday.checked_sub_days(chrono::Days::new(back as u64)))
                .map(|date| {
                    let (start, end) = rollup::day_bounds(date, tz);
                    rollup_over(log, start, end)
                })
                .collect::<Result<_, _>>()?;
            let forecast =
                forecast::forecast(&daily_minima(&days, &config.forecast), &config.forecast);
            events.extend(alerts.on_forecast(forecast.as_ref(), now_ms, &config.alerts));
        }
        Ok(events)
    }
}

/// A boiler's alert state, created on first use.
fn alerts_of<'a>(
    alerts: &'a mut BTreeMap<String, BoilerAlerts>,
    config: &BoilersConfig,
    asset: &str,
) -> &'a mut BoilerAlerts {
    alerts
        .entry(asset.to_owned())
        .or_insert_with(|| BoilerAlerts::new(asset, config.rollup.sample_interval_ms))
}

/// The local date in `tz` at `at_ms`.
fn local_date(at_ms: TimestampMs, tz: Tz) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(at_ms).map(|t| t.with_timezone(&tz).date_naive())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boilers::register::tests::asset;
    use crate::boilers::rollup::tests::{FreshLog, T0};

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * HOUR_MS;
    const LONDON: Tz = chrono_tz::Europe::London;

    fn hub(id: &str) -> DeviceId {
        DeviceId::new(id).unwrap()
    }

    /// An estate of five boilers sampled every 5 minutes.
    fn estate() -> Boilers {
        let mut boilers = Boilers::new(BoilersConfig {
            rollup: RollupConfig {
                sample_interval_ms: 5 * MIN,
                ..RollupConfig::default()
            },
            ..BoilersConfig::default()
        });
        for (id, hub_id) in [
            ("healthy", "hub-1"),
            ("leaking", "hub-2"),
            ("cycling", "hub-3"),
            ("hot", "hub-4"),
            ("locked", "hub-5"),
            ("quiet", "hub-6"),
        ] {
            boilers.register_mut().insert(asset(id, hub_id));
        }
        boilers
    }

    /// One boiler's telemetry at minute `m` of a 15-day run: heating from 06:00 to 09:00 and
    /// 16:00 to 22:00 UTC.
    fn telemetry(asset: &str, m: i64) -> Telemetry {
        let day = m / (24 * 60);
        let minute_of_day = m % (24 * 60);
        let hour = minute_of_day / 60;
        let heating = (6..9).contains(&hour) || (16..22).contains(&hour);
        let cold_bar = if asset == "leaking" {
            1.6 - 0.03 * day as f32
        } else {
            1.5
        };
        // Short cycling: firing 10 minutes in every 15 while heating, and id 116 counting 10
        // starts an hour (2 for the others).
        let firing = heating && (asset != "cycling" || minute_of_day % 15 < 10);
        let ret = if asset == "hot" { 62.0 } else { 42.0 };
        let starts_per_hour = if asset == "cycling" { 10 } else { 2 };
        let hours_so_far = u32::try_from(m / 60).unwrap_or(0);
        Telemetry {
            asset: asset.to_owned(),
            flow: Some(if firing { ret + 15.0 } else { 30.0 }),
            ret: Some(if firing { ret } else { 28.0 }),
            bar: Some(cold_bar + if heating { 0.3 } else { 0.0 }),
            flame: Some(firing),
            ch: Some(heating),
            dhw_on: Some(false),
            fault: Some(asset == "locked" && day >= 3),
            fflags: Some(if asset == "locked" && day >= 3 {
                0x02
            } else {
                0
            }),
            oem: Some(0),
            starts: Some(hours_so_far * starts_per_hour),
            ..Telemetry::default()
        }
    }

    #[test]
    fn the_faulty_boilers_raise_their_alerts_and_the_healthy_one_none() {
        the_faulty_boilers_raise_their_alerts::<MemoryLog>();
    }

    /// The demo estate over 15 days, for any [`TelemetryLog`]: the storage's tests run it on
    /// theirs.
    pub(crate) fn the_faulty_boilers_raise_their_alerts<L: FreshLog>() {
        let mut boilers = estate();
        let mut logs: BTreeMap<&str, L> = BTreeMap::new();
        let mut opened: BTreeMap<&str, Vec<AlertKind>> = BTreeMap::new();
        let ids = ["healthy", "leaking", "cycling", "hot", "locked", "quiet"];
        let mut closed: BTreeMap<&str, Vec<AlertKind>> = BTreeMap::new();
        let day0 = T0 - 10 * HOUR_MS; // midnight UTC, 24 November 2026
        for m in (0..15 * 24 * 60).step_by(5) {
            let at = day0 + m * MIN;
            for (i, id) in ids.into_iter().enumerate() {
                let log = logs.entry(id).or_insert_with(L::fresh);
                // The quiet boiler's hub loses power from 10:00 to 12:00 on day 5.
                let powered = id != "quiet" || !(5 * 1440 + 600..5 * 1440 + 720).contains(&m);
                let mut events = Vec::new();
                if powered {
                    let hub = hub(&format!("hub-{}", i + 1));
                    let observed = boilers
                        .observe_sample(log, &hub, &telemetry(id, m), at, at)
                        .unwrap();
                    assert_eq!(observed.source_flag, None);
                    events = observed.alerts;
                }
                if m % 60 == 0 {
                    events.extend(boilers.tick(log, id, at, 5 * MIN, LONDON).unwrap());
                }
                for event in events {
                    match event {
                        AlertEvent::Opened(a) => opened.entry(id).or_default().push(a.kind),
                        AlertEvent::Closed(a) => closed.entry(id).or_default().push(a.kind),
                        AlertEvent::Escalated(_) => {}
                    }
                }
            }
        }
        assert_eq!(opened.get("healthy"), None, "{opened:?}");
        assert_eq!(opened["leaking"], vec![AlertKind::PressureForecast]);
        assert_eq!(opened["cycling"], vec![AlertKind::ShortCycling]);
        assert_eq!(opened["hot"], vec![AlertKind::NotCondensing]);
        assert_eq!(opened["locked"], vec![AlertKind::Fault]);
        assert_eq!(opened["quiet"], vec![AlertKind::Silent]);
        assert_eq!(closed["quiet"], vec![AlertKind::Silent]);
        assert_eq!(
            closed.get("locked"),
            None,
            "a boiler still locked out stays alerted"
        );
        let fault = boilers
            .alerts("locked")
            .unwrap()
            .get(AlertKind::Fault)
            .unwrap();
        assert_eq!(fault.severity, Severity::Critical);
        assert_eq!(fault.opened_at_ms, day0 + 3 * DAY);
        // The forecast named the day: 1.6 bar falling 0.03 a day crosses 1 bar on day 20.
        let forecast = boilers
            .alerts("leaking")
            .unwrap()
            .get(AlertKind::PressureForecast)
            .unwrap();
        let days_until = forecast
            .evidence
            .iter()
            .find(|e| e.what == "days_until_below_1_bar")
            .unwrap();
        assert!(days_until.value <= 14.0, "{forecast:?}");
        // The hot boiler's efficiency is estimated at 86 %, and its waste says what to do.
        let log = &logs["hot"];
        let (start, end) =
            rollup::day_bounds(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(), LONDON);
        let day = merge_period(start, end, &log.hours_in(start, end).unwrap());
        let facts = boilers.register().get("hot").unwrap().facts();
        let waste = waste::waste(
            &day,
            facts,
            &boilers.config().efficiency,
            &boilers.config().waste,
        )
        .unwrap();
        assert_eq!(waste.efficiency.pct, 86.0);
        assert!(waste
            .advice
            .unwrap()
            .starts_with("mean return 62 °C while heating"));
    }

    #[test]
    fn samples_from_the_wrong_hub_or_an_unknown_asset_are_flagged_and_kept_out() {
        let mut boilers = estate();
        let mut log = MemoryLog::new();
        let observed = boilers
            .observe_sample(&mut log, &hub("hub-9"), &telemetry("healthy", 0), T0, T0)
            .unwrap();
        assert_eq!(
            observed.source_flag.as_deref(),
            Some("asset healthy is registered to hub hub-1, not hub-9")
        );
        assert_eq!(observed.folded, None);
        let unknown = boilers
            .observe_sample(&mut log, &hub("hub-1"), &telemetry("nobody", 0), T0, T0)
            .unwrap();
        assert!(unknown.source_flag.is_some());
        assert_eq!(log.all_hours().count(), 0);
        // An absurd reading is flagged and the rest of the sample kept.
        let absurd = Telemetry {
            flow: Some(400.0),
            bar: Some(20.0),
            ..telemetry("healthy", 0)
        };
        let observed = boilers
            .observe_sample(&mut log, &hub("hub-1"), &absurd, T0, T0)
            .unwrap();
        assert_eq!(observed.flagged.len(), 2);
        let hour = log.hour(rollup::hour_of(T0)).unwrap().unwrap();
        assert_eq!(hour.flow_c.count, 0);
        assert_eq!(hour.pressure_bar.count, 0);
        assert_eq!(hour.return_c.count, 1);
        // Resent: nothing changes, no alert evaluated twice.
        let again = boilers
            .observe_sample(&mut log, &hub("hub-1"), &absurd, T0, T0 + MIN)
            .unwrap();
        assert_eq!(again.folded, Some(Folded::Duplicate));
    }
}
