//! Shared by the example CLIs: running `main` with one clear error message, and rebuilding a
//! trained model and its eval transform from a checkpoint.
#![allow(dead_code)]

use std::path::Path;
use std::process::ExitCode;

use burn::tensor::Device;
use ferrovision::data::transforms::Compose;
use ferrovision::models::{ResNet, ResNetDepth};
use ferrovision::train::{Checkpoint, EvalTransform, ModelSpec};

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

/// A trained model from a checkpoint file or run folder, with its classes and eval transform.
pub fn load_trained(
    checkpoint: &Path,
    device: &Device,
) -> Result<(ResNet, Vec<String>, Compose), Box<dyn std::error::Error>> {
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
            depth: depth(config["arch"].as_str().unwrap_or("resnet18"))?,
            num_classes: checkpoint.meta.classes.len(),
            image_size: config["image_size"].as_u64().unwrap_or(224) as u32,
            eval_transform,
        });
    }
    let (model, transform) = checkpoint.resnet(device)?;
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
