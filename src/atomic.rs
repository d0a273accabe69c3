//! Files written whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The name `path` is built under before it is renamed into place: a hidden sibling marked with
/// this process's id (`.name.tmp-PID`), so two processes never share one.
pub(crate) fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Opens `path` for reading and writing, creating it empty when missing and keeping what it
/// holds otherwise: a file to lock, or to append to.
pub(crate) fn open_kept(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_beside(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
