//! Write your own loop: the classic PyTorch script, line for line, with the public API only.
//!
//! ```python
//! model = torchvision.models.resnet18(weights=...); model.fc = nn.Linear(512, classes)
//! criterion = nn.CrossEntropyLoss(); optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
//! train_set = torchvision.datasets.ImageFolder("DATA/train", transform=ToTensor())
//! loader = DataLoader(train_set, batch_size=64, shuffle=True)
//! for epoch in range(epochs): ...   # train, then accuracy on DATA/val
//! ```
//!
//! ```text
//! cargo run --release --example train_loop                          # the built-in shapes, 5 epochs
//! cargo run --release --example train_loop -- --data DIR --weights imagenet   # torchvision's
//! cargo run --release --example train_loop -- --data DIR --weights resnet18-f37072fd.pth
//! ```
//!
//! `DIR` holds `train/` and `val/` class folders of images of one size (no resizing here, as
//! with `ToTensor()` alone). `scripts/train_loop.py` is the same script in PyTorch, for timing
//! both on one folder (`scripts/bench_vs_pytorch.py --case seed-script`). The `Trainer` (the
//! `train` example) adds checkpoints, resume, metrics and pictures around the same loop.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ferrovision::data::transforms::Compose;
use ferrovision::data::{DataLoader, DataLoaderConfig, ImageFolder, ShapesConfig, write_shapes};
use ferrovision::models::{Architecture, ResNet, ResNetConfig, ResNetDepth};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::optim::AdamConfig;
use ferrovision::train::evaluate;

/// The PyTorch seed script written by hand against ferrovision's public API.
#[derive(Parser, Debug)]
struct Args {
    /// Folder with `train/` and `val/` class folders (default: the built-in shapes, drawn into
    /// `runs/train_loop/shapes`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// ResNet-18 weights: `imagenet` (torchvision's, fetched into the torch hub cache) or a
    /// `.pth` / `.safetensors` file; the head is replaced.
    #[arg(long)]
    weights: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    epochs: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 64, value_parser = common::batch_size)]
    batch_size: usize,
    /// Loader threads.
    #[arg(long, default_value_t = 2, value_parser = common::workers)]
    workers: usize,
    /// Shuffling and initialisation seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: common::DeviceArg,
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = args.device.open()?;
    device.seed(args.seed);
    let data = match args.data {
        Some(data) => data,
        None => built_in_shapes()?,
    };
    let started = Instant::now();

    // train_set = ImageFolder(...); loader = DataLoader(train_set, batch_size=64, shuffle=True)
    let train_set = ImageFolder::new(data.join("train"))?;
    let val_set = ImageFolder::new(data.join("val"))?;
    let classes = train_set.classes().to_vec();
    let config = DataLoaderConfig::new(args.batch_size)
        .with_num_workers(args.workers)
        .with_seed(args.seed);
    let train = DataLoader::new(
        train_set,
        Compose::new(), // ToTensor()
        config.clone().with_shuffle(true),
        &device.clone().autodiff(),
    );
    let val = DataLoader::new(val_set, Compose::new(), config, &device);

    // model = resnet18(weights); model.fc = Linear(512, classes)
    let mut model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(classes.len())
        .init(&device.clone().autodiff());
    if let Some(weights) = &args.weights {
        model = common::Weights::parse(weights, Architecture::ResNet(ResNetDepth::R18))?
            .load(model, ResNet::load_weights)?;
    }
    let criterion = CrossEntropyLossConfig::new().init();
    let mut optimizer = AdamConfig::new().with_lr(1e-3).init()?;

    for epoch in 0..args.epochs {
        model = model.train();
        let mut loss_sum = None;
        for batch in train.epoch(epoch) {
            let batch = batch?;
            let loss = criterion.forward(model.forward(batch.images), batch.labels);
            // Summed on the device: one read per epoch, not one per batch.
            let detached = loss.clone().detach();
            loss_sum = Some(loss_sum.map_or(detached.clone(), |sum| sum + detached));
            model = optimizer.step(model, loss.backward());
        }
        let mean_loss =
            loss_sum.map_or(f32::NAN, |sum| sum.into_scalar::<f32>()) / train.len() as f32;
        let metrics = evaluate(&model, &val)?;
        println!(
            "epoch {}: train loss {mean_loss:.4} | val accuracy {:.2}% macro-F1 {:.4} | {:.1} s",
            epoch + 1,
            100.0 * metrics.accuracy,
            metrics.macro_f1,
            started.elapsed().as_secs_f64()
        );
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The built-in shapes dataset (2,000 training and 300 validation images of 64 px), drawn once.
fn built_in_shapes() -> ferrovision::Result<PathBuf> {
    let root = PathBuf::from("runs/train_loop/shapes");
    if !root.join("val").is_dir() {
        println!(
            "data: drawing the built-in shapes dataset into {}",
            root.display()
        );
        std::fs::create_dir_all("runs/train_loop").map_err(|e| ferrovision::Error::Io {
            path: "runs/train_loop".into(),
            source: e,
        })?;
        write_shapes(&root, &ShapesConfig::default())?;
    }
    Ok(root)
}
