//! `torch.save` archives that the `zip` crate misreads, copied into one it reads.
//!
//! `zip` (every 9.x release, under `pytorch-reader`) looks for data prepended to an archive
//! and, for some valid archives torch writes, decides there is some and fails with "Invalid
//! Central Directory header" (a `convnext_tiny` state dict of eight entries does it; Python's
//! `zipfile` and `torch.load` read it). Read with the archive known to start at byte 0, its
//! entries copy unchanged (stored, no recompression) into an archive `zip` writes itself.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use zip::read::{ArchiveOffset, Config};
use zip::result::ZipError;
use zip::{ZipArchive, ZipWriter};

/// Whether `error` is the misreading this module works around.
pub(super) fn is_misread_archive(error: &pytorch_reader::PytorchError) -> bool {
    matches!(
        error,
        pytorch_reader::PytorchError::Zip(ZipError::InvalidArchive(_))
    )
}

/// A copy of an archive in the temporary folder, removed when dropped.
pub(super) struct ArchiveCopy(PathBuf);

impl ArchiveCopy {
    /// Copies the entries of the archive at `path`, read as starting at its first byte.
    pub(super) fn of(path: &Path) -> Result<Self, ZipError> {
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ferrovision-pth-{}-{}.zip",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        );
        let copy = ArchiveCopy(std::env::temp_dir().join(name));
        let config = Config {
            archive_offset: ArchiveOffset::Known(0),
        };
        let mut archive = ZipArchive::with_config(config, BufReader::new(File::open(path)?))?;
        let mut writer = ZipWriter::new(File::create(&copy.0)?);
        for index in 0..archive.len() {
            writer.raw_copy_file(archive.by_index_raw(index)?)?;
        }
        writer.finish()?;
        Ok(copy)
    }

    /// Where the copy is.
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ArchiveCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
