//! Fully connected layer.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::init::uniform_fan_in;
use crate::precision::like;

/// Configuration of a [`Linear`], named as `torch.nn.Linear`.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::LinearConfig;
/// let device = ferrovision::device::ndarray();
/// let fc = LinearConfig::new(512, 10).init(&device);
/// let y = fc.forward(Tensor::<2>::zeros([4, 512], &device));
/// assert_eq!(y.dims(), [4, 10]);
/// ```
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// Size of each input sample.
    pub in_features: usize,
    /// Size of each output sample.
    pub out_features: usize,
    /// Whether to add a learnable bias.
    #[config(default = true)]
    pub bias: bool,
}

/// `torch.nn.Linear`: `y = x W^T + b` with `W` stored as PyTorch stores it, `[out, in]`, so
/// state dicts load unchanged. Default init `U(-k, k)`, `k = 1/sqrt(in_features)`.
#[derive(Module, Debug)]
pub struct Linear {
    /// Weight, `[out_features, in_features]`.
    pub weight: Param<Tensor<2>>,
    /// Bias, `[out_features]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl LinearConfig {
    /// Builds the layer on `device` with PyTorch's default initialisation.
    pub fn init(&self, device: &Device) -> Linear {
        Linear {
            weight: uniform_fan_in(
                [self.out_features, self.in_features],
                self.in_features,
                device,
            ),
            bias: self
                .bias
                .then(|| uniform_fan_in([self.out_features], self.in_features, device)),
        }
    }
}

impl Linear {
    /// Applies the layer to the last dimension, in the dtype of `input` (see
    /// [`Precision`](crate::Precision)).
    ///
    /// # Shapes
    /// - input: `[..., in_features]`
    /// - output: `[..., out_features]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let weight = like(self.weight.val(), &input).transpose();
        let bias = self.bias.as_ref().map(|bias| like(bias.val(), &input));
        burn::tensor::module::linear(input, weight, bias)
    }
}
