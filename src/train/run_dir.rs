//! Run folders that hold a run are never overwritten: fresh folders are numbered
//! (`runs/train`, `runs/train-2`, ...), and a run replaced on request is moved aside first.

use std::path::{Path, PathBuf};

use super::lock::RunLock;
use crate::{Error, Result};

/// The run folder's record of finished epochs, one JSON line each.
pub(super) const METRICS: &str = "metrics.jsonl";

/// The files whose presence makes a folder hold a run: a checkpoint, or a recorded epoch.
const RUN_FILES: [&str; 2] = ["last.safetensors", "best.safetensors"];

/// What of a run `dir` holds: its checkpoints and `metrics.jsonl` when that has a recorded
/// epoch; empty when it holds no run (missing, empty, or only a dataset or a `config.json` of a
/// run stopped before its first checkpoint).
///
/// ```
/// use ferrovision::train::run_contents;
/// let dir = std::env::temp_dir().join(format!("ferrovision-doc-run-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// assert!(run_contents(&dir).is_empty());
/// std::fs::write(dir.join("metrics.jsonl"), "{\"epoch\": 1}\n")?;
/// assert_eq!(run_contents(&dir), vec!["metrics.jsonl"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run_contents(dir: &Path) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = RUN_FILES
        .into_iter()
        .filter(|name| std::fs::symlink_metadata(dir.join(name)).is_ok())
        .collect();
    let metrics = std::fs::symlink_metadata(dir.join(METRICS));
    if metrics.is_ok_and(|m| m.len() > 0) {
        found.push(METRICS);
    }
    found
}

/// Whether another process holds `dir`'s run lock now.
fn locked(dir: &Path) -> bool {
    dir.join(".lock").exists() && matches!(RunLock::acquire(dir), Err(Error::RunLocked { .. }))
}

/// The first of `base`, `base-2`, `base-3`, ... that holds no run and is not locked by a run
/// in progress: where a new run goes when no folder was named (as Ultralytics numbers
/// `runs/train2`).
///
/// ```
/// use ferrovision::train::fresh_run_dir;
/// let base = std::env::temp_dir().join(format!("ferrovision-doc-fresh-{}", std::process::id()));
/// assert_eq!(fresh_run_dir(&base), base);
/// std::fs::create_dir_all(&base)?;
/// std::fs::write(base.join("last.safetensors"), b"")?;
/// assert_eq!(fresh_run_dir(&base), base.with_file_name(format!(
///     "{}-2", base.file_name().unwrap().to_string_lossy())));
/// # std::fs::remove_dir_all(&base)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fresh_run_dir(base: &Path) -> PathBuf {
    numbered(base)
        .find(|dir| run_contents(dir).is_empty() && !locked(dir))
        .expect("the numbered folders are endless")
}

/// The last of `base`, `base-2`, ... (in that order, stopping at the first missing number)
/// that holds a run: the one a resume without a named folder continues.
pub fn latest_run_dir(base: &Path) -> Option<PathBuf> {
    numbered(base)
        .take_while(|dir| dir.exists())
        .filter(|dir| !run_contents(dir).is_empty())
        .last()
}

/// `base`, then `base-2`, `base-3`, ...
fn numbered(base: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    let name = base.file_name().unwrap_or_default().to_os_string();
    (1u64..).map(move |n| {
        if n == 1 {
            return base.to_path_buf();
        }
        let mut numbered = name.clone();
        numbered.push(format!("-{n}"));
        base.with_file_name(numbered)
    })
}

/// Moves the run in `dir` aside, to the first free `dir.previous`, `dir.previous-2`, ...
/// beside it, and returns where it went; `dir` no longer exists after. The folder must not be
/// locked by a run in progress.
///
/// # Errors
/// [`Error::RunLocked`] when a run in progress holds `dir`; [`Error::Io`] when it cannot be
/// renamed.
pub fn move_run_aside(dir: &Path) -> Result<PathBuf> {
    let lock = RunLock::acquire(dir)?;
    let aside = rename_aside(dir)?;
    drop(lock);
    Ok(aside)
}

/// [`move_run_aside`] for a caller that holds the lock.
fn rename_aside(dir: &Path) -> Result<PathBuf> {
    let mut aside_name = dir.file_name().unwrap_or_default().to_os_string();
    aside_name.push(".previous");
    let aside = numbered(&dir.with_file_name(aside_name))
        .find(|candidate| std::fs::symlink_metadata(candidate).is_err())
        .expect("the numbered folders are endless");
    std::fs::rename(dir, &aside).map_err(|e| Error::io(dir, e))?;
    Ok(aside)
}

/// Refuses to start a run in `dir` when it holds one, unless `overwrite`, which moves that one
/// aside first (returning where). The caller holds `dir`'s lock.
pub(super) fn claim_for_new_run(dir: &Path, overwrite: bool) -> Result<Option<PathBuf>> {
    let found = run_contents(dir);
    if found.is_empty() {
        return Ok(None);
    }
    if overwrite {
        return rename_aside(dir).map(Some);
    }
    Err(Error::RunExists {
        run_dir: dir.to_path_buf(),
        found: found.join(", "),
    })
}
