//! Parameterless layers that only move or merge dimensions, so that torchvision's
//! `nn.Sequential` indices (and with them the state-dict keys) stay as torchvision numbers them.

use burn::module::Module;
use burn::tensor::Tensor;

/// torchvision's `Permute([0, 2, 3, 1])`: `[batch, channels, h, w]` to `[batch, h, w, channels]`.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{ChannelsFirst, ChannelsLast};
/// let x = Tensor::<4>::zeros([2, 3, 4, 5], &ferrovision::device::ndarray());
/// let last = ChannelsLast.forward(x);
/// assert_eq!(last.dims(), [2, 4, 5, 3]);
/// assert_eq!(ChannelsFirst.forward(last).dims(), [2, 3, 4, 5]);
/// ```
#[derive(Module, Debug, Default)]
pub struct ChannelsLast;

impl ChannelsLast {
    /// Moves the channels last.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        input.permute([0, 2, 3, 1])
    }
}

/// torchvision's `Permute([0, 3, 1, 2])`: `[batch, h, w, channels]` to `[batch, channels, h, w]`.
#[derive(Module, Debug, Default)]
pub struct ChannelsFirst;

impl ChannelsFirst {
    /// Moves the channels back to the second dimension.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        input.permute([0, 3, 1, 2])
    }
}

/// `torch.nn.Flatten()`: everything after the batch dimension into one.
///
/// ```
/// use burn::tensor::Tensor;
/// let x = Tensor::<4>::zeros([2, 3, 1, 1], &ferrovision::device::ndarray());
/// assert_eq!(ferrovision::nn::Flatten.forward(x).dims(), [2, 3]);
/// ```
#[derive(Module, Debug, Default)]
pub struct Flatten;

impl Flatten {
    /// `[batch, ...]` to `[batch, product of the rest]`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<2> {
        input.flatten(1, D - 1)
    }
}
