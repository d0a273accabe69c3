//! The run folder's lock: one run writes a folder at a time.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::{Error, Result};

/// An exclusive advisory lock on `<run_dir>/.lock`, held while a run writes the folder and
/// released when dropped (or when the process dies, however it dies: the operating system
/// drops a dead process's locks, so no stale lock is left to clean).
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, or fails at once when another run (of this process or another) holds it.
    ///
    /// # Errors
    /// [`Error::RunLocked`] naming the holder (process id, host, since when) when the lock is
    /// held; [`Error::Io`] when the lock file cannot be opened.
    pub(crate) fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(".lock");
        let mut file = crate::atomic::open_kept(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The note is a line; a lock file replaced by something huge is not read whole.
                let _ = (&mut file).take(1024).read_to_string(&mut holder);
                let holder = holder.trim().to_string();
                return Err(Error::RunLocked {
                    run_dir: run_dir.to_path_buf(),
                    holder: (!holder.is_empty()).then_some(holder),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let note = format!(
            "process {} on host {} since {}\n",
            std::process::id(),
            host_name(),
            utc_now()
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()));
        written.map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// This machine's host name, or `unknown`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok());
    name.map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The time now in UTC, as `2026-12-05 10:42:07 UTC`.
fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(seconds)
}

/// `seconds` since 1970 as a UTC date and time (the proleptic Gregorian calendar, by the
/// days-to-civil conversion: eras of 400 years, years starting in March).
fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let time = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_told_who_holds_the_folder() {
        let dir = std::env::temp_dir().join(format!("ferrovision-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err();
        let text = err.to_string();
        let pid = format!("process {} on host ", std::process::id());
        assert!(text.contains(&pid) && text.contains(" since 20"), "{text}");
        drop(held);
        RunLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utc_dates_match_the_calendar() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // `date -u -d @951782400`: the leap day of 2000, a century leap year.
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        // `date -u -d @1796467327`
        assert_eq!(utc(1_796_467_327), "2026-12-05 10:42:07 UTC");
    }
}
