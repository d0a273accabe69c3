//! The training loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::callback::{BatchEnd, Callback, Control};
use super::checkpoint::{Checkpoint, CheckpointMeta, ModelSpec, RunPosition, RunSettings};
use super::lock::RunLock;
use super::metrics::{EpochMetrics, MetricsAccumulator};
use super::progress::{Progress, ProgressStyle};
use super::record::EpochRecord;
use super::report::{ConfusionPicture, ConfusionView, Curves};
use super::run_dir::METRICS;
use crate::data::{Batch, DataLoader, SkippedFile};
use crate::models::{MobileNetV3, Model, ResNet};
use crate::nn::{CrossEntropyLossConfig, train_mode};
use crate::optim::{LrSchedule, Optimizer};
use crate::precision::full;
use crate::weights::{LoadOptions, StateDict, load_state_dict, state_dict, write_atomically};
use crate::{Error, Precision, Result, SettingDifference};

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

impl Classifier for MobileNetV3 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        MobileNetV3::forward(self, images)
    }
}

impl Classifier for Model {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Model::forward(self, images)
    }
}

/// Options of a [`Trainer`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Epochs to train (in all, counting those before a resume).
    pub epochs: usize,
    /// The run folder: `config.json`, `metrics.jsonl`, `last.safetensors`,
    /// `best.safetensors`, and as SVG and PNG the pictures `loss`, `accuracy`,
    /// `confusion_matrix` (counts) and `confusion_matrix_normalized` (shares of each true class).
    /// A folder that holds a run ([`run_contents`](super::run_contents)) is never overwritten:
    /// a new run there is refused unless [`overwrite`](Self::overwrite) is set.
    #[serde(serialize_with = "crate::paths::serialize_lossy")]
    pub run_dir: PathBuf,
    /// Start afresh in a run folder that holds a run, after moving that run aside (to
    /// `RUN.previous`, `RUN.previous-2`, ...; see [`move_run_aside`](super::move_run_aside)).
    /// Without it such a folder is refused with [`Error::RunExists`]. Resuming ignores it.
    #[serde(default)]
    pub overwrite: bool,
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
    /// The model being trained, stored typed in every checkpoint so it can be rebuilt for
    /// prediction ([`Checkpoint::model`]).
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// Anything else the program wants kept in `config.json` and the checkpoints.
    pub extra: serde_json::Value,
}

impl TrainerConfig {
    /// `epochs` epochs into `run_dir`, constant learning rate, seed 0, progress every 10
    /// batches.
    pub fn new(epochs: usize, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            epochs,
            run_dir: run_dir.into(),
            overwrite: false,
            schedule: LrSchedule::Constant,
            seed: 0,
            log_every: 10,
            progress: ProgressStyle::Auto,
            precision: Precision::F32,
            model: None,
            extra: serde_json::Value::Null,
        }
    }
}

/// What [`Trainer::fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<M> {
    /// The model after the last step.
    pub model: M,
    /// Every finished epoch, from the first (including those before a resume). With more than
    /// 100 classes, epochs before the last are [summaries](EpochRecord::summary) (memory stays
    /// bounded); `metrics.jsonl` in the run folder has every epoch in full.
    pub history: Vec<EpochRecord>,
    /// Whether the run stopped before its last epoch on request (the stop handle, as on
    /// Ctrl-C, or a callback's [`Control::Stop`]); `last.safetensors` holds where.
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
    loss: LossFn,
    callbacks: Mutex<Vec<Box<dyn Callback>>>,
}

/// A training loss: `(logits [N, C], labels [N]) -> mean loss [1]`.
pub type LossFn = Box<dyn Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1> + Send + Sync>;

impl Trainer {
    /// A trainer with these options, PyTorch's default `CrossEntropyLoss` and no callback.
    pub fn new(config: TrainerConfig) -> Self {
        let cross_entropy = CrossEntropyLossConfig::new().init();
        Self {
            config,
            stop: Arc::new(AtomicBool::new(false)),
            loss: Box::new(move |logits, labels| cross_entropy.forward(logits, labels)),
            callbacks: Mutex::new(Vec::new()),
        }
    }

    /// Trains with another loss: a configured cross-entropy (class weights, label smoothing)
    /// or any function of the logits and labels. Validation still reports cross-entropy.
    ///
    /// ```
    /// use ferrovision::nn::CrossEntropyLossConfig;
    /// use ferrovision::train::{Trainer, TrainerConfig};
    /// let smoothed = CrossEntropyLossConfig::new().with_label_smoothing(0.1).init();
    /// let trainer = Trainer::new(TrainerConfig::new(10, "runs/demo"))
    ///     .with_loss(move |logits, labels| smoothed.forward(logits, labels));
    /// ```
    pub fn with_loss(
        mut self,
        loss: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1> + Send + Sync + 'static,
    ) -> Self {
        self.loss = Box::new(loss);
        self
    }

    /// Adds a [`Callback`], called after each batch and epoch in the order added.
    pub fn with_callback(self, callback: impl Callback + 'static) -> Self {
        self.callbacks
            .lock()
            .expect("callbacks lock")
            .push(Box::new(callback));
        self
    }

    /// Calls every callback with `event`; `Stop` if any asks for it.
    fn notify(&self, event: impl Fn(&mut dyn Callback) -> Control) -> Control {
        let mut control = Control::Continue;
        for callback in self.callbacks.lock().expect("callbacks lock").iter_mut() {
            if event(callback.as_mut()) == Control::Stop {
                control = Control::Stop;
            }
        }
        control
    }

    /// Prints a line unless the progress style is quiet.
    fn say(&self, line: impl FnOnce() -> String) {
        if self.config.progress != ProgressStyle::Quiet {
            eprintln!("{}", line());
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
    /// after each epoch. With `resume`, the model, optimizer, position and the interrupted
    /// epoch's metric sums are taken from that checkpoint first, and the run goes on exactly as
    /// it would have without the stop. The run folder is locked while the run writes it.
    ///
    /// # Errors
    /// - [`Error::NonFiniteLoss`] when the loss becomes NaN/inf (checked at every progress
    ///   update and epoch end); checkpoints written before are kept, none is written after.
    /// - [`Error::InvalidSetup`] when the loader yields no batch or batches of one image, or
    ///   `epochs` is 0.
    /// - [`Error::RunExists`] when a new run (no `resume`) is started in a run folder that holds
    ///   a run and [`TrainerConfig::overwrite`] is off; nothing in it is touched.
    /// - [`Error::ResumeMismatch`] listing every setting of [`RunSettings`] (and the classes and
    ///   seed) the resume checkpoint was written with that this run changes;
    ///   [`Error::BadCheckpoint`] when its position lies past an epoch's batches;
    ///   [`Error::IncompatibleWeights`] when its model or optimizer state does not fit.
    /// - [`Error::NoTrainingData`] when an epoch finds no readable image (all skipped under
    ///   [`OnError::Skip`](crate::data::OnError::Skip)); nothing of it is saved.
    /// - [`Error::RunLocked`] when another run holds the run folder, naming its process.
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
        check_loader(train)?;
        if self.config.epochs == 0 {
            return Err(Error::InvalidSetup {
                problem: "`TrainerConfig::epochs` is 0: nothing would be trained or saved".into(),
            });
        }
        let _lock = self.claim_run_dir(resume.is_some())?;
        let classes = train.dataset().classes().to_vec();
        self.write_config(optimizer, train, val, &classes)?;
        let mut run = RunState {
            model: train_mode(model),
            position: RunPosition {
                epoch: 0,
                batch: 0,
                step: 0,
                seed: self.config.seed,
                best_accuracy: None,
            },
            history: Vec::new(),
            metrics: MetricsAccumulator::new(classes.len()),
            told_single: false,
        };
        match resume {
            Some(checkpoint) => run = self.resume(run, optimizer, train, checkpoint)?,
            None => write_atomically(&self.path(METRICS), b"")?,
        }
        while run.position.epoch < self.config.epochs {
            let started = Instant::now();
            let (next, pass) = self.train_pass(run, optimizer, train)?;
            run = next;
            if pass == Pass::Interrupted {
                self.checkpoint(&run, optimizer, train)
                    .save(self.path("last.safetensors"))?;
                return Ok(self.outcome(run, true));
            }
            let (next, control) = self.end_epoch(run, optimizer, train, val, started)?;
            run = next;
            let stop = control == Control::Stop || self.stop.load(Ordering::Relaxed);
            if stop && run.position.epoch < self.config.epochs {
                return Ok(self.outcome(run, true));
            }
        }
        Ok(self.outcome(run, false))
    }

    /// Creates and locks the run folder; for a new run, refuses one that holds a run unless
    /// `overwrite`, which moves that run aside first.
    fn claim_run_dir(&self, resuming: bool) -> Result<RunLock> {
        let dir = &self.config.run_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = RunLock::acquire(dir)?;
        if resuming {
            return Ok(lock);
        }
        let Some(aside) = super::run_dir::claim_for_new_run(dir, self.config.overwrite)? else {
            return Ok(lock);
        };
        drop(lock);
        self.say(|| {
            format!(
                "overwrite: the run that was in {} is now in {}",
                dir.display(),
                aside.display()
            )
        });
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        RunLock::acquire(dir)
    }

    fn write_config(
        &self,
        optimizer: &Optimizer,
        train: &DataLoader,
        val: Option<&DataLoader>,
        classes: &[String],
    ) -> Result<()> {
        let config_json = serde_json::to_vec_pretty(&serde_json::json!({
            "trainer": &self.config,
            "optimizer": optimizer.rule(),
            "groups": optimizer.groups(),
            "grad_clip": optimizer.grad_clip(),
            "base_lr": optimizer.lr(),
            "classes": classes,
            "train_images": train.dataset().len(),
            "val_images": val.map(|v| v.dataset().len()),
        }))
        .expect("config serialises: paths are written escaped, the rest is plain data");
        write_atomically(&self.path("config.json"), &config_json)
    }

    /// Takes the model, optimizer, position, history and the interrupted epoch's metric sums
    /// from `checkpoint`, after checking it was written by this run's settings.
    fn resume<M: Classifier>(
        &self,
        mut run: RunState<M>,
        optimizer: &mut Optimizer,
        train: &DataLoader,
        checkpoint: Checkpoint,
    ) -> Result<RunState<M>> {
        self.check_resume(&checkpoint, optimizer, train)?;
        let (model, _) = load_state_dict(run.model, &checkpoint.model, &LoadOptions::strict())?;
        optimizer.load_state_dict(&checkpoint.optimizer, &model)?;
        let classes = train.dataset().classes().len();
        if checkpoint.meta.position.batch > 0 {
            let device = first_device(&model);
            run.metrics =
                MetricsAccumulator::from_state_dict(classes, &checkpoint.epoch_metrics, &device)?;
        }
        run.model = model;
        run.position = checkpoint.meta.position;
        run.history = self.restore_history(checkpoint.meta.history, run.position.epoch, classes)?;
        Ok(run)
    }

    fn check_resume(
        &self,
        checkpoint: &Checkpoint,
        optimizer: &Optimizer,
        train: &DataLoader,
    ) -> Result<()> {
        let meta = &checkpoint.meta;
        let path = checkpoint.model.source_or_memory();
        let classes = train.dataset().classes();
        let mut differences: Vec<SettingDifference> = [
            SettingDifference::between(
                "classes",
                list_classes(&meta.classes),
                list_classes(classes),
            ),
            SettingDifference::between(
                "seed",
                meta.position.seed.to_string(),
                self.config.seed.to_string(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(settings) = &meta.settings {
            differences.extend(settings.differences(&self.run_settings(optimizer, train)));
        }
        if !differences.is_empty() {
            return Err(Error::ResumeMismatch { path, differences });
        }
        if meta.position.batch >= train.len() {
            return Err(Error::BadCheckpoint {
                path,
                problem: format!(
                    "`position.batch` is {}, but an epoch has {} batches",
                    meta.position.batch,
                    train.len()
                ),
            });
        }
        Ok(())
    }

    /// The history up to `epochs`: each epoch's full record from `metrics.jsonl` where the
    /// file still has it (a line cut by a crash does not parse), else the checkpoint's
    /// summary; `metrics.jsonl` is rewritten to hold exactly those epochs.
    fn restore_history(
        &self,
        summaries: Vec<EpochRecord>,
        epochs: usize,
        classes: usize,
    ) -> Result<Vec<EpochRecord>> {
        use std::io::BufRead;
        let path = self.path(METRICS);
        // Bounded by the file's size when opened; a FIFO or device there is never read.
        let mut lines = crate::files::open_regular(&path, "the run's metrics.jsonl")
            .ok()
            .map(|(f, len)| std::io::BufReader::new(std::io::Read::take(f, len)).lines());
        let mut text = String::new();
        let mut history = Vec::with_capacity(epochs);
        for (i, summary) in summaries.into_iter().take(epochs).enumerate() {
            let full = lines
                .as_mut()
                .and_then(|lines| lines.next())
                .and_then(|line| line.ok())
                .and_then(|line| serde_json::from_str::<EpochRecord>(&line).ok())
                .filter(|record| record.epoch == i + 1);
            let record = full.unwrap_or(summary);
            text += &serde_json::to_string(&record).expect("metrics serialise");
            text.push('\n');
            history.push(if classes > FULL_RECORD_CLASSES {
                record.summary()
            } else {
                record
            });
        }
        write_atomically(&path, text.as_bytes())?;
        Ok(history)
    }

    /// Trains on the batches of the current epoch from the run's position on, until the
    /// epoch ends or a stop is asked for (not at the epoch's last batch: that epoch is
    /// finished first).
    fn train_pass<M: Classifier>(
        &self,
        mut run: RunState<M>,
        optimizer: &mut Optimizer,
        train: &DataLoader,
    ) -> Result<(RunState<M>, Pass)> {
        let epoch = run.position.epoch;
        let progress = Progress::new(
            self.config.progress,
            format!("epoch {}/{}", epoch + 1, self.config.epochs),
            train.len(),
        );
        let mut batches = train.epoch_from(epoch as u64, run.position.batch);
        while let Some(batch) = batches.next() {
            let batch = batch?;
            let done = batches.position();
            if batch.labels.dims()[0] < 2 {
                // A last batch of one image: batch norm cannot train on it where a feature
                // map is 1x1 (PyTorch refuses it too), so it is left out, as `drop_last`.
                if !run.told_single {
                    self.say(|| {
                        "note: a last batch of 1 image is left out of training each epoch \
                         (batch norm needs 2 or more); choose a batch size that leaves more"
                            .into()
                    });
                    run.told_single = true;
                }
                continue;
            }
            let images = batch.indices.len();
            let (model, loss) =
                self.step(run.model, optimizer, &mut run.metrics, batch, &run.position);
            run.model = model;
            run.position.step += 1;
            let event = BatchEnd {
                epoch,
                batch: done,
                step: run.position.step,
                loss,
                images,
            };
            let control = self.notify(|callback| callback.on_batch_end(&event));
            let stop = control == Control::Stop || self.stop.load(Ordering::Relaxed);
            if done.is_multiple_of(self.config.log_every.max(1)) || done == train.len() || stop {
                let (loss, accuracy) = run.metrics.running();
                if !loss.is_finite() {
                    return Err(self.non_finite(epoch, done, loss));
                }
                progress.update(done, run.metrics.samples(), loss, accuracy);
            }
            if stop && done < train.len() {
                progress.finish();
                run.position.batch = done;
                return Ok((run, Pass::Interrupted));
            }
        }
        progress.finish();
        let skipped = batches.take_skipped();
        if run.metrics.samples() == 0 {
            return Err(Error::NoTrainingData {
                epoch: epoch + 1,
                root: train.dataset().root().to_path_buf(),
                skipped: skipped
                    .iter()
                    .map(|file| train.dataset().samples()[file.index].0.clone())
                    .collect(),
            });
        }
        self.report_skipped(epoch, &skipped);
        Ok((run, Pass::Finished))
    }

    /// One optimizer step on one batch, its metrics added to `metrics`; the updated model and
    /// the batch's loss (off the graph, still on the device).
    fn step<M: Classifier>(
        &self,
        model: M,
        optimizer: &mut Optimizer,
        metrics: &mut MetricsAccumulator,
        batch: Batch,
        position: &RunPosition,
    ) -> (M, Tensor<1>) {
        optimizer.set_lr_factor(self.config.schedule.factor(position.step));
        let images = self.config.precision.cast(batch.images);
        let logits = full(model.forward(images));
        let loss = (self.loss)(logits.clone(), batch.labels.clone());
        let detached = loss.clone().detach();
        metrics.add(
            logits.detach().inner(),
            batch.labels.inner(),
            detached.clone().inner(),
        );
        (optimizer.step(model, loss.backward()), detached)
    }

    /// Validates, records the epoch (`metrics.jsonl`, pictures), writes the checkpoints (`best`
    /// before `last`, so a `last` never names a best that is not on disk), then tells the
    /// callbacks.
    fn end_epoch<M: Classifier>(
        &self,
        mut run: RunState<M>,
        optimizer: &Optimizer,
        train: &DataLoader,
        val: Option<&DataLoader>,
        started: Instant,
    ) -> Result<(RunState<M>, Control)> {
        let epoch = run.position.epoch;
        let classes = train.dataset().classes();
        let train_seconds = started.elapsed().as_secs_f64();
        let metrics = std::mem::replace(&mut run.metrics, MetricsAccumulator::new(classes.len()));
        let images = metrics.samples();
        let train_metrics = metrics.finish(classes);
        if images > 0 && !train_metrics.loss.is_finite() {
            return Err(self.non_finite(epoch, train.len(), train_metrics.loss));
        }
        let val_metrics = val.map(|loader| evaluate(&run.model, loader)).transpose()?;
        let record = EpochRecord {
            epoch: epoch + 1,
            lr: optimizer.lr() * optimizer.lr_factor(),
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: images as f64 / train_seconds.max(1e-9),
            train: train_metrics,
            val: val_metrics,
        };
        self.say(|| summary(&record, self.config.epochs));
        let improved = run
            .position
            .best_accuracy
            .is_none_or(|best| record.score() > best);
        if improved {
            run.position.best_accuracy = Some(record.score());
        }
        run.position.epoch += 1;
        run.position.batch = 0;
        self.append_metrics(&record)?;
        write_confusion(&self.config.run_dir, &record, classes)?;
        if classes.len() > FULL_RECORD_CLASSES {
            run.history.push(record.summary());
        } else {
            run.history.push(record.clone());
        }
        self.write_curves(&run.history)?;
        // One checkpoint (one read of the model and optimizer state), written as `best` first.
        let checkpoint = self.checkpoint(&run, optimizer, train);
        if improved {
            checkpoint.save(self.path("best.safetensors"))?;
        }
        checkpoint.save(self.path("last.safetensors"))?;
        let control = self.notify(|callback| callback.on_epoch_end(&record));
        Ok((run, control))
    }

    fn report_skipped(&self, epoch: usize, skipped: &[SkippedFile]) {
        if skipped.is_empty() {
            return;
        }
        self.say(|| {
            let mut text = format!(
                "epoch {}: skipped {} unreadable images:",
                epoch + 1,
                skipped.len()
            );
            for file in skipped {
                text += &format!("\n  {}", file.error);
            }
            text
        });
    }

    fn outcome<M>(&self, run: RunState<M>, interrupted: bool) -> FitOutcome<M> {
        FitOutcome {
            model: run.model,
            history: run.history,
            interrupted,
            run_dir: self.config.run_dir.clone(),
        }
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

    /// The run as it stands: model, optimizer, the epoch's metric sums mid-epoch, metadata.
    fn checkpoint<M: Classifier>(
        &self,
        run: &RunState<M>,
        optimizer: &Optimizer,
        train: &DataLoader,
    ) -> Checkpoint {
        let epoch_metrics = if run.position.batch > 0 {
            run.metrics.state_dict()
        } else {
            StateDict::new()
        };
        Checkpoint {
            model: state_dict(&run.model),
            optimizer: optimizer.state_dict(),
            epoch_metrics,
            meta: CheckpointMeta {
                position: run.position.clone(),
                classes: train.dataset().classes().to_vec(),
                config: self.config.extra.clone(),
                model: self.config.model.clone(),
                settings: Some(self.run_settings(optimizer, train)),
                history: run.history.iter().map(EpochRecord::summary).collect(),
            },
        }
    }

    /// What a resume must keep (see [`RunSettings`]).
    fn run_settings(&self, optimizer: &Optimizer, train: &DataLoader) -> RunSettings {
        let config = train.config();
        RunSettings {
            batch_size: config.batch_size,
            train_images: train.dataset().len(),
            optimizer: optimizer.rule().name().to_string(),
            optimizer_settings: Some(serde_json::json!({
                "rule": optimizer.rule(),
                "lr": optimizer.lr(),
                "groups": optimizer.groups(),
                "grad_clip": optimizer.grad_clip(),
            })),
            model: self.config.model.clone(),
            transform: Some(format!("{:?}", train.transform())),
            sampling: Some(format!(
                "shuffle {}, drop_last {}",
                config.shuffle, config.drop_last
            )),
            precision: Some(self.config.precision),
            schedule: Some(self.config.schedule.clone()),
        }
    }

    /// Appends the epoch's line to `metrics.jsonl` (synced): the file grows by one record an
    /// epoch instead of being rewritten whole.
    fn append_metrics(&self, record: &EpochRecord) -> Result<()> {
        use std::io::Write;
        let path = self.path(METRICS);
        let mut line = serde_json::to_string(record).expect("metrics serialise");
        line.push('\n');
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                file.write_all(line.as_bytes())?;
                file.sync_data()
            });
        written.map_err(|e| Error::io(&path, e))
    }

    fn write_curves(&self, history: &[EpochRecord]) -> Result<()> {
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
        Curves::new("loss", "cross-entropy")
            .with_series("train", &train_loss)
            .with_series("val", &val_loss)
            .save(&self.config.run_dir, "loss")?;
        Curves::new("accuracy", "fraction of images right")
            .with_series("train", &train_acc)
            .with_series("val", &val_acc)
            .save(&self.config.run_dir, "accuracy")
    }
}

/// Classes past which [`FitOutcome::history`] keeps past epochs as summaries (the per-class
/// metrics and the C x C confusion matrix stay in `metrics.jsonl`), so memory stays bounded.
const FULL_RECORD_CLASSES: usize = 100;

/// What a run carries from batch to batch.
struct RunState<M> {
    model: M,
    position: RunPosition,
    history: Vec<EpochRecord>,
    /// The sums of the epoch in progress (restored by a resume in the middle of an epoch).
    metrics: MetricsAccumulator,
    told_single: bool,
}

/// How a training pass over an epoch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Finished,
    Interrupted,
}

/// Refuses loaders a run cannot train on.
fn check_loader(train: &DataLoader) -> Result<()> {
    let (images, batch_size) = (train.dataset().len(), train.config().batch_size);
    if train.is_empty() {
        return Err(Error::InvalidSetup {
            problem: format!(
                "the training loader has no batch ({images} images, batch size {batch_size})"
            ),
        });
    }
    if batch_size < 2 || images < 2 {
        return Err(Error::InvalidSetup {
            problem: format!(
                "training needs batches of at least 2 images: batch norm cannot take statistics from one \
                 ({images} images, batch size {batch_size})"
            ),
        });
    }
    Ok(())
}

/// A class list for an error message: its length and first names.
fn list_classes(classes: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = format!(
        "{} classes [{}",
        classes.len(),
        classes[..classes.len().min(SHOWN)].join(", ")
    );
    if classes.len() > SHOWN {
        text += ", ...";
    }
    text + "]"
}

/// The epoch's confusion matrix (validation's, else training's) as `confusion_matrix.*`
/// (counts) and `confusion_matrix_normalized.*` (shares of each true class).
fn write_confusion(
    folder: &std::path::Path,
    record: &EpochRecord,
    classes: &[String],
) -> Result<()> {
    let metrics = record.val.as_ref().unwrap_or(&record.train);
    let views = [
        (ConfusionView::Counts, "confusion_matrix"),
        (ConfusionView::Normalized, "confusion_matrix_normalized"),
    ];
    for (view, stem) in views {
        ConfusionPicture::new(&metrics.confusion, classes, view).save(folder, stem)?;
    }
    Ok(())
}

fn first_device<M: Module>(model: &M) -> burn::tensor::Device {
    model.devices().into_iter().next().unwrap_or_default()
}

/// Evaluates `model` on every batch of `loader` (epoch 0 of its order), in eval mode and
/// without gradients, and returns the metrics, per class named by the loader's dataset.
/// `model.valid()` is used, so an autodiff model can be passed as it is.
///
/// # Errors
/// Data errors under [`OnError::Fail`](crate::data::OnError::Fail).
pub fn evaluate<M: Classifier>(model: &M, loader: &DataLoader) -> Result<EpochMetrics> {
    let classes = loader.dataset().classes();
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
