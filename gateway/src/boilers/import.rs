//! Importing the asset register from CSV (`gateway import-assets FILE`, `POST /api/v1/assets`).
//! Bad rows are reported by line number, as a person reading the file in an editor counts lines,
//! and the good ones are imported.
//!
//! The format, one boiler per row, with a header row naming the columns (in any order; names
//! are case-insensitive; other columns are ignored; lines starting with `#` are comments):
//!
//! | column | meaning | example |
//! |---|---|---|
//! | `asset` | the council's asset id, as hubs send it: 1 to 64 letters, digits, `-`, `_`, `.`, `/` | `HIL-B-0042` |
//! | `uprn` | the home's Unique Property Reference Number, 1 to 12 digits | `100021445102` |
//! | `address` | postal address (quote it: it has commas) | `"4 Swakeleys Road, Ickenham, UB10 8BE"` |
//! | `make` | the boiler's make | `Worcester Bosch` |
//! | `model` | its model | `Greenstar 30i` |
//! | `rated_kw` | rated heat output, kW, above 0 and at most 2000 | `30` |
//! | `installed` | install date, YYYY-MM-DD; may be empty | `2019-03-14` |
//! | `gas_meter` | a gas meter the hub reads: `yes`/`no` (or `true`/`false`, `y`/`n`, `1`/`0`) | `yes` |
//! | `heat_meter` | a heat meter the hub reads, likewise | `no` |
//! | `hub` | the hub's device id: 1 to 64 letters, digits, `-`, `_` | `hub-0042` |
//!
//! Importing an asset id already on the register replaces it; assets missing from the file stay
//! (remove them with [`AssetRegister::remove`]). Within one file, an asset id's second row is an
//! error (the first is kept), and so is a hub's second row: a hub reads one boiler.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::csv_import::{self, keep, non_empty, parse_uprn, parse_yes_no, Header, RegisterFormat};
pub use crate::csv_import::{ImportError, ImportReport, RowError};
use chrono::NaiveDate;
use proto::DeviceId;

use super::efficiency::Meters;
use super::register::{valid_asset_id, Asset, AssetRegister};

/// The largest plausible rated output, kW (a communal boiler house's).
const MAX_RATED_KW: f64 = 2000.0;

/// The asset register's format: the columns every file must have.
const FORMAT: RegisterFormat<10> = RegisterFormat {
    name: "asset register",
    required: [
        "asset",
        "uprn",
        "address",
        "make",
        "model",
        "rated_kw",
        "installed",
        "gas_meter",
        "heat_meter",
        "hub",
    ],
};

/// Column positions, found from the header row.
struct Columns([usize; 10]);

impl Columns {
    fn from_header(header: &Header) -> Result<Self, ImportError> {
        header.require(&FORMAT).map(Self)
    }
}

/// Reads assets from CSV: the good rows, and an error for each bad one.
pub fn parse_assets(reader: impl Read) -> Result<(Vec<Asset>, Vec<RowError>), ImportError> {
    let mut good = Vec::new();
    let mut asset_lines: HashMap<String, u64> = HashMap::new();
    let mut hub_lines: HashMap<DeviceId, u64> = HashMap::new();
    let errors = csv_import::read_rows(
        reader,
        &FORMAT,
        Columns::from_header,
        |columns, line, record| {
            let asset = parse_row(record, columns).map_err(|problems| problems.join("; "))?;
            if let Some(first) = asset_lines.get(&asset.asset) {
                return Err(format!(
                    "asset: {} already appears on line {first}; that row is kept",
                    asset.asset
                ));
            }
            if let Some(first) = hub_lines.get(&asset.hub) {
                return Err(format!(
                    "hub: {} already reads the boiler on line {first}; a hub reads one boiler",
                    asset.hub.as_str()
                ));
            }
            asset_lines.insert(asset.asset.clone(), line);
            hub_lines.insert(asset.hub.clone(), line);
            good.push(asset);
            Ok(())
        },
    )?;
    Ok((good, errors))
}

impl AssetRegister {
    /// Imports assets from CSV (see the [module](self) for the format): each good row is added,
    /// replacing any asset with its id; each bad row is reported.
    pub fn import_csv(&mut self, reader: impl Read) -> Result<ImportReport, ImportError> {
        let (good, errors) = parse_assets(reader)?;
        let imported = good.len();
        for asset in good {
            self.insert(asset);
        }
        Ok(ImportReport { imported, errors })
    }

    /// Imports assets from a CSV file.
    pub fn import_csv_path(&mut self, path: &Path) -> Result<ImportReport, ImportError> {
        self.import_csv(std::io::BufReader::new(csv_import::open(path)?))
    }
}

/// Parses one row, collecting every problem so that one pass over the file fixes them all.
fn parse_row(record: &csv::StringRecord, columns: &Columns) -> Result<Asset, Vec<String>> {
    let [asset, uprn, address, make, model, rated_kw, installed, gas_meter, heat_meter, hub] =
        columns.0.map(|i| record.get(i).unwrap_or(""));
    let mut problems = Vec::new();

    let asset = keep(&mut problems, parse_asset_id(asset));
    let uprn = keep(&mut problems, parse_uprn(uprn));
    let address = keep(&mut problems, non_empty("address", address));
    let make = keep(&mut problems, non_empty("make", make));
    let model = keep(&mut problems, non_empty("model", model));
    let rated_kw = keep(&mut problems, parse_rated_kw(rated_kw));
    let installed = keep(&mut problems, parse_installed(installed));
    let gas = keep(&mut problems, parse_yes_no("gas_meter", gas_meter));
    let heat = keep(&mut problems, parse_yes_no("heat_meter", heat_meter));
    let hub = keep(
        &mut problems,
        DeviceId::new(hub).map_err(|e| format!("hub: {hub:?} is not a device id ({e})")),
    );

    match (
        asset, uprn, address, make, model, rated_kw, installed, gas, heat, hub,
    ) {
        (
            Some(asset),
            Some(uprn),
            Some(address),
            Some(make),
            Some(model),
            Some(rated_output_kw),
            Some(installed),
            Some(gas),
            Some(heat),
            Some(hub),
        ) => Ok(Asset {
            asset,
            uprn,
            address,
            make,
            model,
            rated_output_kw,
            installed,
            meters: Meters { gas, heat },
            hub,
        }),
        _ => Err(problems),
    }
}

fn parse_asset_id(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("asset: missing".to_owned())
    } else if valid_asset_id(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "asset: {text:?} is not an asset id (1 to 64 letters, digits, -, _, ., /)"
        ))
    }
}

fn parse_rated_kw(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err("rated_kw: missing".to_owned());
    }
    match text.parse::<f64>() {
        Ok(kw) if kw.is_finite() && kw > 0.0 && kw <= MAX_RATED_KW => Ok(kw),
        Ok(_) => Err(format!(
            "rated_kw: {text} is outside 0 to {MAX_RATED_KW} kW"
        )),
        Err(_) => Err(format!("rated_kw: {text:?} is not a number of kW")),
    }
}

fn parse_installed(text: &str) -> Result<Option<NaiveDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| format!("installed: {text:?} is not a date (YYYY-MM-DD)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub\n";

    /// A small estate: four good rows and five bad ones.
    const ESTATE: &str = "asset,uprn,address,make,model,rated_kw,installed,gas_meter,heat_meter,hub
HIL-B-0001,100021445102,\"4 Swakeleys Road, Ickenham, UB10 8BE\",Worcester Bosch,Greenstar 30i,30,2019-03-14,yes,yes,hub-0001
HIL-B-0002,100021445103,\"6 Swakeleys Road, Ickenham, UB10 8BE\",Vaillant,ecoTEC plus 832,32,,yes,no,hub-0002
# flats in Glebe Avenue
HIL-B-0003,100021445201,\"Flat 1, 2 Glebe Avenue, Ickenham\",Ideal,Logic Combi2 C24,24,2021-11-02,no,no,hub-0003
HIL-B-0004,100021445202,\"Flat 2, 2 Glebe Avenue, Ickenham\",Baxi,800 Combi 2,24.2,2022-01-20,N,N,hub-0004
HIL-B-0005,100021445203,\"Flat 3, 2 Glebe Avenue, Ickenham\",Baxi,800 Combi 2,400000,2022-01-20,no,no,hub-0005
HIL-B-0006,1000214452039,\"Flat 4, 2 Glebe Avenue, Ickenham\",Baxi,800 Combi 2,24,20/01/2022,maybe,no,hub 6

HIL-B-0001,100021445204,\"Flat 5, 2 Glebe Avenue, Ickenham\",Baxi,800 Combi 2,24,,no,no,hub-0007
HIL-B-0008,100021445205,\"Flat 6, 2 Glebe Avenue, Ickenham\",Baxi,800 Combi 2,24,,no,no,hub-0004
HIL-B-0009,100021445206,,,,24,,no,no,hub-0009
";

    fn import(text: &str) -> (AssetRegister, ImportReport) {
        let mut register = AssetRegister::new();
        let report = register.import_csv(text.as_bytes()).unwrap();
        (register, report)
    }

    #[test]
    fn good_rows_are_imported_and_bad_ones_reported_by_line() {
        let (register, report) = import(ESTATE);
        let messages: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(report.imported, 4, "{messages:#?}");
        assert_eq!(register.len(), 4);
        let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![7, 8, 10, 11, 12], "{messages:#?}");
        assert!(
            messages[0].starts_with("line 7: rated_kw: 400000"),
            "{}",
            messages[0]
        );
        for column in ["uprn:", "installed:", "gas_meter:", "hub:"] {
            assert!(messages[1].contains(column), "{column} in {}", messages[1]);
        }
        assert!(
            messages[2].contains("already appears on line 2"),
            "{}",
            messages[2]
        );
        assert!(
            messages[3].contains("hub-0004 already reads the boiler on line 6"),
            "{}",
            messages[3]
        );
        for column in ["address:", "make:", "model:"] {
            assert!(messages[4].contains(column), "{column} in {}", messages[4]);
        }
        let first = register.get("HIL-B-0001").unwrap();
        assert_eq!(first.address, "4 Swakeleys Road, Ickenham, UB10 8BE");
        assert_eq!(
            first.meters,
            Meters {
                gas: true,
                heat: true
            }
        );
        assert_eq!(first.installed, NaiveDate::from_ymd_opt(2019, 3, 14));
        assert_eq!(first.hub.as_str(), "hub-0001");
        let second = register.get("HIL-B-0002").unwrap();
        assert_eq!(second.installed, None);
        assert_eq!(register.get("HIL-B-0004").unwrap().rated_output_kw, 24.2);
    }

    #[test]
    fn columns_in_any_order_with_a_bom_and_crlf() {
        let text = "\u{feff}Hub,Asset,UPRN,Address,Make,Model,Rated_kW,Installed,Gas_Meter,Heat_Meter,Ward\r\n\
                    \r\n\
                    hub-9,B-9,42,\"1 Long Lane, Ickenham\",Ideal,Vogue C32,32,,TRUE,0,Ickenham\r\n\
                    hub-10,B-10,x,\"2 Long Lane\",Ideal,Vogue C32,32,,yes,no,Ickenham\r\n";
        let (register, report) = import(text);
        assert_eq!(register.len(), 1);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].line, 4, "{:?}", report.errors);
        let asset = register.get("B-9").unwrap();
        assert_eq!(
            asset.meters,
            Meters {
                gas: true,
                heat: false
            }
        );
        assert_eq!(asset.uprn, 42);
    }

    #[test]
    fn missing_columns_or_an_empty_file_fail_the_whole_import() {
        let mut register = AssetRegister::new();
        let err = register
            .import_csv("asset,uprn\nB-1,1\n".as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, ImportError::MissingColumns { ref missing, .. } if missing.contains(&"hub") && missing.contains(&"rated_kw")),
            "{err}"
        );
        assert!(matches!(
            register.import_csv("".as_bytes()).unwrap_err(),
            ImportError::Empty { .. }
        ));
        let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/no-assets.csv");
        let err = register.import_csv_path(&missing).unwrap_err();
        assert!(err.to_string().contains("no-assets.csv"), "{err}");
    }

    #[test]
    fn reimport_replaces_an_asset_and_bad_utf8_is_a_row_error() {
        let mut register = AssetRegister::new();
        let first = format!("{HEADER}B-1,1,Old address,Ideal,Logic,24,,no,no,hub-1\n");
        let second = format!("{HEADER}B-1,1,Old address,Ideal,Logic,24,,no,no,hub-2\n");
        register.import_csv(first.as_bytes()).unwrap();
        register.import_csv(second.as_bytes()).unwrap();
        assert_eq!(register.len(), 1);
        assert_eq!(register.get("B-1").unwrap().hub.as_str(), "hub-2");
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"B-2,2,\xff\xfe,Ideal,Logic,24,,no,no,hub-3\n");
        bytes.extend_from_slice(b"B-3,3,ok,Ideal,Logic,24,,no,no,hub-4\n");
        let report = register.import_csv(bytes.as_slice()).unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].line, 2);
    }
}
