//! The record of one finished epoch, as `metrics.jsonl`, checkpoints and callbacks see it.

use serde::{Deserialize, Serialize};

use super::metrics::{EpochMetrics, nan_if_null};

/// One finished epoch: `metrics.jsonl` holds one of these per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The base learning rate at the epoch's last step.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(deserialize_with = "nan_if_null")]
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

    /// The record with [summaries](EpochMetrics::summary) of its metrics (no per-class list, no
    /// confusion matrix): what checkpoints keep.
    pub fn summary(&self) -> Self {
        Self {
            train: self.train.summary(),
            val: self.val.as_ref().map(EpochMetrics::summary),
            ..*self
        }
    }
}
