//! A device's wall clock set wrong, and set right again, while it runs: libfaketime preloaded
//! into the agent's process, its offset read from a file the test rewrites. Only the wall clock
//! moves (`FAKETIME_DONT_FAKE_MONOTONIC`): a device whose clock is wrong still counts time
//! truly since boot, which is what the gateway's correction relies on.
//!
//! libfaketime is Debian's `faketime` package (`.ci/run` installs it); [`FakeClock::new`] says
//! when it is missing, and tests print that when they skip.

use std::path::{Path, PathBuf};

/// Where Debian puts the multi-threaded build of the library (the agent runs many threads).
const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// One process's wall clock, by an offset from the real one.
pub struct FakeClock {
    offset_file: PathBuf,
}

impl FakeClock {
    /// A clock `offset_s` seconds from the real one (negative: slow), its offset file in `dir`;
    /// an error saying why when libfaketime is not installed (`FIELDSYNC_LIBFAKETIME` names
    /// another build).
    pub fn new(dir: &Path, offset_s: i64) -> Result<Self, String> {
        let library = library();
        if !library.exists() {
            return Err(format!(
                "no libfaketime at {} (apt-get install faketime)",
                library.display()
            ));
        }
        let clock = Self {
            offset_file: dir.join("faketime-offset"),
        };
        clock.write(offset_s);
        Ok(clock)
    }

    /// The environment that gives a process this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", library().display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.offset_file.display().to_string(),
            ),
            // Reread the offset at every reading: libfaketime's cache is timed by the clock it
            // fakes, so a change could be missed for as long as the jump.
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Moves the clock to `offset_s` seconds from the real one (a correction, or a jump): the
    /// process's next reading has it.
    pub fn set_offset(&self, offset_s: i64) {
        self.write(offset_s);
    }

    fn write(&self, offset_s: i64) {
        std::fs::write(&self.offset_file, format!("{offset_s:+}\n"))
            .expect("writing the fake clock's offset");
    }
}

fn library() -> PathBuf {
    std::env::var_os("FIELDSYNC_LIBFAKETIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LIBRARY))
}
