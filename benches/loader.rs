//! The data path: decoding a JPEG, the train / eval transforms, `ToTensor` + `Normalize`, a
//! whole loader epoch with 1 and 2 workers, and listing a 100,000-file ImageFolder.
//!
//! The JPEGs (500x375, quality 90, smooth colour fields with noise) are written once under
//! `target/bench-data/`. `scripts/bench_loader.py` compares the loader with torchvision's.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrovision::data::transforms::{Compose, Normalize, presets};
use ferrovision::data::{DataLoader, DataLoaderConfig, DecodeLimits, ImageFolder, decode_rgb};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const JPEGS: usize = 256;

fn bench_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data")
}

/// A photo-like picture: a bilinear blend of a coarse random colour grid, plus pixel noise.
fn picture(width: u32, height: u32, rng: &mut StdRng) -> RgbImage {
    let grid: Vec<[f32; 3]> = (0..6 * 8)
        .map(|_| std::array::from_fn(|_| rng.random_range(0.0..255.0)))
        .collect();
    RgbImage::from_fn(width, height, |x, y| {
        let gx = x as f32 / width as f32 * 7.0;
        let gy = y as f32 / height as f32 * 5.0;
        let (ix, iy) = (gx as usize, gy as usize);
        let (fx, fy) = (gx.fract(), gy.fract());
        let at = |i: usize, j: usize, c: usize| grid[j * 8 + i][c];
        image::Rgb(std::array::from_fn(|c| {
            let top = at(ix, iy, c) * (1.0 - fx) + at(ix + 1, iy, c) * fx;
            let bottom = at(ix, iy + 1, c) * (1.0 - fx) + at(ix + 1, iy + 1, c) * fx;
            let noise = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) % 49;
            (top * (1.0 - fy) + bottom * fy + noise as f32 - 24.0).clamp(0.0, 255.0) as u8
        }))
    })
}

/// `JPEGS` JPEGs of 500x375 in 4 class folders, written once.
fn jpeg_folder() -> PathBuf {
    let root = bench_data().join("jpegs");
    let done = root.join(".complete");
    if !done.exists() {
        let mut rng = StdRng::seed_from_u64(0);
        for i in 0..JPEGS {
            let class = root.join(format!("class{}", i % 4));
            std::fs::create_dir_all(&class).expect("create bench folder");
            picture(500, 375, &mut rng)
                .save(class.join(format!("{i:04}.jpg")))
                .expect("write bench JPEG");
        }
        std::fs::write(&done, b"").expect("write marker");
    }
    root
}

/// 100,000 empty `.jpg` files in 1,000 class folders (listing never opens them), written once.
fn large_folder() -> PathBuf {
    let root = bench_data().join("listing-100k");
    let done = root.join(".complete");
    if !done.exists() {
        for class in 0..1000 {
            let folder = root.join(format!("n{class:05}"));
            std::fs::create_dir_all(&folder).expect("create listing folder");
            for i in 0..100 {
                std::fs::write(folder.join(format!("{i:03}.jpg")), b"").expect("write file");
            }
        }
        std::fs::write(&done, b"").expect("write marker");
    }
    root
}

fn first_jpeg(root: &Path) -> PathBuf {
    ImageFolder::new(root).expect("bench folder").samples()[0]
        .0
        .clone()
}

fn stages(c: &mut Criterion) {
    let path = first_jpeg(&jpeg_folder());
    let decoded = decode_rgb(&path, DecodeLimits::default()).expect("decode");
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_jpeg_500x375", |b| {
        b.iter(|| decode_rgb(black_box(&path), DecodeLimits::default()).expect("decode"))
    });
    for (name, transform) in [("train", presets::train(224)), ("eval", presets::eval(224))] {
        let mut rng = StdRng::seed_from_u64(1);
        group.bench_function(format!("{name}_transforms_224"), |b| {
            b.iter_batched(
                || decoded.clone(),
                |image| transform.apply_image(image, &mut rng),
                BatchSize::SmallInput,
            )
        });
    }
    let to_tensor = Compose::new().normalize(Normalize::imagenet());
    let image = RgbImage::new(224, 224);
    let mut out = Vec::with_capacity(3 * 224 * 224);
    let mut rng = StdRng::seed_from_u64(2);
    group.bench_function("to_tensor_normalize_224", |b| {
        b.iter(|| {
            out.clear();
            to_tensor.apply_into(image.clone(), &mut rng, &mut out)
        })
    });
    group.finish();
}

fn epoch(c: &mut Criterion) {
    let root = jpeg_folder();
    let device = ferrovision::device::cpu();
    let mut group = c.benchmark_group("loader_epoch_train_224");
    group.sample_size(10);
    group.throughput(Throughput::Elements(JPEGS as u64));
    for workers in [1, 2] {
        let loader = DataLoader::new(
            ImageFolder::new(&root).expect("bench folder"),
            presets::train(224),
            DataLoaderConfig::new(64)
                .with_shuffle(true)
                .with_num_workers(workers),
            &device,
        );
        let mut epoch = 0;
        group.bench_function(format!("{workers}_workers"), |b| {
            b.iter(|| {
                epoch += 1;
                for batch in loader.epoch(epoch) {
                    black_box(batch.expect("batch"));
                }
            })
        });
    }
    group.finish();
}

fn listing(c: &mut Criterion) {
    let root = large_folder();
    let mut group = c.benchmark_group("image_folder");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("list_100k_files", |b| {
        b.iter(|| ImageFolder::new(&root).expect("listing").len())
    });
    group.finish();
}

criterion_group!(benches, stages, epoch, listing);
criterion_main!(benches);
