//! Weight files fetched by URL into the cache torch hub uses, so a file PyTorch already
//! downloaded is found without a download, and one we download is found by PyTorch.
//!
//! The cache folder is `$FERROVISION_HOME/checkpoints` when `FERROVISION_HOME` is set, else torch
//! hub's: `$TORCH_HOME/hub/checkpoints`, by default `~/.cache/torch/hub/checkpoints`
//! (`$XDG_CACHE_HOME/torch/...` when that is set). A file is kept under the last part of its URL.
//!
//! A download streams into `NAME.partial` beside the cache file (bounded memory, a progress bar
//! on a terminal), checks the SHA-256 against the hex digits torch hub's names carry
//! (`resnet18-f37072fd.pth`: the digest starts `f37072fd`), and renames the file into place: a
//! cache file is whole or absent. A transfer cut short keeps its part and the next fetch asks the
//! server for the rest (`Range`), or starts over when the server will not resume. Two processes
//! fetching one file take turns: the second finds the first one's file.
//!
//! ```no_run
//! use ferrovision::weights::hub::Fetch;
//! let path = Fetch::new().fetch("https://download.pytorch.org/models/resnet18-f37072fd.pth")?;
//! assert!(path.ends_with("resnet18-f37072fd.pth"));
//! # Ok::<(), ferrovision::Error>(())
//! ```

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::error::DownloadFailure;
use crate::{Error, Result};

/// The folder weight files are cached in (see the [module docs](self) for the order).
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(home) = var("FERROVISION_HOME") {
        return home.join("checkpoints");
    }
    let torch_home = var("TORCH_HOME").unwrap_or_else(|| {
        let cache = var("XDG_CACHE_HOME").unwrap_or_else(|| {
            let home = var("HOME")
                .or_else(|| var("USERPROFILE"))
                .unwrap_or_default();
            home.join(".cache")
        });
        cache.join("torch")
    });
    torch_home.join("hub").join("checkpoints")
}

/// The hex digits a torch hub file name promises its SHA-256 starts with: the first run of
/// lowercase hex after a `-` and before a `.` (`resnet18-f37072fd.pth` → `f37072fd`), as
/// torch hub reads them; `None` for a name without.
///
/// ```
/// use ferrovision::weights::hub::hash_prefix;
/// assert_eq!(hash_prefix("resnet50-11ad3fa6.pth"), Some("11ad3fa6"));
/// assert_eq!(hash_prefix("model.pth"), None);
/// ```
pub fn hash_prefix(file_name: &str) -> Option<&str> {
    file_name.match_indices('-').find_map(|(dash, _)| {
        let rest = &file_name[dash + 1..];
        let digits = rest
            .find(|c: char| !matches!(c, '0'..='9' | 'a'..='f'))
            .unwrap_or(rest.len());
        (rest[digits..].starts_with('.')).then_some(&rest[..digits])
    })
}

/// How to fetch: the cache folder and whether to draw progress.
#[derive(Debug, Clone)]
pub struct Fetch {
    cache_dir: PathBuf,
    progress: bool,
}

impl Default for Fetch {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetch {
    /// Into [`cache_dir()`], with a progress bar when standard error is a terminal.
    pub fn new() -> Self {
        Self {
            cache_dir: cache_dir(),
            progress: true,
        }
    }

    /// Into another folder.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Whether a download says what it fetches and draws a progress bar on standard error
    /// (drawn on a terminal only; default on).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Where the file of `url` is (or would be) cached.
    pub fn cached_path(&self, url: &str) -> PathBuf {
        let name = url.rsplit('/').next().unwrap_or(url);
        let name = name.split(['?', '#']).next().unwrap_or(name);
        self.cache_dir.join(name)
    }

    /// The cached file of `url`, downloaded first when it is not in the cache.
    ///
    /// # Errors
    /// - [`Error::Download`] naming the URL and the cache path: no connection, an HTTP status
    ///   other than 200/206, a transfer cut short (its part is kept; fetch again to resume), a
    ///   URL without a file name, or built without the `download` feature.
    /// - [`Error::HashMismatch`] when the file's SHA-256 does not start with the digits its name
    ///   carries; nothing is kept.
    /// - [`Error::Io`] when the cache folder cannot be written.
    pub fn fetch(&self, url: &str) -> Result<PathBuf> {
        let path = self.cached_path(url);
        let named = path.file_name().and_then(|n| n.to_str());
        if path.parent() != Some(self.cache_dir.as_path())
            || matches!(named, None | Some(".." | "."))
        {
            return Err(Error::Download {
                url: url.to_string(),
                path: self.cache_dir.clone(),
                reason: DownloadFailure::NoFileName,
            });
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => return Ok(path),
            // A FIFO, a device or a folder where the file should be: refused, never read or
            // replaced.
            Ok(_) => {
                crate::files::check_regular(&path, "a cached weight file")?;
            }
            Err(_) => {}
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| Error::io(&self.cache_dir, e))?;
        Partial::open(&path)?.complete(url, &path, self.progress)?;
        Ok(path)
    }
}

/// `NAME.partial`, locked for the time of one download.
struct Partial {
    file: File,
    path: PathBuf,
}

impl Partial {
    /// Opens (or creates) the part file beside `target` and waits for its lock.
    fn open(target: &Path) -> Result<Self> {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let path = target.with_file_name(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            crate::files::check_regular(&path, "a partial download")?;
        }
        let file = crate::atomic::open_kept(&path)?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(Self { file, path })
    }

    /// Downloads the rest of `url`, checks the hash and renames the file to `target`.
    fn complete(mut self, url: &str, target: &Path, progress: bool) -> Result<()> {
        if target.is_file() {
            // Another process finished it while we waited for the lock.
            return Ok(());
        }
        let failed = |reason| Error::Download {
            url: url.to_string(),
            path: target.to_path_buf(),
            reason,
        };
        let result = self.receive(url, target, progress).map_err(|e| match e {
            Received::Failed(reason) => failed(reason),
            Received::Io(e) => Error::io(&self.path, e),
        });
        let digest = match result {
            Ok(digest) => digest,
            Err(e) => {
                // A part with nothing in it is nothing to resume: leave no file behind.
                if self.received() == Some(0) {
                    let _ = std::fs::remove_file(&self.path);
                }
                return Err(e);
            }
        };
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        if let Some(expected) = hash_prefix(&name)
            && !digest.starts_with(expected)
        {
            let _ = std::fs::remove_file(&self.path);
            return Err(Error::HashMismatch {
                url: url.to_string(),
                expected: expected.to_string(),
                found: digest,
            });
        }
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        std::fs::rename(&self.path, target).map_err(|e| Error::io(target, e))
    }

    /// Bytes already in the part file.
    fn received(&self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.len())
    }

    /// Streams the file (or its rest) into the part file; the SHA-256 of the whole, in hex.
    fn receive(&mut self, url: &str, target: &Path, progress: bool) -> Result<String, Received> {
        let mut hasher = Sha256::new();
        let mut offset = self.received().unwrap_or(0);
        if offset > 0 {
            self.file.rewind()?;
            std::io::copy(&mut (&self.file).take(offset), &mut HashWriter(&mut hasher))?;
        }
        let mut response = http::get(url, offset)?;
        if response.restarted {
            offset = 0;
            hasher = Sha256::new();
            self.file.set_len(0)?;
        }
        self.file.seek(SeekFrom::Start(offset))?;
        let expected = response.remaining.map(|rest| offset + rest);
        let bar = bar(url, target, progress, offset, expected);
        let mut buffer = vec![0u8; 1 << 20];
        let mut received = offset;
        let ended = loop {
            let n = match response.body.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            self.file.write_all(&buffer[..n])?;
            hasher.update(&buffer[..n]);
            received += n as u64;
            bar.set_position(received);
        };
        // Short of the announced length, however the body ended: resumable. A broken body of
        // unknown length: a transport failure.
        let truncated = expected
            .filter(|&e| e != received)
            .map(|expected| DownloadFailure::Truncated { received, expected });
        if let Some(failure) =
            truncated.or(ended.err().map(|e| DownloadFailure::Transport(Box::new(e))))
        {
            self.file.sync_data()?;
            bar.abandon();
            return Err(Received::Failed(failure));
        }
        bar.finish_and_clear();
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// Why [`Partial::receive`] stopped: the transfer, or the part file.
enum Received {
    Failed(DownloadFailure),
    Io(std::io::Error),
}

impl From<std::io::Error> for Received {
    fn from(e: std::io::Error) -> Self {
        Received::Io(e)
    }
}

impl From<DownloadFailure> for Received {
    fn from(e: DownloadFailure) -> Self {
        Received::Failed(e)
    }
}

/// Feeds bytes read back from the part file into the hash.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The progress bar of one download: one line naming it, then bytes, rate and ETA (drawn on a
/// terminal only); hidden when `progress` is off.
fn bar(
    url: &str,
    target: &Path,
    progress: bool,
    offset: u64,
    expected: Option<u64>,
) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let resumed = if offset > 0 { " (resuming)" } else { "" };
    eprintln!("Downloading {url} to {}{resumed}", target.display());
    let bar = match expected {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(offset);
    bar
}

/// The HTTP side: one GET, from a byte offset when there is a part to resume.
mod http {
    use super::DownloadFailure;

    /// A response whose body is the file, or its rest.
    pub(super) struct Response {
        /// The body.
        pub(super) body: Box<dyn std::io::Read>,
        /// The body's announced length.
        pub(super) remaining: Option<u64>,
        /// Whether the body is the whole file although a rest was asked for.
        pub(super) restarted: bool,
    }

    /// The largest file accepted: no weight file comes near it; it bounds what a misbehaving
    /// server can write into the cache.
    #[cfg(feature = "download")]
    const MAX_BYTES: u64 = 1 << 36;

    /// `GET url`, asking for the bytes from `offset` on when it is not 0. A server that answers
    /// 416 (nothing past `offset`: a part file not from this file) is asked again for all.
    #[cfg(feature = "download")]
    pub(super) fn get(url: &str, offset: u64) -> Result<Response, DownloadFailure> {
        use std::time::Duration;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut request = agent.get(url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request
            .call()
            .map_err(|e| DownloadFailure::Transport(Box::new(e)))?;
        let status = response.status().as_u16();
        let resumes_at = |response: &ureq::http::Response<ureq::Body>| {
            let range = response.headers().get("content-range")?.to_str().ok()?;
            let start = range.strip_prefix("bytes ")?.split('-').next()?;
            start.trim().parse::<u64>().ok()
        };
        let restarted = match status {
            200 => offset > 0,
            206 if resumes_at(&response) == Some(offset) => false,
            416 if offset > 0 => {
                return get(url, 0).map(|r| Response {
                    restarted: true,
                    ..r
                });
            }
            _ => return Err(DownloadFailure::Status { status }),
        };
        let remaining = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let body = response
            .into_body()
            .into_with_config()
            .limit(MAX_BYTES)
            .reader();
        Ok(Response {
            body: Box::new(body),
            remaining,
            restarted,
        })
    }

    /// Without the `download` feature: the typed refusal.
    #[cfg(not(feature = "download"))]
    pub(super) fn get(_url: &str, _offset: u64) -> Result<Response, DownloadFailure> {
        Err(DownloadFailure::NotBuilt)
    }
}
