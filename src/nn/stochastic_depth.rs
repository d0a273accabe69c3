//! Stochastic depth (Huang et al., 2016): residual branches dropped at random while training.

use burn::empty;
use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor};

use crate::precision::like;

/// What one draw of [`StochasticDepth`] drops: torchvision's `mode` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StochasticDepthMode {
    /// `"row"`: each sample of the batch kept or dropped on its own draw.
    Row,
    /// `"batch"`: one draw for the whole batch.
    Batch,
}

impl std::fmt::Display for StochasticDepthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StochasticDepthMode::Row => "row",
            StochasticDepthMode::Batch => "batch",
        })
    }
}

// A constant of the module (no parameters, not in the state dict), as Burn treats `f64` fields.
empty!(StochasticDepthMode);

/// torchvision's `ops.StochasticDepth(p, mode)`: in training mode the input (a residual
/// branch) is zeroed with probability `prob`, per sample ([`StochasticDepthMode::Row`]) or for
/// the whole batch, and kept values are scaled by `1 / (1 - prob)`; in eval mode, or with
/// `prob == 0`, it passes unchanged. Starts in training mode, as in PyTorch. No parameters.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{eval_mode, StochasticDepth, StochasticDepthMode};
/// let device = ferrovision::device::ndarray();
/// let depth = StochasticDepth::new(0.5, StochasticDepthMode::Row);
/// let y = depth.forward(Tensor::<4>::ones([400, 2, 3, 3], &device));
/// let per_sample = y.sum_dim(3).sum_dim(2).sum_dim(1).reshape([400]);
/// let kept = per_sample.clone().greater_elem(0.0).int().sum().into_scalar::<i64>();
/// assert!((140..260).contains(&kept));
/// assert_eq!(per_sample.max().into_scalar::<f32>(), 36.0); // 18 ones, scaled by 2
/// let frozen = eval_mode(depth);
/// assert_eq!(frozen.forward(Tensor::<4>::ones([2, 1, 1, 1], &device)).sum().into_scalar::<f32>(), 2.0);
/// ```
#[derive(Module, Debug)]
pub struct StochasticDepth {
    /// Probability of dropping, in `[0, 1]`.
    pub prob: f64,
    /// Per sample or per batch.
    pub mode: StochasticDepthMode,
    /// Training mode (dropping) when enabled, eval mode (identity) when not.
    pub training: Param<Flag>,
}

impl StochasticDepth {
    /// Stochastic depth with drop probability `prob`, in training mode.
    ///
    /// # Panics
    /// When `prob` is outside `[0, 1]`, as torchvision refuses it.
    pub fn new(prob: f64, mode: StochasticDepthMode) -> Self {
        assert!(
            (0.0..=1.0).contains(&prob),
            "StochasticDepth: drop probability must be in [0, 1], got {prob}"
        );
        StochasticDepth {
            prob,
            mode,
            training: Param::from_bool(true),
        }
    }

    /// Applies the drop.
    ///
    /// # Shapes
    /// - input and output: `[batch, ...]`, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || self.prob == 0.0 {
            return input;
        }
        let survival = 1.0 - self.prob;
        let mut shape = [1; D];
        if self.mode == StochasticDepthMode::Row {
            shape[0] = input.dims()[0];
        }
        let keep = Tensor::<D>::random(shape, Distribution::Bernoulli(survival), &input.device());
        let keep = like(keep, &input);
        if survival > 0.0 {
            input * keep.div_scalar(survival)
        } else {
            input * keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::eval_mode;

    #[test]
    fn batch_mode_keeps_or_drops_the_whole_batch() {
        let device = crate::device::ndarray();
        let depth = StochasticDepth::new(0.5, StochasticDepthMode::Batch);
        let (mut kept, mut dropped) = (0, 0);
        for _ in 0..40 {
            let y = depth.forward(Tensor::<2>::ones([8, 3], &device));
            let values = y.into_data().try_to_vec::<f32>().unwrap();
            if values.iter().all(|&v| v == 2.0) {
                kept += 1;
            } else {
                assert!(values.iter().all(|&v| v == 0.0), "{values:?}");
                dropped += 1;
            }
        }
        assert!(kept > 5 && dropped > 5, "kept {kept}, dropped {dropped}");
    }

    #[test]
    fn certain_drop_zeroes_and_eval_or_zero_prob_passes() {
        let device = crate::device::ndarray();
        let x = Tensor::<3>::ones([3, 2, 2], &device);
        let all = StochasticDepth::new(1.0, StochasticDepthMode::Row).forward(x.clone());
        assert_eq!(all.sum().into_scalar::<f32>(), 0.0);
        let none = StochasticDepth::new(0.0, StochasticDepthMode::Row).forward(x.clone());
        assert_eq!(none.sum().into_scalar::<f32>(), 12.0);
        let frozen = eval_mode(StochasticDepth::new(0.9, StochasticDepthMode::Row));
        assert_eq!(frozen.forward(x).sum().into_scalar::<f32>(), 12.0);
    }

    #[test]
    #[should_panic(expected = "drop probability must be in [0, 1], got 1.5")]
    fn refuses_a_probability_over_one() {
        StochasticDepth::new(1.5, StochasticDepthMode::Row);
    }
}
