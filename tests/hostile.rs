//! The hostile-input corpus: for every format the crate reads (JPEG, PNG, WebP, BMP, TIFF, PNM,
//! `.pth`, `.safetensors`, checkpoints), 500 files mutated from a small valid one with a fixed
//! seed (truncations, bit flips, length-field edits, inserted and deleted bytes) go through the
//! public API. Every one must give a value or a typed error naming the file: no panic, no
//! abort, and the process's peak memory stays bounded.
//!
//! A test binary of its own, so its peak memory is its own.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use common::fixture;
use ferrovision::data::transforms::presets;
use ferrovision::data::{DecodeLimits, decode_rgb};
use ferrovision::models::resnet::BasicBlock;
use ferrovision::nn::LinearConfig;
use ferrovision::optim::AdamConfig;
use ferrovision::train::{Checkpoint, CheckpointMeta, RunPosition};
use ferrovision::weights::{LoadOptions, StateDict, load_state_dict, state_dict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MUTANTS: usize = 500;

/// Limits a user feeding untrusted images would set: the peak memory below follows from them.
const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 4096,
    max_alloc: 64 << 20,
    max_file_bytes: 16 << 20,
};

/// How each format's files are read, as a user reads them.
#[derive(Debug, Clone, Copy)]
enum Reader {
    Image,
    /// A weight file, loaded strictly into a linear layer.
    Weights,
    /// A weight file, loaded strictly into torchvision's `BasicBlock(64, 64)`.
    BlockWeights,
    Checkpoint,
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let picture = image::open(fixture("images/picture_97x61.png")).unwrap();
    let picture = match format {
        // The WebP and PNM encoders take 8-bit RGB.
        image::ImageFormat::WebP | image::ImageFormat::Pnm => {
            image::DynamicImage::ImageRgb8(picture.to_rgb8())
        }
        _ => picture,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn model() -> ferrovision::nn::Linear {
    LinearConfig::new(8, 3).init(&ferrovision::device::ndarray())
}

/// A small valid checkpoint: a linear layer, Adam's state after one step, and metadata.
fn checkpoint_bytes(dir: &Path) -> Vec<u8> {
    let linear = model();
    let mut optimizer_state = StateDict::new();
    for (key, n) in [("weight", 24), ("bias", 3)] {
        optimizer_state.insert(
            format!("{key}.step"),
            ferrovision::weights::RawTensor::from_f32(vec![], &[1.0]),
        );
        for buffer in ["exp_avg", "exp_avg_sq"] {
            optimizer_state.insert(
                format!("{key}.{buffer}"),
                ferrovision::weights::RawTensor::from_f32(vec![n], &vec![0.5; n]),
            );
        }
    }
    let checkpoint = Checkpoint {
        model: state_dict(&linear),
        optimizer: optimizer_state,
        epoch_metrics: StateDict::new(),
        meta: CheckpointMeta {
            position: RunPosition {
                epoch: 1,
                batch: 0,
                step: 1,
                seed: 0,
                best_accuracy: Some(0.5),
            },
            classes: vec!["a".into(), "b".into(), "c".into()],
            config: serde_json::json!({"arch": "linear"}),
            model: None,
            settings: None,
            history: vec![],
        },
    };
    let path = dir.join("seed.safetensors");
    checkpoint.save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

/// One mutation of `seed`, drawn from `rng`.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    // Header bytes (where the length fields live) are hit as often as the rest.
    let position = |rng: &mut StdRng, len: usize| {
        if rng.random_bool(0.5) {
            rng.random_range(0..len.min(256))
        } else {
            rng.random_range(0..len)
        }
    };
    for _ in 0..rng.random_range(1..=3) {
        if bytes.len() < 8 {
            break;
        }
        match rng.random_range(0..5) {
            0 => {
                let keep = rng.random_range(0..bytes.len());
                bytes.truncate(keep);
            }
            1 => {
                for _ in 0..rng.random_range(1..=8) {
                    let at = position(rng, bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            2 => {
                // A length or size field set to an extreme.
                let at = position(rng, bytes.len() - 4);
                let value: u32 = match rng.random_range(0..5) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => 0x7FFF_FFFF,
                    3 => rng.random_range(0..1 << 16),
                    _ => rng.random(),
                };
                let field = if rng.random_bool(0.5) {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                bytes[at..at + 4].copy_from_slice(&field);
            }
            3 => {
                let at = position(rng, bytes.len());
                let n = rng.random_range(1..=16);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                bytes.splice(at..at, junk);
            }
            _ => {
                let at = position(rng, bytes.len());
                let end = (at + rng.random_range(1..=16)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// Reads `path` as a user would; `Err` carries the error's text.
fn read(reader: Reader, path: &Path) -> Result<(), String> {
    match reader {
        Reader::Image => {
            let image = decode_rgb(path, LIMITS).map_err(|e| e.to_string())?;
            let eval = presets::eval(64);
            eval.apply(image, &mut StdRng::seed_from_u64(0))
                .map(|_| ())
                .map_err(|e| format!("`{}`: {e}", path.display()))
        }
        Reader::Weights => load_strictly(model(), path),
        Reader::BlockWeights => load_strictly(
            BasicBlock::new(64, 64, 1, &ferrovision::device::ndarray()),
            path,
        ),
        Reader::Checkpoint => {
            let checkpoint = Checkpoint::load(path).map_err(|e| e.to_string())?;
            let (linear, _) = load_state_dict(model(), &checkpoint.model, &LoadOptions::strict())
                .map_err(|e| e.to_string())?;
            AdamConfig::new()
                .init()
                .unwrap()
                .load_state_dict(&checkpoint.optimizer, &linear)
                .map_err(|e| e.to_string())
        }
    }
}

/// Reads every tensor of the weight file at `path`, then loads it strictly into `module`.
fn load_strictly<M: Module>(module: M, path: &Path) -> Result<(), String> {
    let dict = StateDict::from_file(path).map_err(|e| e.to_string())?;
    load_state_dict(module, &dict, &LoadOptions::strict())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn mutated_files_of_every_format_give_values_or_typed_errors() {
    let dir = std::env::temp_dir().join(format!("ferrovision-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let linear_file = dir.join("seed-weights.safetensors");
    state_dict(&model()).save_safetensors(&linear_file).unwrap();
    let safetensors = std::fs::read(&linear_file).unwrap();
    let images = [
        ("jpeg", "jpg", image::ImageFormat::Jpeg),
        ("png", "png", image::ImageFormat::Png),
        ("webp", "webp", image::ImageFormat::WebP),
        ("bmp", "bmp", image::ImageFormat::Bmp),
        ("tiff", "tiff", image::ImageFormat::Tiff),
        ("pnm", "ppm", image::ImageFormat::Pnm),
    ];
    let mut seeds: Vec<(&str, &str, Vec<u8>, Reader)> = images
        .into_iter()
        .map(|(name, extension, format)| (name, extension, encoded(format), Reader::Image))
        .collect();
    seeds.extend([
        (
            "pth",
            "pth",
            std::fs::read(fixture("golden/basic_block.pth")).unwrap(),
            Reader::BlockWeights,
        ),
        ("safetensors", "safetensors", safetensors, Reader::Weights),
        (
            "checkpoint",
            "safetensors",
            checkpoint_bytes(&dir),
            Reader::Checkpoint,
        ),
    ]);
    let mut failures = Vec::new();
    for (name, extension, seed, reader) in &seeds {
        // Each seed reads as it is first.
        let path: PathBuf = dir.join(format!("{name}-seed.{extension}"));
        std::fs::write(&path, seed).unwrap();
        let seed_result = read(*reader, &path);
        assert!(seed_result.is_ok(), "{name} seed: {seed_result:?}");
        let mut rng = StdRng::seed_from_u64(0x0405_711E ^ seed.len() as u64);
        let (mut ok, mut errors) = (0, 0);
        for i in 0..MUTANTS {
            let bytes = mutate(seed, &mut rng);
            let path = dir.join(format!("{name}-{i:03}.{extension}"));
            std::fs::write(&path, &bytes).unwrap();
            let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
            let outcome = std::panic::catch_unwind(|| read(*reader, &path));
            match outcome {
                Ok(Ok(())) => ok += 1,
                Ok(Err(message)) if message.contains(&file_name) => errors += 1,
                Ok(Err(message)) => failures.push(format!(
                    "{file_name}: error without the file's name: {message}"
                )),
                Err(_) => failures.push(format!("{file_name}: panicked")),
            }
            std::fs::remove_file(&path).unwrap();
        }
        eprintln!("{name}: {MUTANTS} mutants, {ok} read, {errors} typed errors");
    }
    let peak = peak_rss();
    eprintln!("peak resident memory: {} MiB", peak >> 20);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(peak < 1 << 30, "peak resident memory {} MiB", peak >> 20);
}
