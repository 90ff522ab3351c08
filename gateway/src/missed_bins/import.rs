//! Importing the property register from CSV (`gateway import-properties FILE`). Bad rows are
//! reported by line number, as a person reading the file in an editor counts lines, and the good
//! ones are imported.
//!
//! The format, one property per row, with a header row naming the columns (in any order; names
//! are case-insensitive; other columns are ignored; lines starting with `#` are comments):
//!
//! | column | meaning | example |
//! |---|---|---|
//! | `uprn` | Unique Property Reference Number, 1 to 12 digits | `100021445120` |
//! | `address` | postal address (quote it: it has commas) | `"14 Swakeleys Road, Ickenham, UB10 8BE"` |
//! | `lat`, `lon` | WGS84 degrees | `51.56231`, `-0.44912` |
//! | `round` | the round's id | `HIL-TUE-1` |
//! | `order` | the property's place on the round, from 0 | `12` |
//! | `weekdays` | collection day(s), `;`-separated, `Mon` or `Monday` | `Tue` or `Mon;Thu` |
//! | `frequency` | `weekly` or `fortnightly` | `fortnightly` |
//! | `anchor` | fortnightly only: a date (YYYY-MM-DD) in a collection week; empty for weekly. The column may be left out when every row is weekly | `2026-01-07` |
//! | `streams` | the bins collected, `;`-separated: refuse, recycling, garden, food, glass, bulky, clinical, other | `refuse;recycling;food` |
//!
//! Importing a UPRN already on the register replaces it; properties missing from the file stay
//! (remove them with [`PropertyRegister::remove`]). Within one file, a UPRN's second row is
//! an error (the first is kept), since it is almost always a mistake in the export.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::csv_import::{self, keep, non_empty, parse_uprn, Header, RegisterFormat};
pub use crate::csv_import::{ImportError, ImportReport, RowError};
use chrono::{NaiveDate, Weekday};
use proto::BinStream;

use super::register::{LatLon, Property, PropertyRegister};
use super::schedule::{Frequency, Schedule};

/// The property register's format: the columns every file must have.
const FORMAT: RegisterFormat<9> = RegisterFormat {
    name: "register",
    required: [
        "uprn",
        "address",
        "lat",
        "lon",
        "round",
        "order",
        "weekdays",
        "frequency",
        "streams",
    ],
};

/// Column positions, found from the header row.
struct Columns {
    required: [usize; 9],
    anchor: Option<usize>,
}

impl Columns {
    fn from_header(header: &Header) -> Result<Self, ImportError> {
        Ok(Self {
            required: header.require(&FORMAT)?,
            anchor: header.find("anchor"),
        })
    }
}

/// Reads properties from CSV: the good rows, and an error for each bad one.
pub fn parse_properties(reader: impl Read) -> Result<(Vec<Property>, Vec<RowError>), ImportError> {
    let mut good = Vec::new();
    let mut first_line_of: HashMap<u64, u64> = HashMap::new();
    let errors = csv_import::read_rows(
        reader,
        &FORMAT,
        Columns::from_header,
        |columns, line, record| {
            let property = parse_row(record, columns).map_err(|problems| problems.join("; "))?;
            if let Some(first) = first_line_of.get(&property.uprn) {
                return Err(format!(
                    "uprn: {} already appears on line {first}; that row is kept",
                    property.uprn
                ));
            }
            first_line_of.insert(property.uprn, line);
            good.push(property);
            Ok(())
        },
    )?;
    Ok((good, errors))
}

impl PropertyRegister {
    /// Imports properties from CSV (see the [module](self) for the format): each good row is
    /// added, replacing any property with its UPRN; each bad row is reported.
    pub fn import_csv(&mut self, reader: impl Read) -> Result<ImportReport, ImportError> {
        let (good, errors) = parse_properties(reader)?;
        let imported = good.len();
        for property in good {
            self.insert(property);
        }
        Ok(ImportReport { imported, errors })
    }

    /// Imports properties from a CSV file.
    pub fn import_csv_path(&mut self, path: &Path) -> Result<ImportReport, ImportError> {
        self.import_csv(std::io::BufReader::new(csv_import::open(path)?))
    }
}

/// Parses one row, collecting every problem so that one pass over the file fixes them all.
fn parse_row(record: &csv::StringRecord, columns: &Columns) -> Result<Property, Vec<String>> {
    let [uprn, address, lat, lon, round, order, weekdays, frequency, streams] =
        columns.required.map(|i| record.get(i).unwrap_or(""));
    let anchor = columns.anchor.and_then(|i| record.get(i)).unwrap_or("");
    let mut problems = Vec::new();

    let uprn = keep(&mut problems, parse_uprn(uprn));
    let address = keep(&mut problems, non_empty("address", address));
    let lat = keep(&mut problems, parse_degrees("lat", lat, 90.0));
    let lon = keep(&mut problems, parse_degrees("lon", lon, 180.0));
    let round = keep(&mut problems, non_empty("round", round));
    let order = keep(
        &mut problems,
        order
            .parse::<u32>()
            .map_err(|_| format!("order: {order:?} is not a whole number from 0")),
    );
    let weekdays = keep(&mut problems, parse_weekdays(weekdays));
    let frequency = keep(&mut problems, parse_frequency(frequency, anchor));
    let streams = keep(&mut problems, parse_streams(streams));

    match (
        uprn, address, lat, lon, round, order, weekdays, frequency, streams,
    ) {
        (
            Some(uprn),
            Some(address),
            Some(lat),
            Some(lon),
            Some(round),
            Some(order),
            Some(weekdays),
            Some(frequency),
            Some(streams),
        ) => Ok(Property {
            uprn,
            address,
            position: LatLon { lat, lon },
            round,
            order,
            schedule: Schedule::new(weekdays, frequency),
            streams,
        }),
        _ => Err(problems),
    }
}

fn parse_degrees(column: &str, text: &str, limit: f64) -> Result<f64, String> {
    if text.is_empty() {
        return Err(format!("{column}: missing"));
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && (-limit..=limit).contains(&value) => Ok(value),
        Ok(_) => Err(format!(
            "{column}: {text} is outside −{limit} to {limit} degrees"
        )),
        Err(_) => Err(format!("{column}: {text:?} is not a number of degrees")),
    }
}

fn parse_weekdays(text: &str) -> Result<Vec<Weekday>, String> {
    let mut days = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<Weekday>() {
            Ok(day) => days.push(day),
            Err(_) => {
                return Err(format!(
                    "weekdays: {part:?} is not a weekday (Mon, Tue, … or Monday, Tuesday, …)"
                ))
            }
        }
    }
    if days.is_empty() {
        Err("weekdays: missing (e.g. Tue, or Mon;Thu)".to_owned())
    } else {
        Ok(days)
    }
}

fn parse_frequency(frequency: &str, anchor: &str) -> Result<Frequency, String> {
    match frequency.to_ascii_lowercase().as_str() {
        "weekly" if anchor.is_empty() => Ok(Frequency::Weekly),
        "weekly" => Err(format!(
            "anchor: {anchor:?} given for a weekly collection; only fortnightly ones take an anchor date"
        )),
        "fortnightly" if anchor.is_empty() => Err(
            "anchor: missing; a fortnightly collection needs a date (YYYY-MM-DD) in one of its collection weeks"
                .to_owned(),
        ),
        "fortnightly" => NaiveDate::parse_from_str(anchor, "%Y-%m-%d")
            .map(|anchor| Frequency::Fortnightly { anchor })
            .map_err(|_| format!("anchor: {anchor:?} is not a date (YYYY-MM-DD)")),
        "" => Err("frequency: missing (weekly or fortnightly)".to_owned()),
        other => Err(format!(
            "frequency: {other:?} is neither weekly nor fortnightly"
        )),
    }
}

fn parse_streams(text: &str) -> Result<Vec<BinStream>, String> {
    let mut streams = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match BinStream::parse(&part.to_ascii_lowercase()) {
            Some(stream) if streams.contains(&stream) => {}
            Some(stream) => streams.push(stream),
            None => {
                let known: Vec<&str> = BinStream::ALL.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "streams: {part:?} is not a bin stream ({})",
                    known.join(", ")
                ));
            }
        }
    }
    if streams.is_empty() {
        Err("streams: missing (e.g. refuse;recycling)".to_owned())
    } else {
        Ok(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../../tests/fixtures/properties.csv");
    const BAD: &str = include_str!("../../tests/fixtures/properties_bad.csv");

    const HEADER: &str = "uprn,address,lat,lon,round,order,weekdays,frequency,anchor,streams\n";

    fn import(text: &str) -> (PropertyRegister, ImportReport) {
        let mut register = PropertyRegister::new();
        let report = register.import_csv(text.as_bytes()).unwrap();
        (register, report)
    }

    #[test]
    fn fixture_imports_cleanly() {
        let (register, report) = import(GOOD);
        assert_eq!(report.errors, vec![], "{:#?}", report.errors);
        assert_eq!(report.imported, register.len());
        assert!(register.len() >= 30, "{}", register.len());
        assert_eq!(register.rounds().len(), 3);
        let fortnightly = register
            .iter()
            .filter(|p| matches!(p.schedule.frequency, Frequency::Fortnightly { .. }))
            .count();
        assert!(fortnightly > 0);
        assert!(register
            .iter()
            .any(|p| p.schedule.weekdays == vec![Weekday::Mon, Weekday::Thu]));
    }

    #[test]
    fn fixture_path_helper_reads_the_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/properties.csv");
        let mut register = PropertyRegister::new();
        let report = register.import_csv_path(&path).unwrap();
        assert!(report.imported >= 30);
        let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nope.csv");
        let err = register.import_csv_path(&missing).unwrap_err();
        assert!(err.to_string().contains("nope.csv"), "{err}");
    }

    #[test]
    fn bad_fixture_reports_each_bad_row_by_line_and_imports_the_rest() {
        let (register, report) = import(BAD);
        let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
        let messages: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(report.imported, register.len());
        assert_eq!(report.imported, 3, "{messages:#?}");
        assert_eq!(lines, vec![4, 6, 7, 8, 10], "{messages:#?}");
        assert!(messages[0].starts_with("line 4: lat:"), "{}", messages[0]);
        assert!(
            messages[1].contains("streams: \"compost\""),
            "{}",
            messages[1]
        );
        assert!(messages[2].contains("anchor: missing"), "{}", messages[2]);
        assert!(
            messages[3].contains("weekdays: \"Funday\""),
            "{}",
            messages[3]
        );
        assert!(
            messages[4].contains("already appears on line 2"),
            "{}",
            messages[4]
        );
    }

    #[test]
    fn every_problem_of_a_row_is_named() {
        let text = format!("{HEADER}x,,91,-0.4,,-1,Tue,weekly,,refuse\n");
        let (_, report) = import(&text);
        assert_eq!(report.errors.len(), 1);
        let message = &report.errors[0].message;
        for column in ["uprn:", "address:", "lat:", "round:", "order:"] {
            assert!(message.contains(column), "{column} in {message}");
        }
    }

    #[test]
    fn lines_count_comments_blank_lines_and_quoted_newlines() {
        let text = format!(
            "{HEADER}# a comment\n\n1,\"1 High Street,\nRuislip\",51.57,-0.42,R1,1,Tue,weekly,,refuse\n2,2 High Street,51.57,-0.42,R1,2,Tue,weekly,,compost\n"
        );
        let (register, report) = import(&text);
        assert_eq!(register.len(), 1);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].line, 6, "{:?}", report.errors);
    }

    #[test]
    fn columns_in_any_order_with_a_bom_and_without_anchor() {
        let text = "\u{feff}Streams,UPRN,Address,Lat,Lon,Round,Order,Weekdays,Frequency,Ward\n\
                    refuse;Recycling,42,\"1 Long Lane, Ickenham\",51.56,-0.45,R1,3,monday;THU,Weekly,Ickenham\n";
        let (register, report) = import(text);
        assert_eq!(report.errors, vec![]);
        let p = register.get(42).unwrap();
        assert_eq!(p.streams, vec![BinStream::Refuse, BinStream::Recycling]);
        assert_eq!(p.schedule.weekdays, vec![Weekday::Mon, Weekday::Thu]);
        assert_eq!(p.address, "1 Long Lane, Ickenham");
    }

    #[test]
    fn missing_columns_fail_the_whole_import() {
        let mut register = PropertyRegister::new();
        let err = register
            .import_csv("uprn,address,lat\n1,a,51\n".as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, ImportError::MissingColumns { ref missing, .. } if missing.contains(&"lon") && missing.contains(&"streams")),
            "{err}"
        );
        assert!(matches!(
            register.import_csv("".as_bytes()).unwrap_err(),
            ImportError::Empty { .. }
        ));
    }

    #[test]
    fn short_rows_and_weekly_anchors_are_errors() {
        let text = format!(
            "{HEADER}1,a,51.5,-0.4,R1,1,Tue,weekly\n2,b,51.5,-0.4,R1,2,Tue,weekly,2026-01-06,refuse\n3,c,51.5,-0.4,R1,3,Tue,fortnightly,6/1/2026,refuse\n"
        );
        let (register, report) = import(&text);
        assert!(register.is_empty());
        let messages: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
        assert!(messages[0].contains("streams: missing"), "{messages:?}");
        assert!(messages[1].contains("given for a weekly"), "{messages:?}");
        assert!(messages[2].contains("not a date"), "{messages:?}");
    }

    #[test]
    fn reimport_replaces_a_uprn() {
        let mut register = PropertyRegister::new();
        let first = format!("{HEADER}7,Old address,51.5,-0.4,R1,1,Tue,weekly,,refuse\n");
        let second = format!("{HEADER}7,New address,51.6,-0.4,R2,4,Wed,weekly,,refuse;food\n");
        register.import_csv(first.as_bytes()).unwrap();
        let report = register.import_csv(second.as_bytes()).unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(register.len(), 1);
        let p = register.get(7).unwrap();
        assert_eq!(
            (p.address.as_str(), p.round.as_str()),
            ("New address", "R2")
        );
        assert_eq!(register.rounds(), vec!["R2"]);
    }

    #[test]
    fn crlf_line_endings_and_blank_lines_keep_line_numbers_right() {
        let text = HEADER.replace('\n', "\r\n")
            + "\r\n1,a,51.5,-0.4,R1,1,Tue,weekly,,refuse\r\n# note\r\n2,\"b\r\nc\",51.5,-0.4,R1,2,Tue,weekly,,refuse\r\n\r\n3,d,x,-0.4,R1,3,Tue,weekly,,refuse\r\n";
        let (register, report) = import(&text);
        assert_eq!(register.len(), 2);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].line, 8, "{:?}", report.errors);
    }

    #[test]
    fn invalid_utf8_is_a_row_error() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"1,\xff\xfe,51.5,-0.4,R1,1,Tue,weekly,,refuse\n");
        bytes.extend_from_slice(b"2,ok,51.5,-0.4,R1,2,Tue,weekly,,refuse\n");
        let mut register = PropertyRegister::new();
        let report = register.import_csv(bytes.as_slice()).unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].line, 2);
    }
}
