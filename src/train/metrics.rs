//! Classification metrics, accumulated on the device and read once per epoch.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Deserializer, Serialize};

use crate::weights::{RawTensor, StateDict};
use crate::{Error, Result};

/// Sums of one epoch's loss, top-1 / top-5 hits and confusion matrix, kept as device tensors:
/// adding a batch queues a few tensor operations and reads nothing back to the host.
///
/// ```
/// use burn::tensor::{Int, Tensor};
/// use ferrovision::train::MetricsAccumulator;
/// let device = ferrovision::device::ndarray();
/// let mut metrics = MetricsAccumulator::new(3);
/// let logits = Tensor::<2>::from_floats([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]], &device);
/// let labels = Tensor::<1, Int>::from_ints([0, 1], &device);
/// metrics.add(logits, labels, Tensor::<1>::from_floats([0.5], &device));
/// let m = metrics.finish(&["cat".into(), "dog".into(), "fox".into()]);
/// assert_eq!((m.accuracy, m.samples), (0.5, 2));
/// assert_eq!(m.confusion[1][2], 1); // a dog taken for a fox
/// ```
#[derive(Debug, Clone)]
pub struct MetricsAccumulator {
    num_classes: usize,
    samples: usize,
    loss_sum: Option<Tensor<1>>,
    top5: Option<Tensor<1>>,
    confusion: Option<Tensor<2>>,
}

impl MetricsAccumulator {
    /// An empty accumulator for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            samples: 0,
            loss_sum: None,
            top5: None,
            confusion: None,
        }
    }

    /// Samples added so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Adds a batch: `logits` `[N, C]`, `labels` `[N]`, and the batch's mean loss `[1]`.
    /// Pass tensors off the autodiff graph (`.detach()`).
    pub fn add(&mut self, logits: Tensor<2>, labels: Tensor<1, Int>, mean_loss: Tensor<1>) {
        let [n, c] = logits.dims();
        let k = 5.min(c);
        let truth = labels.one_hot::<2>(self.num_classes).float();
        let predicted = logits
            .clone()
            .argmax(1)
            .reshape([n])
            .one_hot::<2>(c)
            .float();
        let confusion = truth.clone().transpose().matmul(predicted);
        let target_logit = (logits.clone() * truth).sum_dim(1);
        let higher = logits.greater(target_logit).float().sum_dim(1);
        let top5 = higher.lower_elem(k as f32).float().sum();
        let loss = mean_loss.mul_scalar(n as f32);
        self.samples += n;
        self.loss_sum = Some(add(self.loss_sum.take(), loss));
        self.top5 = Some(add(self.top5.take(), top5));
        self.confusion = Some(add(self.confusion.take(), confusion));
    }

    /// The mean loss and top-1 accuracy so far, for a progress line (reads two numbers from
    /// the device: call it every few batches, not every batch).
    pub fn running(&self) -> (f32, f32) {
        let (Some(loss), Some(confusion)) = (&self.loss_sum, &self.confusion) else {
            return (f32::NAN, f32::NAN);
        };
        let eye = Tensor::<2, Int>::eye(self.num_classes, &confusion.device()).float();
        let both = Tensor::cat(vec![loss.clone(), (confusion.clone() * eye).sum()], 0);
        let values = read(both);
        let n = self.samples.max(1) as f32;
        (values[0] / n, values[1] / n)
    }

    /// The sums so far as a state dict (`samples`, `loss_sum`, `top5`, `confusion`), read from
    /// the device: a checkpoint taken in the middle of an epoch keeps them, so the resumed
    /// epoch reports what an uninterrupted one would.
    pub fn state_dict(&self) -> StateDict {
        let mut dict = StateDict::new();
        dict.insert(
            "samples",
            RawTensor::from_f32(vec![1], &[self.samples as f32]),
        );
        let sums = [("loss_sum", &self.loss_sum), ("top5", &self.top5)];
        for (key, sum) in sums {
            if let Some(sum) = sum {
                dict.insert(key, RawTensor::from_f32(vec![1], &read(sum.clone())));
            }
        }
        if let Some(confusion) = &self.confusion {
            let c = self.num_classes;
            let values = read(confusion.clone().reshape([c * c]));
            dict.insert("confusion", RawTensor::from_f32(vec![c, c], &values));
        }
        dict
    }

    /// An accumulator holding the sums of [`state_dict`](Self::state_dict), on `device`.
    ///
    /// # Errors
    /// [`Error::BadCheckpoint`] when a sum is missing or has the wrong size for `num_classes`.
    pub fn from_state_dict(num_classes: usize, dict: &StateDict, device: &Device) -> Result<Self> {
        let path = dict.source_or_memory();
        let bad = |problem: String| Error::BadCheckpoint {
            path: path.clone(),
            problem: format!("epoch metrics: {problem}"),
        };
        let values = |key: &str, n: usize| -> Result<Vec<f32>> {
            let tensor = dict.get(key).ok_or_else(|| bad(format!("no `{key}`")))?;
            let values = tensor.to_f32(&path, key, true)?;
            if values.len() != n {
                return Err(bad(format!(
                    "`{key}` holds {} values, expected {n}",
                    values.len()
                )));
            }
            Ok(values)
        };
        let samples = values("samples", 1)?[0];
        let mut metrics = Self::new(num_classes);
        if samples <= 0.0 {
            return Ok(metrics);
        }
        let c = num_classes;
        let tensor =
            |v: Vec<f32>, n: usize| Tensor::<1>::from_data(TensorData::new(v, [n]), device);
        metrics.samples = samples as usize;
        metrics.loss_sum = Some(tensor(values("loss_sum", 1)?, 1));
        metrics.top5 = Some(tensor(values("top5", 1)?, 1));
        metrics.confusion = Some(tensor(values("confusion", c * c)?, c * c).reshape([c, c]));
        Ok(metrics)
    }

    /// Reads the sums from the device (once) and computes every metric.
    pub fn finish(self, classes: &[String]) -> EpochMetrics {
        let c = self.num_classes;
        let n = self.samples;
        let values = match (self.loss_sum, self.top5, self.confusion) {
            (Some(loss), Some(top5), Some(confusion)) => {
                read(Tensor::cat(vec![loss, top5, confusion.reshape([c * c])], 0))
            }
            _ => vec![f32::NAN; 2 + c * c],
        };
        let confusion: Vec<Vec<u64>> = (0..c)
            .map(|i| {
                (0..c)
                    .map(|j| values[2 + i * c + j].round() as u64)
                    .collect()
            })
            .collect();
        EpochMetrics::from_confusion(
            values[0] / n.max(1) as f32,
            values[1] as f64 / n.max(1) as f64,
            confusion,
            classes,
        )
    }
}

fn add<const D: usize>(sum: Option<Tensor<D>>, value: Tensor<D>) -> Tensor<D> {
    match sum {
        Some(sum) => sum + value,
        None => value,
    }
}

fn read(tensor: Tensor<1>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class name.
    pub name: String,
    /// Of the samples predicted as this class, the fraction that are (0 when none is).
    #[serde(deserialize_with = "nan_if_null")]
    pub precision: f64,
    /// Of the samples of this class, the fraction found.
    #[serde(deserialize_with = "nan_if_null")]
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are).
    #[serde(deserialize_with = "nan_if_null")]
    pub f1: f64,
    /// Samples of this class.
    pub support: u64,
}

/// Every metric of one pass over a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Samples seen.
    pub samples: usize,
    /// Mean cross-entropy loss.
    #[serde(deserialize_with = "nan_if_null_f32")]
    pub loss: f32,
    /// Top-1 accuracy.
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// Top-5 accuracy (top-k with k = min(5, classes)).
    #[serde(deserialize_with = "nan_if_null")]
    pub top5_accuracy: f64,
    /// Unweighted mean of the per-class precisions.
    #[serde(deserialize_with = "nan_if_null")]
    pub macro_precision: f64,
    /// Unweighted mean of the per-class recalls.
    #[serde(deserialize_with = "nan_if_null")]
    pub macro_recall: f64,
    /// Unweighted mean of the per-class F1 scores (sklearn's `f1_score(average="macro")`).
    #[serde(deserialize_with = "nan_if_null")]
    pub macro_f1: f64,
    /// Per class, in class-index order (empty in a [`summary`](Self::summary)).
    #[serde(default)]
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts (empty in a [`summary`](Self::summary)).
    #[serde(default)]
    pub confusion: Vec<Vec<u64>>,
}

/// JSON has no NaN: serde_json writes it as `null`, which reads back as NaN here (an empty
/// validation pass has a NaN loss, and its run must stay readable).
pub(crate) fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`nan_if_null`] for `f32`.
pub(crate) fn nan_if_null_f32<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

impl EpochMetrics {
    /// The metrics without the per-class list and the confusion matrix, whose sizes grow with
    /// the classes (C and C²): what checkpoints keep of past epochs.
    pub fn summary(&self) -> Self {
        Self {
            per_class: Vec::new(),
            confusion: Vec::new(),
            ..self.clone()
        }
    }

    /// Metrics from a confusion matrix (`confusion[true][predicted]`), a mean loss and a
    /// top-5 accuracy. Class names default to the index where `classes` is short.
    pub fn from_confusion(
        loss: f32,
        top5_accuracy: f64,
        confusion: Vec<Vec<u64>>,
        classes: &[String],
    ) -> Self {
        let c = confusion.len();
        let total: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..c).map(|i| confusion[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..c)
            .map(|i| {
                let support: u64 = confusion[i].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
                let precision = ratio(confusion[i][i], predicted);
                let recall = ratio(confusion[i][i], support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    name: classes.get(i).cloned().unwrap_or_else(|| i.to_string()),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let mean = |f: fn(&ClassMetrics) -> f64| {
            if c == 0 {
                0.0
            } else {
                per_class.iter().map(f).sum::<f64>() / c as f64
            }
        };
        Self {
            samples: total as usize,
            loss,
            accuracy: ratio(correct, total),
            top5_accuracy,
            macro_precision: mean(|m| m.precision),
            macro_recall: mean(|m| m.recall),
            macro_f1: mean(|m| m.f1),
            per_class,
            confusion,
        }
    }

    /// The per-class report as a text table (precision, recall, F1, support), as
    /// sklearn's `classification_report` prints it.
    pub fn report(&self) -> String {
        let width = self
            .per_class
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(5)
            .max(12);
        let mut out = format!("{:>width$}  precision  recall  f1-score  support\n", "");
        for m in &self.per_class {
            out += &format!(
                "{:>width$}  {:>9.4}  {:>6.4}  {:>8.4}  {:>7}\n",
                m.name, m.precision, m.recall, m.f1, m.support
            );
        }
        out += &format!(
            "{:>width$}  {:>9.4}  {:>6.4}  {:>8.4}  {:>7}\n{:>width$}  {:>9}  {:>6}  {:>8.4}  {:>7}\n",
            "macro avg",
            self.macro_precision,
            self.macro_recall,
            self.macro_f1,
            self.samples,
            "accuracy",
            "",
            "",
            self.accuracy,
            self.samples
        );
        out
    }
}
