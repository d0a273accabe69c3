//! Layer normalisation with PyTorch's semantics, over the last dimension or over channels.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::precision::like;

/// Configuration of a [`LayerNorm`], named and defaulted as `torch.nn.LayerNorm` over one
/// dimension (`normalized_shape` an int).
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// Size of the normalised dimension.
    pub normalized_shape: usize,
    /// Added to the variance for numerical stability.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// `torch.nn.LayerNorm(normalized_shape)`: each vector along the normalised dimension scaled to
/// zero mean and unit (biased) variance, then `· weight + bias`. [`LayerNorm::forward`]
/// normalises the last dimension (PyTorch's layer); [`LayerNorm::forward_channels`] the
/// channels of a `[batch, channels, h, w]` map, which is torchvision's `LayerNorm2d`
/// (ConvNeXt's). State-dict keys `weight` and `bias`; init 1 and 0.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::LayerNormConfig;
/// let device = ferrovision::device::ndarray();
/// let norm = LayerNormConfig::new(4).init(&device);
/// let y = norm.forward(Tensor::<2>::from_floats([[1.0, 2.0, 3.0, 6.0]], &device));
/// assert!(y.clone().mean().into_scalar::<f32>().abs() < 1e-6);
/// assert!((y.var_bias(1).into_scalar::<f32>() - 1.0).abs() < 1e-4);
/// let map = Tensor::<4>::ones([2, 4, 3, 3], &device).cumsum(1); // channels 1, 2, 3, 4
/// let y = norm.forward_channels(map);
/// assert!((y.slice([0..1, 3..4, 0..1, 0..1]).into_scalar::<f32>() - 1.341_635).abs() < 1e-4);
/// ```
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale (γ), `[normalized_shape]`.
    pub weight: Param<Tensor<1>>,
    /// Shift (β), `[normalized_shape]`.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance for numerical stability.
    pub eps: f64,
}

impl LayerNormConfig {
    /// Builds the layer on `device` with PyTorch's init (weight 1, bias 0).
    ///
    /// # Panics
    /// When `normalized_shape` is zero or `eps` is not positive.
    pub fn init(&self, device: &Device) -> LayerNorm {
        assert!(
            self.normalized_shape > 0,
            "LayerNorm: normalized_shape must be positive"
        );
        assert!(
            self.eps > 0.0,
            "LayerNorm: eps must be positive, got {}",
            self.eps
        );
        LayerNorm {
            weight: Param::from_tensor(Tensor::ones([self.normalized_shape], device)),
            bias: Param::from_tensor(Tensor::zeros([self.normalized_shape], device)),
            eps: self.eps,
        }
    }
}

impl LayerNorm {
    /// Normalises the last dimension.
    ///
    /// # Shapes
    /// - input and output: `[..., normalized_shape]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let mut shape = [1; D];
        shape[D - 1] = self.weight.lazy_shape().dims::<1>()[0];
        self.normalize(input, D - 1, shape)
    }

    /// Normalises the channels of each pixel (torchvision's `LayerNorm2d`).
    ///
    /// # Shapes
    /// - input and output: `[batch, normalized_shape, h, w]`
    pub fn forward_channels(&self, input: Tensor<4>) -> Tensor<4> {
        let channels = self.weight.lazy_shape().dims::<1>()[0];
        self.normalize(input, 1, [1, channels, 1, 1])
    }

    /// `(x - mean) / sqrt(var + eps) · weight + bias` along `dim`, the affine parameters
    /// reshaped to `affine` (ones but at `dim`).
    fn normalize<const D: usize>(
        &self,
        input: Tensor<D>,
        dim: usize,
        affine: [usize; D],
    ) -> Tensor<D> {
        let (var, mean) = input.clone().var_mean_bias(dim);
        let normalized = (input - mean) / (var + self.eps).sqrt();
        let weight = like(self.weight.val(), &normalized).reshape(affine);
        let bias = like(self.bias.val(), &normalized).reshape(affine);
        normalized * weight + bias
    }
}
