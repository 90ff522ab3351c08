//! Boilers: what council homes' boiler hubs report, turned into what asset managers need. Pure
//! logic: no I/O, no async, no store. The gateway stores samples and rollups through the storage
//! seam and feeds fresh samples in; everything here is a function of what it was given and of the
//! time it was told.
//!
//! - [`register`]: the asset register, and whether a sample came from the asset's own hub.
//! - [`import`]: the register's CSV format and import, with errors by line.
//! - [`sample`]: a telemetry record as the domain reads it, units in its names.
//! - [`reading`]: plausibility checks per reading, ranges in one place.
//! - [`rollup`]: hourly and daily rollups kept current as samples arrive, in any order.
//! - [`efficiency`]: measured or estimated efficiency per hour, day and month.
//! - [`waste`]: gas wasted against each boiler's condensing potential, and the estate ranked.
//! - [`forecast`]: when a leaking system will fall below 1 bar.
//! - [`alerts`]: each boiler's alerts, opened and closed with evidence and hysteresis.

pub mod alerts;
pub mod efficiency;
pub mod forecast;
pub mod import;
pub mod reading;
pub mod register;
pub mod rollup;
pub mod sample;
pub mod waste;

pub use alerts::{
    Ack, AckError, Alert, AlertEvent, AlertKind, AlertThresholds, BoilerAlerts, Evidence, Severity,
};
pub use efficiency::{gas_kwh, Basis, CondensingCurve, Efficiency, EfficiencyConfig, Meters};
pub use forecast::{daily_minima, forecast, DailyMinimum, ForecastConfig, PressureForecast};
pub use import::{ImportError, ImportReport, RowError};
pub use reading::{check, Checked, Implausible, PlausibleRanges, Range, Reading};
pub use register::{Asset, AssetRegister, SourceCheck};
pub use rollup::{
    counter_step, day_rollup, hourly_series, merge_period, CounterLimit, CounterLimits,
    CounterStep, Folded, MemoryLog, Roller, Rollup, RollupConfig, Stat, TelemetryLog, HOUR_MS,
};
pub use sample::{FaultFlags, GapSpan, Sample};
pub use waste::{rank, BoilerFacts, Ranked, Waste, WasteConfig};
