//! A log file that rotates by size and by time: `path` is renamed to `path.1`, `path.1` to
//! `path.2` and so on, and files past `keep` are deleted.
//!
//! The writer passes the current time into every write, so tests drive time rotation with an
//! explicit clock and never sleep. A restarted gateway reads the existing file's size and
//! modification time, so a file from yesterday is rotated on the first write today.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::config::Rotation;

/// An append-only file with rotation.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
    /// The time period (Unix seconds / period length) the current file was started in.
    period: Option<i64>,
}

impl RotatingFile {
    /// Opens (creating parent directories) `path` for appending.
    pub fn open(path: &Path, rotation: Rotation, now_unix: i64) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let metadata = file.metadata()?;
        let size = metadata.len();
        let started = if size > 0 {
            metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or(now_unix)
        } else {
            now_unix
        };
        let mut this = Self {
            path: path.to_path_buf(),
            rotation,
            file,
            size,
            period: None,
        };
        this.period = this.period_of(started);
        Ok(this)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies a new rotation policy (on reload); the current file is kept.
    pub fn set_rotation(&mut self, rotation: Rotation, now_unix: i64) {
        if self.rotation.every != rotation.every {
            self.rotation = rotation;
            self.period = self.period_of(now_unix);
        } else {
            self.rotation = rotation;
        }
    }

    /// Appends `bytes` with one write, rotating first if the size limit would be passed or a
    /// new time period has begun. A batch bigger than the limit still goes into one file.
    pub fn write_batch(&mut self, bytes: &[u8], now_unix: i64) -> io::Result<()> {
        let period = self.period_of(now_unix);
        let new_period = period != self.period;
        let too_big = self
            .rotation
            .max_size
            .is_some_and(|max| self.size + bytes.len() as u64 > max);
        if self.size > 0 && (new_period || too_big) {
            self.rotate()?;
        }
        self.period = period;
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn period_of(&self, now_unix: i64) -> Option<i64> {
        let seconds = i64::try_from(self.rotation.every?.as_secs()).ok()?.max(1);
        Some(now_unix.div_euclid(seconds))
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.keep;
        // Files past `keep`, leftovers from a larger `keep` included, are deleted; `path.{keep}`
        // itself is replaced by the rename below.
        let mut n = keep + 1;
        loop {
            match std::fs::remove_file(self.numbered(n)) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..keep).rev() {
                match std::fs::rename(self.numbered(n), self.numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}
