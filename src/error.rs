//! The crate's error type: one enum, typed variants that keep the path and the cause.

use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A key whose tensor has another shape in the file than in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The state-dict key, e.g. `fc.weight`.
    pub key: String,
    /// The shape the model holds.
    pub expected: Vec<usize>,
    /// The shape found in the file.
    pub found: Vec<usize>,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: model has {:?}, file has {:?}",
            self.key, self.expected, self.found
        )
    }
}

/// Why a download of a weight file stopped (see [`Error::Download`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadFailure {
    /// The server answered with an HTTP status other than 200 or 206.
    #[error("the server answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// No connection, or it broke: DNS, refused, TLS, reset, timed out.
    #[error("{0}")]
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// The connection ended before the announced length arrived. What arrived is kept beside
    /// the cache file (`NAME.partial`): the next fetch resumes from there.
    #[error(
        "the transfer ended after {received} of {expected} bytes (kept: fetch again to resume)"
    )]
    Truncated {
        /// Bytes of the file received so far, earlier attempts included.
        received: u64,
        /// The file's length as the server announced it.
        expected: u64,
    },
    /// The URL ends without a file name to keep the file under.
    #[error("the URL names no file (it should end with one, e.g. `.../resnet18-f37072fd.pth`)")]
    NoFileName,
    /// ferrovision was built without its `download` feature.
    #[error("ferrovision was built without its `download` feature")]
    NotBuilt,
}

/// Why a [`Compose`](crate::data::transforms::Compose) made no tensor of an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// A step would make an image with more pixels than the cap.
    #[error(
        "a {height} x {width} image from {step} would pass the cap of {max_pixels} pixels (input {input_height} x {input_width})"
    )]
    TooLarge {
        /// The step, as its `Debug` text.
        step: String,
        /// The input's height.
        input_height: u32,
        /// The input's width.
        input_width: u32,
        /// The output height the step would make.
        height: u32,
        /// The output width the step would make.
        width: u32,
        /// The cap ([`Compose::with_max_pixels`](crate::data::transforms::Compose::with_max_pixels)).
        max_pixels: u64,
    },
    /// A step panicked (caught by the loader, which names the file).
    #[error("a transform panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// Everything that can go wrong when ferrovision meets the outside world.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A `.pth` / `.pt` file is not a readable PyTorch checkpoint (truncated, corrupt, not a
    /// checkpoint at all).
    #[error("`{path}` is not a readable PyTorch checkpoint: {source}")]
    Pth {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        source: pytorch_reader::PytorchError,
    },
    /// A `.safetensors` file is not readable (truncated, corrupt header, ...).
    #[error("`{path}` is not a readable safetensors file: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser found wrong.
        source: safetensors::SafeTensorError,
    },
    /// A weight file whose extension names no format ferrovision reads.
    #[error(
        "`{path}`: unknown weight format; expected a `.pth`, `.pt`, `.bin` or `.safetensors` file"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A tensor stored with an element type that cannot hold the model's values.
    #[error("`{path}`: tensor `{key}` is stored as {found}; expected {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The state-dict key.
        key: String,
        /// The element type in the file.
        found: String,
        /// What the model accepts.
        expected: &'static str,
    },
    /// A tensor whose stored byte length disagrees with its declared shape and type.
    #[error("`{path}`: tensor `{key}` declares shape {shape:?} but holds {bytes} bytes")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The state-dict key.
        key: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The bytes found.
        bytes: usize,
    },
    /// Strict loading found keys the model lacks, keys the file lacks, or shapes that differ.
    #[error(
        "`{path}` does not fit the model: {} missing, {} unexpected, {} shape mismatches{}",
        missing.len(), unexpected.len(), mismatched.len(), describe(missing, unexpected, mismatched)
    )]
    IncompatibleWeights {
        /// The file (or `<memory>` for an in-memory state dict).
        path: PathBuf,
        /// Keys the model has and the file lacks.
        missing: Vec<String>,
        /// Keys the file has and the model lacks.
        unexpected: Vec<String>,
        /// Keys whose shapes differ.
        mismatched: Vec<ShapeMismatch>,
    },
    /// An image file that cannot be decoded: empty, truncated, not an image, an unsupported
    /// format, or larger than the decoding limits (a decompression bomb).
    #[error("cannot decode image `{path}`: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// An image folder root without any class sub-folder.
    #[error("no class folders found in `{root}`: expected root/<class>/<image files>")]
    NoClasses {
        /// The root folder.
        root: PathBuf,
    },
    /// A class folder without any valid image file (and `allow_empty` is off).
    #[error(
        "class folder `{class}` in `{root}` holds no valid image file (extensions: {extensions})"
    )]
    EmptyClass {
        /// The root folder.
        root: PathBuf,
        /// The class (sub-folder name).
        class: String,
        /// The accepted extensions, comma-separated, or `custom predicate`.
        extensions: String,
    },
    /// An image folder given both an extension list and an `is_valid_file` predicate.
    #[error("`{root}`: give either an extension list or an is_valid_file predicate, not both")]
    ExtensionsAndPredicate {
        /// The root folder.
        root: PathBuf,
    },
    /// Two images of one batch came out of the transforms with different sizes (add a
    /// `Resize` + `CenterCrop` or a `RandomResizedCrop`).
    #[error(
        "`{path}` gives a {found:?} tensor, but its batch has {expected:?}; make the transforms end at one size"
    )]
    MixedImageSizes {
        /// The file whose tensor differs.
        path: PathBuf,
        /// `[channels, height, width]` of the batch's first image.
        expected: [usize; 3],
        /// `[channels, height, width]` of this image.
        found: [usize; 3],
    },
    /// A device name that ferrovision does not know or was not compiled with.
    #[error("unknown device `{name}`; this build offers: {available}")]
    UnknownDevice {
        /// The name asked for.
        name: String,
        /// The names this build accepts, comma-separated.
        available: String,
    },
    /// A precision name that is not `f32`, `bf16` or `f16`.
    #[error("unknown precision `{name}`; expected one of: {expected}")]
    UnknownPrecision {
        /// The name asked for.
        name: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A precision the device cannot compute in (e.g. bf16 on a Vulkan driver without it).
    #[error("the {device} device cannot compute in {precision}; compute in `Precision::F32` there")]
    UnsupportedPrecision {
        /// The precision asked for.
        precision: String,
        /// The device, as [`crate::device::describe`] names it.
        device: String,
    },
    /// The training loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the training loss became {value} in epoch {epoch} (by batch {batch}); stopped, keeping the last good checkpoint{}",
        .kept.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default()
    )]
    NonFiniteLoss {
        /// The epoch, counted from 1.
        epoch: usize,
        /// The batch of the epoch by which it was seen, counted from 1.
        batch: usize,
        /// `NaN` or `inf`.
        value: f32,
        /// The checkpoint left in place, if one was written before.
        kept: Option<PathBuf>,
    },
    /// A checkpoint file lacks what a checkpoint holds, or was written for another model.
    #[error("`{path}` is not a usable ferrovision checkpoint: {problem}")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong, e.g. "no `ferrovision.checkpoint` metadata".
        problem: String,
    },
    /// A file the loader will not read: not a regular file (a FIFO, a device), or larger than
    /// the limit (see [`DecodeLimits::max_file_bytes`](crate::data::DecodeLimits)).
    #[error("`{path}`: {problem}")]
    FileRejected {
        /// The file.
        path: PathBuf,
        /// Why, e.g. "not a regular file (a FIFO)".
        problem: String,
    },
    /// The transforms could not make a tensor of an image: its output would be over the pixel
    /// cap, or a transform panicked.
    #[error("cannot transform image `{path}`: {source}")]
    Transform {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: TransformError,
    },
    /// A weight file whose tensors would take more memory than the reading budget (e.g. a
    /// zero-stride view declaring billions of elements over one stored value).
    #[error(
        "`{path}`: tensor `{key}` declares {bytes} bytes, past the reading budget of {budget} bytes for this file"
    )]
    WeightsTooLarge {
        /// The file.
        path: PathBuf,
        /// The key that passed the budget.
        key: String,
        /// The bytes the tensors read so far and this one would take.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// A resume checkpoint written by a run with other settings than this one: every
    /// setting that differs is listed.
    #[error(
        "cannot resume from `{}`: {}; resume with the same settings, or start afresh in a new run folder",
        path.display(),
        differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ResumeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Each setting that differs (at least one).
        differences: Vec<SettingDifference>,
    },
    /// A new run was started in a run folder that holds a run (checkpoints or recorded epochs):
    /// it is never overwritten silently.
    #[error(
        "run folder `{}` already holds a run ({found}); resume it (pass its checkpoint to `Trainer::fit`), choose another folder, or set `TrainerConfig::overwrite` to move it aside first",
        run_dir.display()
    )]
    RunExists {
        /// The run folder.
        run_dir: PathBuf,
        /// What it holds, e.g. `last.safetensors, metrics.jsonl`.
        found: String,
    },
    /// Another process holds the run folder's lock (`.lock`).
    #[error(
        "run folder `{run_dir}` is in use by another run (lock `{}` held{}); wait for it, or choose another folder",
        run_dir.join(".lock").display(),
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default()
    )]
    RunLocked {
        /// The run folder.
        run_dir: PathBuf,
        /// What the lock file says of its holder (process id), when readable.
        holder: Option<String>,
    },
    /// A weight file could not be downloaded into the cache.
    #[error(
        "cannot download `{url}`: {reason}; without network access, fetch the file elsewhere and put it at `{path}`"
    )]
    Download {
        /// The address.
        url: String,
        /// Where the file goes in the cache.
        path: PathBuf,
        /// What went wrong.
        reason: DownloadFailure,
    },
    /// A downloaded file whose SHA-256 does not start with the digits its name carries
    /// (torch hub's convention, `resnet18-f37072fd.pth`). Nothing is kept in the cache.
    #[error(
        "`{url}` has SHA-256 {found}, but its name promises one starting `{expected}`: a corrupt download or another file; nothing was kept in the cache"
    )]
    HashMismatch {
        /// The address.
        url: String,
        /// The hex digits from the file name.
        expected: String,
        /// The SHA-256 of what arrived, in hex.
        found: String,
    },
    /// An architecture name that names no model ferrovision builds.
    #[error(
        "unknown architecture `{name}`; expected resnet18, resnet34, resnet50, resnet101 or resnet152"
    )]
    UnknownArchitecture {
        /// The name given.
        name: String,
    },
    /// A pretrained-weights name that names no weights of this model.
    #[error("no pretrained weights `{name}` for {model}; known: {known}")]
    UnknownWeights {
        /// The name asked for.
        name: String,
        /// The model it was asked for.
        model: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// A training configuration that cannot run, e.g. a dataset with fewer classes than the
    /// model or an empty loader.
    #[error("invalid training setup: {problem}")]
    InvalidSetup {
        /// What is wrong.
        problem: String,
    },
    /// An input side smaller than an architecture can take (see
    /// [`Architecture::min_image_size`](crate::models::Architecture::min_image_size)).
    #[error("{arch} needs images of at least {min} x {min} pixels, got {image_size}")]
    ImageTooSmall {
        /// The architecture's name.
        arch: String,
        /// The side asked for.
        image_size: u32,
        /// The smallest side it runs at.
        min: u32,
    },
    /// A configuration value that cannot work (a negative or NaN learning rate, a beta outside
    /// `[0, 1)`, ...), named by its config and field.
    #[error("{config}: `{field}` is {value}; expected {expected}")]
    InvalidConfig {
        /// The configuration type, e.g. `AdamConfig`.
        config: &'static str,
        /// The field, e.g. `lr`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What it must be, e.g. "a finite number >= 0".
        expected: String,
    },
    /// A `.pth` file whose pickle names a Python global outside what PyTorch's
    /// `torch.load(weights_only=True)` allows (tensor rebuilds, storages, `OrderedDict`, dtypes):
    /// such a file can run code in Python. Nothing of it is loaded.
    #[error(
        "`{}` names the Python global `{global}`, which a weights-only load does not allow (it could run code when loaded in Python); load it only if you trust its source (`LoadOptions::allow_unsafe_globals`)",
        path.display()
    )]
    UnsafePickle {
        /// The file.
        path: PathBuf,
        /// The global, as `module.name`.
        global: String,
    },
    /// An epoch found no image it could train on (every file skipped as unreadable, under
    /// [`OnError::Skip`](crate::data::OnError::Skip)); nothing of it was saved.
    #[error(
        "epoch {epoch} had no readable training image in `{}`: {} skipped{}",
        root.display(), skipped.len(), list_paths(skipped)
    )]
    NoTrainingData {
        /// The epoch, counted from 1.
        epoch: usize,
        /// The training set's root folder.
        root: PathBuf,
        /// The files skipped as unreadable.
        skipped: Vec<PathBuf>,
    },
    /// A picture (learning curve, confusion matrix) could not be drawn or encoded.
    #[error("cannot draw the picture `{picture}`: {problem}")]
    Picture {
        /// The picture's title.
        picture: String,
        /// What the drawing or encoding library said.
        problem: String,
    },
}

/// One setting of a run that a resume would change (see [`Error::ResumeMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDifference {
    /// The setting: "classes", "seed", "batch size", "optimizer", "model", "transform", ...
    pub what: &'static str,
    /// The checkpoint's value.
    pub checkpoint: String,
    /// This run's value.
    pub current: String,
}

impl SettingDifference {
    /// The difference in `what`, when the two values differ.
    pub(crate) fn between(what: &'static str, checkpoint: String, current: String) -> Option<Self> {
        (checkpoint != current).then_some(Self {
            what,
            checkpoint,
            current,
        })
    }
}

impl std::fmt::Display for SettingDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its {} is {}, this run's is {}",
            self.what, self.checkpoint, self.current
        )
    }
}

/// The first few of `paths`, for a message.
fn list_paths(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 5;
    let mut text: String = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("\n  {}", p.display()))
        .collect();
    if paths.len() > SHOWN {
        text += &format!("\n  and {} more", paths.len() - SHOWN);
    }
    text
}

fn describe(missing: &[String], unexpected: &[String], mismatched: &[ShapeMismatch]) -> String {
    fn list(label: &str, items: &[String]) -> String {
        const SHOWN: usize = 8;
        if items.is_empty() {
            return String::new();
        }
        let mut text = format!("; {label}: {}", items[..items.len().min(SHOWN)].join(", "));
        if items.len() > SHOWN {
            text.push_str(&format!(" and {} more", items.len() - SHOWN));
        }
        text
    }
    let shapes: Vec<String> = mismatched.iter().map(ToString::to_string).collect();
    format!(
        "{}{}{}",
        list("missing", missing),
        list("unexpected", unexpected),
        list("shape mismatches", &shapes)
    )
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
