//! A condensing gas combi boiler heating a council flat: the physics behind a simulated hub's
//! telemetry. Pure: no I/O and no clock. [`Boiler::advance`] moves it through a stretch of
//! simulated time at a given time of day, and [`Boiler::telemetry`] reads it as an OpenTherm
//! gateway would (temperatures in f8.8, as the protocol carries them).
//!
//! What one step applies, in order:
//! - **weather**: the outside temperature follows a daily curve (coldest before dawn, warmest mid
//!   afternoon) with a slow random drift;
//! - **the resident**: a room thermostat with two heating periods (06:30–09:00 and 16:30–22:30,
//!   read in UTC, which is UK time in winter) and a night setback; hot-water draws (showers, taps,
//!   baths) at random, mostly in the morning and evening; a top-up of the system's pressure now
//!   and then once it has fallen below 1 bar;
//! - **the controls**: a weather-compensated flow setpoint; hot water before heating (a combi);
//!   the burner modulates between its minimum and maximum output and, when the flat needs less
//!   than the minimum, cycles on a temperature band with an anti-cycling delay;
//! - **the water**: one thermal mass for the system water, radiators emitting by the usual
//!   `((mean water − room) / 50)^1.3` law, and the return set by the pump's mass flow;
//! - **the flue**: condensing efficiency from the return temperature ([`efficiency`]);
//! - **the meters**: gas (m³) from output ÷ efficiency, heat (kWh) where a meter is fitted, burner
//!   starts and hours;
//! - **the faults** ([`Fault`]), each from its onset.
//!
//! Every random choice comes from one RNG seeded per boiler, so a run is reproducible.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use proto::Telemetry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Energy in a cubic metre of natural gas as a UK bill counts it (39.5 MJ/m³ calorific value,
/// volume correction 1.02264), in kWh.
pub const GAS_KWH_PER_M3: f64 = 11.2;
/// Specific heat of water, kJ/(kg·K).
const WATER_KJ_PER_KG_K: f64 = 4.186;
/// The longest step the integration takes, in seconds; longer stretches are cut into steps.
const MAX_STEP_S: f64 = 10.0;
/// Mains cold water temperature in winter, °C.
const COLD_MAINS_C: f64 = 10.0;
/// The combi's hot-water setpoint, °C.
const DHW_SETPOINT_C: f64 = 50.0;
/// Primary flow temperature while heating hot water, °C.
const DHW_PRIMARY_FLOW_C: f64 = 65.0;
/// Below this pressure the boiler's pressure switch locks it out, bar.
pub const LOCKOUT_BAR: f64 = 0.5;
/// A resident tops the system up once its cold pressure has fallen below this, bar.
const REFILL_BELOW_BAR: f64 = 0.9;
/// The pressure a drained system settles at (the static head of the water above the gauge), bar.
const MIN_COLD_BAR: f64 = 0.1;
/// Pressure rise per kelvin of system water above 20 °C (the expansion vessel), bar/K.
const EXPANSION_BAR_PER_K: f64 = 0.012;
/// The control setpoint a thermostat sends when it does not call for heat (OpenTherm id 1), °C.
const IDLE_SETPOINT_C: f64 = 10.0;
/// Heat from people, cooking and appliances, kW.
const INCIDENTAL_GAINS_KW: f64 = 0.35;
/// The OEM code shown for a low-pressure lockout (Vaillant's F.22, "dry fire").
pub const LOW_PRESSURE_OEM_CODE: u16 = 22;
/// OpenTherm id 5 fault flags: lockout-reset needed.
pub const FLAG_LOCKOUT: u8 = 0x02;
/// OpenTherm id 5 fault flags: low water pressure.
pub const FLAG_LOW_PRESSURE: u8 = 0x04;
/// OpenTherm id 5 fault flags: gas or flame fault.
pub const FLAG_GAS_FLAME: u8 = 0x08;
/// The leak rate of the low-pressure fault (a weeping relief valve), bar/day.
const FAULT_LEAK_BAR_PER_DAY: f64 = 3.0;

/// Combustion efficiency (gross output ÷ gas input) of a condensing boiler at a given return
/// temperature: about 96.5 % at 30 °C or below, 94 % at 50 °C, falling steeply past the flue
/// gases' dew point to about 86 % above 55 °C, where the boiler no longer condenses.
pub fn efficiency(return_c: f64) -> f64 {
    let r = return_c;
    if r <= 30.0 {
        0.965
    } else if r <= 50.0 {
        0.965 - (r - 30.0) * (0.025 / 20.0)
    } else if r <= 55.0 {
        0.94 - (r - 50.0) * (0.075 / 5.0)
    } else {
        (0.865 - (r - 55.0) * 0.0005).max(0.85)
    }
}

/// What goes wrong with a boiler, from its onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The burner fires for a minute or two and stops, dozens of times an hour: closed TRVs and
    /// a clogged heat exchanger leave too little water to take the heat, and the anti-cycling
    /// delay is set to nothing.
    ShortCycling,
    /// A weeping relief valve: the system loses pressure fast, nobody tops it up, and below
    /// [`LOCKOUT_BAR`] the boiler locks out.
    LowPressure,
    /// A lockout with this manufacturer's code (28 is an ignition failure on many makes).
    Code(u16),
    /// The flow temperature is left at 75 °C with no weather compensation (an installer's default
    /// never turned down): returns stay above 55 °C and the boiler does not condense.
    HotFlow,
    /// The hub stops reporting (its OpenTherm link or power is lost); the boiler carries on.
    Quiet,
}

/// A fault and when it starts, counted in simulated time from the boiler's creation.
///
/// Written `KIND[@ONSET]`: `short-cycling`, `low-pressure`, `code:28`, `hot-flow` or `quiet`, and an onset
/// such as `90s`, `30m` or `2h` (default: at once), e.g. `quiet@2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// The fault.
    pub fault: Fault,
    /// When it starts.
    pub onset: Duration,
}

/// A fault that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fault {input:?}: {reason}; expected KIND[@ONSET] with KIND short-cycling, \
     low-pressure, code:N, hot-flow or quiet and ONSET like 90s, 30m or 2h"
)]
pub struct FaultParseError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for FaultPlan {
    type Err = FaultParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| FaultParseError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (kind, onset) = match input.split_once('@') {
            Some((kind, onset)) => (
                kind,
                parse_duration(onset).ok_or_else(|| error("bad onset"))?,
            ),
            None => (input, Duration::ZERO),
        };
        let fault = match kind.trim() {
            "short-cycling" => Fault::ShortCycling,
            "low-pressure" => Fault::LowPressure,
            "quiet" => Fault::Quiet,
            "hot-flow" => Fault::HotFlow,
            other => match other.strip_prefix("code:") {
                Some(code) => Fault::Code(
                    code.parse()
                        .map_err(|_| error("the code must be a number 0 to 65535"))?,
                ),
                None => return Err(error("unknown kind")),
            },
        };
        Ok(Self { fault, onset })
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            Fault::ShortCycling => write!(f, "short-cycling")?,
            Fault::LowPressure => write!(f, "low-pressure")?,
            Fault::Code(code) => write!(f, "code:{code}")?,
            Fault::Quiet => write!(f, "quiet")?,
            Fault::HotFlow => write!(f, "hot-flow")?,
        }
        if !self.onset.is_zero() {
            write!(f, "@{}s", self.onset.as_secs())?;
        }
        Ok(())
    }
}

/// `90s`, `30m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A boiler's and its flat's physical constants, drawn once per boiler.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerSpec {
    /// The burner's maximum output, kW (a 24–30 kW combi).
    pub max_output_kw: f64,
    /// The burner's minimum output, kW (about a fifth of the maximum).
    pub min_output_kw: f64,
    /// The radiators' combined output at a 50 K difference between mean water and room, kW.
    pub radiators_kw_dt50: f64,
    /// The flat's heat loss per kelvin between inside and out, kW/K.
    pub heat_loss_kw_per_k: f64,
    /// The flat's thermal capacity, kWh/K.
    pub house_kwh_per_k: f64,
    /// The system water's (and boiler's) thermal capacity, kWh/K.
    pub water_kwh_per_k: f64,
    /// The pump's mass flow through the radiators, kg/s.
    pub pump_kg_per_s: f64,
    /// The weather-compensation slope: flow setpoint = 20 + slope × (20 − outside), °C.
    pub curve_slope: f64,
    /// Pressure after a top-up, cold, bar.
    pub fill_bar: f64,
    /// How fast the system loses pressure, bar/day (0 for a tight system).
    pub leak_bar_per_day: f64,
    /// Whether a heat meter is fitted (the gateway then computes efficiency from meters).
    pub heat_meter: bool,
    /// The day's mean outside temperature, °C.
    pub mean_outside_c: f64,
    /// Half the day's outside temperature swing, °C.
    pub daily_swing_c: f64,
    /// Seconds the burner must stay off before restarting on heating.
    pub anti_cycle_s: f64,
    /// The cycling band: the burner stops at setpoint + band and restarts below setpoint − band, K.
    pub cycle_band_k: f64,
}

impl BoilerSpec {
    /// A typical combi in a typical council flat in a British winter, varied by `rng`.
    pub fn typical(rng: &mut impl Rng) -> Self {
        let max_output_kw = [24.0, 25.0, 28.0, 30.0][rng.gen_range(0..4)];
        Self {
            max_output_kw,
            min_output_kw: max_output_kw * rng.gen_range(0.17..0.23),
            radiators_kw_dt50: rng.gen_range(5.5..9.0),
            heat_loss_kw_per_k: rng.gen_range(0.12..0.22),
            house_kwh_per_k: rng.gen_range(2.5..4.0),
            water_kwh_per_k: rng.gen_range(0.06..0.09),
            pump_kg_per_s: rng.gen_range(0.06..0.10),
            curve_slope: rng.gen_range(1.3..1.8),
            fill_bar: rng.gen_range(1.3..1.6),
            leak_bar_per_day: if rng.gen_bool(0.5) {
                rng.gen_range(0.05..0.25)
            } else {
                0.0
            },
            heat_meter: rng.gen_bool(0.4),
            mean_outside_c: rng.gen_range(3.0..8.0),
            daily_swing_c: rng.gen_range(2.0..4.5),
            anti_cycle_s: rng.gen_range(180.0..600.0),
            cycle_band_k: 5.0,
        }
    }
}

/// A hot-water draw in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    /// Seconds left.
    left_s: f64,
    /// Water drawn, kg/s.
    kg_per_s: f64,
}

/// One boiler and the flat it heats.
#[derive(Debug, Clone)]
pub struct Boiler {
    asset: String,
    spec: BoilerSpec,
    faults: Vec<FaultPlan>,
    rng: StdRng,
    /// Simulated seconds since creation (fault onsets count from here).
    elapsed_s: f64,
    /// The weather's random drift from the daily curve, K.
    drift_k: f64,
    outside_c: f64,
    room_c: f64,
    /// The room thermostat calls for heat.
    calling: bool,
    flow_c: f64,
    return_c: f64,
    dhw_c: f64,
    exhaust_c: f64,
    setpoint_c: f64,
    burner_kw: f64,
    flame: bool,
    /// `elapsed_s` when the burner last went out.
    off_since_s: f64,
    ch_active: bool,
    draw: Option<Draw>,
    /// Pressure with the system water at 20 °C, bar.
    cold_bar: f64,
    bar: f64,
    refills: u32,
    /// Fault flags and OEM code while locked out.
    lockout: Option<(u8, u16)>,
    starts: u32,
    burner_s: f64,
    gas_m3: f64,
    heat_kwh: f64,
}

impl Boiler {
    /// A boiler with asset id `asset`, its constants and history drawn from `seed`, developing
    /// `faults` at their onsets.
    pub fn new(asset: impl Into<String>, seed: u64, faults: Vec<FaultPlan>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let spec = BoilerSpec::typical(&mut rng);
        Self::with_spec(asset, spec, rng, faults)
    }

    /// A boiler with the given constants; `seed` drives its resident and weather.
    pub fn from_spec(
        asset: impl Into<String>,
        spec: BoilerSpec,
        seed: u64,
        faults: Vec<FaultPlan>,
    ) -> Self {
        Self::with_spec(asset, spec, StdRng::seed_from_u64(seed), faults)
    }

    fn with_spec(
        asset: impl Into<String>,
        spec: BoilerSpec,
        mut rng: StdRng,
        faults: Vec<FaultPlan>,
    ) -> Self {
        // A boiler some years into its life.
        let burner_hours: f64 = rng.gen_range(1500.0..15_000.0);
        let gas_m3 = burner_hours * rng.gen_range(0.8..1.2);
        let room_c = rng.gen_range(17.0..19.5);
        let cold_bar = spec.fill_bar - rng.gen_range(0.0..0.3);
        let heat_kwh = if spec.heat_meter {
            gas_m3 * GAS_KWH_PER_M3 * 0.9
        } else {
            0.0
        };
        Self {
            asset: asset.into(),
            faults,
            elapsed_s: 0.0,
            drift_k: 0.0,
            outside_c: spec.mean_outside_c,
            room_c,
            calling: false,
            flow_c: room_c + 5.0,
            return_c: room_c + 5.0,
            dhw_c: 30.0,
            exhaust_c: 20.0,
            setpoint_c: IDLE_SETPOINT_C,
            burner_kw: 0.0,
            flame: false,
            off_since_s: -3600.0,
            ch_active: false,
            draw: None,
            cold_bar,
            bar: cold_bar,
            refills: 0,
            lockout: None,
            starts: (burner_hours * rng.gen_range(1.5..4.0)) as u32,
            burner_s: burner_hours * 3600.0,
            gas_m3,
            heat_kwh,
            spec,
            rng,
        }
    }

    /// The boiler's asset id.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// Its constants.
    pub fn spec(&self) -> &BoilerSpec {
        &self.spec
    }

    /// Times a resident has topped the pressure up.
    pub fn refills(&self) -> u32 {
        self.refills
    }

    /// Whether the boiler is locked out.
    pub fn locked_out(&self) -> bool {
        self.lockout.is_some()
    }

    /// The room temperature, °C.
    pub fn room_c(&self) -> f64 {
        self.room_c
    }

    /// Whether the hub still reports (no [`Fault::Quiet`] has begun).
    pub fn reporting(&self) -> bool {
        !self.active(|f| f == Fault::Quiet)
    }

    /// An engineer's visit: faults that have begun are put right (the lockout reset, the leak
    /// fixed, the controls set properly, the hub's link restored) and the system is topped up to
    /// its fill pressure. Faults yet to begin still will.
    pub fn repair(&mut self) {
        let now = self.elapsed_s;
        self.faults.retain(|plan| plan.onset.as_secs_f64() > now);
        self.lockout = None;
        self.cold_bar = self.spec.fill_bar;
    }

    /// Advances the boiler by `dt` of simulated time starting at simulated time `at`.
    pub fn advance(&mut self, at: DateTime<Utc>, dt: Duration) {
        let total = dt.as_secs_f64();
        let start = f64::from(at.num_seconds_from_midnight()) / 3600.0;
        let mut done = 0.0;
        while done < total {
            let step = (total - done).min(MAX_STEP_S);
            let hour = (start + done / 3600.0) % 24.0;
            self.step(step, hour);
            done += step;
        }
    }

    /// What an OpenTherm gateway reads from the boiler now; `None` once the hub has gone quiet.
    pub fn telemetry(&self) -> Option<Telemetry> {
        if !self.reporting() {
            return None;
        }
        let modulation = if self.flame {
            self.burner_kw / self.spec.max_output_kw * 100.0
        } else {
            0.0
        };
        Some(Telemetry {
            asset: self.asset.clone(),
            flow: Some(f88(self.flow_c)),
            ret: Some(f88(self.return_c)),
            dhw: Some(f88(self.dhw_c)),
            out: Some(f88(self.outside_c)),
            exh: Some(self.exhaust_c.round() as f32),
            setp: Some(f88(self.setpoint_c)),
            bar: Some(f88(self.bar.max(0.0))),
            modu: Some(f88(modulation.clamp(0.0, 100.0))),
            flame: Some(self.flame),
            ch: Some(self.ch_active),
            dhw_on: Some(self.draw.is_some() && self.lockout.is_none()),
            fault: Some(self.lockout.is_some()),
            fflags: self.lockout.map(|(flags, _)| flags),
            oem: self.lockout.map(|(_, code)| code),
            starts: Some(self.starts),
            hours: Some((self.burner_s / 3600.0) as u32),
            gas: Some((self.gas_m3 * 1000.0).round() / 1000.0),
            heat: self
                .spec
                .heat_meter
                .then(|| (self.heat_kwh * 10.0).round() / 10.0),
            ..Telemetry::default()
        })
    }

    /// Whether a fault matching `which` has begun.
    fn active(&self, which: impl Fn(Fault) -> bool) -> bool {
        self.faults
            .iter()
            .any(|plan| which(plan.fault) && self.elapsed_s >= plan.onset.as_secs_f64())
    }

    /// One integration step of `dt` seconds at `hour` (0–24, UTC) of the day.
    fn step(&mut self, dt: f64, hour: f64) {
        self.elapsed_s += dt;
        let short_cycling = self.active(|f| f == Fault::ShortCycling);
        let leaking = self.active(|f| f == Fault::LowPressure);
        let hot_flow = self.active(|f| f == Fault::HotFlow);

        self.weather(dt, hour);
        self.pressure(dt, hour, leaking);
        self.check_lockout();
        self.hot_water_draws(dt, hour);

        // The room thermostat, with a little hysteresis.
        let wanted = if in_heating_period(hour) { 20.5 } else { 16.0 };
        if self.room_c < wanted - 0.3 {
            self.calling = true;
        } else if self.room_c > wanted + 0.3 {
            self.calling = false;
        }
        // Weather compensation, raised while the room is well below what the thermostat wants
        // (the controls' "room influence"), so a cold flat warms up in reasonable time.
        let boost = (3.0 * (wanted - self.room_c)).clamp(0.0, 15.0);
        let curve = if hot_flow {
            75.0
        } else {
            (20.0 + self.spec.curve_slope * (20.0 - self.outside_c) + boost).clamp(30.0, 75.0)
        };
        self.setpoint_c = if self.calling { curve } else { IDLE_SETPOINT_C };

        // What the faults change: little water to take the heat, radiators half shut, and no
        // band or delay to stop the burner restarting.
        let water_kj_per_k =
            self.spec.water_kwh_per_k * 3600.0 / if short_cycling { 8.0 } else { 1.0 };
        let radiators_kw = self.spec.radiators_kw_dt50 * if short_cycling { 0.6 } else { 1.0 };
        // An untouched installation also runs its pump flat out, so the water comes back hot.
        let pump_kg_per_s = self.spec.pump_kg_per_s * if hot_flow { 2.5 } else { 1.0 };
        let (band, anti_cycle) = if short_cycling {
            (1.5, 0.0)
        } else {
            (self.spec.cycle_band_k, self.spec.anti_cycle_s)
        };

        let was_lit = self.flame;
        let mut radiator_kw = 0.0;
        if self.lockout.is_some() {
            self.burner_kw = 0.0;
            self.flame = false;
            self.ch_active = false;
            radiator_kw = self.idle_water(dt, water_kj_per_k);
        } else if let Some(draw) = self.draw {
            // Hot water first: the diverter valve sends the primary water to the plate heat
            // exchanger; the radiators get none.
            self.ch_active = false;
            let demand = draw.kg_per_s * WATER_KJ_PER_KG_K * (DHW_SETPOINT_C - COLD_MAINS_C);
            self.burner_kw = demand.clamp(self.spec.min_output_kw, self.spec.max_output_kw);
            self.flame = true;
            let reach = COLD_MAINS_C + self.burner_kw / (draw.kg_per_s * WATER_KJ_PER_KG_K);
            approach(&mut self.dhw_c, reach.min(DHW_SETPOINT_C + 2.0), dt, 20.0);
            approach(&mut self.flow_c, DHW_PRIMARY_FLOW_C, dt, 60.0);
            let primary_return =
                COLD_MAINS_C + 22.0 + 10.0 * self.burner_kw / self.spec.max_output_kw;
            approach(&mut self.return_c, primary_return, dt, 30.0);
        } else if self.calling {
            self.ch_active = true;
            if self.flame {
                if self.flow_c > curve + band {
                    self.flame = false;
                }
            } else if self.flow_c < curve - band && self.elapsed_s - self.off_since_s >= anti_cycle
            {
                self.flame = true;
            }
            radiator_kw = self.emission(radiators_kw, pump_kg_per_s);
            self.burner_kw = if self.flame {
                // Modulate to hold the setpoint: the gain brings the water there in about two
                // minutes.
                (radiator_kw + water_kj_per_k / 120.0 * (curve - self.flow_c))
                    .clamp(self.spec.min_output_kw, self.spec.max_output_kw)
            } else {
                0.0
            };
            let delta_t = radiator_kw / (pump_kg_per_s * WATER_KJ_PER_KG_K);
            self.flow_c += (self.burner_kw - radiator_kw) * dt / water_kj_per_k;
            self.return_c = self.flow_c - delta_t;
        } else {
            self.ch_active = false;
            self.burner_kw = 0.0;
            self.flame = false;
            radiator_kw = self.idle_water(dt, water_kj_per_k);
        }
        if self.draw.is_none() {
            // The combi's hot-water sensor cools towards the boiler casing's temperature.
            approach(&mut self.dhw_c, self.room_c.max(25.0), dt, 900.0);
        }
        if self.flame && !was_lit {
            self.starts = self.starts.saturating_add(1);
        }
        if was_lit && !self.flame {
            self.off_since_s = self.elapsed_s;
        }

        // The flat: radiators in, fabric losses out.
        let loss_kw = self.spec.heat_loss_kw_per_k * (self.room_c - self.outside_c);
        self.room_c += (radiator_kw + INCIDENTAL_GAINS_KW - loss_kw) * dt
            / (self.spec.house_kwh_per_k * 3600.0);

        // The flue and the meters.
        if self.flame {
            let modulation = self.burner_kw / self.spec.max_output_kw * 100.0;
            approach(
                &mut self.exhaust_c,
                self.return_c + 5.0 + 0.1 * modulation,
                dt,
                30.0,
            );
            let input_kw = self.burner_kw / efficiency(self.return_c);
            self.gas_m3 += input_kw * dt / 3600.0 / GAS_KWH_PER_M3;
            self.heat_kwh += self.burner_kw * dt / 3600.0;
            self.burner_s += dt;
        } else {
            approach(&mut self.exhaust_c, 20.0, dt, 300.0);
        }

        let mean_water = (self.flow_c + self.return_c) / 2.0;
        self.bar = (self.cold_bar + EXPANSION_BAR_PER_K * (mean_water - 20.0).max(0.0)).max(0.0);
    }

    /// The outside temperature: the daily curve plus a drift that wanders over hours.
    fn weather(&mut self, dt: f64, hour: f64) {
        const DRIFT_TAU_S: f64 = 6.0 * 3600.0;
        const DRIFT_SD_K: f64 = 1.5;
        let sigma = DRIFT_SD_K * (2.0 / DRIFT_TAU_S).sqrt();
        self.drift_k +=
            -self.drift_k * dt / DRIFT_TAU_S + sigma * dt.sqrt() * normal(&mut self.rng);
        let daily = self.spec.mean_outside_c
            + self.spec.daily_swing_c * (2.0 * PI * (hour - 15.0) / 24.0).cos();
        self.outside_c = daily + self.drift_k;
    }

    /// The leak, and a resident's top-up in the daytime once the pressure has fallen (unless the
    /// low-pressure fault has begun: then nobody notices).
    fn pressure(&mut self, dt: f64, hour: f64, leaking: bool) {
        let leak = if leaking {
            FAULT_LEAK_BAR_PER_DAY
        } else {
            self.spec.leak_bar_per_day
        };
        // The leak slows to nothing as the system empties down to the static head.
        self.cold_bar = (self.cold_bar - leak * dt / 86_400.0).max(MIN_COLD_BAR);
        let daytime = (8.0..21.0).contains(&hour);
        // Noticed within a few hours on average.
        let noticed = 1.0 - (-dt / (4.0 * 3600.0)).exp();
        if !leaking && daytime && self.cold_bar < REFILL_BELOW_BAR && self.rng.gen_bool(noticed) {
            self.cold_bar = self.spec.fill_bar + self.rng.gen_range(-0.1..0.1);
            self.refills += 1;
        }
    }

    /// Locks out on a fault code or low pressure; a lockout stays until someone resets it (never,
    /// in the simulation).
    fn check_lockout(&mut self) {
        if self.lockout.is_some() {
            return;
        }
        let code = self.faults.iter().find_map(|plan| match plan.fault {
            Fault::Code(code) if self.elapsed_s >= plan.onset.as_secs_f64() => Some(code),
            _ => None,
        });
        if let Some(code) = code {
            self.lockout = Some((FLAG_LOCKOUT | FLAG_GAS_FLAME, code));
        } else if self.bar < LOCKOUT_BAR {
            self.lockout = Some((FLAG_LOW_PRESSURE, LOW_PRESSURE_OEM_CODE));
        }
    }

    /// Starts and ends hot-water draws: showers and taps in the morning, taps all day, baths and
    /// washing-up in the evening.
    fn hot_water_draws(&mut self, dt: f64, hour: f64) {
        if let Some(draw) = &mut self.draw {
            draw.left_s -= dt;
            if draw.left_s <= 0.0 {
                self.draw = None;
            }
            return;
        }
        let per_hour = match hour {
            h if (6.0..8.5).contains(&h) => 2.5,
            h if (8.5..10.0).contains(&h) => 0.8,
            h if (10.0..17.0).contains(&h) => 0.4,
            h if (17.0..21.0).contains(&h) => 1.5,
            h if (21.0..23.0).contains(&h) => 0.6,
            _ => 0.05,
        };
        let starts = 1.0 - (-per_hour * dt / 3600.0).exp();
        if !self.rng.gen_bool(starts) {
            return;
        }
        let morning = hour < 12.0;
        let roll: f64 = self.rng.gen();
        let (minutes, litres_per_minute) = if (morning && roll < 0.5) || (!morning && roll < 0.2) {
            (self.rng.gen_range(5.0..10.0), self.rng.gen_range(7.0..9.5))
        } else if !morning && roll < 0.35 {
            (self.rng.gen_range(6.0..9.0), self.rng.gen_range(11.0..13.0))
        } else {
            (self.rng.gen_range(0.3..2.0), self.rng.gen_range(4.0..6.0))
        };
        self.draw = Some(Draw {
            left_s: minutes * 60.0,
            kg_per_s: litres_per_minute / 60.0,
        });
    }

    /// Radiator emission with the pump running, kW: solves emission against the return it
    /// causes (the mean water temperature depends on both).
    fn emission(&self, radiators_kw_dt50: f64, pump_kg_per_s: f64) -> f64 {
        let capacity = pump_kg_per_s * WATER_KJ_PER_KG_K;
        let mut delta_t = (self.flow_c - self.return_c).max(0.0);
        let mut kw = 0.0;
        for _ in 0..4 {
            let excess = (self.flow_c - delta_t / 2.0 - self.room_c).max(0.0);
            kw = radiators_kw_dt50 * (excess / 50.0).powf(1.3);
            delta_t = kw / capacity;
        }
        kw
    }

    /// The pump is off: the water cools into the flat, flow and return settle together. Returns
    /// the heat given to the flat, kW.
    fn idle_water(&mut self, dt: f64, water_kj_per_k: f64) -> f64 {
        let before = (self.flow_c + self.return_c) / 2.0;
        approach(&mut self.flow_c, self.room_c, dt, 2400.0);
        approach(&mut self.return_c, self.flow_c, dt, 600.0);
        let after = (self.flow_c + self.return_c) / 2.0;
        ((before - after) * water_kj_per_k / dt).max(0.0)
    }
}

/// Whether the thermostat's programme wants the flat warm at `hour`.
fn in_heating_period(hour: f64) -> bool {
    (6.5..9.0).contains(&hour) || (16.5..22.5).contains(&hour)
}

/// Moves `value` towards `target` with time constant `tau` seconds over `dt` seconds.
fn approach(value: &mut f64, target: f64, dt: f64, tau: f64) {
    *value += (target - *value) * (1.0 - (-dt / tau).exp());
}

/// A standard normal deviate (Box–Muller), since rand 0.8 alone has no normal distribution.
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Rounds to OpenTherm's f8.8 (1/256 steps), the precision the protocol carries.
fn f88(value: f64) -> f32 {
    ((value * 256.0).round() / 256.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn midnight() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-13T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Runs `boiler` for `minutes`, sampling once a simulated minute.
    fn run(boiler: &mut Boiler, minutes: u32) -> Vec<Option<Telemetry>> {
        let mut at = midnight();
        (0..minutes)
            .map(|_| {
                boiler.advance(at, MINUTE);
                at += chrono::Duration::minutes(1);
                boiler.telemetry()
            })
            .collect()
    }

    #[test]
    fn efficiency_falls_as_the_return_warms() {
        let mut previous = efficiency(0.0);
        for tenth in 0..900 {
            let e = efficiency(f64::from(tenth) / 10.0);
            assert!(e <= previous, "not falling at {}", f64::from(tenth) / 10.0);
            previous = e;
        }
        assert!((efficiency(45.0) - 0.94).abs() < 0.01);
        assert!((efficiency(49.0) - 0.94).abs() < 0.01);
        assert!((efficiency(58.0) - 0.86).abs() < 0.01);
        assert!((efficiency(65.0) - 0.86).abs() < 0.01);
        assert!(efficiency(40.0) - efficiency(60.0) > 0.07);
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
        let a = run(&mut Boiler::new("B-1", 7, vec![]), 600);
        let b = run(&mut Boiler::new("B-1", 7, vec![]), 600);
        let c = run(&mut Boiler::new("B-1", 8, vec![]), 600);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn counters_never_go_back_and_gas_follows_the_load() {
        let mut boiler = Boiler::new("B-1", 3, vec![]);
        let samples: Vec<Telemetry> = run(&mut boiler, 2 * 24 * 60)
            .into_iter()
            .flatten()
            .collect();
        for pair in samples.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(b.starts >= a.starts);
            assert!(b.hours >= a.hours);
            assert!(b.gas >= a.gas);
            assert!(b.heat >= a.heat);
            if b.flame == Some(false) && a.flame == Some(false) {
                // Small rounding aside, no gas burns with the flame out.
                assert!(b.gas.unwrap() - a.gas.unwrap() < 0.01);
            }
        }
        let (first, last) = (&samples[0], &samples[samples.len() - 1]);
        let gas_kwh = (last.gas.unwrap() - first.gas.unwrap()) * GAS_KWH_PER_M3;
        // A winter flat burns tens of kWh a day; its boiler starts a few times an hour at most.
        assert!(
            (40.0..400.0).contains(&gas_kwh),
            "{gas_kwh} kWh in two days"
        );
        let starts = last.starts.unwrap() - first.starts.unwrap();
        assert!((10..=200).contains(&starts), "{starts} starts in two days");
        // Hot water was drawn, in the morning as well as the evening.
        let dhw_minutes: Vec<usize> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.dhw_on == Some(true))
            .map(|(minute, _)| minute % (24 * 60))
            .collect();
        assert!(dhw_minutes.iter().any(|m| (360..600).contains(m)));
        assert!(dhw_minutes.iter().any(|m| (1020..1380).contains(m)));
        // Every sample passes proto's checks.
        for sample in &samples {
            proto::Validate::validate(sample).unwrap();
        }
    }

    #[test]
    fn low_returns_condense_and_the_meters_agree_with_the_efficiency() {
        let mut spec = BoilerSpec::typical(&mut StdRng::seed_from_u64(1));
        spec.heat_meter = true;
        let mut boiler = Boiler::from_spec("B-1", spec, 1, vec![]);
        let samples: Vec<Telemetry> = run(&mut boiler, 24 * 60).into_iter().flatten().collect();
        let (first, last) = (&samples[0], &samples[samples.len() - 1]);
        let heat = last.heat.unwrap() - first.heat.unwrap();
        let gas = (last.gas.unwrap() - first.gas.unwrap()) * GAS_KWH_PER_M3;
        let seasonal = heat / gas;
        assert!((0.85..0.97).contains(&seasonal), "{seasonal}");
        // Weather compensation keeps most firing returns below the dew point.
        let firing: Vec<f32> = samples
            .iter()
            .filter(|s| s.flame == Some(true))
            .map(|s| s.ret.unwrap())
            .collect();
        let condensing = firing.iter().filter(|r| **r < 55.0).count();
        assert!(
            condensing * 2 > firing.len(),
            "{condensing} of {}",
            firing.len()
        );
    }

    #[test]
    fn pressure_leaks_and_residents_top_it_up() {
        let mut spec = BoilerSpec::typical(&mut StdRng::seed_from_u64(2));
        spec.leak_bar_per_day = 0.25;
        let mut boiler = Boiler::from_spec("B-1", spec, 2, vec![]);
        let start = boiler.cold_bar;
        run(&mut boiler, 24 * 60);
        assert!(
            boiler.cold_bar < start - 0.2,
            "{} from {start}",
            boiler.cold_bar
        );
        run(&mut boiler, 10 * 24 * 60);
        assert!(boiler.refills() >= 1);
        assert!(!boiler.locked_out());
    }

    #[test]
    fn a_low_pressure_fault_ends_in_a_lockout() {
        let fault = FaultPlan {
            fault: Fault::LowPressure,
            onset: Duration::from_secs(3600),
        };
        let mut boiler = Boiler::new("B-1", 4, vec![fault]);
        let samples: Vec<Telemetry> = run(&mut boiler, 24 * 60).into_iter().flatten().collect();
        assert!(samples[30].fault == Some(false));
        let bars: Vec<f32> = samples.iter().map(|s| s.bar.unwrap()).collect();
        assert!(bars.iter().any(|b| *b < 1.0));
        let last = samples.last().unwrap();
        assert_eq!(last.fault, Some(true));
        assert_eq!(last.fflags, Some(FLAG_LOW_PRESSURE));
        assert_eq!(last.oem, Some(LOW_PRESSURE_OEM_CODE));
        assert_eq!(last.flame, Some(false));
        assert_eq!(boiler.refills(), 0);
    }

    #[test]
    fn short_cycling_starts_the_burner_far_more_often() {
        let starts = |faults: Vec<FaultPlan>| {
            let mut boiler = Boiler::new("B-1", 5, faults);
            let samples: Vec<Telemetry> = run(&mut boiler, 24 * 60).into_iter().flatten().collect();
            samples.last().unwrap().starts.unwrap() - samples[0].starts.unwrap()
        };
        let healthy = starts(vec![]);
        let faulty = starts(vec!["short-cycling".parse().unwrap()]);
        // About nine hours of heating a day: a short-cycling boiler starts over six times an hour.
        assert!(faulty >= 3 * healthy.max(1), "{faulty} against {healthy}");
        assert!(faulty >= 60, "{faulty}");
    }

    #[test]
    fn a_fault_code_locks_out_with_its_code_and_the_flat_cools() {
        let mut boiler = Boiler::new("B-1", 6, vec!["code:28@6h".parse().unwrap()]);
        let samples: Vec<Telemetry> = run(&mut boiler, 24 * 60).into_iter().flatten().collect();
        assert!(samples[..6 * 60 - 1].iter().all(|s| s.fault == Some(false)));
        let after = &samples[6 * 60 + 1..];
        assert!(after.iter().all(|s| s.fault == Some(true)
            && s.oem == Some(28)
            && s.fflags == Some(FLAG_LOCKOUT | FLAG_GAS_FLAME)
            && s.flame == Some(false)));
        assert!(boiler.room_c() < 16.0);
    }

    #[test]
    fn a_hot_flow_does_not_condense_and_burns_more_gas() {
        let gas_per_heat = |faults: Vec<FaultPlan>| {
            let mut spec = BoilerSpec::typical(&mut StdRng::seed_from_u64(12));
            spec.heat_meter = true;
            let mut boiler = Boiler::from_spec("B-1", spec, 12, faults);
            let samples: Vec<Telemetry> = run(&mut boiler, 24 * 60).into_iter().flatten().collect();
            let firing: Vec<f32> = samples
                .iter()
                .filter(|s| s.flame == Some(true) && s.ch == Some(true))
                .map(|s| s.ret.unwrap())
                .collect();
            let hot = firing.iter().filter(|r| **r > 55.0).count() as f64 / firing.len() as f64;
            let (first, last) = (&samples[0], &samples[samples.len() - 1]);
            let heat = last.heat.unwrap() - first.heat.unwrap();
            let gas = (last.gas.unwrap() - first.gas.unwrap()) * GAS_KWH_PER_M3;
            (hot, heat / gas)
        };
        let (hot_share, hot_efficiency) = gas_per_heat(vec!["hot-flow".parse().unwrap()]);
        let (normal_share, normal_efficiency) = gas_per_heat(vec![]);
        assert!(hot_share > 0.5, "{hot_share}");
        assert!(normal_share < 0.1, "{normal_share}");
        assert!(hot_efficiency < normal_efficiency - 0.03);
    }

    #[test]
    fn a_repair_clears_begun_faults_only() {
        let mut boiler = Boiler::new(
            "B-1",
            8,
            vec!["code:28".parse().unwrap(), "quiet@10h".parse().unwrap()],
        );
        run(&mut boiler, 60);
        assert!(boiler.locked_out());
        boiler.repair();
        assert!(!boiler.locked_out());
        run(&mut boiler, 60);
        assert!(!boiler.locked_out());
        assert!(boiler.telemetry().is_some());
        run(&mut boiler, 10 * 60);
        assert!(boiler.telemetry().is_none());
    }

    #[test]
    fn a_quiet_hub_stops_reporting_at_its_onset() {
        let mut boiler = Boiler::new("B-1", 7, vec!["quiet@30m".parse().unwrap()]);
        let samples = run(&mut boiler, 60);
        assert!(samples[..29].iter().all(Option::is_some));
        assert!(samples[30..].iter().all(Option::is_none));
    }

    #[test]
    fn faults_parse_and_print() {
        let plan: FaultPlan = "code:28@2h".parse().unwrap();
        assert_eq!(plan.fault, Fault::Code(28));
        assert_eq!(plan.onset, Duration::from_secs(7200));
        assert_eq!(plan.to_string(), "code:28@7200s");
        assert_eq!(plan.to_string().parse::<FaultPlan>().unwrap(), plan);
        assert_eq!(
            "low-pressure".parse::<FaultPlan>().unwrap(),
            FaultPlan {
                fault: Fault::LowPressure,
                onset: Duration::ZERO
            }
        );
        assert!("flood".parse::<FaultPlan>().is_err());
        assert!("quiet@soon".parse::<FaultPlan>().is_err());
        assert!("code:x".parse::<FaultPlan>().is_err());
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    }
}
