//! Checkpoints: model, optimizer and run position in one safetensors file, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use burn::tensor::Device;

use super::record::EpochRecord;
use crate::data::transforms::{Compose, Normalize, Resize, presets};
use crate::models::{Architecture, Model};
use crate::weights::{LoadOptions, StateDict, load_state_dict};
use crate::{Error, Result, SettingDifference};

const META_KEY: &str = "ferrovision.checkpoint";
const MODEL: &str = "model.";
const OPTIMIZER: &str = "optimizer.";
const EPOCH_METRICS: &str = "epoch_metrics.";

/// Where a run stands, stored with its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPosition {
    /// Epochs finished (the next epoch to run, counted from 0).
    pub epoch: usize,
    /// Batches of epoch `epoch` already trained (non-zero after an interruption).
    pub batch: usize,
    /// Optimizer steps taken (the schedule's step).
    pub step: usize,
    /// The seed every shuffle and augmentation is derived from (with epoch and sample index,
    /// so the seed and the position are the whole random state of a run).
    pub seed: u64,
    /// Best validation accuracy so far.
    pub best_accuracy: Option<f64>,
}

/// The eval transform a classifier was trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalTransform {
    /// torchvision's eval preset: `Resize(size * 256 / 224)`, `CenterCrop(size)`, ImageNet
    /// normalisation.
    #[default]
    CenterCrop,
    /// Straight to `size x size`, ImageNet normalisation (images framed like the training ones).
    Resize,
}

/// What a checkpoint's weights are: the model to build and the input it expects, typed, so
/// `predict` and `evaluate` rebuild it without guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The architecture (`"resnet18"`, `"mobilenet_v3_small"`, ...; checkpoints written
    /// before MobileNetV3 hold a ResNet depth under `depth`, read the same).
    #[serde(alias = "depth")]
    pub arch: Architecture,
    /// Classes of the head.
    pub num_classes: usize,
    /// Side of the square input the model was trained on, pixels.
    pub image_size: u32,
    /// The transform for evaluation and prediction.
    pub eval_transform: EvalTransform,
}

impl ModelSpec {
    /// The transform a new image goes through before the model.
    pub fn eval_transform(&self) -> Compose {
        match self.eval_transform {
            EvalTransform::CenterCrop => presets::eval(self.image_size),
            EvalTransform::Resize => Compose::new()
                .then(Resize::exact(self.image_size, self.image_size))
                .normalize(Normalize::imagenet()),
        }
    }
}

/// The settings a run must keep to be resumed: a resume with others would not continue the
/// same run (another batch size, seed or transform changes every batch; another optimizer
/// cannot take this one's state; another model, image size or precision computes something
/// else). What may change on a resume: the number of epochs (the schedule's length excepted),
/// the loader's workers and prefetch, the progress style and logging interval, callbacks.
///
/// Fields after `optimizer` are absent in checkpoints of older versions, and not compared there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Images per training batch.
    pub batch_size: usize,
    /// Images in the training set.
    pub train_images: usize,
    /// The optimizer's PyTorch class name (`SGD`, `Adam`, `AdamW`).
    pub optimizer: String,
    /// The optimizer's whole configuration: update rule with its hyper-parameters, base
    /// learning rate, parameter groups, gradient clipping.
    #[serde(default)]
    pub optimizer_settings: Option<serde_json::Value>,
    /// The model (architecture, classes, image size, eval transform), when the trainer knows it.
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// The training transform, as its `Debug` text (every step with its parameters).
    #[serde(default)]
    pub transform: Option<String>,
    /// Shuffling and `drop_last` of the training loader.
    #[serde(default)]
    pub sampling: Option<String>,
    /// The compute precision.
    #[serde(default)]
    pub precision: Option<crate::Precision>,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: Option<crate::optim::LrSchedule>,
}

impl RunSettings {
    /// Every setting of `current` that differs from these (a checkpoint's); settings one of
    /// them lacks (an older checkpoint) are not compared.
    pub fn differences(&self, current: &RunSettings) -> Vec<SettingDifference> {
        fn text<T: Serialize>(value: &T) -> String {
            serde_json::to_string(value).unwrap_or_else(|e| format!("<{e}>"))
        }
        fn both<T: Serialize>(a: &Option<T>, b: &Option<T>) -> Option<(String, String)> {
            Some((text(a.as_ref()?), text(b.as_ref()?)))
        }
        let pairs = [
            (
                "batch size",
                Some((text(&self.batch_size), text(&current.batch_size))),
            ),
            (
                "training set size",
                Some((text(&self.train_images), text(&current.train_images))),
            ),
            (
                "optimizer",
                Some((self.optimizer.clone(), current.optimizer.clone())),
            ),
            (
                "optimizer settings",
                both(&self.optimizer_settings, &current.optimizer_settings),
            ),
            ("model", both(&self.model, &current.model)),
            (
                "training transform",
                both(&self.transform, &current.transform),
            ),
            ("sampling", both(&self.sampling, &current.sampling)),
            ("precision", both(&self.precision, &current.precision)),
            (
                "learning-rate schedule",
                both(&self.schedule, &current.schedule),
            ),
        ];
        pairs
            .into_iter()
            .filter_map(|(what, pair)| {
                let (checkpoint, current) = pair?;
                SettingDifference::between(what, checkpoint, current)
            })
            .collect()
    }
}

/// What a checkpoint holds besides tensors: the position, the class names, and free-form JSON
/// the program that wrote it needs to rebuild its model (e.g. the architecture and image size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Where the run stands.
    pub position: RunPosition,
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// The run's configuration, free-form (for people reading the file).
    pub config: serde_json::Value,
    /// The model the weights are for (absent in checkpoints of older versions and of trainers
    /// not told it: [`TrainerConfig::model`](super::TrainerConfig::model)).
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// The settings a resume must match (absent in checkpoints of older versions).
    #[serde(default)]
    pub settings: Option<RunSettings>,
    /// The epochs finished so far, as [summaries](EpochRecord::summary): the header stays
    /// small whatever the number of classes (the run folder's `metrics.jsonl` has every
    /// epoch's per-class metrics and confusion matrix).
    #[serde(default)]
    pub history: Vec<EpochRecord>,
}

impl CheckpointMeta {
    /// Checks every field a program acts on: a class list of distinct names, a model spec that
    /// agrees with it and whose image size the architecture can take, a position and history
    /// that agree, accuracies in `[0, 1]`. Returns what is wrong, naming the field.
    ///
    /// # Errors
    /// The first problem found, as text naming the field (`Checkpoint::load` wraps it in
    /// [`Error::BadCheckpoint`]).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.classes.is_empty() {
            return Err("`classes` is empty; a classifier has at least one class".into());
        }
        let mut names: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("`classes` names `{}` twice", pair[0]));
        }
        if let Some(spec) = &self.model {
            spec.validate(self.classes.len())?;
        }
        let position = &self.position;
        if let Some(best) = position.best_accuracy
            && !(0.0..=1.0).contains(&best)
        {
            return Err(format!(
                "`position.best_accuracy` is {best}; expected an accuracy in [0, 1]"
            ));
        }
        if self.history.len() > position.epoch {
            return Err(format!(
                "`history` has {} epochs but `position.epoch` is {}",
                self.history.len(),
                position.epoch
            ));
        }
        if let Some(settings) = &self.settings {
            if settings.batch_size == 0 || settings.train_images == 0 {
                return Err(format!(
                    "`settings` has batch size {} and {} training images; expected both at least 1",
                    settings.batch_size, settings.train_images
                ));
            }
            let batches = settings.train_images.div_ceil(settings.batch_size);
            if position.batch > batches {
                return Err(format!(
                    "`position.batch` is {}, past the {batches} batches of an epoch",
                    position.batch
                ));
            }
        }
        Ok(())
    }
}

impl ModelSpec {
    /// Checks the spec against a class list of `classes` names: the same number of classes,
    /// an image size the architecture takes and at most [`MAX_IMAGE_SIZE`].
    fn validate(&self, classes: usize) -> std::result::Result<(), String> {
        if self.num_classes != classes {
            return Err(format!(
                "`model.num_classes` is {}, but `classes` lists {classes}",
                self.num_classes
            ));
        }
        if self.image_size > MAX_IMAGE_SIZE {
            return Err(format!(
                "`model.image_size` is {}; expected at most {MAX_IMAGE_SIZE}",
                self.image_size
            ));
        }
        self.arch
            .check_image_size(self.image_size)
            .map_err(|e| format!("`model.image_size`: {e}"))
    }
}

/// The largest input side a checkpoint may ask for (the examples' `--image-size` takes the
/// same): past it one image's tensor alone passes 200 MB.
pub const MAX_IMAGE_SIZE: u32 = 4096;

/// A model's and an optimizer's state dicts with their [`CheckpointMeta`].
///
/// ```
/// use ferrovision::nn::LinearConfig;
/// use ferrovision::train::{Checkpoint, CheckpointMeta, RunPosition};
/// use ferrovision::weights::state_dict;
/// let dir = std::env::temp_dir().join(format!("ferrovision-doc-ckpt-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let model = LinearConfig::new(4, 2).init(&ferrovision::device::ndarray());
/// let position = RunPosition { epoch: 3, batch: 0, step: 30, seed: 7, best_accuracy: Some(0.9) };
/// let meta = CheckpointMeta {
///     position,
///     classes: vec!["a".into(), "b".into()],
///     config: serde_json::json!({}),
///     model: None,
///     settings: None,
///     history: vec![],
/// };
/// let checkpoint = Checkpoint {
///     model: state_dict(&model),
///     optimizer: Default::default(),
///     epoch_metrics: Default::default(),
///     meta,
/// };
/// checkpoint.save(dir.join("last.safetensors"))?;
/// let back = Checkpoint::load(dir.join("last.safetensors"))?;
/// assert_eq!(back.meta.position.epoch, 3);
/// assert_eq!(back.model.keys(), vec!["bias", "weight"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model's state dict.
    pub model: StateDict,
    /// The optimizer's state dict ([`Optimizer::state_dict`](crate::optim::Optimizer::state_dict)).
    pub optimizer: StateDict,
    /// The sums of the interrupted epoch's training metrics
    /// ([`MetricsAccumulator::state_dict`](crate::train::MetricsAccumulator::state_dict));
    /// empty at an epoch's end.
    pub epoch_metrics: StateDict,
    /// Position, classes and configuration.
    pub meta: CheckpointMeta,
}

impl Checkpoint {
    /// Writes the checkpoint as one `.safetensors` file (`model.*`, `optimizer.*` tensors, the
    /// metadata as JSON in the header), atomically: a crash leaves the previous file intact.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut dict = StateDict::new();
        dict.extend_prefixed(MODEL, self.model.clone());
        dict.extend_prefixed(OPTIMIZER, self.optimizer.clone());
        dict.extend_prefixed(EPOCH_METRICS, self.epoch_metrics.clone());
        let meta =
            serde_json::to_string(&self.meta).expect("metadata serialises: plain data, no paths");
        dict.set_metadata(META_KEY, meta);
        dict.save_safetensors(path)
    }

    /// Reads a checkpoint written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Safetensors`] when the file cannot be read, and
    /// [`Error::BadCheckpoint`] when it is a safetensors file without checkpoint metadata (a
    /// bare weight file) or with metadata that does not parse.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dict = StateDict::from_file(path)?;
        let bad = |problem: String| Error::BadCheckpoint {
            path: path.to_path_buf(),
            problem,
        };
        let meta = dict
            .metadata()
            .get(META_KEY)
            .ok_or_else(|| bad(format!("no `{META_KEY}` metadata (a bare weight file?)")))?;
        let meta: CheckpointMeta =
            serde_json::from_str(meta).map_err(|e| bad(format!("metadata: {e}")))?;
        meta.validate().map_err(bad)?;
        let model = dict.select_prefix(MODEL);
        if model.is_empty() {
            return Err(bad("no `model.*` tensors".into()));
        }
        Ok(Self {
            model,
            optimizer: dict.select_prefix(OPTIMIZER),
            epoch_metrics: dict.select_prefix(EPOCH_METRICS),
            meta,
        })
    }

    /// The trained model of [`CheckpointMeta::model`], its weights loaded strictly, in eval
    /// mode on `device`, with the transform its inputs need.
    ///
    /// # Errors
    /// [`Error::BadCheckpoint`] when the checkpoint has no model spec or one that disagrees with
    /// its classes; [`Error::IncompatibleWeights`] when the weights do not fit it.
    pub fn model(&self, device: &Device) -> Result<(Model, Compose)> {
        let path = self.model.source_or_memory();
        let bad = |problem: String| Error::BadCheckpoint {
            path: path.clone(),
            problem,
        };
        let spec = self.meta.model.as_ref().ok_or_else(|| {
            bad("no model spec (`model` in the metadata): written by an older version, or by a trainer without TrainerConfig::model".into())
        })?;
        spec.validate(self.meta.classes.len()).map_err(bad)?;
        let model = spec.arch.init(spec.num_classes, device);
        let (model, _) = load_state_dict(model, &self.model, &LoadOptions::strict())?;
        Ok((model.eval(), spec.eval_transform()))
    }

    /// The checkpoint file a user pointed at: a file as it is, or a run folder's
    /// `best.safetensors` (else `last.safetensors`).
    pub fn resolve(path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        if path.is_dir() {
            let best = path.join("best.safetensors");
            if best.exists() {
                return best;
            }
            return path.join("last.safetensors");
        }
        path.to_path_buf()
    }
}
