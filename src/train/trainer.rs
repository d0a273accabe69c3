//! The training loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointMeta, RunPosition};
use super::metrics::{EpochMetrics, MetricsAccumulator};
use super::progress::{Progress, ProgressStyle};
use super::report::{confusion_svg, curves_svg};
use crate::data::DataLoader;
use crate::models::ResNet;
use crate::nn::{CrossEntropyLoss, CrossEntropyLossConfig, train_mode};
use crate::optim::{LrSchedule, Optimizer};
use crate::precision::full;
use crate::weights::{LoadOptions, load_state_dict, state_dict, write_atomically};
use crate::{Error, Precision, Result};

/// A module that maps images `[N, 3, H, W]` to class logits `[N, classes]`.
pub trait Classifier: Module + Clone {
    /// The logits of a batch.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
}

impl Classifier for ResNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, images)
    }
}

/// Options of a [`Trainer`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Epochs to train (in all, counting those before a resume).
    pub epochs: usize,
    /// The run folder: `config.json`, `metrics.jsonl`, `last.safetensors`,
    /// `best.safetensors`, `loss.svg`, `accuracy.svg`, `confusion_matrix.svg`.
    pub run_dir: PathBuf,
    /// The learning-rate schedule, advanced once per batch.
    pub schedule: LrSchedule,
    /// The seed the loaders were built with (stored in checkpoints).
    pub seed: u64,
    /// Batches between progress updates (each reads two numbers from the device).
    pub log_every: usize,
    /// How progress is shown.
    pub progress: ProgressStyle,
    /// The dtype the training forward and backward compute in (parameters, optimizer state and
    /// loss stay `f32`); validation runs in `f32`.
    #[serde(default)]
    pub precision: Precision,
    /// Anything the program wants kept in `config.json` and the checkpoints (e.g. the model
    /// architecture and image size, to rebuild the model for prediction).
    pub extra: serde_json::Value,
}

impl TrainerConfig {
    /// `epochs` epochs into `run_dir`, constant learning rate, seed 0, progress every 10
    /// batches.
    pub fn new(epochs: usize, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            epochs,
            run_dir: run_dir.into(),
            schedule: LrSchedule::Constant,
            seed: 0,
            log_every: 10,
            progress: ProgressStyle::Auto,
            precision: Precision::F32,
            extra: serde_json::Value::Null,
        }
    }
}

/// One finished epoch: `metrics.jsonl` holds one of these per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The base learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Training metrics (of the model as it changed during the epoch).
    pub train: EpochMetrics,
    /// Validation metrics, when there is a validation loader.
    pub val: Option<EpochMetrics>,
}

impl EpochRecord {
    /// The accuracy that selects the best checkpoint: validation's, else training's.
    pub fn score(&self) -> f64 {
        self.val.as_ref().unwrap_or(&self.train).accuracy
    }
}

/// What [`Trainer::fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<M> {
    /// The model after the last step.
    pub model: M,
    /// Every finished epoch, from the first (including those before a resume).
    pub history: Vec<EpochRecord>,
    /// Whether the run stopped early on request (Ctrl-C); `last.safetensors` holds where.
    pub interrupted: bool,
    /// The run folder.
    pub run_dir: PathBuf,
}

impl<M> FitOutcome<M> {
    /// The epoch with the best score (validation accuracy, else training accuracy).
    pub fn best(&self) -> Option<&EpochRecord> {
        self.history
            .iter()
            .fold(None, |best: Option<&EpochRecord>, r| match best {
                Some(b) if b.score() >= r.score() => Some(b),
                _ => Some(r),
            })
    }
}

/// Fits a [`Classifier`]: epochs of training then validation (in eval mode, without
/// gradients), with metrics, checkpoints and pictures in the run folder.
///
/// ```
/// use ferrovision::train::{Trainer, TrainerConfig};
/// let trainer = Trainer::new(TrainerConfig::new(10, "runs/demo"));
/// let stop = trainer.stop_handle(); // set it (e.g. from a Ctrl-C handler) to stop cleanly
/// assert!(!stop.load(std::sync::atomic::Ordering::Relaxed));
/// ```
pub struct Trainer {
    config: TrainerConfig,
    stop: Arc<AtomicBool>,
    loss: CrossEntropyLoss,
}

impl Trainer {
    /// A trainer with these options.
    pub fn new(config: TrainerConfig) -> Self {
        Self {
            config,
            stop: Arc::new(AtomicBool::new(false)),
            loss: CrossEntropyLossConfig::new().init(),
        }
    }

    /// The options.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// A flag that stops the run after the current batch when set; the trainer then saves
    /// `last.safetensors` with its position, and a resume continues from that batch.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.config.run_dir.join(name)
    }

    /// Trains `model` (on an autodiff device) with `optimizer` on `train`, validating on `val`
    /// after each epoch. With `resume`, the model, optimizer and position are taken from that
    /// checkpoint first, and the run goes on exactly as it would have without the stop.
    ///
    /// # Errors
    /// - [`Error::NonFiniteLoss`] when the loss becomes NaN/inf (checked at every progress
    ///   update and epoch end); checkpoints written before are kept, none is written after.
    /// - [`Error::InvalidSetup`] when the loader yields no batch or a resume checkpoint does
    ///   not fit the model ([`Error::IncompatibleWeights`]).
    /// - [`Error::Io`] when the run folder cannot be written; data errors under
    ///   [`OnError::Fail`](crate::data::OnError::Fail).
    pub fn fit<M: Classifier>(
        &self,
        model: M,
        optimizer: &mut Optimizer,
        train: &DataLoader,
        val: Option<&DataLoader>,
        resume: Option<Checkpoint>,
    ) -> Result<FitOutcome<M>> {
        if train.is_empty() {
            return Err(Error::InvalidSetup {
                problem: format!(
                    "the training loader has no batch ({} images, batch size {})",
                    train.dataset().len(),
                    train.config().batch_size
                ),
            });
        }
        if train.config().batch_size < 2 || train.dataset().len() < 2 {
            return Err(Error::InvalidSetup {
                problem: format!(
                    "training needs batches of at least 2 images: batch norm cannot take statistics from one \
                     ({} images, batch size {})",
                    train.dataset().len(),
                    train.config().batch_size
                ),
            });
        }
        let classes = train.dataset().classes().to_vec();
        std::fs::create_dir_all(&self.config.run_dir)
            .map_err(|e| Error::io(&self.config.run_dir, e))?;
        let config_json = serde_json::to_vec_pretty(&serde_json::json!({
            "trainer": &self.config,
            "optimizer": optimizer.rule(),
            "groups": optimizer.groups(),
            "grad_clip": optimizer.grad_clip(),
            "base_lr": optimizer.lr(),
            "classes": &classes,
            "train_images": train.dataset().len(),
            "val_images": val.map(|v| v.dataset().len()),
        }))
        .expect("config serialises");
        write_atomically(&self.path("config.json"), &config_json)?;

        let mut model = train_mode(model);
        let mut position = RunPosition {
            epoch: 0,
            batch: 0,
            step: 0,
            seed: self.config.seed,
            best_accuracy: None,
        };
        let mut history = Vec::new();
        if let Some(checkpoint) = resume {
            let (loaded, _) = load_state_dict(model, &checkpoint.model, &LoadOptions::strict())?;
            model = loaded;
            let device = first_device(&model);
            optimizer.load_state_dict(&checkpoint.optimizer, &device)?;
            position = checkpoint.meta.position;
            history = checkpoint.meta.history;
        }

        let mut told_single = false;
        while position.epoch < self.config.epochs {
            let epoch = position.epoch;
            let started = Instant::now();
            let progress = Progress::new(
                self.config.progress,
                format!("epoch {}/{}", epoch + 1, self.config.epochs),
                train.len(),
            );
            let mut metrics = MetricsAccumulator::new(classes.len());
            let mut batches = train.epoch_from(epoch as u64, position.batch);
            let mut done = position.batch;
            for batch in batches.by_ref() {
                let batch = batch?;
                if batch.labels.dims()[0] < 2 {
                    // A last batch of one image: batch norm cannot train on it where a feature
                    // map is 1x1 (PyTorch refuses it too), so it is left out, as `drop_last`.
                    if !told_single {
                        eprintln!(
                            "note: a last batch of 1 image is left out of training each epoch \
                             (batch norm needs 2 or more); choose a batch size that leaves more"
                        );
                        told_single = true;
                    }
                    done += 1;
                    continue;
                }
                optimizer.set_lr_factor(self.config.schedule.factor(position.step));
                let images = self.config.precision.cast(batch.images);
                let logits = full(model.forward(images));
                let loss = self.loss.forward(logits.clone(), batch.labels.clone());
                metrics.add(
                    logits.detach().inner(),
                    batch.labels.inner(),
                    loss.clone().detach().inner(),
                );
                model = optimizer.step(model, loss.backward());
                position.step += 1;
                done += 1;
                let stop = self.stop.load(Ordering::Relaxed);
                if done % self.config.log_every.max(1) == 0 || done == train.len() || stop {
                    let (loss, accuracy) = metrics.running();
                    if !loss.is_finite() {
                        return Err(self.non_finite(epoch, done, loss));
                    }
                    progress.update(done, metrics.samples(), loss, accuracy);
                }
                if stop {
                    progress.finish();
                    position.batch = done;
                    self.save(
                        "last.safetensors",
                        &model,
                        optimizer,
                        &position,
                        &classes,
                        &history,
                    )?;
                    return Ok(FitOutcome {
                        model,
                        history,
                        interrupted: true,
                        run_dir: self.config.run_dir.clone(),
                    });
                }
            }
            progress.finish();
            let skipped = batches.take_skipped();
            if !skipped.is_empty() {
                eprintln!(
                    "epoch {}: skipped {} unreadable images:",
                    epoch + 1,
                    skipped.len()
                );
                for file in &skipped {
                    eprintln!("  {}", file.error);
                }
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let images = metrics.samples();
            let train_metrics = metrics.finish(&classes);
            if !train_metrics.loss.is_finite() {
                return Err(self.non_finite(epoch, done, train_metrics.loss));
            }
            let val_metrics = match val {
                Some(loader) => Some(evaluate(&model, loader, &classes)?),
                None => None,
            };
            let record = EpochRecord {
                epoch: epoch + 1,
                lr: optimizer.lr() * optimizer.lr_factor(),
                seconds: started.elapsed().as_secs_f64(),
                images_per_second: images as f64 / train_seconds.max(1e-9),
                train: train_metrics,
                val: val_metrics,
            };
            eprintln!("{}", summary(&record, self.config.epochs));
            let improved = position
                .best_accuracy
                .is_none_or(|best| record.score() > best);
            if improved {
                position.best_accuracy = Some(record.score());
            }
            history.push(record);
            position.epoch += 1;
            position.batch = 0;
            self.write_metrics(&history, &classes)?;
            self.save(
                "last.safetensors",
                &model,
                optimizer,
                &position,
                &classes,
                &history,
            )?;
            if improved {
                self.save(
                    "best.safetensors",
                    &model,
                    optimizer,
                    &position,
                    &classes,
                    &history,
                )?;
            }
        }
        Ok(FitOutcome {
            model,
            history,
            interrupted: false,
            run_dir: self.config.run_dir.clone(),
        })
    }

    fn non_finite(&self, epoch: usize, batch: usize, value: f32) -> Error {
        let last = self.path("last.safetensors");
        Error::NonFiniteLoss {
            epoch: epoch + 1,
            batch,
            value,
            kept: last.exists().then_some(last),
        }
    }

    fn save<M: Classifier>(
        &self,
        name: &str,
        model: &M,
        optimizer: &Optimizer,
        position: &RunPosition,
        classes: &[String],
        history: &[EpochRecord],
    ) -> Result<()> {
        Checkpoint {
            model: state_dict(model),
            optimizer: optimizer.state_dict(),
            meta: CheckpointMeta {
                position: position.clone(),
                classes: classes.to_vec(),
                config: self.config.extra.clone(),
                history: history.to_vec(),
            },
        }
        .save(self.path(name))
    }

    fn write_metrics(&self, history: &[EpochRecord], classes: &[String]) -> Result<()> {
        let mut lines = String::new();
        for record in history {
            lines += &serde_json::to_string(record).expect("metrics serialise");
            lines.push('\n');
        }
        write_atomically(&self.path("metrics.jsonl"), lines.as_bytes())?;
        let series = |f: fn(&EpochMetrics) -> f64| -> (Vec<f64>, Vec<f64>) {
            let train = history.iter().map(|r| f(&r.train)).collect();
            let val = history
                .iter()
                .map(|r| r.val.as_ref().map_or(f64::NAN, f))
                .collect();
            (train, val)
        };
        let (train_loss, val_loss) = series(|m| m.loss as f64);
        let (train_acc, val_acc) = series(|m| m.accuracy);
        let pictures = [
            (
                "loss.svg",
                curves_svg("loss", &[("train", train_loss), ("val", val_loss)]),
            ),
            (
                "accuracy.svg",
                curves_svg("accuracy", &[("train", train_acc), ("val", val_acc)]),
            ),
        ];
        for (name, svg) in pictures {
            write_atomically(&self.path(name), svg.as_bytes())?;
        }
        if let Some(last) = history.last() {
            let metrics = last.val.as_ref().unwrap_or(&last.train);
            let svg = confusion_svg(&metrics.confusion, classes);
            write_atomically(&self.path("confusion_matrix.svg"), svg.as_bytes())?;
        }
        Ok(())
    }
}

fn first_device<M: Module>(model: &M) -> burn::tensor::Device {
    model.devices().into_iter().next().unwrap_or_default()
}

/// Evaluates `model` on every batch of `loader` (epoch 0 of its order), in eval mode and
/// without gradients, and returns the metrics. `model.valid()` is used, so an autodiff model
/// can be passed as it is.
///
/// # Errors
/// Data errors under [`OnError::Fail`](crate::data::OnError::Fail).
pub fn evaluate<M: Classifier>(
    model: &M,
    loader: &DataLoader,
    classes: &[String],
) -> Result<EpochMetrics> {
    let model = model.valid();
    let loss_fn = CrossEntropyLossConfig::new().init();
    let mut metrics = MetricsAccumulator::new(classes.len());
    for batch in loader.epoch(0) {
        let batch = batch?;
        let logits = model.forward(batch.images.inner());
        let labels = batch.labels.inner();
        let loss = loss_fn.forward(logits.clone(), labels.clone());
        metrics.add(logits, labels, loss);
    }
    Ok(metrics.finish(classes))
}

fn summary(record: &EpochRecord, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{epochs}: train loss {:.4} acc {:.2}%",
        record.epoch,
        record.train.loss,
        100.0 * record.train.accuracy
    );
    if let Some(val) = &record.val {
        line += &format!(
            " | val loss {:.4} acc {:.2}% top-5 {:.2}% macro-F1 {:.4}",
            val.loss,
            100.0 * val.accuracy,
            100.0 * val.top5_accuracy,
            val.macro_f1
        );
    }
    line + &format!(
        " | lr {:.2e} | {:.1} s, {:.1} img/s",
        record.lr, record.seconds, record.images_per_second
    )
}
