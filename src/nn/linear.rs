//! Fully connected layer.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

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

    /// The same layer with its weight drawn again from `distribution` and a zero bias, as
    /// torchvision's models initialise their classifiers.
    pub(crate) fn with_drawn_weight(self, distribution: Distribution, device: &Device) -> Self {
        let [out, d_in] = self.weight.lazy_shape().dims();
        Linear {
            weight: Param::from_tensor(Tensor::random([out, d_in], distribution, device)),
            bias: Some(Param::from_tensor(Tensor::zeros([out], device))),
        }
    }

    /// Applies the layer to the channels of every pixel of a map, as
    /// `forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])` would, without moving the
    /// channels: a 1x1 convolution with the same weights (our pointwise kernel on the CPU
    /// devices).
    ///
    /// ```
    /// use burn::tensor::{Distribution, Tensor};
    /// use ferrovision::nn::LinearConfig;
    /// let device = ferrovision::device::ndarray();
    /// let fc = LinearConfig::new(4, 6).init(&device);
    /// let x = Tensor::<4>::random([2, 4, 3, 5], Distribution::Default, &device);
    /// let by_pixel = fc.forward(x.clone().permute([0, 2, 3, 1])).permute([0, 3, 1, 2]);
    /// let y = fc.forward_channels(x);
    /// assert_eq!(y.dims(), [2, 6, 3, 5]);
    /// assert!((y - by_pixel).abs().max().into_scalar::<f32>() < 1e-5);
    /// ```
    ///
    /// # Shapes
    /// - input: `[batch, in_features, h, w]`; output: `[batch, out_features, h, w]`
    pub fn forward_channels(&self, input: Tensor<4>) -> Tensor<4> {
        let [out, d_in] = self.weight.lazy_shape().dims();
        let weight = like(self.weight.val(), &input).reshape([out, d_in, 1, 1]);
        let bias = self.bias.as_ref().map(|bias| like(bias.val(), &input));
        let options = burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        crate::kernels::conv2d(input, weight, bias, options)
    }
}
