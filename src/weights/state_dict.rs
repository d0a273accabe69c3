//! The in-memory state dict: named raw tensors, as a file stores them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::raw::RawTensor;
use crate::{Error, Result};

/// Named tensors, as `model.state_dict()` in PyTorch, with the file they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    tensors: BTreeMap<String, RawTensor>,
    metadata: BTreeMap<String, String>,
    source: Option<PathBuf>,
}

/// The weight file formats read.
enum Format {
    /// `torch.save`'s zip archive, or its older bare pickle.
    Pth,
    /// safetensors: a little-endian header length, then a JSON header.
    Safetensors,
}

/// The format a file's first bytes show, if they show one: a safetensors header (its length,
/// within the file, then `{`), a zip archive, or a pickle (protocol 2 to 5).
fn sniff(path: &Path) -> Option<Format> {
    use std::io::Read;
    let mut head = Vec::with_capacity(9);
    let (file, len) = crate::files::open_regular(path, "a weight file").ok()?;
    file.take(9).read_to_end(&mut head).ok()?;
    if head.len() == 9 && head[8] == b'{' {
        let header = u64::from_le_bytes(head[..8].try_into().ok()?);
        if header >= 2 && header <= len - 8 {
            return Some(Format::Safetensors);
        }
    }
    if head.starts_with(b"PK\x03\x04") || matches!(head[..], [0x80, 2..=5, ..]) {
        Some(Format::Pth)
    } else {
        None
    }
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a `.pth` / `.pt` / `.bin` file (as `torch.save(model.state_dict(), f)` writes it)
    /// or a `.safetensors` file, told apart by their first bytes (a zip archive or a pickle;
    /// a safetensors header), by the extension when those say neither. Keys are returned as
    /// stored; see [`strip_prefix`](Self::strip_prefix) for `module.`-prefixed (DataParallel)
    /// files.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Pth`] / [`Error::Safetensors`] when
    /// it is not a valid file of its format (truncated, corrupt), [`Error::UnknownFormat`] when
    /// neither its first bytes nor its extension name a format.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::read(path.as_ref(), &|_, _| true, false)
    }

    /// As [`from_file`](Self::from_file), also reading a `.pth` file whose pickle names Python
    /// globals torch's weights-only loader refuses (`torch.load(weights_only=False)`): such a
    /// file can run code when Python loads it. ferrovision never runs it, but load it only if
    /// you trust where it came from.
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file), without [`Error::UnsafePickle`].
    pub fn from_file_trusted(path: impl AsRef<Path>) -> Result<Self> {
        Self::read(path.as_ref(), &|_, _| true, true)
    }

    /// As [`from_file`](Self::from_file), reading the data of the tensors `wanted` accepts
    /// (asked with each key and shape before anything is read); the others keep their shape
    /// and type but hold no bytes, so they can be reported but not loaded.
    pub(crate) fn read(
        path: &Path,
        wanted: super::formats::Wanted<'_>,
        trust_pickle: bool,
    ) -> Result<Self> {
        // A missing file is reported as such, whatever its name says about the format; a FIFO
        // or a device is refused before anything opens it for a blocking read.
        crate::files::check_regular(path, "a weight file")?;
        let format = match sniff(path) {
            Some(format) => format,
            None => match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("pth" | "pt" | "bin" | "ckpt") => Format::Pth,
                Some("safetensors") => Format::Safetensors,
                _ => {
                    return Err(Error::UnknownFormat {
                        path: path.to_path_buf(),
                    });
                }
            },
        };
        let (tensors, metadata) = match format {
            Format::Pth => (
                super::formats::read_pth(path, wanted, trust_pickle)?,
                BTreeMap::new(),
            ),
            Format::Safetensors => super::formats::read_safetensors(path)?,
        };
        Ok(Self {
            tensors,
            metadata,
            source: Some(path.to_path_buf()),
        })
    }

    /// Writes the state dict as a `.safetensors` file, atomically: a temporary file beside
    /// `path` is written, flushed to disk and renamed over it, so a crash never leaves a
    /// half-written file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        super::formats::write_safetensors(&self.tensors, &self.metadata, path.as_ref())
    }

    /// String metadata stored with the tensors (the safetensors header's `__metadata__`);
    /// empty for `.pth` files.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Sets a metadata entry, written by [`save_safetensors`](Self::save_safetensors).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Moves every tensor of `other` in under `prefix` (`model.` + `fc.weight`).
    pub fn extend_prefixed(&mut self, prefix: &str, other: StateDict) {
        for (key, tensor) in other.tensors {
            self.tensors.insert(format!("{prefix}{key}"), tensor);
        }
    }

    /// The tensors whose key starts with `prefix`, with the prefix taken off.
    pub fn select_prefix(&self, prefix: &str) -> StateDict {
        StateDict {
            tensors: self
                .tensors
                .iter()
                .filter_map(|(k, t)| k.strip_prefix(prefix).map(|k| (k.to_string(), t.clone())))
                .collect(),
            metadata: BTreeMap::new(),
            source: self.source.clone(),
        }
    }

    /// The file this state dict was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    pub(crate) fn source_or_memory(&self) -> PathBuf {
        self.source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<memory>"))
    }

    /// Keys in sorted order.
    pub fn keys(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// The tensor under `key`.
    pub fn get(&self, key: &str) -> Option<&RawTensor> {
        self.tensors.get(key)
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, key: impl Into<String>, tensor: RawTensor) {
        self.tensors.insert(key.into(), tensor);
    }

    /// Removes a tensor.
    pub fn remove(&mut self, key: &str) -> Option<RawTensor> {
        self.tensors.remove(key)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of elements, as PyTorch counts parameters and buffers together.
    pub fn numel(&self) -> usize {
        self.tensors.values().map(RawTensor::numel).sum()
    }

    /// Removes `prefix` from every key that starts with it (e.g. `module.` from a
    /// DataParallel checkpoint); other keys are kept unchanged.
    pub fn strip_prefix(&mut self, prefix: &str) {
        self.tensors = std::mem::take(&mut self.tensors)
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(prefix).map(str::to_string).unwrap_or(k), v))
            .collect();
    }

    /// The tensors, by key in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &RawTensor)> {
        self.tensors.iter()
    }
}
