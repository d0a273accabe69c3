//! Evaluates a trained checkpoint on an image folder: the per-class report and the confusion
//! matrix (printed, and drawn as SVG and PNG, counts and shares of each true class, into the
//! checkpoint's folder unless --pictures says elsewhere).
//!
//! ```text
//! cargo run --release --example evaluate -- --checkpoint runs/train --data runs/train/shapes/val
//! ```

mod common;

use std::path::PathBuf;

use clap::Parser;
use ferrovision::data::{DataLoader, DataLoaderConfig, ImageFolder, ImageFolderConfig};
use ferrovision::train::{ConfusionPicture, ConfusionView, evaluate};

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
    /// The folder for the pictures `confusion_matrix_eval.{svg,png}` and
    /// `confusion_matrix_eval_normalized.{svg,png}` (default: the checkpoint's folder).
    #[arg(long)]
    pictures: Option<PathBuf>,
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
    let folder = args
        .pictures
        .unwrap_or_else(|| checkpoint_folder(&args.checkpoint));
    let views = [
        (ConfusionView::Counts, "confusion_matrix_eval"),
        (
            ConfusionView::Normalized,
            "confusion_matrix_eval_normalized",
        ),
    ];
    for (view, stem) in views {
        ConfusionPicture::new(&metrics.confusion, &classes, view).save(&folder, stem)?;
    }
    println!(
        "\nconfusion matrix pictures: {}",
        folder.join("confusion_matrix_eval*.{svg,png}").display()
    );
    Ok(())
}

/// The run folder a checkpoint argument names: itself if a folder, else the file's folder.
fn checkpoint_folder(checkpoint: &std::path::Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_path_buf()
    } else {
        match checkpoint.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}
