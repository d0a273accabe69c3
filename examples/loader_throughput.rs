//! Measures how fast the data loader turns an image folder into batches on a device, and where
//! the time goes (decode, transforms, conversion to a tensor), on one thread.
//!
//! ```text
//! cargo run --release --example loader_throughput -- --data DIR [--workers 2] [--preset train]
//! ```
//!
//! `scripts/bench_loader.py` runs it next to torchvision's loader on the same folder.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use ferrovision::data::transforms::{Compose, Normalize, presets};
use ferrovision::data::{DataLoader, DataLoaderConfig, DecodeLimits, ImageFolder, decode_rgb};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    /// RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize.
    Train,
    /// Resize(size * 256/224) + CenterCrop + ToTensor + Normalize.
    Eval,
}

/// Images per second of the loader on an ImageFolder.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// ImageFolder root (class folders of images).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 64, value_parser = common::batch_size)]
    batch_size: usize,
    /// Decoding threads.
    #[arg(long, default_value_t = 2, value_parser = common::workers)]
    workers: usize,
    /// Output side in pixels.
    #[arg(long, default_value_t = 224)]
    size: u32,
    #[arg(long, value_enum, default_value = "train")]
    preset: Preset,
    /// Timed epochs, after one untimed warm-up epoch.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Images timed stage by stage on one thread (0 skips the breakdown).
    #[arg(long, default_value_t = 200)]
    profile: usize,
    #[command(flatten)]
    device: common::DeviceArg,
    /// One JSON line instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn transform(preset: Preset, size: u32) -> Compose {
    match preset {
        Preset::Train => presets::train(size),
        Preset::Eval => presets::eval(size),
    }
}

/// Seconds per image spent decoding, transforming, and converting + normalising, on one thread.
fn breakdown(folder: &ImageFolder, args: &Args) -> Result<[f64; 3], Box<dyn std::error::Error>> {
    let images = transform(args.preset, args.size);
    let to_tensor = Compose::new().normalize(Normalize::imagenet());
    let mut buffer = Vec::new();
    let mut spent = [Duration::ZERO; 3];
    let n = args.profile.min(folder.len());
    for (index, (path, _)) in folder.samples().iter().take(n).enumerate() {
        let start = Instant::now();
        let image = decode_rgb(path, DecodeLimits::default())?;
        let decoded = Instant::now();
        let image = images.apply_image(image, &mut StdRng::seed_from_u64(index as u64))?;
        let transformed = Instant::now();
        buffer.clear();
        to_tensor.apply_into(image, &mut StdRng::seed_from_u64(0), &mut buffer)?;
        let converted = Instant::now();
        spent[0] += decoded - start;
        spent[1] += transformed - decoded;
        spent[2] += converted - transformed;
    }
    Ok(spent.map(|d| d.as_secs_f64() / n.max(1) as f64))
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = args.device.open()?;
    let start = Instant::now();
    let folder = ImageFolder::new(&args.data)?;
    let listing = start.elapsed();
    let stages = if args.profile > 0 {
        Some(breakdown(&folder, &args)?)
    } else {
        None
    };
    let config = DataLoaderConfig::new(args.batch_size)
        .with_shuffle(true)
        .with_num_workers(args.workers);
    let loader = DataLoader::new(folder, transform(args.preset, args.size), config, &device);
    let mut rates = Vec::new();
    for epoch in 0..=args.epochs {
        let start = Instant::now();
        let mut seen = 0;
        for batch in loader.epoch(epoch) {
            let batch = batch?;
            seen += batch.labels.dims()[0];
        }
        if epoch > 0 {
            rates.push(seen as f64 / start.elapsed().as_secs_f64());
        }
    }
    if args.json {
        let stages = stages.map(|[d, t, c]| {
            serde_json::json!({"decode_ms": d * 1e3, "transform_ms": t * 1e3, "to_tensor_ms": c * 1e3})
        });
        let line = serde_json::json!({
            "images": loader.dataset().len(),
            "listing_ms": listing.as_secs_f64() * 1e3,
            "images_per_second": rates,
            "stages_per_image": stages,
        });
        println!("{line}");
        return Ok(());
    }
    println!(
        "{} images in {} classes listed in {:.1} ms; device {}",
        loader.dataset().len(),
        loader.dataset().classes().len(),
        listing.as_secs_f64() * 1e3,
        ferrovision::device::describe(&device)
    );
    if let Some([d, t, c]) = stages {
        let total = d + t + c;
        println!(
            "one thread, per image: decode {:.2} ms ({:.0}%), transforms {:.2} ms ({:.0}%), \
             to tensor + normalize {:.2} ms ({:.0}%)",
            d * 1e3,
            100.0 * d / total,
            t * 1e3,
            100.0 * t / total,
            c * 1e3,
            100.0 * c / total
        );
    }
    for (epoch, rate) in rates.iter().enumerate() {
        println!(
            "epoch {}: {rate:.1} images/s with {} workers, batch {}",
            epoch + 1,
            args.workers,
            args.batch_size
        );
    }
    Ok(())
}
