//! Classifies images with a trained checkpoint: top-k classes with probabilities.
//!
//! ```text
//! cargo run --release --example predict -- --checkpoint runs/train photo1.jpg photo2.png
//! cargo run --release --example predict -- --checkpoint runs/train/best.safetensors --json x.jpg
//! cargo run --release --example predict -- --weights imagenet photo.jpg   # ImageNet categories
//! ```

mod common;

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData, activation::softmax};
use clap::Parser;
use ferrovision::data::transforms::Compose;
use ferrovision::models::{Model, PretrainedWeights, ResNetConfig, ResNetDepth};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Predict the class of images with a model trained by the `train` example.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A checkpoint file, or a run folder (its best.safetensors).
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    checkpoint: Option<PathBuf>,
    /// Instead of a checkpoint, torchvision's pretrained weights by name: `imagenet` (the best
    /// set for `--arch`), `imagenet1k-v1`, `resnet50-imagenet1k-v2`, ... (fetched into the torch
    /// hub cache); classes are the ImageNet categories.
    #[arg(long)]
    weights: Option<String>,
    /// Architecture for `--weights`: resnet18, resnet34, resnet50, resnet101, resnet152.
    #[arg(long, default_value = "resnet18")]
    arch: ResNetDepth,
    /// Images to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes to list per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// One JSON object per image instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: common::DeviceArg,
}

/// torchvision's pretrained weights by name, their category names and eval transform.
fn pretrained(
    name: &str,
    arch: ResNetDepth,
    device: &burn::tensor::Device,
) -> Result<(Model, Vec<String>, Compose), Box<dyn std::error::Error>> {
    let named = PretrainedWeights::parse(name, arch)?;
    let model = ResNetConfig::new(named.depth)
        .init(device)
        .load_weights(named.fetch()?)?
        .0
        .eval();
    let model = Model::ResNet(model);
    let classes = named.categories().iter().map(|c| c.to_string()).collect();
    Ok((model, classes, named.eval_transform()))
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = args.device.open()?;
    let (model, classes, transform) = match (&args.checkpoint, &args.weights) {
        (Some(checkpoint), _) => common::load_trained(checkpoint, &device)?,
        (None, Some(name)) => pretrained(name, args.arch, &device)?,
        (None, None) => return Err("pass --checkpoint or --weights".into()),
    };
    let k = args.top_k.clamp(1, classes.len());
    for path in &args.images {
        let image = ferrovision::data::decode_rgb(path, Default::default())?;
        // The eval transform draws no random numbers; the RNG is only a parameter.
        let tensor = transform
            .apply(image, &mut StdRng::seed_from_u64(0))
            .map_err(|source| ferrovision::Error::Transform {
                path: path.clone(),
                source,
            })?;
        let [c, h, w] = tensor.shape;
        let input = Tensor::<4>::from_data(TensorData::new(tensor.data, [1, c, h, w]), &device);
        let probabilities = softmax(model.forward(input), 1)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        if args.json {
            let top: Vec<_> = ranked
                .iter()
                .map(|(i, p)| serde_json::json!({"class": classes[*i], "index": i, "probability": p}))
                .collect();
            // Any file name, UTF-8 or not, with odd bytes escaped (`\xNN`).
            let image = ferrovision::escaped_path(path);
            println!("{}", serde_json::json!({"image": image, "top": top}));
        } else {
            println!("{}", path.display());
            for (i, p) in ranked {
                println!("  {:6.2}%  {}", 100.0 * p, classes[i]);
            }
        }
    }
    Ok(())
}
