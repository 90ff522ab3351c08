//! The demo's council homes with a boiler hub: the asset register the gateway imports for them
//! (so that alerts, the dashboard and tenants' reports know each boiler's home), and what their
//! tenants will report when their boiler's fault begins.

use std::fmt::Write as _;
use std::time::Duration;

use crate::boiler::{Fault, FaultPlan};
use crate::residents::Planned;

/// A home with a boiler hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Home {
    /// The hub's device id.
    pub device: String,
    /// The boiler's asset id.
    pub asset: String,
    /// The home's UPRN, if it is on the property register.
    pub uprn: Option<u64>,
    /// Its address.
    pub address: String,
    /// The boiler's rated output, kW.
    pub rated_kw: f64,
    /// Whether the hub reads a heat meter.
    pub heat_meter: bool,
    /// The boiler's faults.
    pub faults: Vec<FaultPlan>,
}

/// The asset register for `homes`, in the gateway's CSV format (`gateway import-assets`). A home
/// without a UPRN is left out: the register needs one.
pub fn register_csv(homes: &[Home]) -> String {
    let mut csv =
        String::from("asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub\n");
    for home in homes {
        let Some(uprn) = home.uprn else { continue };
        let _ = writeln!(
            csv,
            "{},{uprn},\"{}\",Worcester Bosch,Greenstar {:.0}i,{:.1},,yes,{},{}",
            home.asset,
            home.address.replace('"', "'"),
            home.rated_kw,
            home.rated_kw,
            if home.heat_meter { "yes" } else { "no" },
            home.device,
        );
    }
    csv
}

/// What the tenants report, and when (simulated time since the demo began):
/// - a locked-out boiler: no heating or hot water 20 minutes after it locks out, and a second
///   household member 40 minutes later (the report joins the same job);
/// - a leaking system: radiators barely warm four hours into the leak;
/// - short cycling: the flat never warming, three and a half hours in (when the alert is open);
/// - the first healthy boiler: a cold radiator two hours in, with nothing open for the boiler
///   (the report raises a job of its own).
pub fn tenants_reports(homes: &[Home]) -> Vec<Planned> {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    let mut planned = Vec::new();
    let mut healthy_reported = false;
    for home in homes {
        let Some(uprn) = home.uprn else { continue };
        if home.faults.is_empty() && !healthy_reported {
            healthy_reported = true;
            planned.push(Planned::heating(
                minutes(120),
                uprn,
                "The radiator in the back bedroom stays cold when the heating is on.",
            ));
        }
        for plan in &home.faults {
            match plan.fault {
                Fault::Code(code) => {
                    planned.push(Planned::heating(
                        plan.onset + minutes(20),
                        uprn,
                        format!("No heating or hot water. The boiler shows fault {code}."),
                    ));
                    planned.push(Planned::heating(
                        plan.onset + minutes(60),
                        uprn,
                        "Still no heating; we have a baby at home.",
                    ));
                }
                Fault::LowPressure => planned.push(Planned::heating(
                    plan.onset + minutes(240),
                    uprn,
                    "Radiators are barely warm and the boiler's pressure gauge is in the red.",
                )),
                Fault::ShortCycling => planned.push(Planned::heating(
                    plan.onset + minutes(210),
                    uprn,
                    "The boiler keeps clicking on and off and the flat never warms up.",
                )),
                Fault::Quiet | Fault::HotFlow => {}
            }
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(n: u64, faults: Vec<FaultPlan>) -> Home {
        Home {
            device: format!("hub-{n:02}"),
            asset: format!("B-{n}"),
            uprn: Some(n),
            address: format!("{n} Swakeleys Road, Ickenham, UB10 8BE"),
            rated_kw: 30.0,
            heat_meter: n % 2 == 0,
            faults,
        }
    }

    #[test]
    fn the_register_has_a_row_per_home_with_a_uprn() {
        let mut homes = vec![home(1, vec![]), home(2, vec![])];
        homes[1].uprn = None;
        let csv = register_csv(&homes);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2, "{csv}");
        assert_eq!(
            lines[1],
            "B-1,1,\"1 Swakeleys Road, Ickenham, UB10 8BE\",Worcester Bosch,Greenstar 30i,30.0,,yes,no,hub-01"
        );
    }

    #[test]
    fn tenants_report_the_faults_that_leave_them_cold() {
        let lockout = FaultPlan {
            fault: Fault::Code(28),
            onset: Duration::from_secs(3 * 3600),
        };
        let quiet = FaultPlan {
            fault: Fault::Quiet,
            onset: Duration::ZERO,
        };
        let homes = [
            home(1, vec![]),
            home(2, vec![lockout]),
            home(3, vec![quiet]),
            home(4, vec![]),
        ];
        let planned = tenants_reports(&homes);
        let uprns: Vec<u64> = planned.iter().map(|p| p.uprn).collect();
        // One healthy home's report, two for the lockout, none for a hub that went quiet.
        assert_eq!(uprns, [1, 2, 2]);
        assert_eq!(planned[1].after, Duration::from_secs(3 * 3600 + 20 * 60));
        assert!(planned[1].description.contains("fault 28"));
    }
}
