//! Trains ResNet-18 on an image folder, or with no arguments on a built-in shapes dataset.
//!
//! ```text
//! cargo run --release --example train                          # built-in shapes, CPU
//! cargo run --release --example train -- --data ~/flowers --weights resnet18-f37072fd.pth \
//!     --freeze-backbone --epochs 5
//! cargo run --release --example train -- --resume                 # the newest runs/train*
//! ```
//!
//! A run folder that holds a run is never overwritten: without `--out` each run gets a fresh
//! `runs/train`, `runs/train-2`, ...; an `--out` that holds one needs `--resume` (continue it)
//! or `--overwrite` (move it aside to `OUT.previous` and start afresh).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use clap::{CommandFactory, Parser, ValueEnum};
use ferrovision::data::transforms::{Compose, Normalize, RandomHorizontalFlip, Resize, presets};
use ferrovision::data::{
    DataLoader, DataLoaderConfig, OnError, ShapesConfig, train_val, write_shapes,
};
use ferrovision::models::{Architecture, EfficientNetConfig, MobileNetV3Config, Model};
use ferrovision::optim::{
    AdamConfig, LrSchedule, Optimizer, SgdConfig, freeze, trainable_parameters,
};
use ferrovision::train::{
    Checkpoint, EvalTransform, FitOutcome, ModelSpec, Trainer, TrainerConfig, fresh_run_dir,
    latest_run_dir, move_run_aside, run_contents,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimizerName {
    Adam,
    Sgd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Schedule {
    Constant,
    Cosine,
    OneCycle,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ErrorPolicy {
    Fail,
    Skip,
}

/// Train an image classifier (ResNet) on an ImageFolder, PyTorch-style.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// ImageFolder root with train/ and val/, or one folder to split 80/20. Without it, a
    /// built-in shapes dataset is drawn into the run folder.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device: cpu (flex), flex, ndarray, wgpu, wgpu-cpu, vulkan, cuda (GPU ones with their feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Compute dtype of the training forward/backward: f32, bf16, f16 (GPU devices; parameters,
    /// optimizer state and the loss stay f32).
    #[arg(long, default_value = "f32")]
    precision: ferrovision::Precision,
    /// Pretrained weights: `imagenet` (torchvision's, fetched into the torch hub cache), a
    /// name such as `resnet50-imagenet1k-v2`, or a .pth / .safetensors file. The
    /// classification head is replaced.
    #[arg(long)]
    weights: Option<String>,
    /// Train only the head (ResNet's `fc`, MobileNetV3's `classifier.3`, EfficientNet's
    /// `classifier.1`, ConvNeXt's `classifier.2`); the backbone is frozen.
    #[arg(long)]
    freeze_backbone: bool,
    /// Architecture, torchvision's name: resnet18 ... resnet152, mobilenet_v3_large,
    /// mobilenet_v3_small, efficientnet_b0 ... efficientnet_b7, convnext_tiny, convnext_small,
    /// convnext_base, convnext_large.
    #[arg(long, default_value = "resnet18")]
    arch: Architecture,
    /// Epochs [default: 10; 15 for MobileNetV3 on the built-in dataset, trained from scratch].
    #[arg(long, value_parser = common::epochs)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 64, value_parser = common::batch_size)]
    batch_size: usize,
    /// Learning rate (a finite number >= 0).
    #[arg(long, default_value_t = 1e-3, value_parser = common::learning_rate)]
    lr: f64,
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerName,
    /// Learning-rate schedule over the whole run.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: Schedule,
    /// Input side in pixels [default: 224; on the built-in dataset 32, or 96 for MobileNetV3,
    /// which halves its maps five times].
    #[arg(long, value_parser = common::image_size)]
    image_size: Option<u32>,
    /// Momentum of the batch norms of MobileNetV3 and EfficientNet [default: 0.1 for
    /// MobileNetV3, whose own 0.01 leaves eval-mode statistics behind the weights in runs of a
    /// few hundred steps; EfficientNet's own].
    #[arg(long, value_parser = common::momentum)]
    bn_momentum: Option<f64>,
    /// Loader threads (decoding and augmentation).
    #[arg(long, default_value_t = 2, value_parser = common::workers)]
    workers: usize,
    /// Seeds the model's init, the train/val split, shuffling and augmentation: a run repeats.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What to do with an unreadable image.
    #[arg(long, value_enum, default_value = "fail")]
    on_error: ErrorPolicy,
    /// Run folder (checkpoints, metrics.jsonl, pictures) [default: the first of runs/train,
    /// runs/train-2, ... that holds no run; with --resume, the last that holds one].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start afresh in an --out that holds a run, after moving that run aside to
    /// OUT.previous (OUT.previous-2, ...).
    #[arg(long)]
    overwrite: bool,
    /// Load a .pth whose pickle names Python globals that torch.load(weights_only=True)
    /// refuses (it could run code in Python; ferrovision never runs it). Only for files you trust.
    #[arg(long)]
    trust_pickle: bool,
}

/// `arch` with torchvision's init and `classes` outputs; the batch norms' momentum set where
/// the architecture takes one (see `--bn-momentum`).
fn build_model(
    arch: Architecture,
    classes: usize,
    bn_momentum: Option<f64>,
    device: &burn::tensor::Device,
) -> Result<Model, Box<dyn std::error::Error>> {
    Ok(match arch {
        Architecture::MobileNetV3(arch) => Model::MobileNetV3(
            MobileNetV3Config::new(arch)
                .with_num_classes(classes)
                .with_norm_momentum(bn_momentum.unwrap_or(0.1))
                .init(device),
        ),
        Architecture::EfficientNet(arch) => Model::EfficientNet(
            EfficientNetConfig::new(arch)
                .with_num_classes(classes)
                .with_norm_momentum(bn_momentum)
                .init(device),
        ),
        other if bn_momentum.is_some() => {
            return Err(format!(
                "--bn-momentum applies to mobilenet_v3_* and efficientnet_*, not {other}"
            )
            .into());
        }
        other => other.init(classes, device),
    })
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

/// The run folder: `--out`, or a numbered one under `runs/` (the newest run's with
/// `--resume`). A folder that holds a run is refused for a new run unless `--overwrite`, which
/// moves it aside first; nothing is written before this check.
fn run_folder(args: &Args) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let base = PathBuf::from("runs/train");
    let Some(out) = &args.out else {
        if args.resume {
            return latest_run_dir(&base).ok_or_else(|| {
                "--resume: no run under runs/train* to continue; pass --out RUN_FOLDER".into()
            });
        }
        return Ok(fresh_run_dir(&base));
    };
    let found = run_contents(out);
    if args.resume || found.is_empty() {
        return Ok(out.clone());
    }
    if args.overwrite {
        let aside = move_run_aside(out)?;
        println!(
            "overwrite: the run that was in {} is now in {}",
            out.display(),
            aside.display()
        );
        return Ok(out.clone());
    }
    Err(format!(
        "--out {} already holds a run ({}); pass --resume to continue it, or --overwrite to move it aside and start afresh",
        out.display(),
        found.join(", ")
    )
    .into())
}

/// The input side: `--image-size`, else 224 on a user's images and 32 on the built-in dataset
/// (96 for MobileNetV3, which halves its maps five times). One the architecture cannot take
/// ends the program as a usage error (exit 2) naming the flag, before anything is written.
fn image_size(args: &Args) -> u32 {
    let size = args
        .image_size
        .unwrap_or(match (args.data.is_some(), args.arch) {
            (true, _) => 224,
            (false, Architecture::MobileNetV3(_)) => 96,
            (false, _) => 32,
        });
    if let Err(e) = args.arch.check_image_size(size) {
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("--image-size {size}: {e}"),
            )
            .exit();
    }
    size
}

/// The data: `--data`, or the built-in shapes dataset drawn into the run folder (once).
fn data_root(args: &Args, out: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(root) = &args.data {
        return Ok(root.clone());
    }
    let root = out.join("shapes");
    if !root.join("val").is_dir() {
        println!(
            "data: drawing the built-in shapes dataset into {}",
            root.display()
        );
        let config = ShapesConfig {
            seed: args.seed,
            ..ShapesConfig::default()
        };
        write_shapes(&root, &config)?;
    }
    Ok(root)
}

/// `--optimizer` with `--lr` (SGD with momentum 0.9).
fn optimizer(args: &Args) -> ferrovision::Result<Optimizer> {
    match args.optimizer {
        OptimizerName::Adam => AdamConfig::new().with_lr(args.lr).init(),
        OptimizerName::Sgd => SgdConfig::new(args.lr).with_momentum(0.9).init(),
    }
}

/// With `--resume`, the run folder's last checkpoint, saying where it stands.
fn resume_checkpoint(
    args: &Args,
    out: &Path,
    epochs: usize,
) -> Result<Option<Checkpoint>, Box<dyn std::error::Error>> {
    if !args.resume {
        return Ok(None);
    }
    let path = out.join("last.safetensors");
    let checkpoint = Checkpoint::load(&path)?;
    let position = &checkpoint.meta.position;
    println!(
        "resume: {} (epoch {}, batch {})",
        path.display(),
        position.epoch,
        position.batch
    );
    if position.epoch >= epochs {
        println!(
            "resume: the run has trained {} epochs already, --epochs asks for {epochs}: nothing to train",
            position.epoch
        );
    }
    Ok(Some(checkpoint))
}

/// The best epoch's validation report and where the run folder is.
fn report(outcome: &FitOutcome<Model>, started: Instant) {
    if let Some(best) = outcome.best() {
        let metrics = best.val.as_ref().unwrap_or(&best.train);
        println!(
            "\nbest epoch {} (validation):\n{}",
            best.epoch,
            metrics.report()
        );
    }
    println!(
        "run folder: {} (best.safetensors, last.safetensors, metrics.jsonl, pictures as .svg and .png); {:.0} s in all",
        outcome.run_dir.display(),
        started.elapsed().as_secs_f64()
    );
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let started = Instant::now();
    let size = image_size(&args);
    let out = run_folder(&args)?;
    let device = ferrovision::device::by_name(&args.device)?;
    println!("device: {}", ferrovision::device::describe(&device));
    common::check_precision(args.precision, &device)?;

    let built_in = args.data.is_none();
    let data_root = data_root(&args, &out)?;
    let (train_set, val_set) = train_val(&data_root, 0.2, args.seed)?;
    let classes = train_set.classes().to_vec();
    println!(
        "data: {} ({} classes, {} train / {} val images)",
        data_root.display(),
        classes.len(),
        train_set.len(),
        val_set.len()
    );

    let (train_tf, eval_transform) = if built_in {
        // The shapes are drawn at random places, sizes and angles already; cropping could cut
        // a shape's telling corner off, so only flips are added.
        let tf = Compose::new()
            .then(Resize::exact(size, size))
            .then(RandomHorizontalFlip::default())
            .normalize(Normalize::imagenet());
        (tf, EvalTransform::Resize)
    } else {
        (presets::train(size), EvalTransform::CenterCrop)
    };
    // What the checkpoints record of the model, and where the validation transform comes from.
    let spec = ModelSpec {
        arch: args.arch,
        num_classes: classes.len(),
        image_size: size,
        eval_transform,
    };
    let loader_config = DataLoaderConfig::new(args.batch_size)
        .with_num_workers(args.workers)
        .with_seed(args.seed)
        .with_on_error(match args.on_error {
            ErrorPolicy::Fail => OnError::Fail,
            ErrorPolicy::Skip => OnError::Skip,
        });
    let train_device = device.clone().autodiff();
    let train = DataLoader::new(
        train_set,
        train_tf,
        loader_config.clone().with_shuffle(true),
        &train_device,
    );
    let val = DataLoader::new(
        val_set,
        spec.eval_transform(),
        loader_config.with_shuffle(false),
        &device,
    );

    // The model's random init comes from the device's generator: seed it, so a run repeats.
    train_device.seed(args.seed);
    let mut model = build_model(spec.arch, classes.len(), args.bn_momentum, &train_device)?;
    if let Some(weights) = &args.weights {
        model = common::Weights::parse(weights, spec.arch)?
            .load(model, common::load_model_weights(args.trust_pickle))?;
    }
    if args.freeze_backbone {
        let head = model.head_prefix();
        model = freeze(model, |key| !key.starts_with(head));
    }
    println!(
        "model: {} ({} parameters, {} trainable), image size {size}",
        args.arch,
        model.num_parameters(),
        trainable_parameters(&model)
    );

    let mut optimizer = optimizer(&args)?;
    let from_scratch_mobilenet =
        built_in && args.weights.is_none() && matches!(args.arch, Architecture::MobileNetV3(_));
    let epochs = args
        .epochs
        .unwrap_or(if from_scratch_mobilenet { 15 } else { 10 });
    let total_steps = epochs * train.len();
    let schedule = match args.schedule {
        Schedule::Constant => LrSchedule::Constant,
        Schedule::Cosine => LrSchedule::Cosine {
            t_max: total_steps,
            min_factor: 0.0,
        },
        Schedule::OneCycle => LrSchedule::one_cycle(total_steps),
    };
    let mut config = TrainerConfig::new(epochs, &out);
    config.schedule = schedule;
    config.seed = args.seed;
    config.precision = args.precision;
    config.model = Some(spec);
    config.extra = serde_json::json!({
        "arch": args.arch.to_string(),
        "image_size": size,
        "eval_transform": eval_transform,
        "data": ferrovision::escaped_path(&data_root),
        "batch_size": args.batch_size,
        "weights": args.weights,
        "freeze_backbone": args.freeze_backbone,
    });
    let trainer = Trainer::new(config);
    let stop = trainer.stop_handle();
    ctrlc::set_handler(move || {
        eprintln!("\ninterrupted: saving a checkpoint after this batch (--resume continues)");
        stop.store(true, Ordering::Relaxed);
    })?;

    let resume = resume_checkpoint(&args, &out, epochs)?;
    let outcome = trainer.fit(model, &mut optimizer, &train, Some(&val), resume)?;
    if outcome.interrupted {
        println!("stopped; resume with --resume --out {}", out.display());
        return Ok(());
    }
    report(&outcome, started);
    Ok(())
}
