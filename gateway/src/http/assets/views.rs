//! How boiler data looks in the API: RFC 3339 times in place of UTC milliseconds, units in every
//! name, alerts with an id staff can act on.

use serde_json::{json, Map, Value};

use crate::boilers::{Alert, AlertKind, Efficiency, Evidence, Rollup, Sample};
use crate::http::rfc3339;

/// An alert's id: its asset, kind and opening time (UTC ms), `:`-separated. Asset ids never hold
/// a `:`, and a boiler has at most one open alert of a kind, so the id names one alert for good.
pub fn alert_id(alert: &Alert) -> String {
    format!(
        "{}:{}:{}",
        alert.asset,
        alert.kind.as_str(),
        alert.opened_at_ms
    )
}

/// The asset, kind and opening time an alert id names; `None` when it is not one.
pub fn parse_alert_id(id: &str) -> Option<(String, AlertKind, i64)> {
    let mut parts = id.rsplitn(3, ':');
    let opened: i64 = parts.next()?.parse().ok()?;
    let kind: AlertKind = serde_json::from_value(Value::String(parts.next()?.to_owned())).ok()?;
    let asset = parts.next()?;
    (!asset.is_empty()).then(|| (asset.to_owned(), kind, opened))
}

fn evidence_view(evidence: &Evidence) -> Value {
    json!({
        "at": rfc3339(evidence.at_ms),
        "what": evidence.what,
        "value": evidence.value,
        "unit": evidence.unit,
    })
}

/// An alert as staff see it.
pub fn alert_view(alert: &Alert) -> Value {
    json!({
        "id": alert_id(alert),
        "asset": alert.asset,
        "kind": alert.kind.as_str(),
        "severity": alert.severity,
        "state": if alert.closed_at_ms.is_some() { "closed" } else { "open" },
        "opened": rfc3339(alert.opened_at_ms),
        "closed": alert.closed_at_ms.map(rfc3339),
        "evidence": alert.evidence.iter().map(evidence_view).collect::<Vec<_>>(),
        "closing_evidence": alert.closing_evidence.iter().map(evidence_view).collect::<Vec<_>>(),
        "ack": alert.ack.as_ref().map(|ack| json!({
            "by": ack.by,
            "at": rfc3339(ack.at_ms),
            "note": ack.note,
        })),
    })
}

/// A sample: its time and its readings, each named with its unit (`flow_c`, `pressure_bar`).
pub fn sample_view(sample: &Sample) -> Value {
    let mut readings = match serde_json::to_value(sample) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    readings.remove("asset");
    readings.remove("at_ms");
    json!({ "at": rfc3339(sample.at_ms), "readings": readings })
}

/// A period's rollup: times as RFC 3339, each reading's statistics as min/mean/max (and how many
/// samples had it), its coverage; uses are `null` when nothing was known, never a made-up zero.
pub fn rollup_view(rollup: &Rollup) -> Value {
    let mut out = Map::new();
    out.insert("start".into(), json!(rfc3339(rollup.start_ms)));
    out.insert("end".into(), json!(rfc3339(rollup.end_ms)));
    out.insert("coverage".into(), json!(rollup.coverage()));
    out.insert("flame_on_min".into(), json!(rollup.flame_on_min()));
    if let Ok(Value::Object(fields)) = serde_json::to_value(rollup) {
        for (name, value) in fields {
            if name == "start_ms" || name == "end_ms" {
                continue;
            }
            let value = match value {
                Value::Object(stat) if stat.contains_key("sum") => {
                    let count = stat.get("count").and_then(Value::as_f64).unwrap_or(0.0);
                    let sum = stat.get("sum").and_then(Value::as_f64).unwrap_or(0.0);
                    json!({
                        "min": stat.get("min"),
                        "mean": (count > 0.0).then(|| sum / count),
                        "max": stat.get("max"),
                        "samples": count,
                    })
                }
                other => other,
            };
            out.insert(name, value);
        }
    }
    Value::Object(out)
}

/// A period's efficiency, always with its basis and coverage; `efficiency_pct` is `null` when it
/// cannot be told (the boiler did not fire, or too little is known).
pub fn efficiency_view(
    period: &Rollup,
    efficiency: Option<&Efficiency>,
    label: Option<String>,
) -> Value {
    json!({
        "period": label,
        "start": rfc3339(period.start_ms),
        "end": rfc3339(period.end_ms),
        "efficiency_pct": efficiency.map(|e| e.pct),
        "basis": efficiency.map(|e| e.basis.as_str()),
        "coverage": efficiency.map_or_else(|| period.coverage(), |e| e.coverage),
        "mean_return_firing_c": efficiency.and_then(|e| e.mean_return_firing_c),
    })
}
