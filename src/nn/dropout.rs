//! Dropout with PyTorch's explicit train/eval mode.

use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor};

use crate::precision::like;

/// `torch.nn.Dropout(p)`: in training mode ([`train_mode`](super::train_mode)) each value is
/// zeroed with probability `prob` and the others scaled by `1 / (1 - prob)`; in eval mode the
/// input passes unchanged. Starts in training mode, as in PyTorch.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{eval_mode, Dropout};
/// let device = ferrovision::device::ndarray();
/// let dropout = Dropout::new(0.5);
/// let y = dropout.forward(Tensor::<1>::ones([1000], &device));
/// let kept = y.clone().greater_elem(0.0).int().sum().into_scalar::<i64>();
/// assert!((350..650).contains(&kept));
/// assert_eq!(y.max().into_scalar::<f32>(), 2.0); // the kept values, scaled
/// let frozen = eval_mode(dropout);
/// assert_eq!(frozen.forward(Tensor::<1>::ones([4], &device)).sum().into_scalar::<f32>(), 4.0);
/// ```
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of zeroing a value, in `[0, 1]`.
    pub prob: f64,
    /// Training mode (dropping) when enabled, eval mode (identity) when not.
    pub training: Param<Flag>,
}

impl Dropout {
    /// Dropout with probability `prob`, in training mode.
    ///
    /// # Panics
    /// When `prob` is outside `[0, 1]`, as PyTorch refuses it.
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&prob),
            "Dropout: probability must be in [0, 1], got {prob}"
        );
        Dropout {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Applies the dropout; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || self.prob == 0.0 {
            return input;
        }
        if self.prob == 1.0 {
            return input.zeros_like();
        }
        let keep = Tensor::<D>::random(
            input.shape(),
            Distribution::Bernoulli(1.0 - self.prob),
            &input.device(),
        );
        let keep = like(keep, &input).div_scalar(1.0 - self.prob);
        input * keep
    }
}
