//! Real full disks for tests: a small tmpfs that a test mounts for a store, and a file that fills
//! it as a log or a photo cache would fill a device's disk.
//!
//! Mounting a tmpfs needs root (CI runs as root); [`Tmpfs::mount`] says why it cannot elsewhere,
//! and tests print that reason when they skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a fresh temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (as `mount -o size=` reads it: `16m`), or says why it cannot (not
    /// root, no `mount`, a sandbox that forbids it).
    pub fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (root is needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// Fills the file system holding `dir` with one file, until the disk refuses more; returns the
/// file, for the test to delete when space should return.
pub fn fill(dir: &Path) -> PathBuf {
    const ENOSPC: i32 = 28;
    let ballast = dir.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0x5a_u8; 16 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last few bytes too, so that sled cannot squeeze a page in.
    let small = [0x5a_u8; 512];
    while file.write(&small).is_ok_and(|n| n > 0) {}
    ballast
}
