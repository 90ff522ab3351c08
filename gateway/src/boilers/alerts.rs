//! Alerts on one boiler: low or high pressure, faults and lockouts, the diagnostic indication,
//! short cycling, not condensing, falling efficiency, silence and a forecast pressure loss. Each
//! opens with the readings that triggered it, can be acknowledged by staff, and closes when its
//! condition has cleared.
//!
//! Every condition has hysteresis: it opens after it has held for a number of consecutive
//! observations, and closes only after the reading has gone back past a band beyond the threshold
//! for a number of observations, so a pressure wavering around 1 bar opens one alert, not one a
//! minute. Samples drive the per-sample conditions once each: one no newer than the newest seen
//! (a resend, or a late sample) changes nothing but silence. Completed hours, days, forecasts and
//! the clock drive the rest. The state serializes, so alerts survive restarts.

use std::collections::{BTreeMap, VecDeque};

use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use super::efficiency::{Basis, Efficiency};
use super::forecast::PressureForecast;
use super::rollup::Rollup;
use super::sample::{widen, FaultFlags, Sample};

/// An alert carries at most this much evidence: its opening readings, then the latest.
const MAX_EVIDENCE: usize = 32;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Water pressure below the warning threshold (critical below the critical one).
    PressureLow,
    /// Water pressure above the high threshold.
    PressureHigh,
    /// A fault or lockout: the fault bit, a lockout or gas/flame flag, or a manufacturer's code.
    Fault,
    /// The boiler's diagnostic (service) indication, or its service-request flag.
    Diagnostic,
    /// Too many heating starts an hour, hour after hour.
    ShortCycling,
    /// The return too hot to condense while firing, hour after hour.
    NotCondensing,
    /// A day's efficiency well below the boiler's own recent median.
    EfficiencyFalling,
    /// No sample for several sample intervals.
    Silent,
    /// The pressure trend crosses 1 bar soon.
    PressureForecast,
}

impl AlertKind {
    /// The kind's name, as in JSON and the API's filters.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::PressureLow => "pressure_low",
            AlertKind::PressureHigh => "pressure_high",
            AlertKind::Fault => "fault",
            AlertKind::Diagnostic => "diagnostic",
            AlertKind::ShortCycling => "short_cycling",
            AlertKind::NotCondensing => "not_condensing",
            AlertKind::EfficiencyFalling => "efficiency_falling",
            AlertKind::Silent => "silent",
            AlertKind::PressureForecast => "pressure_forecast",
        }
    }
}

/// How urgent an alert is, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs a look soon.
    Warning,
    /// Needs a visit.
    High,
    /// The home has, or is about to lose, heating.
    Critical,
}

/// One reading that supports an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it was read or worked out (UTC ms).
    pub at_ms: TimestampMs,
    /// What it is, e.g. `pressure_bar`, `heating_starts_per_hour`.
    pub what: String,
    /// Its value, in `unit`.
    pub value: f64,
    /// Its unit, e.g. `bar`, `°C`, `starts/h`.
    pub unit: String,
}

impl Evidence {
    fn new(at_ms: TimestampMs, what: &str, value: f64, unit: &str) -> Self {
        Self {
            at_ms,
            what: what.to_owned(),
            value,
            unit: unit.to_owned(),
        }
    }
}

/// A member of staff's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Who (their staff id).
    pub by: String,
    /// When (UTC ms).
    pub at_ms: TimestampMs,
    /// What they noted.
    pub note: Option<String>,
}

/// One alert, open or closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The boiler's asset id.
    pub asset: String,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent: the worst while it has been open.
    pub severity: Severity,
    /// When it opened (UTC ms): the time of the observation that opened it.
    pub opened_at_ms: TimestampMs,
    /// The readings that triggered it, then the latest that kept it open (bounded).
    pub evidence: Vec<Evidence>,
    /// Staff's acknowledgement, if any.
    pub ack: Option<Ack>,
    /// When it closed (UTC ms); `None` while open.
    pub closed_at_ms: Option<TimestampMs>,
    /// The readings that closed it.
    pub closing_evidence: Vec<Evidence>,
}

impl Alert {
    fn add_evidence(&mut self, evidence: &[Evidence]) {
        for item in evidence {
            if self.evidence.len() < MAX_EVIDENCE {
                self.evidence.push(item.clone());
            } else if let Some(last) = self.evidence.last_mut() {
                *last = item.clone();
            }
        }
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    /// It opened.
    Opened(Alert),
    /// Its severity rose while open.
    Escalated(Alert),
    /// It closed; it is no longer among the open ones.
    Closed(Alert),
}

impl AlertEvent {
    /// The alert concerned.
    pub fn alert(&self) -> &Alert {
        match self {
            AlertEvent::Opened(a) | AlertEvent::Escalated(a) | AlertEvent::Closed(a) => a,
        }
    }
}

/// Thresholds, hysteresis bands and counts. Defaults as the asset managers asked for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertThresholds {
    /// Pressure below this is a warning, bar.
    pub pressure_warning_below_bar: f64,
    /// Pressure below this is critical, bar.
    pub pressure_critical_below_bar: f64,
    /// Pressure above this is high, bar.
    pub pressure_high_above_bar: f64,
    /// A pressure alert clears only this far back past its threshold, bar.
    pub pressure_band_bar: f64,
    /// Consecutive samples a per-sample condition must hold for to open.
    pub open_after_samples: u32,
    /// Consecutive samples past the band for a per-sample alert to close.
    pub close_after_samples: u32,
    /// More heating starts an hour than this is short cycling.
    pub short_cycling_starts_per_hour: f64,
    /// Short cycling clears at this many starts an hour or fewer.
    pub short_cycling_clear_starts_per_hour: f64,
    /// Consecutive hours of short cycling to open.
    pub short_cycling_hours: u32,
    /// A mean return above this while firing is not condensing, °C.
    pub not_condensing_return_c: f64,
    /// Not condensing clears this far below its threshold, °C.
    pub not_condensing_band_c: f64,
    /// Consecutive firing hours not condensing to open.
    pub not_condensing_hours: u32,
    /// An hour counts for not condensing only with this much firing, min.
    pub min_firing_min_per_hour: f64,
    /// Consecutive hours past the band for an hourly alert to close.
    pub close_after_hours: u32,
    /// A day this many points below the boiler's median is efficiency falling.
    pub efficiency_drop_points: f64,
    /// It clears within this many points of the median.
    pub efficiency_clear_points: f64,
    /// The median is over this many days.
    pub efficiency_history_days: usize,
    /// And needs at least this many.
    pub efficiency_min_history_days: usize,
    /// No sample for this many sample intervals is silence.
    pub silent_intervals: u32,
    /// A forecast crossing within this many days opens an alert.
    pub forecast_within_days: i64,
    /// It clears when the crossing is further off than this, or there is no leak.
    pub forecast_clear_days: i64,
    /// Hours and days with less coverage than this say nothing either way.
    pub min_coverage: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            pressure_warning_below_bar: 1.0,
            pressure_critical_below_bar: 0.5,
            pressure_high_above_bar: 2.5,
            pressure_band_bar: 0.1,
            open_after_samples: 2,
            close_after_samples: 3,
            short_cycling_starts_per_hour: 6.0,
            short_cycling_clear_starts_per_hour: 4.0,
            short_cycling_hours: 3,
            not_condensing_return_c: 55.0,
            not_condensing_band_c: 2.0,
            not_condensing_hours: 2,
            min_firing_min_per_hour: 10.0,
            close_after_hours: 2,
            efficiency_drop_points: 5.0,
            efficiency_clear_points: 3.0,
            efficiency_history_days: 30,
            efficiency_min_history_days: 7,
            silent_intervals: 3,
            forecast_within_days: 14,
            forecast_clear_days: 21,
            min_coverage: 0.5,
        }
    }
}

/// A condition's streaks: consecutive observations with it holding, and past its band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Streak {
    holding: u32,
    clear: u32,
    /// The evidence of the observations in the current holding streak (bounded).
    pending: Vec<Evidence>,
}

/// What one observation did to a condition.
enum Step {
    Nothing,
    Open(Vec<Evidence>),
    Close(Vec<Evidence>),
    Hold(Vec<Evidence>),
}

/// An observation of a condition: it holds, it is past its band (cleared), or it is in between
/// (neither: both streaks restart, so nothing opens or closes on a reading at the threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Holds,
    Between,
    Clear,
}

fn seen(holds: bool, clear: bool) -> Seen {
    match (holds, clear) {
        (true, _) => Seen::Holds,
        (false, true) => Seen::Clear,
        (false, false) => Seen::Between,
    }
}

impl Streak {
    fn step(
        &mut self,
        seen: Seen,
        is_open: bool,
        open_after: u32,
        close_after: u32,
        evidence: Vec<Evidence>,
    ) -> Step {
        match seen {
            Seen::Holds => {
                self.clear = 0;
                self.holding = self.holding.saturating_add(1);
                if is_open {
                    return Step::Hold(evidence);
                }
                if self.pending.len() < MAX_EVIDENCE {
                    self.pending.extend(evidence);
                }
                if self.holding >= open_after.max(1) {
                    Step::Open(std::mem::take(&mut self.pending))
                } else {
                    Step::Nothing
                }
            }
            Seen::Between => {
                self.holding = 0;
                self.clear = 0;
                self.pending.clear();
                Step::Nothing
            }
            Seen::Clear => {
                self.holding = 0;
                self.pending.clear();
                self.clear = self.clear.saturating_add(1);
                if is_open && self.clear >= close_after.max(1) {
                    Step::Close(evidence)
                } else {
                    Step::Nothing
                }
            }
        }
    }
}

/// One daily efficiency, as the median remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct DayEfficiency {
    day_start_ms: TimestampMs,
    pct: f64,
    basis: Basis,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No alert of that kind is open on the boiler.
    #[error("no open {} alert on {asset}", kind.as_str())]
    NotOpen {
        /// The boiler.
        asset: String,
        /// The kind asked for.
        kind: AlertKind,
    },
}

/// One boiler's alerts and the state their conditions need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoilerAlerts {
    asset: String,
    sample_interval_ms: i64,
    open: BTreeMap<AlertKind, Alert>,
    streaks: BTreeMap<String, Streak>,
    newest_sample_ms: Option<TimestampMs>,
    last_received_ms: Option<TimestampMs>,
    newest_hour_ms: Option<TimestampMs>,
    newest_day_ms: Option<TimestampMs>,
    days: VecDeque<DayEfficiency>,
}

impl BoilerAlerts {
    /// A boiler with no alerts, sampled every `sample_interval_ms`.
    pub fn new(asset: impl Into<String>, sample_interval_ms: i64) -> Self {
        Self {
            asset: asset.into(),
            sample_interval_ms: sample_interval_ms.max(1),
            open: BTreeMap::new(),
            streaks: BTreeMap::new(),
            newest_sample_ms: None,
            last_received_ms: None,
            newest_hour_ms: None,
            newest_day_ms: None,
            days: VecDeque::new(),
        }
    }

    /// The start of the newest hour evaluated (UTC ms).
    pub fn newest_hour_ms(&self) -> Option<TimestampMs> {
        self.newest_hour_ms
    }

    /// The start of the newest day evaluated (UTC ms).
    pub fn newest_day_ms(&self) -> Option<TimestampMs> {
        self.newest_day_ms
    }

    /// The open alerts, by kind.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// The open alert of `kind`, if any.
    pub fn get(&self, kind: AlertKind) -> Option<&Alert> {
        self.open.get(&kind)
    }

    /// Records staff's acknowledgement of the open alert of `kind`; a later one replaces it.
    pub fn acknowledge(&mut self, kind: AlertKind, ack: Ack) -> Result<&Alert, AckError> {
        let asset = self.asset.clone();
        let alert = self
            .open
            .get_mut(&kind)
            .ok_or(AckError::NotOpen { asset, kind })?;
        alert.ack = Some(ack);
        Ok(alert)
    }

    /// A sample the gateway received at `received_ms` (its own clock). Call it for every sample
    /// stored, fresh or not: any sample ends silence; only one newer than every other drives the
    /// per-sample conditions.
    pub fn on_sample(
        &mut self,
        sample: &Sample,
        received_ms: TimestampMs,
        thresholds: &AlertThresholds,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        self.last_received_ms = Some(
            self.last_received_ms
                .map_or(received_ms, |t| t.max(received_ms)),
        );
        if self.open.contains_key(&AlertKind::Silent) {
            let evidence = vec![Evidence::new(received_ms, "sample_received", 1.0, "sample")];
            self.close(AlertKind::Silent, received_ms, evidence, &mut events);
        }
        if self
            .newest_sample_ms
            .is_some_and(|newest| sample.at_ms <= newest)
        {
            return events;
        }
        self.newest_sample_ms = Some(sample.at_ms);
        let t = thresholds;
        let at = sample.at_ms;
        let (open_after, close_after) = (t.open_after_samples, t.close_after_samples);

        if let Some(bar) = sample.pressure_bar.map(widen) {
            let evidence = || vec![Evidence::new(at, "pressure_bar", bar, "bar")];
            let low = seen(
                bar < t.pressure_warning_below_bar,
                bar >= t.pressure_warning_below_bar + t.pressure_band_bar,
            );
            let critical = seen(
                bar < t.pressure_critical_below_bar,
                bar >= t.pressure_critical_below_bar + t.pressure_band_bar,
            );
            let critical_open = self
                .get(AlertKind::PressureLow)
                .is_some_and(|a| a.severity == Severity::Critical);
            let critical_step = self.streak("pressure_critical").step(
                critical,
                critical_open,
                open_after,
                close_after,
                evidence(),
            );
            // Critical first, so that a sudden loss opens one critical alert, not a warning
            // escalated at once. Critical clears only with the alert (no de-escalation).
            let low_evidence = match critical_step {
                Step::Open(evidence) => {
                    self.raise(
                        AlertKind::PressureLow,
                        Severity::Critical,
                        at,
                        evidence,
                        &mut events,
                    );
                    Vec::new()
                }
                _ => evidence(),
            };
            self.apply(
                AlertKind::PressureLow,
                Severity::Warning,
                at,
                low,
                open_after,
                close_after,
                low_evidence,
                &mut events,
            );
            let high = seen(
                bar > t.pressure_high_above_bar,
                bar <= t.pressure_high_above_bar - t.pressure_band_bar,
            );
            self.apply(
                AlertKind::PressureHigh,
                Severity::High,
                at,
                high,
                open_after,
                close_after,
                evidence(),
                &mut events,
            );
        }

        let flags = FaultFlags(sample.fault_flags.unwrap_or(0));
        let mut fault_evidence = Vec::new();
        if let Some(fault) = sample.fault {
            fault_evidence.push(Evidence::new(
                at,
                "fault",
                f64::from(u8::from(fault)),
                "flag",
            ));
        }
        if let Some(bits) = sample.fault_flags {
            fault_evidence.push(Evidence::new(at, "fault_flags", f64::from(bits), "bits"));
        }
        if let Some(code) = sample.oem_code {
            fault_evidence.push(Evidence::new(at, "oem_code", f64::from(code), "code"));
        }
        if !fault_evidence.is_empty() {
            let faulty = sample.reports_fault();
            let severity = if flags.lockout() || flags.low_water_pressure() {
                Severity::Critical
            } else {
                Severity::High
            };
            // A fault is the boiler's own statement: one sample opens it.
            self.apply(
                AlertKind::Fault,
                severity,
                at,
                seen(faulty, !faulty),
                1,
                close_after,
                fault_evidence,
                &mut events,
            );
        }
        if sample.diagnostic.is_some() || sample.fault_flags.is_some() {
            let on = sample.diagnostic == Some(true) || flags.service_request();
            let evidence = vec![Evidence::new(
                at,
                "diagnostic",
                f64::from(u8::from(on)),
                "flag",
            )];
            self.apply(
                AlertKind::Diagnostic,
                Severity::Warning,
                at,
                seen(on, !on),
                1,
                close_after,
                evidence,
                &mut events,
            );
        }
        events
    }

    /// A completed hour's rollup. Hours are taken in order; an hour no later than the newest
    /// seen changes nothing.
    pub fn on_hour(&mut self, hour: &Rollup, thresholds: &AlertThresholds) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        if self
            .newest_hour_ms
            .is_some_and(|newest| hour.start_ms <= newest)
        {
            return events;
        }
        self.newest_hour_ms = Some(hour.start_ms);
        let t = thresholds;
        let at = hour.end_ms;
        let known = hour.coverage() >= t.min_coverage;

        let starts = hour.heating_starts_best().filter(|_| known);
        let cycling = match starts {
            Some((starts, _)) => seen(
                starts > t.short_cycling_starts_per_hour,
                starts <= t.short_cycling_clear_starts_per_hour,
            ),
            None => Seen::Between,
        };
        let evidence = starts
            .map(|(starts, heating_only)| {
                let what = if heating_only {
                    "heating_starts_per_hour"
                } else {
                    "burner_starts_per_hour"
                };
                vec![Evidence::new(at, what, starts, "starts/h")]
            })
            .unwrap_or_default();
        self.apply(
            AlertKind::ShortCycling,
            Severity::Warning,
            at,
            cycling,
            t.short_cycling_hours,
            t.close_after_hours,
            evidence,
            &mut events,
        );

        let firing = hour.flame_on_min().unwrap_or(0.0) >= t.min_firing_min_per_hour;
        let mean_return = hour.return_c_firing.mean().filter(|_| known && firing);
        let condensing = match mean_return {
            Some(r) => seen(
                r > t.not_condensing_return_c,
                r <= t.not_condensing_return_c - t.not_condensing_band_c,
            ),
            None => Seen::Between,
        };
        let evidence = mean_return
            .map(|r| vec![Evidence::new(at, "mean_return_firing_c", r, "°C")])
            .unwrap_or_default();
        self.apply(
            AlertKind::NotCondensing,
            Severity::Warning,
            at,
            condensing,
            t.not_condensing_hours,
            t.close_after_hours,
            evidence,
            &mut events,
        );
        events
    }

    /// A completed local day's efficiency (`None` when the boiler did not fire). Days are taken
    /// in order; it is compared with the median of the boiler's own previous days on the same
    /// basis, then remembered.
    pub fn on_day(
        &mut self,
        day_start_ms: TimestampMs,
        efficiency: Option<&Efficiency>,
        thresholds: &AlertThresholds,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        if self
            .newest_day_ms
            .is_some_and(|newest| day_start_ms <= newest)
        {
            return events;
        }
        self.newest_day_ms = Some(day_start_ms);
        let t = thresholds;
        let Some(today) = efficiency.filter(|e| e.coverage >= t.min_coverage) else {
            return events;
        };
        let mut history: Vec<f64> = self
            .days
            .iter()
            .filter(|d| d.basis == today.basis)
            .map(|d| d.pct)
            .collect();
        if history.len() >= t.efficiency_min_history_days.max(1) {
            history.sort_by(f64::total_cmp);
            let mid = history.len() / 2;
            let median = if history.len() % 2 == 0 {
                (history[mid - 1] + history[mid]) / 2.0
            } else {
                history[mid]
            };
            let at = today.end_ms;
            let falling = seen(
                today.pct < median - t.efficiency_drop_points,
                today.pct >= median - t.efficiency_clear_points,
            );
            let evidence = vec![
                Evidence::new(at, "efficiency_pct", today.pct, "%"),
                Evidence::new(at, "median_efficiency_pct", median, "%"),
            ];
            self.apply(
                AlertKind::EfficiencyFalling,
                Severity::Warning,
                at,
                falling,
                1,
                1,
                evidence,
                &mut events,
            );
        }
        self.days.push_back(DayEfficiency {
            day_start_ms,
            pct: today.pct,
            basis: today.basis,
        });
        while self.days.len() > t.efficiency_history_days.max(1) {
            self.days.pop_front();
        }
        events
    }

    /// The latest pressure forecast (`None`: not leaking, or too little data), at `now_ms`.
    pub fn on_forecast(
        &mut self,
        forecast: Option<&PressureForecast>,
        now_ms: TimestampMs,
        thresholds: &AlertThresholds,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let t = thresholds;
        let days = forecast.map(|f| f.days_until(now_ms));
        let observed = match days {
            Some(days) => seen(days <= t.forecast_within_days, days > t.forecast_clear_days),
            None => Seen::Clear,
        };
        let evidence = forecast
            .map(|f| {
                vec![
                    Evidence::new(
                        now_ms,
                        "pressure_trend_bar_per_day",
                        f.slope_bar_per_day,
                        "bar/day",
                    ),
                    Evidence::new(now_ms, "pressure_trend_bar", f.latest_trend_bar, "bar"),
                    Evidence::new(
                        now_ms,
                        "days_until_below_1_bar",
                        days.unwrap_or(0) as f64,
                        "days",
                    ),
                ]
            })
            .unwrap_or_else(|| vec![Evidence::new(now_ms, "pressure_trend_leaking", 0.0, "flag")]);
        self.apply(
            AlertKind::PressureForecast,
            Severity::Warning,
            now_ms,
            observed,
            1,
            1,
            evidence,
            &mut events,
        );
        events
    }

    /// The clock: opens a silence alert when no sample has arrived for the set number of
    /// sample intervals. A boiler that has never reported is not silent: it is not commissioned.
    pub fn on_tick(
        &mut self,
        now_ms: TimestampMs,
        thresholds: &AlertThresholds,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let Some(last) = self.last_received_ms else {
            return events;
        };
        let quiet_ms = now_ms - last;
        let limit = self
            .sample_interval_ms
            .saturating_mul(i64::from(thresholds.silent_intervals.max(1)));
        if quiet_ms > limit && !self.open.contains_key(&AlertKind::Silent) {
            let evidence = vec![
                Evidence::new(last, "last_sample_received", 0.0, "ms"),
                Evidence::new(now_ms, "silent_for_s", quiet_ms as f64 / 1000.0, "s"),
            ];
            self.raise(
                AlertKind::Silent,
                Severity::Warning,
                now_ms,
                evidence,
                &mut events,
            );
        }
        events
    }

    fn streak(&mut self, name: &str) -> &mut Streak {
        self.streaks.entry(name.to_owned()).or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        kind: AlertKind,
        severity: Severity,
        at: TimestampMs,
        observed: Seen,
        open_after: u32,
        close_after: u32,
        evidence: Vec<Evidence>,
        events: &mut Vec<AlertEvent>,
    ) {
        let is_open = self.open.contains_key(&kind);
        let step =
            self.streak(kind.as_str())
                .step(observed, is_open, open_after, close_after, evidence);
        match step {
            Step::Nothing => {}
            Step::Open(evidence) => self.raise(kind, severity, at, evidence, events),
            Step::Hold(evidence) => {
                if let Some(alert) = self.open.get_mut(&kind) {
                    alert.add_evidence(&evidence);
                }
                if severity > self.open.get(&kind).map_or(severity, |a| a.severity) {
                    self.raise(kind, severity, at, Vec::new(), events);
                }
            }
            Step::Close(evidence) => self.close(kind, at, evidence, events),
        }
    }

    /// Opens an alert, or raises an open one's severity.
    fn raise(
        &mut self,
        kind: AlertKind,
        severity: Severity,
        at: TimestampMs,
        evidence: Vec<Evidence>,
        events: &mut Vec<AlertEvent>,
    ) {
        match self.open.get_mut(&kind) {
            Some(alert) => {
                alert.add_evidence(&evidence);
                if severity > alert.severity {
                    alert.severity = severity;
                    events.push(AlertEvent::Escalated(alert.clone()));
                }
            }
            None => {
                let mut alert = Alert {
                    asset: self.asset.clone(),
                    kind,
                    severity,
                    opened_at_ms: at,
                    evidence: Vec::new(),
                    ack: None,
                    closed_at_ms: None,
                    closing_evidence: Vec::new(),
                };
                alert.add_evidence(&evidence);
                events.push(AlertEvent::Opened(alert.clone()));
                self.open.insert(kind, alert);
            }
        }
    }

    fn close(
        &mut self,
        kind: AlertKind,
        at: TimestampMs,
        evidence: Vec<Evidence>,
        events: &mut Vec<AlertEvent>,
    ) {
        if let Some(mut alert) = self.open.remove(&kind) {
            alert.closed_at_ms = Some(at);
            alert.closing_evidence = evidence;
            events.push(AlertEvent::Closed(alert));
        }
        if kind == AlertKind::PressureLow {
            *self.streak("pressure_critical") = Streak::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boilers::rollup::tests::{sample, MIN, T0};
    use crate::boilers::rollup::{Stat, HOUR_MS};

    fn t() -> AlertThresholds {
        AlertThresholds::default()
    }

    fn boiler() -> BoilerAlerts {
        BoilerAlerts::new("B-1", MIN)
    }

    fn pressure(i: i64, bar: f32) -> Sample {
        Sample {
            pressure_bar: Some(bar),
            ..sample(T0 + i * MIN)
        }
    }

    /// Feeds samples one a minute from `start`, returning every event.
    fn feed(
        alerts: &mut BoilerAlerts,
        start: i64,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for (i, s) in samples.into_iter().enumerate() {
            let at = T0 + (start + i as i64) * MIN;
            let s = Sample { at_ms: at, ..s };
            events.extend(alerts.on_sample(&s, at, &t()));
        }
        events
    }

    fn bars(values: &[f32]) -> Vec<Sample> {
        values.iter().map(|b| pressure(0, *b)).collect()
    }

    /// An alert's evidence as (what, value) pairs.
    fn evidence_of(event: &AlertEvent) -> Vec<(&str, f64)> {
        event
            .alert()
            .evidence
            .iter()
            .map(|e| (e.what.as_str(), e.value))
            .collect()
    }

    fn kinds(events: &[AlertEvent]) -> Vec<(&'static str, AlertKind, Severity)> {
        events
            .iter()
            .map(|e| {
                let name = match e {
                    AlertEvent::Opened(_) => "opened",
                    AlertEvent::Escalated(_) => "escalated",
                    AlertEvent::Closed(_) => "closed",
                };
                (name, e.alert().kind, e.alert().severity)
            })
            .collect()
    }

    #[test]
    fn low_pressure_opens_with_its_evidence_holds_at_the_threshold_and_closes_past_the_band() {
        let mut alerts = boiler();
        // Wavering at the threshold before it is really low: never two lows in a row.
        assert!(feed(&mut alerts, 0, bars(&[0.99, 1.01, 0.99, 1.02, 0.98, 1.0])).is_empty());
        let events = feed(&mut alerts, 6, bars(&[0.95, 0.93]));
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::PressureLow, Severity::Warning)]
        );
        let alert = events[0].alert();
        assert_eq!(alert.opened_at_ms, T0 + 7 * MIN);
        let values: Vec<f64> = alert.evidence.iter().map(|e| e.value).collect();
        assert_eq!(values, vec![0.95, 0.93]);
        assert_eq!(alert.evidence[0].what, "pressure_bar");
        // Wavering around 1 bar while open: still the one alert.
        assert!(feed(
            &mut alerts,
            8,
            bars(&[1.02, 0.98, 1.05, 0.99, 1.09, 1.12, 1.0])
        )
        .is_empty());
        assert!(alerts.get(AlertKind::PressureLow).is_some());
        // Three in a row past 1.1 bar close it, with the closing readings.
        let events = feed(&mut alerts, 15, bars(&[1.2, 1.3, 1.3]));
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::PressureLow, Severity::Warning)]
        );
        let closed = events[0].alert();
        assert_eq!(closed.closed_at_ms, Some(T0 + 17 * MIN));
        assert_eq!(closed.closing_evidence[0].value, 1.3);
        assert_eq!(alerts.open().count(), 0);
    }

    #[test]
    fn a_sudden_loss_is_critical_and_a_slow_one_escalates() {
        let mut sudden = boiler();
        let events = feed(&mut sudden, 0, bars(&[0.3, 0.3]));
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::PressureLow, Severity::Critical)]
        );
        let mut slow = boiler();
        let events = feed(&mut slow, 0, bars(&[0.8, 0.8, 0.6, 0.45, 0.4]));
        assert_eq!(
            kinds(&events),
            vec![
                ("opened", AlertKind::PressureLow, Severity::Warning),
                ("escalated", AlertKind::PressureLow, Severity::Critical),
            ]
        );
        // Refilled: it closes, critical as it was.
        let events = feed(&mut slow, 5, bars(&[1.5, 1.5, 1.5]));
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::PressureLow, Severity::Critical)]
        );
    }

    #[test]
    fn high_pressure_opens_above_2_5_bar_and_closes_at_2_4() {
        let mut alerts = boiler();
        let events = feed(&mut alerts, 0, bars(&[2.6, 2.7, 2.45, 2.5, 2.4, 2.4]));
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::PressureHigh, Severity::High)]
        );
        let events = feed(&mut alerts, 6, bars(&[2.3]));
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::PressureHigh, Severity::High)]
        );
    }

    #[test]
    fn resent_and_late_samples_are_evaluated_once() {
        let mut alerts = boiler();
        let low = pressure(5, 0.9);
        // The same sample three times, and an older one late: one observation.
        for s in [&low, &low, &low, &pressure(1, 0.9)] {
            assert!(alerts.on_sample(s, T0 + 10 * MIN, &t()).is_empty());
        }
        let events = alerts.on_sample(&pressure(6, 0.9), T0 + 10 * MIN, &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::PressureLow, Severity::Warning)]
        );
    }

    #[test]
    fn a_lockout_opens_a_critical_fault_at_once_and_closes_after_clean_samples() {
        let mut alerts = boiler();
        let lockout = Sample {
            fault: Some(true),
            fault_flags: Some(0x02),
            oem_code: Some(133),
            ..sample(0)
        };
        let clean = Sample {
            fault: Some(false),
            fault_flags: Some(0),
            oem_code: Some(0),
            ..sample(0)
        };
        let events = feed(&mut alerts, 0, [lockout.clone()]);
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::Fault, Severity::Critical)]
        );
        let evidence = evidence_of(&events[0]);
        assert_eq!(
            evidence,
            vec![("fault", 1.0), ("fault_flags", 2.0), ("oem_code", 133.0)]
        );
        // One clean sample between faulty ones does not close it.
        assert!(feed(
            &mut alerts,
            1,
            [clean.clone(), lockout, clean.clone(), clean.clone()]
        )
        .is_empty());
        let events = feed(&mut alerts, 5, [clean]);
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::Fault, Severity::Critical)]
        );
    }

    #[test]
    fn the_diagnostic_indication_opens_its_own_alert() {
        let mut alerts = boiler();
        let service = Sample {
            diagnostic: Some(true),
            ..sample(0)
        };
        let events = feed(&mut alerts, 0, [service]);
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::Diagnostic, Severity::Warning)]
        );
        let ok = Sample {
            diagnostic: Some(false),
            ..sample(0)
        };
        let events = feed(&mut alerts, 1, [ok.clone(), ok.clone(), ok]);
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::Diagnostic, Severity::Warning)]
        );
    }

    /// A completed hour `i` after T0, fully covered, firing `firing_min` with return `ret` and
    /// `starts` heating starts.
    fn hour(i: i64, starts: Option<f64>, firing_min: i64, ret: f64) -> Rollup {
        let n = firing_min as u32;
        Rollup {
            start_ms: T0 + i * HOUR_MS,
            end_ms: T0 + (i + 1) * HOUR_MS,
            covered_ms: HOUR_MS,
            flame_known_ms: HOUR_MS,
            flame_on_ms: firing_min * MIN,
            heating_starts: starts,
            return_c_firing: Stat {
                count: n,
                sum: f64::from(n) * ret,
                min: Some(ret),
                max: Some(ret),
            },
            ..Rollup::default()
        }
    }

    #[test]
    fn short_cycling_opens_after_three_hours_and_closes_after_two_calm_ones() {
        let mut alerts = boiler();
        let mut events = Vec::new();
        for (i, starts) in [8.0, 9.0].into_iter().enumerate() {
            events.extend(alerts.on_hour(&hour(i as i64, Some(starts), 30, 45.0), &t()));
        }
        // A gap breaks the run: the next bad hour is the first of a new one.
        events.extend(alerts.on_hour(&Rollup::empty(T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS), &t()));
        for i in 3..5 {
            events.extend(alerts.on_hour(&hour(i, Some(7.0), 30, 45.0), &t()));
        }
        assert!(events.is_empty(), "{events:?}");
        let events = alerts.on_hour(&hour(5, Some(12.0), 30, 45.0), &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::ShortCycling, Severity::Warning)]
        );
        let evidence: Vec<f64> = events[0].alert().evidence.iter().map(|e| e.value).collect();
        assert_eq!(evidence, vec![7.0, 7.0, 12.0]);
        assert_eq!(
            events[0].alert().evidence[0].what,
            "heating_starts_per_hour"
        );
        // 5 an hour is between the thresholds: still open; 4, then 3: closed.
        assert!(alerts
            .on_hour(&hour(6, Some(5.0), 30, 45.0), &t())
            .is_empty());
        assert!(alerts
            .on_hour(&hour(7, Some(4.0), 30, 45.0), &t())
            .is_empty());
        let events = alerts.on_hour(&hour(8, Some(3.0), 30, 45.0), &t());
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::ShortCycling, Severity::Warning)]
        );
        // An hour seen again changes nothing.
        assert!(alerts
            .on_hour(&hour(8, Some(30.0), 30, 45.0), &t())
            .is_empty());
    }

    #[test]
    fn not_condensing_opens_after_two_hot_firing_hours_and_closes_below_53() {
        let mut alerts = boiler();
        assert!(alerts.on_hour(&hour(0, None, 40, 60.0), &t()).is_empty());
        // Idle for an hour: it says nothing, and breaks the run.
        assert!(alerts.on_hour(&hour(1, None, 2, 60.0), &t()).is_empty());
        assert!(alerts.on_hour(&hour(2, None, 40, 58.0), &t()).is_empty());
        let events = alerts.on_hour(&hour(3, None, 40, 62.0), &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::NotCondensing, Severity::Warning)]
        );
        assert_eq!(events[0].alert().evidence[1].value, 62.0);
        assert!(alerts.on_hour(&hour(4, None, 40, 54.0), &t()).is_empty());
        assert!(alerts.on_hour(&hour(5, None, 40, 50.0), &t()).is_empty());
        let events = alerts.on_hour(&hour(6, None, 40, 48.0), &t());
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::NotCondensing, Severity::Warning)]
        );
    }

    fn day_efficiency(day: i64, pct: f64) -> (TimestampMs, Efficiency) {
        let start = T0 + day * 24 * HOUR_MS;
        (
            start,
            Efficiency {
                start_ms: start,
                end_ms: start + 24 * HOUR_MS,
                pct,
                basis: Basis::Estimated,
                coverage: 1.0,
                mean_return_firing_c: None,
            },
        )
    }

    #[test]
    fn efficiency_falling_against_the_boilers_own_median() {
        let mut alerts = boiler();
        for day in 0..10 {
            let (start, e) = day_efficiency(day, 90.0 + (day % 3) as f64 * 0.2);
            assert!(alerts.on_day(start, Some(&e), &t()).is_empty());
        }
        // Median 90.2: 85.5 is only 4.7 points below.
        let (start, e) = day_efficiency(10, 85.5);
        assert!(alerts.on_day(start, Some(&e), &t()).is_empty());
        let (start, e) = day_efficiency(11, 84.0);
        let events = alerts.on_day(start, Some(&e), &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::EfficiencyFalling, Severity::Warning)]
        );
        let evidence = evidence_of(&events[0]);
        assert_eq!(
            evidence,
            vec![("efficiency_pct", 84.0), ("median_efficiency_pct", 90.2)]
        );
        // Between the bands: open; back within 3 points: closed.
        let (start, e) = day_efficiency(12, 86.0);
        assert!(alerts.on_day(start, Some(&e), &t()).is_empty());
        let (start, e) = day_efficiency(13, 88.5);
        let events = alerts.on_day(start, Some(&e), &t());
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::EfficiencyFalling, Severity::Warning)]
        );
    }

    #[test]
    fn silence_is_a_function_of_the_clock_and_ends_when_samples_resume() {
        let mut alerts = boiler();
        // Never reported: not silent.
        assert!(alerts.on_tick(T0 + 10 * HOUR_MS, &t()).is_empty());
        alerts.on_sample(&pressure(0, 1.5), T0, &t());
        assert!(alerts.on_tick(T0 + 3 * MIN, &t()).is_empty());
        let events = alerts.on_tick(T0 + 3 * MIN + 1, &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::Silent, Severity::Warning)]
        );
        assert_eq!(events[0].alert().evidence[0].at_ms, T0);
        assert!(alerts.on_tick(T0 + 30 * MIN, &t()).is_empty());
        // The hub's backlog arrives: even an old sample shows it is alive.
        let events = alerts.on_sample(&pressure(-5, 1.5), T0 + 31 * MIN, &t());
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::Silent, Severity::Warning)]
        );
        assert_eq!(events[0].alert().closed_at_ms, Some(T0 + 31 * MIN));
    }

    #[test]
    fn a_forecast_within_14_days_opens_and_a_refill_closes_it() {
        let mut alerts = boiler();
        let leak = |days: i64| PressureForecast {
            slope_bar_per_day: -0.03,
            below_threshold_at_ms: T0 + days * 24 * HOUR_MS,
            latest_trend_bar: 1.0 + 0.03 * days as f64,
            days_used: 14,
        };
        assert!(alerts.on_forecast(Some(&leak(20)), T0, &t()).is_empty());
        let events = alerts.on_forecast(Some(&leak(10)), T0, &t());
        assert_eq!(
            kinds(&events),
            vec![("opened", AlertKind::PressureForecast, Severity::Warning)]
        );
        assert_eq!(events[0].alert().evidence[2].value, 10.0);
        // Further off, but not past 21 days: still open.
        assert!(alerts.on_forecast(Some(&leak(18)), T0, &t()).is_empty());
        let events = alerts.on_forecast(None, T0, &t());
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::PressureForecast, Severity::Warning)]
        );
    }

    #[test]
    fn staff_acknowledge_open_alerts_and_the_state_survives_a_restart() {
        let mut alerts = boiler();
        feed(&mut alerts, 0, bars(&[0.9, 0.9]));
        let ack = Ack {
            by: "am-17".to_owned(),
            at_ms: T0 + HOUR_MS,
            note: Some("tenant told to top up; visit booked".to_owned()),
        };
        let acked = alerts
            .acknowledge(AlertKind::PressureLow, ack.clone())
            .unwrap();
        assert_eq!(acked.ack.as_ref(), Some(&ack));
        assert_eq!(
            alerts
                .acknowledge(AlertKind::Fault, ack)
                .unwrap_err()
                .to_string(),
            "no open fault alert on B-1"
        );
        let saved = serde_json::to_string(&alerts).unwrap();
        let mut restored: BoilerAlerts = serde_json::from_str(&saved).unwrap();
        assert_eq!(restored, alerts);
        // The restored state goes on where it was: three good readings close the alert.
        let events = feed(&mut restored, 2, bars(&[1.5, 1.5, 1.5]));
        assert_eq!(
            kinds(&events),
            vec![("closed", AlertKind::PressureLow, Severity::Warning)]
        );
        assert!(events[0].alert().ack.is_some());
    }
}
