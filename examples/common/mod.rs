//! Shared by the example CLIs: running `main` with one clear error message, and rebuilding a
//! trained model and its eval transform from a checkpoint.
#![allow(dead_code)]

use std::path::Path;
use std::process::ExitCode;

use burn::tensor::Device;
use ferrovision::data::transforms::presets;
use ferrovision::data::transforms::{Compose, Normalize, Resize};
use ferrovision::models::{ResNet, ResNetConfig, ResNetDepth};
use ferrovision::train::Checkpoint;
use ferrovision::weights::{LoadOptions, load_state_dict};

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

/// The ResNet depth for an architecture name (`resnet18` ... `resnet152`).
pub fn depth(arch: &str) -> Result<ResNetDepth, String> {
    Ok(match arch {
        "resnet18" => ResNetDepth::R18,
        "resnet34" => ResNetDepth::R34,
        "resnet50" => ResNetDepth::R50,
        "resnet101" => ResNetDepth::R101,
        "resnet152" => ResNetDepth::R152,
        other => {
            return Err(format!(
                "unknown architecture `{other}` (resnet18 ... resnet152)"
            ));
        }
    })
}

/// The evaluation transform a run was trained with: `resize` (straight to size x size) or
/// torchvision's `Resize(size * 256/224) + CenterCrop(size)`.
pub fn eval_transform(kind: &str, size: u32) -> Compose {
    match kind {
        "resize" => Compose::new()
            .then(Resize::exact(size, size))
            .normalize(Normalize::imagenet()),
        _ => presets::eval(size),
    }
}

/// A trained model from a checkpoint file or run folder, with its classes and eval transform.
pub fn load_trained(
    checkpoint: &Path,
    device: &Device,
) -> Result<(ResNet, Vec<String>, Compose), Box<dyn std::error::Error>> {
    let path = Checkpoint::resolve(checkpoint);
    let checkpoint = Checkpoint::load(&path)?;
    if checkpoint.meta.model.is_some() {
        let (model, transform) = checkpoint.resnet(device)?;
        return Ok((model, checkpoint.meta.classes, transform));
    }
    // Checkpoints written before the typed model spec: the free-form configuration.
    let config = &checkpoint.meta.config;
    let arch = config["arch"].as_str().unwrap_or("resnet18");
    let size = config["image_size"].as_u64().unwrap_or(224) as u32;
    let transform = eval_transform(
        config["eval_transform"].as_str().unwrap_or("center_crop"),
        size,
    );
    let classes = checkpoint.meta.classes.clone();
    let model = ResNetConfig::new(depth(arch)?)
        .with_num_classes(classes.len())
        .init(device);
    let (model, _) = load_state_dict(model, &checkpoint.model, &LoadOptions::strict())?;
    Ok((model.eval(), classes, transform))
}

/// `--batch-size`: 1 to 65,536 images.
pub fn batch_size(text: &str) -> Result<usize, String> {
    count(text, 1, 1 << 16)
}

/// `--workers`: 0 (load on the training thread) to 256 loader threads.
pub fn workers(text: &str) -> Result<usize, String> {
    count(text, 0, 256)
}

/// `--image-size`: 16 to 4,096 pixels a side (ResNet halves the side five times).
pub fn image_size(text: &str) -> Result<u32, String> {
    count(text, 16, 4096).map(|n| n as u32)
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
