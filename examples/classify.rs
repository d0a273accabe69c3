//! Classifies a generated 224x224 image with any architecture (ResNet-18 by default) and prints
//! the top-5 classes.
//!
//! ```text
//! cargo run --release --example classify                       # random init, CPU
//! cargo run --release --example classify -- --weights imagenet        # torchvision's, fetched once
//! cargo run --release --example classify -- --weights resnet18-f37072fd.pth
//! cargo run --release --example classify -- --arch convnext_tiny --weights convnext_tiny-983f1562.pth
//! cargo run --release --features wgpu --example classify -- --device wgpu
//! ```

mod common;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use burn::tensor::{Tensor, TensorData, activation::softmax};
use ferrovision::models::Architecture;

const SIZE: usize = 224;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A sunset-like picture: a sky gradient with a disc, as `[3, 224, 224]` floats in [0, 1].
fn generated_image() -> Vec<f32> {
    let mut pixels = vec![0.0f32; 3 * SIZE * SIZE];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (x as f32 / SIZE as f32, y as f32 / SIZE as f32);
            let in_disc = (fx - 0.5).powi(2) + (fy - 0.6).powi(2) < 0.04;
            let rgb = if in_disc {
                [1.0, 0.8, 0.2]
            } else {
                [0.9 - 0.5 * fy, 0.4 + 0.2 * fx, 0.3 + 0.6 * fy]
            };
            for c in 0..3 {
                pixels[c * SIZE * SIZE + y * SIZE + x] = rgb[c];
            }
        }
    }
    pixels
}

/// Classifies a generated image and prints the top-5 ImageNet classes.
#[derive(Parser, Debug)]
struct Args {
    /// Architecture, torchvision's name: resnet18 ... resnet152, mobilenet_v3_large,
    /// mobilenet_v3_small, efficientnet_b0 ... efficientnet_b7, convnext_tiny ... convnext_large.
    #[arg(long, default_value = "resnet18")]
    arch: Architecture,
    /// Weights: `imagenet` (torchvision's, fetched into the torch hub cache; ResNets) or a
    /// `.pth` / `.safetensors` file of torchvision's (any architecture); random init without.
    #[arg(long)]
    weights: Option<String>,
    /// Load a .pth whose pickle names Python globals that torch.load(weights_only=True)
    /// refuses (it could run code in Python; ferrovision never runs it). Only for files you trust.
    #[arg(long)]
    trust_pickle: bool,
    #[command(flatten)]
    device: common::DeviceArg,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = args.device.open()?;
    println!("device: {}", ferrovision::device::describe(&device));

    let mut model = args.arch.init(1000, &device);
    let weights = match &args.weights {
        Some(value) => {
            let weights = common::Weights::parse(value, args.arch)?;
            model = weights.load(model, common::load_model_weights(args.trust_pickle))?;
            Some(weights)
        }
        None => {
            println!("weights: none (random torchvision init); pass --weights imagenet");
            None
        }
    };
    let categories = weights.as_ref().and_then(common::Weights::categories);
    let model = model.eval();

    let mut pixels = generated_image();
    for (i, p) in pixels.iter_mut().enumerate() {
        let c = i / (SIZE * SIZE);
        *p = (*p - MEAN[c]) / STD[c];
    }
    let image = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, SIZE, SIZE]), &device);

    let start = Instant::now();
    let probs = softmax(model.forward(image), 1);
    let probs = probs.into_data().try_to_vec::<f32>()?;
    println!(
        "{} forward: {:.0} ms",
        args.arch,
        start.elapsed().as_secs_f64() * 1e3
    );

    let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("top-5 ImageNet classes:");
    for (class, p) in ranked.iter().take(5) {
        match categories {
            Some(names) => println!("  class {class:4}  p = {p:.4}  {}", names[*class]),
            None => println!("  class {class:4}  p = {p:.4}"),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    common::main_with(run)
}
