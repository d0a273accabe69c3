//! Shared by the example CLIs: running `main` with one clear error message, timing a step, the
//! `--weights` flag, and rebuilding a trained model and its eval transform from a checkpoint.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use ferrovision::data::transforms::Compose;
use ferrovision::models::{Architecture, Model, PretrainedWeights};
use ferrovision::train::{Checkpoint, EvalTransform, ModelSpec};
use ferrovision::weights::LoadReport;

/// The `--device` flag of the example CLIs.
#[derive(clap::Args, Debug)]
pub struct DeviceArg {
    /// Device: cpu (flex), flex, ndarray, wgpu, wgpu-cpu, vulkan, cuda (GPU ones with their feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    /// The device named by the flag.
    pub fn open(&self) -> ferrovision::Result<Device> {
        ferrovision::device::by_name(&self.device)
    }
}

/// Runs `body`, printing an error as one line on standard error with exit code 1.
pub fn main_with(body: impl FnOnce() -> Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--precision` checked against the device, a refusal in the flag's words.
pub fn check_precision(
    precision: ferrovision::Precision,
    device: &Device,
) -> Result<(), Box<dyn std::error::Error>> {
    precision.check(device).map_err(|e| match e {
        ferrovision::Error::UnsupportedPrecision { precision, device } => format!(
            "--precision {precision}: the {device} device cannot compute in it; use --precision f32 there"
        )
        .into(),
        other => other.into(),
    })
}

/// Seconds each of `iters` calls of `step` takes, after `warmup` untimed ones.
pub fn timed(
    warmup: usize,
    iters: usize,
    mut step: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    for _ in 0..warmup {
        step()?;
    }
    (0..iters)
        .map(|_| {
            let start = std::time::Instant::now();
            step()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}

/// A `--weights` value: torchvision's pretrained weights by name, or a weight file.
pub enum Weights {
    /// `imagenet`, `imagenet1k-v2`, `resnet50-imagenet1k-v2`, ...: fetched into the cache.
    Named(&'static PretrainedWeights),
    /// A `.pth` / `.safetensors` file.
    File(PathBuf),
}

impl Weights {
    /// Reads `--weights` for a model of `arch`: an existing file (or a value that looks like a
    /// path) is a file, anything else a pretrained-weights name (ResNets have them).
    pub fn parse(value: &str, arch: Architecture) -> Result<Self, Box<dyn std::error::Error>> {
        let path = PathBuf::from(value);
        if path.exists() || value.contains(['/', '\\']) || path.extension().is_some() {
            return Ok(Weights::File(path));
        }
        let Architecture::ResNet(depth) = arch else {
            return Err(format!(
                "--weights {value}: no named weights for {arch} yet; pass torchvision's .pth file"
            )
            .into());
        };
        let named = PretrainedWeights::parse(value, depth)?;
        if named.depth != depth {
            return Err(format!(
                "--weights {value} is for {}; pass --arch {} too",
                named.depth, named.depth
            )
            .into());
        }
        Ok(Weights::Named(named))
    }

    /// Loads the weights into `model` with `load_weights` (fetching named ones first) and says
    /// what was loaded: `weights.load(resnet, ResNet::load_weights)`, or
    /// `weights.load(model, Model::load_weights)` for any architecture.
    pub fn load<M>(
        &self,
        model: M,
        load_weights: impl FnOnce(M, PathBuf) -> ferrovision::Result<(M, LoadReport)>,
    ) -> Result<M, Box<dyn std::error::Error>> {
        let (path, label) = match self {
            Weights::Named(named) => (named.fetch()?, named.name().to_string()),
            Weights::File(path) => (path.clone(), path.display().to_string()),
        };
        let (model, report) = load_weights(model, path).map_err(|e| match e {
            // In the flag's words: the library names its option.
            ferrovision::Error::UnsafePickle { path, global } => format!(
                "`{}` names the Python global `{global}`, which torch.load(weights_only=True) refuses (it could run code when Python loads it); pass --trust-pickle only if you trust its source",
                path.display()
            )
            .into(),
            other => Box::<dyn std::error::Error>::from(other),
        })?;
        println!("weights: {label}: {report}");
        Ok(model)
    }

    /// The category names of a named set's outputs.
    pub fn categories(&self) -> Option<&'static [&'static str]> {
        match self {
            Weights::Named(named) => Some(named.categories()),
            Weights::File(_) => None,
        }
    }
}

/// `Model::load_weights`, reading `.pth` pickles that name globals torch's weights-only loader
/// refuses only when `trust_pickle` (`--trust-pickle`).
pub fn load_model_weights(
    trust_pickle: bool,
) -> impl FnOnce(Model, PathBuf) -> ferrovision::Result<(Model, LoadReport)> {
    move |model, path| {
        let options = ferrovision::weights::LoadOptions::strict()
            .with_reinit_on_mismatch(model.head_prefix())
            .with_unsafe_globals(trust_pickle);
        ferrovision::weights::load_file(model, path, &options)
    }
}

/// A trained model from a checkpoint file or run folder, with its classes and eval transform.
pub fn load_trained(
    checkpoint: &Path,
    device: &Device,
) -> Result<(Model, Vec<String>, Compose), Box<dyn std::error::Error>> {
    let path = Checkpoint::resolve(checkpoint);
    let mut checkpoint = Checkpoint::load(&path)?;
    if checkpoint.meta.model.is_none() {
        // Checkpoints written before the typed model spec: read it from the free-form config.
        let config = &checkpoint.meta.config;
        let eval_transform = match config["eval_transform"].as_str() {
            Some("resize") => EvalTransform::Resize,
            _ => EvalTransform::CenterCrop,
        };
        checkpoint.meta.model = Some(ModelSpec {
            arch: config["arch"].as_str().unwrap_or("resnet18").parse()?,
            num_classes: checkpoint.meta.classes.len(),
            image_size: config["image_size"]
                .as_u64()
                .map_or(Ok(224), u32::try_from)
                .map_err(|_| {
                    format!("`{}`: config `image_size` is out of range", path.display())
                })?,
            eval_transform,
        });
    }
    let (model, transform) = checkpoint.model(device)?;
    Ok((model, checkpoint.meta.classes, transform))
}

/// `--batch-size`: 1 to 65,536 images.
pub fn batch_size(text: &str) -> Result<usize, String> {
    count(text, 1, 1 << 16)
}

/// `--workers`: 0 (load on the training thread) to 256 loader threads.
pub fn workers(text: &str) -> Result<usize, String> {
    count(text, 0, 256)
}

/// `--bn-momentum`: a number in `[0, 1]`.
pub fn momentum(text: &str) -> Result<f64, String> {
    number(
        text,
        |v| (0.0..=1.0).contains(&v),
        "a momentum is in [0, 1]",
    )
}

/// `--image-size`: 16 to 4,096 pixels a side (ResNet halves the side five times; each
/// architecture's own floor, `Architecture::min_image_size`, is checked with `--arch`).
pub fn image_size(text: &str) -> Result<u32, String> {
    count(text, 16, ferrovision::train::MAX_IMAGE_SIZE as usize).map(|n| n as u32)
}

/// `--epochs`: 1 to 100,000 (zero would train and save nothing).
pub fn epochs(text: &str) -> Result<usize, String> {
    count(text, 1, 100_000)
}

/// `--lr`: a finite number >= 0.
pub fn learning_rate(text: &str) -> Result<f64, String> {
    number(
        text,
        |v| v.is_finite() && v >= 0.0,
        "a learning rate is a finite number >= 0",
    )
}

/// `text` as a number that `fits`, else `rule` and the value.
fn number(text: &str, fits: impl Fn(f64) -> bool, rule: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if fits(value) {
        Ok(value)
    } else {
        Err(format!("{rule}, got {value}"))
    }
}

fn count(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is outside {min}..={max}"))
    }
}
