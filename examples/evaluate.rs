//! Evaluates a trained checkpoint on an image folder: the per-class report and the confusion
//! matrix (printed, and written as SVG beside the checkpoint unless --svg says elsewhere).
//!
//! ```text
//! cargo run --release --example evaluate -- --checkpoint runs/train --data runs/train/shapes/val
//! ```

mod common;

use std::path::PathBuf;

use clap::Parser;
use ferrovision::data::{DataLoader, DataLoaderConfig, ImageFolder, ImageFolderConfig};
use ferrovision::train::{confusion_svg, evaluate};

/// Evaluate a model trained by the `train` example on an ImageFolder.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A checkpoint file, or a run folder (its best.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// ImageFolder root whose class folders are the checkpoint's classes.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 64, value_parser = common::batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = 2, value_parser = common::workers)]
    workers: usize,
    /// Where to write the confusion matrix picture.
    #[arg(long, default_value = "confusion_matrix_eval.svg")]
    svg: PathBuf,
    #[command(flatten)]
    device: common::DeviceArg,
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = args.device.open()?;
    let (model, classes, transform) = common::load_trained(&args.checkpoint, &device)?;
    let folder = ImageFolder::with_config(
        &args.data,
        &ImageFolderConfig::default().with_allow_empty(true),
    )?;
    if folder.classes() != classes.as_slice() {
        return Err(format!(
            "`{}` has classes {:?}, the checkpoint was trained on {:?}",
            args.data.display(),
            folder.classes(),
            classes
        )
        .into());
    }
    let config = DataLoaderConfig::new(args.batch_size).with_num_workers(args.workers);
    let loader = DataLoader::new(folder, transform, config, &device);
    let metrics = evaluate(&model, &loader)?;
    println!(
        "{} images, loss {:.4}, top-5 accuracy {:.2}%\n",
        metrics.samples,
        metrics.loss,
        100.0 * metrics.top5_accuracy
    );
    println!("{}", metrics.report());
    println!("confusion matrix (rows: true, columns: predicted):");
    for (name, row) in classes.iter().zip(&metrics.confusion) {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:5}")).collect();
        println!("{name:>12} {}", cells.join(""));
    }
    std::fs::write(&args.svg, confusion_svg(&metrics.confusion, &classes))?;
    println!("\nconfusion matrix picture: {}", args.svg.display());
    Ok(())
}
