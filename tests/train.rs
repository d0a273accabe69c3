//! The training loop: overfitting, the run folder, resume, NaN stops, and metrics.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use burn::module::Module;
use burn::tensor::Device;
use ferrovision::Error;
use ferrovision::data::transforms::{Compose, Normalize, Resize};
use ferrovision::data::{DataLoader, DataLoaderConfig, ShapesConfig, train_val, write_shapes};
use ferrovision::models::{ResNet, ResNetConfig, ResNetDepth};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::optim::{AdamConfig, LrSchedule, SgdConfig};
use ferrovision::train::{
    Checkpoint, ConfusionPicture, ConfusionView, Curves, EpochMetrics, EpochRecord, ProgressStyle,
    Trainer, TrainerConfig,
};
use ferrovision::weights::state_dict;

const SIZE: u32 = 32;

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
            &device.clone().autodiff(),
        ),
        DataLoader::new(val, transform(), config, device),
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
    let dir = common::temp_dir("overfit");
    let root = shapes(&dir, 2, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 10, &device);
    let batch = train.epoch(0).next().unwrap().unwrap();
    let mut model = model(&device);
    let mut optimizer = AdamConfig::new().init().unwrap();
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
}

#[test]
fn a_short_run_writes_a_well_formed_run_folder() {
    let dir = common::temp_dir("run");
    let root = shapes(&dir, 6, 2);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 8, &device);
    let run = dir.join("run");
    let mut optimizer = AdamConfig::new().init().unwrap();
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
    for picture in [
        "loss",
        "accuracy",
        "confusion_matrix",
        "confusion_matrix_normalized",
    ] {
        let svg = std::fs::read_to_string(run.join(format!("{picture}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{picture}"
        );
        let png = image::open(run.join(format!("{picture}.png"))).unwrap();
        assert!(png.width() > 300 && png.height() > 200, "{picture}");
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
}

#[test]
fn resume_gives_the_same_run_as_no_interruption() {
    let dir = common::temp_dir("resume");
    let root = shapes(&dir, 4, 2);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 8, &device);
    // Independent copies of one initial model (a clone copies batch-norm running statistics).
    let initial = model(&device);
    let start = || initial.clone();
    let sgd = || SgdConfig::new(0.05).with_momentum(0.9).init().unwrap();

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
    assert_same_records(&straight, &split, 3);
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
    // Every epoch's record, the interrupted one's training metrics included (the checkpoint
    // kept its sums).
    assert_same_records(&straight, &stopped, 3);
}

/// A stop asked for at an epoch's last batch finishes that epoch (validation, checkpoints)
/// and the resume goes on from the next one, ending where an uninterrupted run does.
#[test]
fn a_stop_at_the_last_batch_resumes_to_the_same_run() {
    let dir = common::temp_dir("resume-last");
    let root = shapes(&dir, 4, 2);
    let device = ferrovision::device::cpu();
    // 20 training images in one batch: every batch is an epoch's last.
    let (train, val) = loaders(&root, 20, &device);
    assert_eq!(train.len(), 1);
    let initial = model(&device);
    let start = || initial.clone();
    let adam = || AdamConfig::new().with_lr(1e-3).init().unwrap();
    let straight = dir.join("straight");
    let full = trainer(2, &straight)
        .fit(start(), &mut adam(), &train, Some(&val), None)
        .unwrap();
    let stopped = dir.join("stopped");
    let interrupted = trainer(2, &stopped);
    interrupted.stop_handle().store(true, Ordering::Relaxed);
    let outcome = interrupted
        .fit(start(), &mut adam(), &train, Some(&val), None)
        .unwrap();
    assert!(outcome.interrupted);
    let checkpoint = Checkpoint::load(stopped.join("last.safetensors")).unwrap();
    let position = &checkpoint.meta.position;
    assert_eq!((position.epoch, position.batch), (1, 0));
    let resumed = trainer(2, &stopped)
        .fit(
            model(&device),
            &mut adam(),
            &train,
            Some(&val),
            Some(checkpoint),
        )
        .unwrap();
    assert_eq!(state_dict(&full.model), state_dict(&resumed.model));
    assert_same_records(&straight, &stopped, 2);
}

/// One epoch of SGD on a tiny shapes folder in `dir`: its root, the run folder (`dir/run`) and
/// the training loader (batch 8).
fn one_epoch_run(dir: &Path, device: &Device) -> (PathBuf, PathBuf, DataLoader) {
    let root = shapes(dir, 4, 1);
    let (train, val) = loaders(&root, 8, device);
    let run = dir.join("run");
    let mut sgd = SgdConfig::new(0.01).init().unwrap();
    trainer(1, &run)
        .fit(model(device), &mut sgd, &train, Some(&val), None)
        .unwrap();
    (root, run, train)
}

/// A resume with another seed, batch size, optimizer or class list would not continue the
/// run: refused before any step, naming what differs.
#[test]
fn a_resume_with_other_settings_is_refused() {
    let dir = common::temp_dir("resume-check");
    let device = ferrovision::device::cpu();
    let (root, run, train) = one_epoch_run(&dir, &device);
    let resume =
        |trainer: Trainer, optimizer: &mut ferrovision::optim::Optimizer, train: &DataLoader| {
            let checkpoint = Checkpoint::load(run.join("last.safetensors")).unwrap();
            match trainer.fit(model(&device), optimizer, train, None, Some(checkpoint)) {
                Err(Error::ResumeMismatch { differences, .. }) => {
                    differences.iter().map(|d| d.what).collect::<Vec<_>>()
                }
                other => panic!(
                    "expected ResumeMismatch, got {:?}",
                    other.map(|o| o.history.len())
                ),
            }
        };
    let sgd = || SgdConfig::new(0.01).init().unwrap();
    // Every difference is listed at once: Adam's class and its settings.
    assert_eq!(
        resume(
            trainer(2, &run),
            &mut AdamConfig::new().init().unwrap(),
            &train
        ),
        ["optimizer", "optimizer settings"]
    );
    assert_eq!(
        resume(
            trainer(2, &run),
            &mut SgdConfig::new(0.02).init().unwrap(),
            &train
        ),
        ["optimizer settings"]
    );
    let mut other_schedule = TrainerConfig::new(2, &run);
    other_schedule.progress = ProgressStyle::Quiet;
    assert_eq!(
        resume(Trainer::new(other_schedule), &mut sgd(), &train),
        ["learning-rate schedule"]
    );
    let mut seeded = TrainerConfig::new(2, &run);
    seeded.seed = 9;
    seeded.progress = ProgressStyle::Quiet;
    assert_eq!(
        resume(Trainer::new(seeded), &mut sgd(), &train),
        ["seed", "learning-rate schedule"]
    );
    let (small_batches, _) = loaders(&root, 4, &device);
    assert_eq!(
        resume(trainer(2, &run), &mut sgd(), &small_batches),
        ["batch size"]
    );
    std::fs::remove_dir_all(root.join("train/triangle")).unwrap();
    std::fs::remove_dir_all(root.join("val/triangle")).unwrap();
    let (four_classes, _) = loaders(&root, 8, &device);
    assert_eq!(
        resume(trainer(2, &run), &mut sgd(), &four_classes),
        ["classes", "training set size"]
    );
    let err = {
        let checkpoint = Checkpoint::load(run.join("last.safetensors")).unwrap();
        trainer(2, &run)
            .fit(
                model(&device),
                &mut AdamConfig::new().init().unwrap(),
                &train,
                None,
                Some(checkpoint),
            )
            .unwrap_err()
    };
    assert!(err.to_string().contains("start afresh"), "{err}");
}

/// Checkpoint headers keep summaries of past epochs (no per-class lists, no C x C matrices),
/// `metrics.jsonl` keeps everything, and a NaN (an empty validation pass) reads back.
#[test]
fn checkpoints_keep_summaries_and_nan_metrics_read_back() {
    let dir = common::temp_dir("summaries");
    let device = ferrovision::device::cpu();
    let (_, run, _) = one_epoch_run(&dir, &device);
    let mut checkpoint = Checkpoint::load(run.join("last.safetensors")).unwrap();
    let kept = &checkpoint.meta.history[0];
    assert!(kept.train.confusion.is_empty() && kept.train.per_class.is_empty());
    assert_eq!(records(&run)[0].train.confusion.len(), 5);
    assert_eq!(kept, &records(&run)[0].summary());

    // NaN metrics are written as JSON null and read back as NaN.
    let mut record = kept.clone();
    record.val = Some(EpochMetrics::from_confusion(
        f32::NAN,
        f64::NAN,
        vec![],
        &[],
    ));
    checkpoint.meta.history = vec![record];
    let path = dir.join("nan.safetensors");
    checkpoint.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    let val = back.meta.history[0].val.as_ref().unwrap();
    assert!(val.loss.is_nan() && val.top5_accuracy.is_nan());

    // Past 100 classes the confusion picture lists the top confusions: its size does not
    // grow with the square of the classes.
    let c = 1000;
    let mut confusion = vec![vec![0u64; c]; c];
    for (i, row) in confusion.iter_mut().enumerate() {
        row[i] = 5;
        row[(i * 7 + 1) % c] = (i % 13) as u64;
    }
    let names: Vec<String> = (0..c).map(|i| format!("class{i}")).collect();
    let picture = ConfusionPicture::new(&confusion, &names, ConfusionView::Counts);
    let svg = picture.svg().unwrap();
    assert!(svg.len() < 40_000, "{} bytes", svg.len());
    let texts = svg_texts(&svg);
    assert!(texts[0].starts_with("the most frequent confusions of 1000 classes"));
    // 40 bars, each a label and a value; the largest confusions (12 images) first.
    assert_eq!(texts.len(), 1 + 2 * 40);
    assert_eq!(
        (texts[1].as_str(), texts[2].as_str()),
        ("class12 → class85", "12")
    );
    let png = image::load_from_memory(&picture.png().unwrap()).unwrap();
    assert!(png.height() < 1200, "{} rows", png.height());
}

/// A second run on a folder another run holds fails at once, naming the lock.
#[test]
fn a_locked_run_folder_is_refused_at_once() {
    let dir = common::temp_dir("lock");
    let root = shapes(&dir, 2, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 4, &device);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    holder.try_lock().unwrap();
    let err = trainer(1, &run)
        .fit(
            model(&device),
            &mut SgdConfig::new(0.01).init().unwrap(),
            &train,
            None,
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::RunLocked { .. }), "{err:?}");
    assert!(err.to_string().contains(".lock"), "{err}");
    drop(holder);
    trainer(1, &run)
        .fit(
            model(&device),
            &mut SgdConfig::new(0.01).init().unwrap(),
            &train,
            None,
            None,
        )
        .unwrap();
}

/// This test binary again, running only `test` with `variable` set to `dir`: the child half
/// of a test that kills a process.
fn spawn_this_test(test: &str, variable: &str, dir: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(variable, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `write_shapes` killed halfway leaves no dataset behind (it draws into a temporary folder
/// renamed at the end), so the next run draws it again instead of training on half of it.
#[test]
fn an_interrupted_write_shapes_leaves_no_half_dataset() {
    if let Some(root) = std::env::var_os("FERROVISION_DRAW_SHAPES") {
        let config = ShapesConfig {
            size: 64,
            train_per_class: 100_000,
            val_per_class: 10,
            seed: 1,
        };
        write_shapes(Path::new(&root), &config).unwrap();
        return;
    }
    let dir = common::temp_dir("draw");
    let root = dir.join("shapes");
    let mut child = spawn_this_test(
        "an_interrupted_write_shapes_leaves_no_half_dataset",
        "FERROVISION_DRAW_SHAPES",
        &root,
    );
    let staging = dir.join(format!(".shapes.tmp-{}", child.id()));
    let started = std::time::Instant::now();
    while !staging.join("train/circle/0010.png").exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staging.exists(), "the child never started drawing");
    assert!(!root.exists(), "a half-drawn dataset was left in place");
    shapes(&dir, 2, 1);
    assert_eq!(
        ferrovision::data::ImageFolder::new(root.join("val"))
            .unwrap()
            .len(),
        5
    );
}

/// The child half of the kill -9 test: saves two checkpoints in turn, forever.
fn save_forever(dir: &Path) -> ! {
    use ferrovision::nn::LinearConfig;
    use ferrovision::train::{CheckpointMeta, RunPosition};
    let device = ferrovision::device::ndarray();
    let models = [1.0f32, 2.0].map(|value| {
        let linear = LinearConfig::new(512, 1000).init(&device);
        let mut dict = state_dict(&linear);
        for key in ["weight", "bias"] {
            let tensor = dict.get(key).unwrap().clone();
            let n = tensor.numel();
            dict.insert(
                key,
                ferrovision::weights::RawTensor::from_f32(tensor.shape.clone(), &vec![value; n]),
            );
        }
        dict
    });
    for round in 0usize.. {
        let meta = CheckpointMeta {
            position: RunPosition {
                epoch: round,
                batch: 0,
                step: round,
                seed: 0,
                best_accuracy: None,
            },
            classes: vec!["a".into()],
            config: serde_json::json!({}),
            model: None,
            settings: None,
            history: vec![],
        };
        Checkpoint {
            model: models[round % 2].clone(),
            optimizer: Default::default(),
            epoch_metrics: Default::default(),
            meta,
        }
        .save(dir.join("last.safetensors"))
        .unwrap();
    }
    unreachable!()
}

/// `kill -9` in the middle of saves leaves a whole checkpoint: the previous or the new one,
/// never a torn file (a child process saves in a loop and is killed at random moments).
#[test]
fn kill_9_during_a_save_leaves_a_loadable_checkpoint() {
    if let Some(dir) = std::env::var_os("FERROVISION_SAVE_FOREVER") {
        save_forever(Path::new(&dir));
    }
    let dir = common::temp_dir("kill9");
    let last = dir.join("last.safetensors");
    for round in 0..6u64 {
        let mut child = spawn_this_test(
            "kill_9_during_a_save_leaves_a_loadable_checkpoint",
            "FERROVISION_SAVE_FOREVER",
            &dir,
        );
        let started = std::time::Instant::now();
        while !last.exists() && started.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(37 * round + 11));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let checkpoint = Checkpoint::load(&last).unwrap();
        let weight = checkpoint.model.get("weight").unwrap();
        let values = weight.to_f32(&last, "weight", false).unwrap();
        let first = values[0];
        assert!(first == 1.0 || first == 2.0, "{first}");
        assert!(
            values.iter().all(|&v| v == first),
            "a torn checkpoint after round {round}"
        );
    }
}

/// Both run folders' `metrics.jsonl` hold `epochs` records, equal but for their timings.
fn assert_same_records(a: &Path, b: &Path, epochs: usize) {
    let (a, b) = (records(a), records(b));
    assert_eq!((a.len(), b.len()), (epochs, epochs));
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(strip_time(a), strip_time(b), "epoch {}", a.epoch);
    }
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
    let dir = common::temp_dir("nan");
    let root = shapes(&dir, 4, 1);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 4, &device);
    let run = dir.join("run");
    // Finite (an infinite rate is refused), but past f32: the first step sends the weights to
    // infinity.
    let mut optimizer = SgdConfig::new(f64::MAX).init().unwrap();
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
    let dir = common::temp_dir("layout");
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
}

#[test]
fn a_last_batch_of_one_image_is_left_out_not_a_panic() {
    // At 32 px layer4's maps are 1x1: batch norm cannot train on one image (PyTorch refuses it
    // too). 15 images in batches of 7 end with a batch of 1, which is left out.
    let dir = common::temp_dir("single");
    let root = shapes(&dir, 3, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 7, &device);
    assert_eq!(train.dataset().len(), 15);
    let mut optimizer = AdamConfig::new().init().unwrap();
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
}

/// Flags out of range are clap errors naming the flag (exit code 2), never a panic.
#[test]
fn out_of_range_flags_are_usage_errors() {
    let Some(train) = common::example("train") else {
        return;
    };
    for (flag, value) in [
        ("--batch-size", "0"),
        ("--image-size", "0"),
        ("--workers", "100000"),
        ("--epochs", "-1"),
    ] {
        let out = std::process::Command::new(&train)
            .args([
                &format!("{flag}={value}"),
                "--out",
                "/nonexistent/never-written",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flag} {value}: {stderr}");
    }
}

/// `evaluate` runs the model in eval mode (running statistics, left unchanged), whatever mode
/// it is given in: as `model.eval()` then `torch.no_grad()` in PyTorch.
#[test]
fn evaluate_uses_eval_mode_and_leaves_the_model_unchanged() {
    let dir = common::temp_dir("evaluate");
    let root = shapes(&dir, 2, 2);
    let device = ferrovision::device::cpu();
    let (_, val) = loaders(&root, 4, &device);
    let training = model(&device).train();
    let before = state_dict(&training);
    let from_training = ferrovision::train::evaluate(&training, &val).unwrap();
    assert_eq!(state_dict(&training), before, "evaluate changed the model");
    let from_eval = ferrovision::train::evaluate(&training.clone().eval(), &val).unwrap();
    assert_eq!(from_training, from_eval);
}

/// Records what the trainer tells it; asks to stop after epoch `stop_after`.
struct Recorder {
    batches: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
    epochs: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    stop_after: usize,
}

impl ferrovision::train::Callback for Recorder {
    fn on_batch_end(
        &mut self,
        batch: &ferrovision::train::BatchEnd,
    ) -> ferrovision::train::Control {
        assert!(batch.loss.clone().into_scalar::<f32>().is_finite());
        self.batches
            .lock()
            .unwrap()
            .push((batch.epoch, batch.batch));
        ferrovision::train::Control::Continue
    }

    fn on_epoch_end(&mut self, record: &EpochRecord) -> ferrovision::train::Control {
        self.epochs.lock().unwrap().push(record.epoch);
        if record.epoch >= self.stop_after {
            ferrovision::train::Control::Stop
        } else {
            ferrovision::train::Control::Continue
        }
    }
}

/// A callback sees every batch and epoch and stops the run early (checkpoints of the last
/// epoch written); a replaced loss is what the optimizer follows.
#[test]
fn callbacks_see_every_batch_and_stop_early_and_the_loss_is_replaceable() {
    let dir = common::temp_dir("callbacks");
    let root = shapes(&dir, 4, 1);
    let device = ferrovision::device::cpu();
    let (train, val) = loaders(&root, 8, &device);
    let recorder = Recorder {
        batches: Default::default(),
        epochs: Default::default(),
        stop_after: 2,
    };
    let (batches, epochs) = (recorder.batches.clone(), recorder.epochs.clone());
    let run = dir.join("run");
    let outcome = trainer(5, &run)
        .with_callback(recorder)
        .fit(
            model(&device),
            &mut AdamConfig::new().init().unwrap(),
            &train,
            Some(&val),
            None,
        )
        .unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.history.len(), 2);
    assert_eq!(*epochs.lock().unwrap(), [1, 2]);
    let expected: Vec<(usize, usize)> = (0..2)
        .flat_map(|e| (1..=train.len()).map(move |b| (e, b)))
        .collect();
    assert_eq!(*batches.lock().unwrap(), expected);
    let checkpoint = Checkpoint::load(run.join("last.safetensors")).unwrap();
    assert_eq!(checkpoint.meta.position.epoch, 2);

    // A zero loss: Adam takes zero steps, so the weights stay where they started.
    let start = model(&device);
    let outcome = trainer(1, &dir.join("zero"))
        .with_loss(|logits, _labels| logits.sum().mul_scalar(0.0))
        .fit(
            start.clone(),
            &mut AdamConfig::new().init().unwrap(),
            &train,
            None,
            None,
        )
        .unwrap();
    assert_eq!(outcome.history[0].train.loss, 0.0);
    assert_eq!(
        outcome.model.fc.weight.val().into_data(),
        start.fc.weight.val().into_data()
    );
}

/// A trainer told its model writes the spec typed into every checkpoint, and the checkpoint
/// rebuilds that model with its eval transform: the same logits as the trained model.
#[test]
fn a_checkpoint_rebuilds_its_model_from_the_typed_spec() {
    use ferrovision::models::Architecture;
    use ferrovision::train::{EvalTransform, ModelSpec};
    let dir = common::temp_dir("spec");
    let root = shapes(&dir, 2, 1);
    let device = ferrovision::device::cpu();
    let (train, _) = loaders(&root, 5, &device);
    let run = dir.join("run");
    let mut config = TrainerConfig::new(1, &run);
    config.progress = ProgressStyle::Quiet;
    config.model = Some(ModelSpec {
        arch: Architecture::ResNet(ResNetDepth::R18),
        num_classes: 5,
        image_size: SIZE,
        eval_transform: EvalTransform::Resize,
    });
    let outcome = Trainer::new(config)
        .fit(
            model(&device),
            &mut SgdConfig::new(0.01).init().unwrap(),
            &train,
            None,
            None,
        )
        .unwrap();
    let checkpoint = Checkpoint::load(run.join("last.safetensors")).unwrap();
    let (rebuilt, transform) = checkpoint.model(&device).unwrap();
    let image = image::open(&train.dataset().samples()[0].0)
        .unwrap()
        .to_rgb8();
    let tensor = transform
        .apply(image, &mut rand::SeedableRng::seed_from_u64(0))
        .unwrap();
    let input = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(tensor.data, [1, 3, SIZE as usize, SIZE as usize]),
        &device,
    );
    let trained = outcome.model.valid().eval();
    assert_eq!(
        rebuilt.forward(input.clone()).into_data(),
        trained.forward(input).into_data()
    );

    // Without a spec: a typed error naming the file.
    let mut bare = checkpoint.clone();
    bare.meta.model = None;
    let path = dir.join("bare.safetensors");
    bare.save(&path).unwrap();
    let err = Checkpoint::load(&path).unwrap().model(&device).unwrap_err();
    assert!(matches!(err, Error::BadCheckpoint { .. }), "{err:?}");
    assert!(err.to_string().contains("bare.safetensors"), "{err}");
}

/// A rendered PNG as RGB pixels.
fn render(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png).unwrap().to_rgb8()
}

/// The text of every `<text>` element of an SVG document.
fn svg_texts(svg: &str) -> Vec<String> {
    let mut parts: Vec<&str> = svg.split("</text>").collect();
    parts.pop(); // after the last text
    parts
        .into_iter()
        .filter_map(|part| part.rsplit_once('>'))
        .map(|(_, text)| text.trim().to_string())
        .collect()
}

/// Pixels of exactly this colour.
fn count_colour(image: &image::RgbImage, rgb: [u8; 3]) -> usize {
    image.pixels().filter(|p| p.0 == rgb).count()
}

/// Pixels darker than mid-grey in the rectangle `x0..x1, y0..y1` (text, axes, lines).
fn ink(image: &image::RgbImage, (x0, x1): (u32, u32), (y0, y1): (u32, u32)) -> usize {
    let mut dark = 0;
    for y in y0..y1.min(image.height()) {
        for x in x0..x1.min(image.width()) {
            let p = image.get_pixel(x, y).0;
            dark += usize::from(p.iter().map(|&c| c as u32).sum::<u32>() < 3 * 128);
        }
    }
    dark
}

/// Whether the outermost `band` pixels all round the picture are white: nothing was drawn
/// past the edge (a clipped label leaves its ink on the border).
fn white_border(image: &image::RgbImage, band: u32) -> bool {
    image.enumerate_pixels().all(|(x, y, p)| {
        let inside =
            x >= band && y >= band && x + band < image.width() && y + band < image.height();
        inside || p.0 == [255, 255, 255]
    })
}

/// The learning curves render as a picture with a title, axis titles, both series' colours
/// (lines, markers and legend) and nothing cut at the edges.
#[test]
fn learning_curves_render_with_titles_series_and_legend() {
    let train = [2.0, 1.4, 1.1, 0.8];
    let val = [2.2, 1.7, f64::NAN, 1.2];
    let curves = Curves::new("loss", "cross-entropy")
        .with_series("train", &train)
        .with_series("val", &val);
    let image = render(&curves.png().unwrap());
    let (w, h) = image.dimensions();
    assert_eq!((w, h), (720, 440));
    assert!(white_border(&image, 3));
    // matplotlib's blue and red: the lines, the markers and the legend's swatches.
    assert!(count_colour(&image, [31, 119, 180]) > 300);
    assert!(count_colour(&image, [214, 39, 40]) > 200);
    assert!(ink(&image, (w / 2 - 40, w / 2 + 40), (0, 44)) > 30, "title");
    assert!(
        ink(&image, (w / 2 - 60, w / 2 + 60), (h - 30, h)) > 30,
        "x-axis title"
    );
    assert!(
        ink(&image, (0, 40), (h / 2 - 60, h / 2 + 60)) > 30,
        "y-axis title"
    );
    // The legend sits in the upper right corner of the plot.
    let legend_blue = (w - 200..w)
        .flat_map(|x| (40..140).map(move |y| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y).0 == [31, 119, 180])
        .count();
    assert!(legend_blue > 20, "legend swatch: {legend_blue} pixels");
    let texts = svg_texts(&curves.svg().unwrap());
    for text in ["loss", "epoch", "cross-entropy", "train", "val", "1", "4"] {
        assert!(
            texts.iter().any(|t| t == text),
            "{text} missing from {texts:?}"
        );
    }
}

/// The confusion matrix keeps every label inside the picture however long the names (the old
/// picture clipped "circle" to "le"), shades a fully right class with the full colour, and
/// its normalised view differs from the counts.
#[test]
fn confusion_matrix_renders_whole_labels_and_both_views() {
    let classes: Vec<String> = [
        "circle",
        "a_rather_long_class_name",
        "square",
        &"x".repeat(500),
    ]
    .map(String::from)
    .to_vec();
    let matrix = vec![
        vec![8, 2, 0, 0],
        vec![1, 9, 0, 0],
        vec![0, 0, 10, 0],
        vec![0, 3, 0, 7],
    ];
    let counts = ConfusionPicture::new(&matrix, &classes, ConfusionView::Counts);
    let shares = ConfusionPicture::new(&matrix, &classes, ConfusionView::Normalized);
    let (a, b) = (
        render(&counts.png().unwrap()),
        render(&shares.png().unwrap()),
    );
    for image in [&a, &b] {
        assert!(white_border(image, 3));
        // A 500-character name is cut short: the picture stays small.
        assert!(
            image.width() < 900 && image.height() < 900,
            "{:?}",
            image.dimensions()
        );
        // The full colour fills most of the cell of "square" (10 of 10, also the largest
        // count), around its centred value.
        assert!(count_colour(image, [8, 48, 107]) > 1000);
    }
    assert_ne!(a.as_raw(), b.as_raw());
    let texts = svg_texts(&shares.svg().unwrap());
    for text in ["circle", "a_rather_long_class_name", "80%", "100%", "70%"] {
        assert!(
            texts.iter().any(|t| t == text),
            "{text} missing from {texts:?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("xxx") && t.ends_with('…') && t.len() < 40)
    );
    assert!(svg_texts(&counts.svg().unwrap()).iter().any(|t| t == "9"));
}

/// A new run never overwrites a folder that holds one: refused naming what it holds, or, with
/// `overwrite`, the old run is moved aside whole first. Zero epochs is refused before anything.
#[test]
fn a_new_run_in_a_folder_that_holds_one_is_refused_or_moved_aside() {
    let dir = common::temp_dir("run-exists");
    let device = ferrovision::device::cpu();
    let (_, run, train) = one_epoch_run(&dir, &device);
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let last = std::fs::read(run.join("last.safetensors")).unwrap();
    let sgd = || SgdConfig::new(0.01).init().unwrap();
    let err = trainer(1, &run)
        .fit(model(&device), &mut sgd(), &train, None, None)
        .unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err:?}");
    assert!(err.to_string().contains("metrics.jsonl"), "{err}");
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
    assert_eq!(std::fs::read(run.join("last.safetensors")).unwrap(), last);

    let err = trainer(0, &dir.join("zero"))
        .fit(model(&device), &mut sgd(), &train, None, None)
        .unwrap_err();
    assert!(err.to_string().contains("epochs` is 0"), "{err}");
    assert!(!dir.join("zero").exists());

    let mut config = TrainerConfig::new(1, &run);
    config.progress = ProgressStyle::Quiet;
    config.overwrite = true;
    Trainer::new(config)
        .fit(model(&device), &mut sgd(), &train, None, None)
        .unwrap();
    let aside = dir.join("run.previous");
    assert_eq!(std::fs::read(aside.join("metrics.jsonl")).unwrap(), metrics);
    assert_eq!(std::fs::read(aside.join("last.safetensors")).unwrap(), last);
    assert!(run.join("last.safetensors").exists());
}

mod checkpoint_fields {
    use super::*;
    use ferrovision::nn::LinearConfig;
    use proptest::prelude::*;

    /// A JSON value for a field: a valid one, a number of any size or sign, or another type.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            (0u32..80).prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|v| serde_json::json!(v)),
            prop::sample::select(vec![
                "resnet18",
                "mobilenet_v3_small",
                "convnext_tiny",
                "efficientnet_b0",
                "vgg",
                "resize",
                "center_crop",
                "",
                "a",
            ])
            .prop_map(serde_json::Value::from),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "", "a"]), 0..4)
                .prop_map(|v| serde_json::json!(v)),
            Just(serde_json::Value::Null),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random values in a checkpoint's metadata fields: loading and rebuilding the model
        /// either works or is a typed error, never a panic inside Burn or ours.
        #[test]
        fn random_metadata_is_a_typed_error_or_a_model(
            fields in prop::collection::vec(value(), 9),
            keep in prop::collection::vec(any::<bool>(), 9),
        ) {
            let mut meta = serde_json::json!({
                "position": {"epoch": 1, "batch": 0, "step": 1, "seed": 0, "best_accuracy": 0.5},
                "classes": ["a", "b"],
                "config": {},
                "model": {"arch": "resnet18", "num_classes": 2, "image_size": 32,
                          "eval_transform": "resize"},
                "history": [],
            });
            let paths: [&[&str]; 9] = [
                &["classes"], &["model", "arch"], &["model", "num_classes"],
                &["model", "image_size"], &["model", "eval_transform"], &["position", "epoch"],
                &["position", "batch"], &["position", "best_accuracy"], &["history"],
            ];
            for ((path, value), keep) in paths.iter().zip(fields).zip(keep) {
                if !keep {
                    let mut slot = &mut meta;
                    for key in *path {
                        slot = &mut slot[*key];
                    }
                    *slot = value;
                }
            }
            let dir = common::temp_dir("checkpoint-prop");
            let path = dir.join("edited.safetensors");
            let linear = LinearConfig::new(4, 2).init(&ferrovision::device::ndarray());
            let mut dict = ferrovision::weights::StateDict::new();
            dict.extend_prefixed("model.", state_dict(&linear));
            dict.set_metadata("ferrovision.checkpoint", meta.to_string());
            dict.save_safetensors(&path).unwrap();
            let loaded = std::panic::catch_unwind(|| {
                Checkpoint::load(&path).and_then(|c| c.model(&ferrovision::device::ndarray()))
            });
            match loaded {
                Err(_) => prop_assert!(false, "panicked on {meta}"),
                // A linear layer never fits the model: every outcome is a typed error.
                Ok(Ok(_)) => prop_assert!(false, "loaded a linear layer as a model: {meta}"),
                Ok(Err(Error::BadCheckpoint { .. } | Error::IncompatibleWeights { .. })) => {}
                Ok(Err(other)) => prop_assert!(false, "{other:?} for {meta}"),
            }
        }
    }
}
