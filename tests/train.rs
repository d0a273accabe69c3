//! The training loop: overfitting, the run folder, resume, NaN stops, and metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use burn::tensor::Device;
use ferrovision::Error;
use ferrovision::data::transforms::{Compose, Normalize, Resize};
use ferrovision::data::{DataLoader, DataLoaderConfig, ShapesConfig, train_val, write_shapes};
use ferrovision::models::{ResNet, ResNetConfig, ResNetDepth};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::optim::{AdamConfig, LrSchedule, SgdConfig};
use ferrovision::train::{
    Checkpoint, EpochMetrics, EpochRecord, ProgressStyle, Trainer, TrainerConfig,
};
use ferrovision::weights::state_dict;

const SIZE: u32 = 32;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrovision-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny shapes folder: 5 classes, `train` / `val` images per class.
fn shapes(dir: &Path, train: usize, val: usize) -> PathBuf {
    let root = dir.join("shapes");
    let config = ShapesConfig {
        size: SIZE,
        train_per_class: train,
        val_per_class: val,
        seed: 3,
    };
    write_shapes(&root, &config).unwrap();
    root
}

fn transform() -> Compose {
    Compose::new()
        .then(Resize::exact(SIZE, SIZE))
        .normalize(Normalize::imagenet())
}

fn loaders(root: &Path, batch: usize, device: &Device) -> (DataLoader, DataLoader) {
    let (train, val) = train_val(root, 0.2, 0).unwrap();
    let config = DataLoaderConfig::new(batch)
        .with_num_workers(2)
        .with_seed(5);
    (
        DataLoader::new(
            train,
            transform(),
            config.clone().with_shuffle(true),
            device.clone().autodiff(),
        ),
        DataLoader::new(val, transform(), config, device.clone()),
    )
}

fn model(device: &Device) -> ResNet {
    ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(5)
        .init(&device.clone().autodiff())
}

fn trainer(epochs: usize, dir: &Path) -> Trainer {
    let mut config = TrainerConfig::new(epochs, dir);
    config.progress = ProgressStyle::Quiet;
    config.schedule = LrSchedule::Cosine {
        t_max: 6,
        min_factor: 0.1,
    };
    config.log_every = 1;
    Trainer::new(config)
}

fn records(dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn overfitting_one_batch_drives_the_loss_below_0_05() {
    let dir = temp_dir("overfit");
    let root = shapes(&dir, 2, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 10, &device);
    let batch = train.epoch(0).next().unwrap().unwrap();
    let mut model = model(&device);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let loss = loss_fn.forward(model.forward(batch.images.clone()), batch.labels.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        model = optimizer.step(model, loss.backward());
    }
    eprintln!(
        "overfit losses: first {:.4}, last {:.4}",
        losses[0], losses[39]
    );
    assert!(losses[39] < 0.05, "loss after 40 steps: {}", losses[39]);
    assert!(
        losses[0] > 0.5,
        "a fresh model cannot already fit: {}",
        losses[0]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_short_run_writes_a_well_formed_run_folder() {
    let dir = temp_dir("run");
    let root = shapes(&dir, 6, 2);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 8, &device);
    let run = dir.join("run");
    let mut optimizer = AdamConfig::new().init();
    let outcome = trainer(2, &run)
        .fit(model(&device), &mut optimizer, &train, Some(&val), None)
        .unwrap();
    assert!(!outcome.interrupted);

    let history = records(&run);
    assert_eq!(history.len(), 2);
    assert_eq!(history, outcome.history);
    for (i, record) in history.iter().enumerate() {
        assert_eq!(record.epoch, i + 1);
        assert_eq!(record.train.samples, 30);
        let val = record.val.as_ref().unwrap();
        assert_eq!(val.samples, 10);
        for m in [&record.train, val] {
            assert!(m.loss.is_finite() && m.loss > 0.0);
            assert!((0.0..=1.0).contains(&m.accuracy) && m.top5_accuracy >= m.accuracy);
            assert_eq!(
                m.confusion.iter().flatten().sum::<u64>() as usize,
                m.samples
            );
            assert_eq!(m.per_class.len(), 5);
        }
        assert!(record.images_per_second > 0.0 && record.lr > 0.0);
    }
    // lr follows the cosine schedule: 4 steps an epoch (30 images, batch 8), recorded at the
    // epoch's last step.
    let schedule = LrSchedule::Cosine {
        t_max: 6,
        min_factor: 0.1,
    };
    assert!((history[0].lr - 1e-3 * schedule.factor(3)).abs() < 1e-12);
    assert!((history[1].lr - 1e-3 * schedule.factor(7)).abs() < 1e-12);

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["classes"].as_array().unwrap().len(), 5);
    assert_eq!(config["train_images"], 30);
    for picture in ["loss.svg", "accuracy.svg", "confusion_matrix.svg"] {
        let svg = std::fs::read_to_string(run.join(picture)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{picture}"
        );
    }
    let last = Checkpoint::load(run.join("last.safetensors")).unwrap();
    assert_eq!(last.meta.position.epoch, 2);
    assert_eq!(last.meta.position.step, 8);
    assert_eq!(last.meta.classes, train.dataset().classes());
    let saved: Vec<_> = last.model.iter().collect();
    let trained = state_dict(&outcome.model);
    assert_eq!(saved, trained.iter().collect::<Vec<_>>());
    assert!(last.optimizer.keys().contains(&"fc.weight.exp_avg"));
    let best = Checkpoint::load(run.join("best.safetensors")).unwrap();
    let best_epoch = outcome.best().unwrap().epoch;
    assert_eq!(best.meta.position.epoch, best_epoch);
    // No temporary files are left behind by the atomic writes.
    for entry in std::fs::read_dir(&run).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left over: {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_gives_the_same_run_as_no_interruption() {
    let dir = temp_dir("resume");
    let root = shapes(&dir, 4, 2);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 8, &device);
    // Fresh copies of one initial model (a clone would share its batch-norm running
    // statistics, which Burn keeps behind a shared lock).
    let initial = state_dict(&model(&device));
    let start = || {
        let fresh = model(&device);
        ferrovision::weights::load_state_dict(
            fresh,
            &initial,
            &ferrovision::weights::LoadOptions::strict(),
        )
        .unwrap()
        .0
    };
    let sgd = || SgdConfig::new(0.05).with_momentum(0.9).init();

    let straight = dir.join("straight");
    let mut optimizer = sgd();
    let full = trainer(3, &straight)
        .fit(start(), &mut optimizer, &train, Some(&val), None)
        .unwrap();

    // Stopped after epoch 1, resumed for the rest.
    let split = dir.join("split");
    trainer(1, &split)
        .fit(start(), &mut sgd(), &train, Some(&val), None)
        .unwrap();
    let checkpoint = Checkpoint::load(split.join("last.safetensors")).unwrap();
    let resumed = trainer(3, &split)
        .fit(
            model(&device),
            &mut sgd(),
            &train,
            Some(&val),
            Some(checkpoint),
        )
        .unwrap();
    assert_eq!(records(&split).len(), 3);
    for (a, b) in records(&straight).iter().zip(records(&split).iter()) {
        assert_eq!(strip_time(a), strip_time(b), "epoch {}", a.epoch);
    }
    assert_eq!(state_dict(&full.model), state_dict(&resumed.model));

    // Ctrl-C in the middle of epoch 2: a checkpoint at that batch, and the resume ends where
    // the uninterrupted run does.
    let stopped = dir.join("stopped");
    let first = trainer(1, &stopped)
        .fit(start(), &mut sgd(), &train, Some(&val), None)
        .unwrap();
    let interrupted = trainer(3, &stopped);
    interrupted.stop_handle().store(true, Ordering::Relaxed);
    let checkpoint = Checkpoint::load(stopped.join("last.safetensors")).unwrap();
    let outcome = interrupted
        .fit(
            first.model,
            &mut sgd(),
            &train,
            Some(&val),
            Some(checkpoint),
        )
        .unwrap();
    assert!(outcome.interrupted);
    let checkpoint = Checkpoint::load(stopped.join("last.safetensors")).unwrap();
    assert_eq!(
        (
            checkpoint.meta.position.epoch,
            checkpoint.meta.position.batch
        ),
        (1, 1)
    );
    let resumed = trainer(3, &stopped)
        .fit(
            model(&device),
            &mut sgd(),
            &train,
            Some(&val),
            Some(checkpoint),
        )
        .unwrap();
    assert_eq!(state_dict(&full.model), state_dict(&resumed.model));
    let (a, b) = (&records(&straight)[2], &records(&stopped)[2]);
    assert_eq!(a.val, b.val, "validation after the interrupted epoch");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A record without its timings, which differ between runs.
fn strip_time(record: &EpochRecord) -> EpochRecord {
    EpochRecord {
        seconds: 0.0,
        images_per_second: 0.0,
        ..record.clone()
    }
}

#[test]
fn a_nan_loss_stops_the_run_with_a_typed_error() {
    let dir = temp_dir("nan");
    let root = shapes(&dir, 4, 1);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 4, &device);
    let run = dir.join("run");
    let mut optimizer = SgdConfig::new(f64::INFINITY).init();
    let err = trainer(2, &run)
        .fit(model(&device), &mut optimizer, &train, Some(&val), None)
        .unwrap_err();
    match &err {
        Error::NonFiniteLoss {
            epoch: 1,
            batch: 2,
            kept: None,
            ..
        } => {}
        other => panic!("expected NonFiniteLoss in epoch 1 at batch 2, got {other:?}"),
    }
    assert!(err.to_string().contains("loss became"), "{err}");
    assert!(
        !run.join("last.safetensors").exists(),
        "a NaN model must not be saved"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_follow_sklearn_definitions() {
    // y_true / y_pred with 3 classes; sklearn.metrics.classification_report gives:
    // precision [0.6667, 0.5, 0], recall [1, 0.5, 0], f1 [0.8, 0.5, 0], macro-F1 0.4333.
    let confusion = vec![vec![2, 0, 0], vec![1, 1, 0], vec![0, 1, 0]];
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let m = EpochMetrics::from_confusion(0.7, 1.0, confusion, &names);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
    assert_eq!(m.samples, 5);
    assert!(close(m.accuracy, 0.6));
    let p: Vec<f64> = m.per_class.iter().map(|c| c.precision).collect();
    let r: Vec<f64> = m.per_class.iter().map(|c| c.recall).collect();
    let f: Vec<f64> = m.per_class.iter().map(|c| c.f1).collect();
    assert!(
        close(p[0], 2.0 / 3.0) && close(p[1], 0.5) && close(p[2], 0.0),
        "{p:?}"
    );
    assert!(
        close(r[0], 1.0) && close(r[1], 0.5) && close(r[2], 0.0),
        "{r:?}"
    );
    assert!(
        close(f[0], 0.8) && close(f[1], 0.5) && close(f[2], 0.0),
        "{f:?}"
    );
    assert!(close(m.macro_f1, 1.3 / 3.0));
    assert_eq!(m.per_class[2].support, 1);
    assert!(m.report().contains("macro avg"));
}

#[test]
fn train_val_layouts() {
    let dir = temp_dir("layout");
    let root = shapes(&dir, 3, 1);
    let (train, val) = train_val(&root, 0.2, 0).unwrap();
    assert_eq!((train.len(), val.len()), (15, 5));
    // One folder: a stratified split.
    let (train, val) = train_val(root.join("train"), 1.0 / 3.0, 0).unwrap();
    assert_eq!((train.len(), val.len()), (10, 5));
    // Different classes in val/: a typed error naming both folders.
    std::fs::create_dir_all(root.join("val/hexagon")).unwrap();
    std::fs::copy(
        root.join("val/ring/0000.png"),
        root.join("val/hexagon/0000.png"),
    )
    .unwrap();
    let err = train_val(&root, 0.2, 0).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSetup { .. }) && err.to_string().contains("hexagon"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_last_batch_of_one_image_is_left_out_not_a_panic() {
    // At 32 px layer4's maps are 1x1: batch norm cannot train on one image (PyTorch refuses it
    // too). 15 images in batches of 7 end with a batch of 1, which is left out.
    let dir = temp_dir("single");
    let root = shapes(&dir, 3, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 7, &device);
    assert_eq!(train.dataset().len(), 15);
    let mut optimizer = AdamConfig::new().init();
    let outcome = trainer(1, &dir.join("run"))
        .fit(model(&device), &mut optimizer, &train, None, None)
        .unwrap();
    assert_eq!(outcome.history[0].train.samples, 14);

    // A batch size of 1 could train on nothing: refused before any work.
    let (singles, _) = loaders(&root, 1, &device);
    let err = trainer(1, &dir.join("run1"))
        .fit(model(&device), &mut optimizer, &singles, None, None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSetup { .. }), "{err:?}");
    assert!(err.to_string().contains("batch size 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
