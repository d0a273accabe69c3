//! Squeeze-and-excitation (Hu et al., 2018) as torchvision writes it.

use burn::module::Module;
use burn::module::Param;
use burn::tensor::{Device, Tensor};

use super::{Activation, Conv2d, Conv2dConfig, Relu};

/// torchvision's `ops.SqueezeExcitation`: each channel scaled by a gate computed from the
/// channels' means, `x · σ(fc2(δ(fc1(mean(x)))))`, with 1x1 convolutions `fc1` and `fc2` (state
/// dict keys `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`), `δ` ReLU and `σ` sigmoid by
/// default (MobileNetV3 uses a hard sigmoid, EfficientNet SiLU and sigmoid).
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{Activation, Hardsigmoid, SqueezeExcitation};
/// let device = ferrovision::device::ndarray();
/// let se = SqueezeExcitation::new(16, 8, &device)
///     .with_scale_activation(Activation::Hardsigmoid(Hardsigmoid));
/// assert_eq!(se.forward(Tensor::<4>::ones([2, 16, 5, 5], &device)).dims(), [2, 16, 5, 5]);
/// ```
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    /// Squeeze: `input_channels` to `squeeze_channels`, 1x1 with bias.
    pub fc1: Conv2d,
    /// Excite: `squeeze_channels` to `input_channels`, 1x1 with bias.
    pub fc2: Conv2d,
    /// `δ`, after `fc1`.
    pub activation: Activation,
    /// `σ`, the gate.
    pub scale_activation: Activation,
}

impl SqueezeExcitation {
    /// The block with PyTorch's default init of both convolutions, ReLU and sigmoid.
    pub fn new(input_channels: usize, squeeze_channels: usize, device: &Device) -> Self {
        SqueezeExcitation {
            fc1: Conv2dConfig::new(input_channels, squeeze_channels, [1, 1]).init(device),
            fc2: Conv2dConfig::new(squeeze_channels, input_channels, [1, 1]).init(device),
            activation: Activation::Relu(Relu),
            scale_activation: Activation::Sigmoid(super::Sigmoid),
        }
    }

    /// The same block with `δ` replaced.
    pub fn with_activation(self, activation: Activation) -> Self {
        SqueezeExcitation { activation, ..self }
    }

    /// The same block with the gate `σ` replaced.
    pub fn with_scale_activation(self, scale_activation: Activation) -> Self {
        SqueezeExcitation {
            scale_activation,
            ..self
        }
    }

    /// The same block with both convolutions drawn again as torchvision's models initialise
    /// theirs: `kaiming_normal_(fan_out)` weights, zero biases.
    pub(crate) fn with_kaiming_normal_fan_out(self, device: &Device) -> Self {
        let init = |conv: Conv2d| {
            let channels = conv.weight.lazy_shape().dims::<4>()[0];
            Conv2d {
                bias: Some(Param::from_tensor(Tensor::zeros([channels], device))),
                ..conv.with_kaiming_normal_fan_out(device)
            }
        };
        SqueezeExcitation {
            fc1: init(self.fc1),
            fc2: init(self.fc2),
            ..self
        }
    }

    /// Scales each channel of `input` by its gate.
    ///
    /// # Shapes
    /// - input and output: `[batch, input_channels, height, width]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let scale = input.clone().mean_dim(3).mean_dim(2);
        let scale = self.activation.forward(self.fc1.forward(scale));
        let scale = self.scale_activation.forward(self.fc2.forward(scale));
        input * scale
    }
}
