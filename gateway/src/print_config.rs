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
        "mqtt.max_payload",
        "The largest MQTT payload accepted, in bytes (the protocol's limit, 256 KiB).",
    ),
    (
        "http",
        "The HTTP server: health, metrics, staff API, Open311.",
    ),
    ("http.listen", "Listen address."),
    (
        "http.staff_tokens",
        "Bearer tokens for the staff API, each with its role: \"viewer\", \"supervisor\" or \
         \"admin\". None by default: the staff API is closed.",
    ),
    ("devices", "The device registry."),
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
        "missed_bins.round_devices",
        "Devices that take a round's return jobs, by round id, e.g. R1 = [\"cab-rcv07\"]. None \
         by default.",
    ),
    (
        "open311",
        "The Open311 GeoReport v2 interface for residents' front ends.",
    ),
    (
        "open311.api_keys",
        "Keys (16 characters or more) that front ends pass as api_key to create requests and \
         read the updates feed. None by default: creating is refused, reading is open.",
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
        "open311",
        "jurisdiction_id",
        "\"hillingdon.gov.uk\"",
        "The jurisdiction_id served; a request naming another gets 404. Default: none (any \
         value accepted).",
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
        .find(|(known, _)| *known == path)
        .map_or("(not described yet)", |(_, words)| words)
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
    fn comments_wrap() {
        let mut out = String::new();
        comment(&mut out, &"word ".repeat(40));
        assert!(out.lines().all(|l| l.len() <= 96 && l.starts_with("# ")));
        assert!(out.lines().count() > 1);
    }
}
