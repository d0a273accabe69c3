//! Training: a [`Trainer`] that fits a classifier with train/validation epochs, metrics
//! accumulated on the device, a run folder with checkpoints, `metrics.jsonl` and pictures,
//! resumption, and a clean stop on NaN or Ctrl-C.

mod callback;
mod checkpoint;
mod lock;
mod metrics;
mod progress;
mod record;
mod report;
mod trainer;

pub use callback::{BatchEnd, Callback, Control};
pub use checkpoint::{
    Checkpoint, CheckpointMeta, EvalTransform, ModelSpec, RunPosition, RunSettings,
};
pub use metrics::{ClassMetrics, EpochMetrics, MetricsAccumulator};
pub use progress::ProgressStyle;
pub use record::EpochRecord;
pub use report::{ConfusionPicture, ConfusionView, Curves, PictureFormat};
pub use trainer::{Classifier, FitOutcome, LossFn, Trainer, TrainerConfig, evaluate};
