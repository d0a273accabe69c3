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
    /// [`Error::RunLocked`] naming the holder's process when the lock is held;
    /// [`Error::Io`] when the lock file cannot be opened.
    pub(crate) fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(".lock");
        let mut file = crate::atomic::open_kept(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_string();
                return Err(Error::RunLocked {
                    run_dir: run_dir.to_path_buf(),
                    holder: (!holder.is_empty()).then_some(holder),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let note = format!("process {}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()));
        written.map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}
