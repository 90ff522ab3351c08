//! `gateway print-config`: the default configuration as a TOML file in which every option is
//! preceded by what it means and its default, ready to copy and edit.
//!
//! The values come from serializing [`GatewayConfig::default`], so they cannot drift from the
//! code; the words come from [`DESCRIPTIONS`], and options whose default is "none" (which TOML
//! cannot write) from [`UNSET`], shown commented out with an example. A test checks that every
//! option has its words, so a new option without them fails the build's tests.

use gateway::config::GatewayConfig;

/// What each option means, by its dotted path; the default is the value printed below it.
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("data_dir", "Directory of the embedded store (sled)."),
    ("cache_bytes", "The store's page cache, in bytes (64 MiB)."),
    ("mqtt", "Where the gateway gets devices' messages."),
    (
        "mqtt.listen",
        "Address of the embedded MQTT broker, used when no external `url` is set. Use \
         0.0.0.0:1883 to accept devices from the network.",
    ),
    (
        "mqtt.client_id",
        "The gateway's MQTT client id; its session persists across restarts.",
    ),
    (
        "mqtt.allow_anonymous",
        "Let any client connect to the embedded broker without credentials: no device is \
         authenticated, and any client can publish as any device or read its acks and jobs. \
         For tests and local experiments only (the gateway warns at every start). Off: every \
         connection needs a credential from `gateway devices add`.",
    ),
    (
        "mqtt.max_payload",
        "The largest MQTT payload accepted, in bytes (the protocol's limit, 256 KiB).",
    ),
    (
        "mqtt.device_publishes_per_s",
        "Publishes a second one device may send to the embedded broker, with a burst of twice \
         that; beyond it the broker reads nothing more from the device until it is back within \
         the rate. The gateway's own clients are not limited.",
    ),
    (
        "http",
        "The HTTP server: health, metrics, staff API, Open311.",
    ),
    (
        "http.listen",
        "Listen address. Staff's tokens are issued by `gateway staff add NAME --role ROLE`, \
         front ends' Open311 api_keys by `gateway integrations add NAME`; both are kept hashed \
         in the store, none in this file.",
    ),
    (
        "http.limits",
        "What one client may take of the HTTP server: bodies, time, connections, Open311 posts.",
    ),
    (
        "http.limits.max_body_bytes",
        "The largest request body of a route that sets no larger one of its own (the registers' \
         CSV imports, Open311's multipart uploads), in bytes.",
    ),
    (
        "http.limits.request_timeout_s",
        "Seconds a request may take, reading its body included, before it is answered 408 \
         (an event stream's limit is on its first byte).",
    ),
    (
        "http.limits.max_connections",
        "Open HTTP connections at most.",
    ),
    (
        "http.limits.max_connections_per_address",
        "Open HTTP connections from one client address (IPv6: one /64) at most.",
    ),
    (
        "http.limits.open311_posts_per_address",
        "Open311 posts (requests, comments) from one client address: a burst, then per_minute. \
         FixMyStreet posts every resident's report from its own server.",
    ),
    (
        "http.limits.open311_posts_per_key",
        "Open311 posts with one api_key: a burst, then per_minute.",
    ),
    (
        "http.limits.*.burst",
        "How many may come at once after a quiet spell.",
    ),
    ("http.limits.*.per_minute", "How many a minute, sustained."),
    ("devices", "The device registry."),
    (
        "signing",
        "Signed messages (COSE_Sign1, Ed25519): devices sign their envelopes with the key \
         `gateway devices add` issued, the gateway its acks and downlink messages with its own.",
    ),
    (
        "signing.required",
        "Refuse (quarantine) every envelope not signed by the device its topic names, and sign \
         every ack and downlink message. Turn off only while migrating agents that do not sign \
         yet: bare envelopes are then taken, a signed one is still checked, and acks and jobs \
         are signed only for devices that sign; the gateway warns at every start.",
    ),
    (
        "devices.provisioned",
        "Devices provisioned at start; records from others are kept but flagged.",
    ),
    (
        "devices.max_clock_skew_s",
        "Clock skew beyond which a device is flagged, in seconds.",
    ),
    (
        "missed_bins",
        "Missed-bin reports: the council's calendar, matching and dispatch.",
    ),
    (
        "missed_bins.dispatch",
        "Which device a return job goes to: \"last_on_round\" (the device that last reported \
         on the report's round, else the first of round_devices) or \"configured\" (always the \
         first of round_devices).",
    ),
    (
        "missed_bins.evidence_days",
        "How many days of crews' evidence to reload at start-up; well beyond the report window.",
    ),
    ("missed_bins.calendar", "The council's calendar."),
    (
        "missed_bins.calendar.tz",
        "The council's time zone, by its IANA name.",
    ),
    (
        "missed_bins.calendar.bank_holidays",
        "Days that are not working days although they fall Monday to Friday. The default is \
         England and Wales in 2026 only: configure your own years and local closures (a missing \
         holiday makes the report window a day short).",
    ),
    (
        "missed_bins.calendar.round_end",
        "When rounds are scheduled to have finished, local time: from then on a missed bin may \
         be reported on collection day even if the crew has sent nothing.",
    ),
    (
        "missed_bins.calendar.report_window_working_days",
        "How many working days after collection day a missed bin may still be reported.",
    ),
    (
        "missed_bins.matching",
        "How positions are matched to properties.",
    ),
    (
        "missed_bins.matching.tolerance_m",
        "How far (metres) a property may be from a perfect fix of the lorry; a resident's pin \
         may be twice as far.",
    ),
    (
        "missed_bins.matching.max_accuracy_m",
        "Fixes reporting a worse accuracy (metres) than this are not matched at all.",
    ),
    (
        "missed_bins.contact_retention_days",
        "Days after a report closes (collected, rejected or refused) that its resident's \
         contact details, words and comments are kept before they are purged; the report's \
         history and evidence stay.",
    ),
    (
        "missed_bins.round_devices",
        "Devices that take a round's return jobs, by round id, e.g. R1 = [\"cab-rcv07\"]. None \
         by default.",
    ),
    (
        "open311",
        "The Open311 GeoReport v2 interface for residents' front ends.",
    ),
    (
        "open311.extended_statuses",
        "Show FixMyStreet's extended statuses in GET requests (no_further_action for a \
         rejected or refused report, action_scheduled once a crew is sent) rather than only \
         open and closed, which FixMyStreet would show a rejection as: fixed. Turn off only for \
         a client that accepts nothing but open and closed.",
    ),
    (
        "open311.waste_only",
        "Add waste_only to every service's keywords, so that FixMyStreet offers the services \
         on its waste (WasteWorks) pages only, not on its map.",
    ),
];

/// The boilers' options (the `[boilers]` table comes with the storage seam's branch; words for a
/// table that is not there are never printed). A `*` stands for any one name.
const BOILER_DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "boilers",
        "Boilers: the domain's rules, how long raw telemetry is kept, the clock's tick.",
    ),
    (
        "boilers.raw_retention_days",
        "Days raw samples (and reported gaps) are kept; hourly rollups are kept for ever.",
    ),
    (
        "boilers.tick_s",
        "Seconds between the boilers' clock ticks: silence, completed hours and days, the \
         pressure forecast and the purge of old raw samples.",
    ),
    (
        "boilers.grace_s",
        "Seconds a completed hour or day waits for late samples before it is judged.",
    ),
    (
        "boilers.rules.ranges.*",
        "What this reading may plausibly be (°C, bar, %, m³ or kWh): outside, it is flagged and \
         left out.",
    ),
    ("boilers.rules.ranges.*.min", "The lowest plausible value."),
    ("boilers.rules.ranges.*.max", "The highest plausible value."),
    (
        "boilers.rules.rollup",
        "How hourly and daily rollups are made.",
    ),
    (
        "boilers.rules.rollup.sample_interval_ms",
        "How often hubs sample, in ms: the longest time one sample stands for.",
    ),
    (
        "boilers.rules.rollup.max_counter_span_ms",
        "Counter changes between samples further apart than this (ms) are not attributed to \
         any hour.",
    ),
    (
        "boilers.rules.rollup.max_lateness_ms",
        "Samples older than this (ms, by the gateway's clock) are refused; keep it well inside \
         the raw retention.",
    ),
    (
        "boilers.rules.rollup.max_ahead_ms",
        "Samples dated further than this (ms) ahead of the gateway's clock are refused.",
    ),
    (
        "boilers.rules.rollup.max_gap_span_ms",
        "A reported gap counts for at most this long (ms).",
    ),
    (
        "boilers.rules.rollup.counters.*",
        "The limits that tell this counter's real change from a reset, a wrap or garbage.",
    ),
    (
        "boilers.rules.rollup.counters.*.max_per_hour",
        "The most the counter can plausibly advance in an hour, in its unit.",
    ),
    (
        "boilers.rules.rollup.counters.*.slack",
        "Added to the hourly allowance, for counters that step in whole units.",
    ),
    (
        "boilers.rules.rollup.counters.*.wrap_at",
        "Where the counter wraps to zero (OpenTherm's ids 116–123 are 16-bit).",
    ),
    ("boilers.rules.efficiency", "How efficiency is worked out."),
    (
        "boilers.rules.efficiency.calorific_value_mj_per_m3",
        "The gas's calorific value, MJ/m³ (gross); bills state the month's.",
    ),
    (
        "boilers.rules.efficiency.min_metered_gas_m3",
        "Measured efficiency needs at least this much gas over the period, m³.",
    ),
    (
        "boilers.rules.efficiency.min_firing_samples",
        "Estimated efficiency needs at least this many samples with the flame on and a return \
         temperature.",
    ),
    (
        "boilers.rules.efficiency.plausible_measured_pct",
        "A measured efficiency outside this range (%) means a meter is wrong: the estimate is \
         used.",
    ),
    (
        "boilers.rules.efficiency.curve",
        "The condensing curve estimates are made from.",
    ),
    (
        "boilers.rules.efficiency.curve.points",
        "(return °C, efficiency %) in rising order of return temperature.",
    ),
    ("boilers.rules.waste", "How waste is valued."),
    (
        "boilers.rules.waste.target_return_c",
        "The return temperature, °C, a boiler should be brought below.",
    ),
    (
        "boilers.rules.waste.tariff_p_per_kwh",
        "What the council pays for gas, pence per kWh (default: Ofgem's cap, July–September \
         2024); set the contract rate.",
    ),
    (
        "boilers.rules.waste.co2e_kg_per_kwh",
        "kg CO₂e per kWh of gas burnt (gross CV), from the UK Government's conversion factors.",
    ),
    (
        "boilers.rules.waste.assumed_modulation_pct",
        "Mean modulation, %, assumed where a boiler without a gas meter does not report it.",
    ),
    (
        "boilers.rules.waste.min_coverage_to_rank",
        "Periods with less coverage than this are not ranked.",
    ),
    (
        "boilers.rules.forecast",
        "How the pressure forecast is made.",
    ),
    (
        "boilers.rules.forecast.threshold_bar",
        "The pressure to forecast reaching, bar.",
    ),
    (
        "boilers.rules.forecast.min_days",
        "Days of minima needed (since the last refill) before forecasting.",
    ),
    (
        "boilers.rules.forecast.window_days",
        "Only the latest this many days are used.",
    ),
    (
        "boilers.rules.forecast.min_leak_bar_per_day",
        "A fall slower than this, bar per day, is not a leak.",
    ),
    (
        "boilers.rules.forecast.refill_rise_bar",
        "A rise of the daily minimum by this much, bar, is a refill.",
    ),
    (
        "boilers.rules.forecast.min_day_coverage",
        "A day needs this share of its time with data for its minimum to count.",
    ),
    ("boilers.rules.alerts", "The alerts' thresholds."),
    (
        "boilers.rules.alerts.pressure_warning_below_bar",
        "Pressure below this is a warning, bar.",
    ),
    (
        "boilers.rules.alerts.pressure_critical_below_bar",
        "Pressure below this is critical, bar.",
    ),
    (
        "boilers.rules.alerts.pressure_high_above_bar",
        "Pressure above this is high, bar.",
    ),
    (
        "boilers.rules.alerts.pressure_band_bar",
        "A pressure alert clears only this far back past its threshold, bar.",
    ),
    (
        "boilers.rules.alerts.open_after_samples",
        "Consecutive samples a per-sample condition must hold for to open.",
    ),
    (
        "boilers.rules.alerts.close_after_samples",
        "Consecutive samples past the band for a per-sample alert to close.",
    ),
    (
        "boilers.rules.alerts.short_cycling_starts_per_hour",
        "More heating starts an hour than this is short cycling.",
    ),
    (
        "boilers.rules.alerts.short_cycling_clear_starts_per_hour",
        "Short cycling clears at this many starts an hour or fewer.",
    ),
    (
        "boilers.rules.alerts.short_cycling_hours",
        "Consecutive hours of short cycling to open.",
    ),
    (
        "boilers.rules.alerts.not_condensing_return_c",
        "A mean return above this while firing is not condensing, °C.",
    ),
    (
        "boilers.rules.alerts.not_condensing_band_c",
        "Not condensing clears this far below its threshold, °C.",
    ),
    (
        "boilers.rules.alerts.not_condensing_hours",
        "Consecutive firing hours not condensing to open.",
    ),
    (
        "boilers.rules.alerts.min_firing_min_per_hour",
        "An hour counts for not condensing only with this much firing, minutes.",
    ),
    (
        "boilers.rules.alerts.close_after_hours",
        "Consecutive hours past the band for an hourly alert to close.",
    ),
    (
        "boilers.rules.alerts.efficiency_drop_points",
        "A day this many points below the boiler's median is efficiency falling.",
    ),
    (
        "boilers.rules.alerts.efficiency_clear_points",
        "It clears within this many points of the median.",
    ),
    (
        "boilers.rules.alerts.efficiency_history_days",
        "The median is over this many days.",
    ),
    (
        "boilers.rules.alerts.efficiency_min_history_days",
        "And needs at least this many.",
    ),
    (
        "boilers.rules.alerts.silent_intervals",
        "No sample for this many sample intervals is silence.",
    ),
    (
        "boilers.rules.alerts.forecast_within_days",
        "A forecast crossing within this many days opens an alert.",
    ),
    (
        "boilers.rules.alerts.forecast_clear_days",
        "It clears when the crossing is further off than this, or there is no leak.",
    ),
    (
        "boilers.rules.alerts.min_coverage",
        "Hours and days with less coverage than this say nothing either way.",
    ),
    (
        "repairs",
        "Repairs: the operatives, how jobs are given to them, auto-raising and the attention time.",
    ),
    (
        "repairs.operatives",
        "The repairs operatives, each a [[repairs.operatives]] table with device (their \
         handheld's device id), name and patch (postcode districts such as \"UB10\", or whole \
         postcodes). None by default: jobs wait, raised, until one is configured.",
    ),
    (
        "repairs.rule",
        "Who takes a job: \"least_loaded\" (fewest open jobs, the first listed on a tie), \
         \"patch\" (the least loaded of those whose patch covers the home's postcode, else of \
         all) or \"named\" (the operative staff name when raising it, else the least loaded).",
    ),
    (
        "repairs.offline_limit_s",
        "Seconds a handheld may stay offline with a job it has not started (dispatched, \
         accepted, en route) before the job goes to another operative.",
    ),
    (
        "repairs.auto_raise",
        "Whether a critical alert (a lockout or fault, pressure below the critical threshold) \
         raises an emergency job by itself. Off: staff raise jobs.",
    ),
    (
        "repairs.attention_after_s",
        "Seconds after a job is completed within which its alert should clear; past that, the \
         job is flagged for attention.",
    ),
    (
        "repairs.tenant_priority",
        "The priority of a job a tenant's heating report raises when no alert is open: \
         \"emergency\", \"urgent\", \"routine\" or \"planned\".",
    ),
    (
        "repairs.tick_s",
        "Seconds between the repairs desk's ticks: sending what is unsent, reassigning, flagging.",
    ),
];

/// Options whose default is none, which TOML cannot write: (table, key, example, meaning).
const UNSET: &[(&str, &str, &str, &str)] = &[
    (
        "mqtt",
        "url",
        "\"mqtt://broker.example:1883\"",
        "An external broker (Mosquitto, EMQX…) instead of the embedded one. Default: none.",
    ),
    (
        "mqtt",
        "shared_group",
        "\"gateways\"",
        "With an external broker, subscribe through $share/GROUP/… so that several gateway \
         replicas share the devices. Default: none.",
    ),
    (
        "mqtt",
        "username",
        "\"gateway\"",
        "Username for the external broker. Default: none.",
    ),
    (
        "mqtt",
        "password",
        "\"…\"",
        "Password for the external broker. Default: none.",
    ),
    (
        "mqtt",
        "tls",
        "{ listen = \"0.0.0.0:8883\", cert = \"/etc/fieldsync/mqtt.pem\", key = \"/etc/fieldsync/mqtt.key\" }",
        "A TLS listener for the embedded broker (certificate chain and key as PEM), beside the \
         plain `listen`, which the gateway's own client keeps using: leave that on 127.0.0.1 to \
         give devices TLS only. Default: none.",
    ),
    (
        "http",
        "tls",
        "{ cert = \"/etc/fieldsync/http.pem\", key = \"/etc/fieldsync/http.key\" }",
        "Serve HTTPS instead of plain HTTP, with this certificate chain and key (PEM). Default: \
         none.",
    ),
    (
        "open311",
        "jurisdiction_id",
        "\"hillingdon.gov.uk\"",
        "The jurisdiction_id served; a request naming another gets 404. Default: none (any \
         value accepted).",
    ),
    (
        "boilers.rules.rollup.counters.gas_m3",
        "wrap_at",
        "100000.0",
        "Where the counter wraps to zero, if it does. Default: none (a meter that never wraps).",
    ),
    (
        "boilers.rules.rollup.counters.heat_kwh",
        "wrap_at",
        "100000.0",
        "Where the counter wraps to zero, if it does. Default: none (a meter that never wraps).",
    ),
];

/// The default configuration, commented: [`GatewayConfig::default_toml`] (which keeps the
/// options in the order the code declares them) with each option's words above it.
pub fn commented_default() -> String {
    let mut out = String::from(
        "# The fieldsync gateway's configuration, with every option at its default.\n\
         # Pass it with --config FILE; flags and FIELDSYNC_GATEWAY_* variables win over it.\n\n",
    );
    let mut table = String::new();
    for line in GatewayConfig::default_toml().lines() {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            write_unset(&mut out, &table);
            table = header.to_owned();
            comment(&mut out, describe(&table));
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !key.starts_with(' ') && !key.contains('"') {
                comment(&mut out, describe(&join(&table, key)));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    write_unset(&mut out, &table);
    out
}

/// The options of `table` that are unset by default, commented out with an example.
fn write_unset(out: &mut String, table: &str) {
    let mut any = false;
    for (table_path, key, example, meaning) in UNSET {
        if *table_path == table {
            comment(out, meaning);
            out.push_str(&format!("# {key} = {example}\n"));
            any = true;
        }
    }
    if any {
        out.push('\n');
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(path: &str) -> &'static str {
    DESCRIPTIONS
        .iter()
        .chain(BOILER_DESCRIPTIONS)
        .find(|(known, _)| matches_path(known, path))
        .map_or("(not described yet)", |(_, words)| words)
}

/// Whether `pattern` (dotted, `*` for any one name) names `path`.
fn matches_path(pattern: &str, path: &str) -> bool {
    let mut names = path.split('.');
    let all = pattern
        .split('.')
        .all(|want| names.next().is_some_and(|name| want == "*" || want == name));
    all && names.next().is_none()
}

/// `text` as `# ` lines of at most 96 characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_commented_file_is_the_default_configuration() {
        let text = commented_default();
        assert_eq!(
            GatewayConfig::from_toml(&text).unwrap(),
            GatewayConfig::default()
        );
    }

    #[test]
    fn every_option_is_described() {
        let text = commented_default();
        // The options without words, by the line that follows each "(not described yet)".
        let lines: Vec<&str> = text.lines().collect();
        let missing: Vec<&str> = lines
            .windows(2)
            .filter(|pair| pair[0].ends_with("(not described yet)"))
            .map(|pair| pair[1])
            .collect();
        assert!(
            missing.is_empty(),
            "add these options to DESCRIPTIONS in print_config.rs: {missing:?}"
        );
        assert!(text.contains("# jurisdiction_id = \"hillingdon.gov.uk\""));
        assert!(text.contains("extended_statuses = true"));
        // Every unset option names a real one: uncommented, the file still parses.
        let uncommented: String = text
            .lines()
            .map(|line| {
                UNSET
                    .iter()
                    .find(|(_, key, _, _)| line.starts_with(&format!("# {key} = ")))
                    .map_or(line.to_owned(), |_| line[2..].to_owned())
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = toml::from_str::<GatewayConfig>(&uncommented).unwrap();
        assert_eq!(
            parsed.open311.jurisdiction_id.as_deref(),
            Some("hillingdon.gov.uk")
        );
    }

    #[test]
    fn patterns_name_one_level_each() {
        assert!(matches_path("a.*.min", "a.flow_c.min"));
        assert!(!matches_path("a.*.min", "a.flow_c.max"));
        assert!(!matches_path("a.*", "a.b.c"));
        assert!(!matches_path("a.b", "a"));
    }

    #[test]
    fn comments_wrap() {
        let mut out = String::new();
        comment(&mut out, &"word ".repeat(40));
        assert!(out.lines().all(|l| l.len() <= 96 && l.starts_with("# ")));
        assert!(out.lines().count() > 1);
    }
}
