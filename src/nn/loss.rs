//! Cross-entropy loss with every option of `torch.nn.CrossEntropyLoss`.

use burn::config::Config;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// How per-sample losses are reduced, as PyTorch's `reduction` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Reduction {
    /// One loss per sample, `[batch]`.
    None,
    /// The weighted mean: the sum of losses over the sum of the target classes' weights
    /// (ignored samples count in neither).
    #[default]
    Mean,
    /// The sum of the losses.
    Sum,
}

/// Configuration of a [`CrossEntropyLoss`], named and defaulted as `torch.nn.CrossEntropyLoss`.
#[derive(Config, Debug)]
pub struct CrossEntropyLossConfig {
    /// A weight per class, `[num_classes]`; `None` weighs every class 1.
    #[config(default = "None")]
    pub weight: Option<Vec<f32>>,
    /// Samples whose target is this value contribute nothing (and do not count in the mean).
    #[config(default = -100)]
    pub ignore_index: i64,
    /// Mixes the one-hot target with the uniform distribution: `(1 - ε) one_hot + ε / C`.
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// How per-sample losses are reduced.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
}

/// `torch.nn.CrossEntropyLoss` over class-index targets.
///
/// ```
/// use burn::tensor::{Int, Tensor};
/// use ferrovision::nn::CrossEntropyLossConfig;
/// let device = ferrovision::device::ndarray();
/// let loss = CrossEntropyLossConfig::new().with_label_smoothing(0.1).init();
/// let logits = Tensor::<2>::from_floats([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], &device);
/// let targets = Tensor::<1, Int>::from_ints([0, 2], &device);
/// let value = loss.forward(logits, targets).into_scalar::<f32>();
/// assert!((value - 0.3431).abs() < 1e-4); // torch.nn.CrossEntropyLoss(label_smoothing=0.1)
/// ```
#[derive(Debug, Clone)]
pub struct CrossEntropyLoss {
    weight: Option<Vec<f32>>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: Reduction,
}

impl CrossEntropyLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// When `label_smoothing` is outside `[0, 1]` or a class weight is not finite.
    pub fn init(&self) -> CrossEntropyLoss {
        assert!(
            (0.0..=1.0).contains(&self.label_smoothing),
            "CrossEntropyLoss: label_smoothing must be in [0, 1], got {}",
            self.label_smoothing
        );
        if let Some(weight) = &self.weight {
            assert!(
                weight.iter().all(|w| w.is_finite()),
                "CrossEntropyLoss: class weights must be finite, got {weight:?}"
            );
        }
        CrossEntropyLoss {
            weight: self.weight.clone(),
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            reduction: self.reduction,
        }
    }
}

impl CrossEntropyLoss {
    /// The loss of `logits` against class-index `targets`.
    ///
    /// # Shapes
    /// - logits: `[batch, num_classes]` (unnormalised scores)
    /// - targets: `[batch]`, each in `0..num_classes` or `ignore_index`
    /// - output: `[batch]` with [`Reduction::None`], else `[1]`
    ///
    /// # Panics
    /// When the batch sizes differ, or the class weights do not have `num_classes` entries.
    /// A target outside `0..num_classes` (other than `ignore_index`) is a caller error whose
    /// result is unspecified; PyTorch raises on it.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [batch, classes] = logits.dims();
        assert_eq!(
            targets.dims(),
            [batch],
            "CrossEntropyLoss: {batch} logits rows but targets of shape {:?}",
            targets.dims()
        );
        let device = logits.device();
        // In f32 whatever the compute dtype, as under torch.autocast.
        let log_probs = log_softmax(crate::precision::full(logits), 1);
        let kept = targets.clone().not_equal_elem(self.ignore_index);
        let kept_f = kept.clone().float();
        let safe_targets = targets.mask_fill(kept.bool_not(), 0);

        // Weight of each sample's target class, zero where the sample is ignored.
        let class_weight = self.weight.as_ref().map(|weight| {
            assert_eq!(
                weight.len(),
                classes,
                "CrossEntropyLoss: {} class weights for {classes} classes",
                weight.len()
            );
            Tensor::<1>::from_floats(weight.as_slice(), &device)
        });
        let target_weight = match &class_weight {
            Some(w) => w
                .clone()
                .gather(0, safe_targets.clone())
                .mul(kept_f.clone()),
            None => kept_f.clone(),
        };

        let picked = log_probs
            .clone()
            .gather(1, safe_targets.reshape([batch, 1]))
            .reshape([batch]);
        let mut per_sample = picked.neg().mul(target_weight.clone());

        let eps = self.label_smoothing;
        if eps > 0.0 {
            let weighted = match &class_weight {
                Some(w) => log_probs.mul(w.clone().reshape([1, classes])),
                None => log_probs,
            };
            let smooth = weighted.sum_dim(1).reshape([batch]).neg().mul(kept_f);
            per_sample = per_sample
                .mul_scalar(1.0 - eps)
                .add(smooth.mul_scalar(eps / classes as f64));
        }

        match self.reduction {
            Reduction::None => per_sample,
            Reduction::Sum => per_sample.sum(),
            Reduction::Mean => per_sample.sum().div(target_weight.sum()),
        }
    }
}
