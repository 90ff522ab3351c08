//! What the gateway's CSV registers (properties, boilers) share: reading a file whole, finding
//! columns by their header names, the line each row starts on, and the report of what was
//! imported and which rows were not, by line. Each register says what a row means; this module
//! says how rows are read.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A register file's kind: its name in messages and the columns it must have.
#[derive(Debug, Clone, Copy)]
pub struct RegisterFormat<const N: usize> {
    /// What the file holds, as messages name it ("register", "asset register").
    pub name: &'static str,
    /// The columns every file must have, in the order [`Header::require`] gives their positions.
    pub required: [&'static str; N],
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// How many rows were imported (added or replacing an entry).
    pub imported: usize,
    /// The rows that were not, in file order.
    pub errors: Vec<RowError>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The row's line in the file, counting the header as line 1.
    pub line: u64,
    /// What is wrong, naming the column(s).
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why nothing could be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read the {register}: {source}")]
    Io {
        /// What the file holds.
        register: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has no header row.
    #[error("the {register} is empty: expected a header row naming the columns {expected}")]
    Empty {
        /// What the file holds.
        register: &'static str,
        /// The required columns, comma-separated.
        expected: String,
    },
    /// The header row lacks required columns.
    #[error("the header row lacks the column(s) {}; expected {expected}", missing.join(", "))]
    MissingColumns {
        /// The missing columns' names.
        missing: Vec<&'static str>,
        /// The required columns, comma-separated.
        expected: String,
    },
    /// The header row could not be parsed.
    #[error("cannot read the {register}'s header row: {source}")]
    Read {
        /// What the file holds.
        register: &'static str,
        /// Why.
        source: csv::Error,
    },
}

/// A file's header row, its names trimmed and lower-cased.
#[derive(Debug)]
pub struct Header {
    names: Vec<String>,
}

impl Header {
    fn new(record: &csv::StringRecord) -> Self {
        let names = record
            .iter()
            .enumerate()
            // Spreadsheets often save a UTF-8 byte-order mark before the first name.
            .map(|(i, name)| {
                let name = if i == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    name
                };
                name.trim().to_ascii_lowercase()
            })
            .collect();
        Self { names }
    }

    /// The position of an optional column.
    pub fn find(&self, wanted: &str) -> Option<usize> {
        self.names.iter().position(|name| name == wanted)
    }

    /// The positions of `format`'s required columns, in its order; every missing one named.
    pub fn require<const N: usize>(
        &self,
        format: &RegisterFormat<N>,
    ) -> Result<[usize; N], ImportError> {
        let mut columns = [0; N];
        let mut missing = Vec::new();
        for (slot, wanted) in columns.iter_mut().zip(format.required) {
            match self.find(wanted) {
                Some(i) => *slot = i,
                None => missing.push(wanted),
            }
        }
        if missing.is_empty() {
            Ok(columns)
        } else {
            Err(ImportError::MissingColumns {
                missing,
                expected: format.required.join(","),
            })
        }
    }
}

/// Reads a register from CSV: `columns` finds what it needs in the header, then `row` is given
/// each row with the line it starts on, and says what is wrong with it, if anything. Rows that
/// are not CSV (bad UTF-8, say) are errors of their own lines; the errors come in file order.
pub fn read_rows<const N: usize, C>(
    mut reader: impl Read,
    format: &RegisterFormat<N>,
    columns: impl FnOnce(&Header) -> Result<C, ImportError>,
    mut row: impl FnMut(&C, u64, &csv::StringRecord) -> Result<(), String>,
) -> Result<Vec<RowError>, ImportError> {
    // Read whole: registers are a few megabytes, and line numbers need the bytes (below).
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| ImportError::Io {
            register: format.name,
            source,
        })?;
    let unreadable = |source| ImportError::Read {
        register: format.name,
        source,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes.as_slice());
    let header = csv.headers().map_err(unreadable)?.clone();
    if header.iter().all(|name| name.trim().is_empty()) {
        return Err(ImportError::Empty {
            register: format.name,
            expected: format.required.join(","),
        });
    }
    let columns = columns(&Header::new(&header))?;

    let mut lines = LineCounter::new(&bytes);
    let mut errors = Vec::new();
    for result in csv.records() {
        let record = match result {
            Ok(record) => record,
            Err(e) => match e.position() {
                // A malformed row is that row's problem.
                Some(position) => {
                    errors.push(RowError {
                        line: lines.line_of(position.byte()),
                        message: format!("not readable as CSV: {e}"),
                    });
                    continue;
                }
                None => return Err(unreadable(e)),
            },
        };
        let line = record
            .position()
            .map_or(0, |position| lines.line_of(position.byte()));
        if let Err(message) = row(&columns, line, &record) {
            errors.push(RowError { line, message });
        }
    }
    Ok(errors)
}

/// Opens `path` for [`read_rows`], naming it in the error.
pub fn open(path: &Path) -> Result<std::fs::File, ImportError> {
    std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.to_owned(),
        source,
    })
}

/// The largest UPRN: they have at most 12 digits.
const MAX_UPRN: u64 = 999_999_999_999;

/// Keeps `result`'s value, or adds its problem to `problems`: so that one pass over a row names
/// every problem in it.
pub fn keep<T>(problems: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|problem| problems.push(problem)).ok()
}

/// A `uprn` column: a Unique Property Reference Number, 1 to 12 digits.
pub fn parse_uprn(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(uprn) if (1..=MAX_UPRN).contains(&uprn) => Ok(uprn),
        _ if text.is_empty() => Err("uprn: missing".to_owned()),
        _ => Err(format!("uprn: {text:?} is not a UPRN (1 to 12 digits)")),
    }
}

/// A text column that must not be empty.
pub fn non_empty(column: &str, text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err(format!("{column}: missing"))
    } else {
        Ok(text.to_owned())
    }
}

/// A yes/no column: yes, y, true, 1 or no, n, false, 0, in any case.
pub fn parse_yes_no(column: &str, text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" => Ok(true),
        "no" | "n" | "false" | "0" => Ok(false),
        "" => Err(format!("{column}: missing (yes or no)")),
        _ => Err(format!("{column}: {text:?} is neither yes nor no")),
    }
}

/// Finds the line a record starts on. The csv crate's own line numbers count from where it
/// began reading, before the blank and comment lines it skipped, and miscount `\r\n` endings;
/// so count newlines in the bytes instead, from that point past what it skips.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// The offset counted up to, and the line it is on (from 1).
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record whose reading began at byte `began` (records come in order).
    fn line_of(&mut self, began: u64) -> u64 {
        let mut start = usize::try_from(began)
            .unwrap_or(usize::MAX)
            .clamp(self.offset, self.bytes.len());
        // Skip what csv skips before a record: line endings and `#` comment lines.
        loop {
            match self.bytes.get(start) {
                Some(b'\r' | b'\n') => start += 1,
                Some(b'#') if self.at_line_start(start) => {
                    start = self.bytes[start..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(self.bytes.len(), |i| start + i + 1);
                }
                _ => break,
            }
        }
        let newlines = self.bytes[self.offset..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.line += u64::try_from(newlines).unwrap_or(u64::MAX);
        self.offset = start;
        self.line
    }

    fn at_line_start(&self, at: usize) -> bool {
        at == 0 || matches!(self.bytes.get(at - 1), Some(b'\n' | b'\r'))
    }
}
