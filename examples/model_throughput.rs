//! Times a model (ResNet-18 unless `--arch` says another) on one device: inference (eval mode,
//! no autodiff graph) or one full training step (forward, cross-entropy, backward, Adam step),
//! in images per second.
//!
//! ```text
//! cargo run --release --example model_throughput -- --mode train --batch 32 --size 64
//! cargo run --release --example model_throughput -- --arch mobilenet_v3_small --mode infer
//! ```
//!
//! `scripts/bench_vs_pytorch.py` runs it next to the same step in PyTorch.

mod common;

use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use clap::{Parser, ValueEnum};
use ferrovision::models::{
    Architecture, ConvNeXtArch, EfficientNetArch, MobileNetV3Arch, ResNetDepth,
};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::optim::AdamConfig;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Mode {
    /// Forward in eval mode, without autodiff.
    Infer,
    /// Forward, cross-entropy, backward and an Adam step.
    Train,
}

/// Images per second of a model on a device.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Architecture, torchvision's name: resnet18 ... resnet152, mobilenet_v3_large,
    /// mobilenet_v3_small, efficientnet_b0 ... efficientnet_b7, convnext_tiny ... convnext_large.
    #[arg(long, default_value = "resnet18")]
    arch: Architecture,
    #[arg(long, value_enum, default_value = "train")]
    mode: Mode,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Input side in pixels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[command(flatten)]
    device: common::DeviceArg,
    /// Compute dtype (parameters, optimizer state and loss stay f32): f32, bf16, f16.
    #[arg(long, default_value = "f32")]
    precision: ferrovision::Precision,
    /// One JSON line instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    let device = args.device.open()?;
    common::check_precision(args.precision, &device)?;
    // Training needs the autodiff graph; inference runs on the plain device.
    let device = match args.mode {
        Mode::Train => device.autodiff(),
        Mode::Infer => device,
    };
    let model = args.arch.init(1000, &device);
    let shape = [args.batch, 3, args.size, args.size];
    let images = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let images = args.precision.cast(images);
    let labels =
        Tensor::<1, Int>::random([args.batch], Distribution::Uniform(0.0, 1000.0), &device);
    let mut seconds = match args.mode {
        Mode::Infer => {
            let model = model.eval().valid();
            let images = images.inner();
            // Reading the logits back waits for the device.
            common::timed(args.warmup, args.iters, || {
                model.forward(images.clone()).into_data();
                Ok(())
            })?
        }
        Mode::Train => {
            let loss_fn = CrossEntropyLossConfig::new().init();
            let mut optimizer = AdamConfig::new().init()?;
            let mut model = Some(model.train());
            common::timed(args.warmup, args.iters, || {
                let current = model.take().expect("the model is put back after each step");
                let loss = loss_fn.forward(current.forward(images.clone()), labels.clone());
                model = Some(optimizer.step(current, loss.backward()));
                Ok(device.sync()?)
            })?
        }
    };
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let rate = args.batch as f64 / median;
    // Two FLOPs a multiply-add, scaling with the pixel count; a training step is about three
    // forwards.
    let forward_gflop =
        2.0 * forward_gmacs(args.arch) * (args.size * args.size) as f64 / (224.0 * 224.0);
    let gflop = forward_gflop * if args.mode == Mode::Train { 3.0 } else { 1.0 };
    if args.json {
        let line = serde_json::json!({
            "device": ferrovision::device::describe(&device),
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "precision": args.precision.to_string(),
            "batch": args.batch,
            "size": args.size,
            "seconds": seconds,
            "images_per_second": rate,
            "gflop_per_second": rate * gflop,
        });
        println!("{line}");
    } else {
        println!(
            "{} {:?} on {} in {}, batch {} x 3x{}x{}: {:.1} images/s ({:.3} s a step, median of {}), {:.1} GFLOP/s",
            args.arch,
            args.mode,
            ferrovision::device::describe(&device),
            args.precision,
            args.batch,
            args.size,
            args.size,
            rate,
            median,
            seconds.len(),
            rate * gflop
        );
    }
    Ok(())
}

/// Multiply-adds (G) of one forward of a 224x224 image, as torchvision's model docs list them
/// (EfficientNet B1-B7's, listed at their own resolutions, scaled to 224x224 by pixel count).
fn forward_gmacs(arch: Architecture) -> f64 {
    let at_224 = |gmacs: f64, side: f64| gmacs * (224.0 / side).powi(2);
    match arch {
        Architecture::ResNet(ResNetDepth::R18) => 1.82,
        Architecture::ResNet(ResNetDepth::R34) => 3.66,
        Architecture::ResNet(ResNetDepth::R50) => 4.09,
        Architecture::ResNet(ResNetDepth::R101) => 7.80,
        Architecture::ResNet(ResNetDepth::R152) => 11.51,
        Architecture::MobileNetV3(MobileNetV3Arch::Large) => 0.22,
        Architecture::MobileNetV3(MobileNetV3Arch::Small) => 0.06,
        Architecture::EfficientNet(arch) => match arch {
            EfficientNetArch::B0 => 0.39,
            EfficientNetArch::B1 => at_224(0.69, 240.0),
            EfficientNetArch::B2 => at_224(1.09, 288.0),
            EfficientNetArch::B3 => at_224(1.83, 300.0),
            EfficientNetArch::B4 => at_224(4.39, 380.0),
            EfficientNetArch::B5 => at_224(10.27, 456.0),
            EfficientNetArch::B6 => at_224(19.07, 528.0),
            EfficientNetArch::B7 => at_224(37.75, 600.0),
        },
        Architecture::ConvNeXt(arch) => match arch {
            ConvNeXtArch::Tiny => 4.46,
            ConvNeXtArch::Small => 8.68,
            ConvNeXtArch::Base => 15.36,
            ConvNeXtArch::Large => 34.36,
        },
    }
}
