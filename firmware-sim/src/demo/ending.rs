//! What the demo says when it stops: what became of the residents' and tenants' reports (as
//! their front end last read them), which alerts each boiler raised against the fault it was
//! given, and how many repairs the operative completed.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::asset_manager::SeenAlert;
use crate::residents::{Cause, Filed};

/// Missed-bin reports by what they became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissedBinReports {
    /// Filed.
    pub filed: usize,
    /// Closed: the bin emptied on a return visit (`closed`).
    pub closed: usize,
    /// Rejected with the crew's record, or refused (`no_further_action`).
    pub rejected: usize,
    /// Still open (a return visit to come).
    pub open: usize,
    /// Of those closed, the bins the crew had missed; of those rejected, the bins not put out:
    /// what the gateway decided agrees with what really happened.
    pub as_expected: usize,
}

/// Tenants' heating reports by what they became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeatingReports {
    /// Filed.
    pub filed: usize,
    /// Closed: the repair completed.
    pub fixed: usize,
    /// Still following a repair.
    pub open: usize,
}

/// The alerts one boiler raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoilerAlerts {
    /// The hub.
    pub device: String,
    /// The boiler.
    pub asset: String,
    /// The fault the demo gave it, in words (`healthy` if none).
    pub faults: String,
    /// Alerts raised, by kind.
    pub kinds: BTreeMap<String, usize>,
}

/// The demo's end summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// Residents' missed-bin reports.
    pub missed_bins: MissedBinReports,
    /// Tenants' heating reports.
    pub heating: HeatingReports,
    /// Each boiler's alerts, in hub order.
    pub boilers: Vec<BoilerAlerts>,
    /// Repair jobs the operative completed.
    pub repairs_completed: u64,
    /// When the devices stopped, simulated: alerts opened from then on (every hub falls silent)
    /// are not the run's.
    pub until: DateTime<Utc>,
}

impl Ending {
    /// The summary from the reports as filed and last read, the alerts seen (those opened
    /// before `until`), each hub's `(device, asset, faults in words)`, and the repairs
    /// completed.
    pub fn new(
        reports: &BTreeMap<String, Filed>,
        alerts: &BTreeMap<String, SeenAlert>,
        hubs: &[(String, String, String)],
        repairs_completed: u64,
        until: DateTime<Utc>,
    ) -> Self {
        let mut missed_bins = MissedBinReports::default();
        let mut heating = HeatingReports::default();
        for report in reports.values() {
            let status = report.status.as_deref().unwrap_or("open");
            match report.cause {
                Cause::Heating => {
                    heating.filed += 1;
                    match status {
                        "closed" => heating.fixed += 1,
                        _ => heating.open += 1,
                    }
                }
                Cause::Missed | Cause::NotPutOut => {
                    missed_bins.filed += 1;
                    match status {
                        "closed" => missed_bins.closed += 1,
                        "no_further_action" => missed_bins.rejected += 1,
                        _ => missed_bins.open += 1,
                    }
                    if matches!(
                        (report.cause, status),
                        (Cause::Missed, "closed") | (Cause::NotPutOut, "no_further_action")
                    ) {
                        missed_bins.as_expected += 1;
                    }
                }
            }
        }
        let boilers = hubs
            .iter()
            .map(|(device, asset, faults)| {
                let mut kinds = BTreeMap::new();
                let before_the_end = |a: &&SeenAlert| a.opened.is_none_or(|at| at < until);
                for alert in alerts
                    .values()
                    .filter(|a| &a.asset == asset)
                    .filter(before_the_end)
                {
                    *kinds.entry(alert.kind.clone()).or_insert(0) += 1;
                }
                BoilerAlerts {
                    device: device.clone(),
                    asset: asset.clone(),
                    faults: faults.clone(),
                    kinds,
                }
            })
            .collect();
        Self {
            missed_bins,
            heating,
            boilers,
            repairs_completed,
            until,
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.missed_bins;
        writeln!(f, "What happened:")?;
        writeln!(
            f,
            "  missed-bin reports  {} filed: {} closed (bin emptied on a return visit), {} rejected \
             with the crew's evidence, {} open; {} of {} as the crews' rounds really went",
            m.filed, m.closed, m.rejected, m.open, m.as_expected, m.filed
        )?;
        let h = &self.heating;
        writeln!(
            f,
            "  heating reports     {} filed: {} fixed, {} following a repair",
            h.filed, h.fixed, h.open
        )?;
        writeln!(f, "  alerts, by each boiler's fault:")?;
        for boiler in &self.boilers {
            let kinds = if boiler.kinds.is_empty() {
                "none".to_owned()
            } else {
                boiler
                    .kinds
                    .iter()
                    .map(|(kind, n)| format!("{kind} x{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                f,
                "    {:<7} {:<16} {:<24} {kinds}",
                boiler.device, boiler.asset, boiler.faults
            )?;
        }
        write!(
            f,
            "  repairs             {} completed by the operative",
            self.repairs_completed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filed(cause: Cause, status: &str) -> Filed {
        Filed {
            cause,
            uprn: 1,
            service_code: "refuse".into(),
            status: Some(status.into()),
            status_notes: None,
        }
    }

    #[test]
    fn reports_are_counted_by_what_they_became() {
        let reports = BTreeMap::from([
            ("MB-1".to_owned(), filed(Cause::Missed, "closed")),
            (
                "MB-2".to_owned(),
                filed(Cause::NotPutOut, "no_further_action"),
            ),
            ("MB-3".to_owned(), filed(Cause::Missed, "in_progress")),
            ("HR-1".to_owned(), filed(Cause::Heating, "closed")),
            ("HR-2".to_owned(), filed(Cause::Heating, "action_scheduled")),
        ]);
        let alerts = BTreeMap::from([(
            "B-2:fault:1".to_owned(),
            SeenAlert {
                asset: "B-2".into(),
                kind: "fault".into(),
                state: "closed".into(),
                opened: DateTime::from_timestamp(1_000, 0),
                repairs: vec!["RP-1".into()],
            },
        )]);
        let hubs = [
            ("hub-01".to_owned(), "B-1".to_owned(), "healthy".to_owned()),
            (
                "hub-02".to_owned(),
                "B-2".to_owned(),
                "fault 28 from 3h".to_owned(),
            ),
        ];
        let until = DateTime::from_timestamp(2_000, 0).unwrap();
        let ending = Ending::new(&reports, &alerts, &hubs, 2, until);
        // An alert opened once the devices had stopped is not the run's.
        let mut later = alerts.clone();
        if let Some(alert) = later.get_mut("B-2:fault:1") {
            alert.opened = Some(until);
        }
        assert!(Ending::new(&reports, &later, &hubs, 2, until).boilers[1]
            .kinds
            .is_empty());
        assert_eq!(
            ending.missed_bins,
            MissedBinReports {
                filed: 3,
                closed: 1,
                rejected: 1,
                open: 1,
                as_expected: 2
            }
        );
        assert_eq!((ending.heating.filed, ending.heating.fixed), (2, 1));
        assert!(ending.boilers[0].kinds.is_empty());
        assert_eq!(ending.boilers[1].kinds["fault"], 1);
        let text = ending.to_string();
        assert!(text.contains("3 filed: 1 closed"), "{text}");
        assert!(text.contains("fault x1"), "{text}");
        assert!(text.contains("2 completed"), "{text}");
    }
}
