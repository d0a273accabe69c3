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
mod run_dir;
mod trainer;

pub use callback::{BatchEnd, Callback, Control};
pub use checkpoint::{
    Checkpoint, CheckpointMeta, EvalTransform, MAX_IMAGE_SIZE, ModelSpec, RunPosition, RunSettings,
};
pub use metrics::{ClassMetrics, EpochMetrics, MetricsAccumulator};
pub use progress::ProgressStyle;
pub use record::EpochRecord;
pub use report::{ConfusionPicture, ConfusionView, Curves, PictureFormat};
pub use run_dir::{fresh_run_dir, latest_run_dir, move_run_aside, run_contents};
pub use trainer::{Classifier, FitOutcome, LossFn, Trainer, TrainerConfig, evaluate};
