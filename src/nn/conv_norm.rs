//! torchvision's `ops.Conv2dNormActivation` with a batch norm: the unit MobileNet and
//! EfficientNet are built from.

use burn::config::Config;
use burn::tensor::{Device, Tensor};

use super::{Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig};

/// A convolution without bias, a batch norm and an activation; state-dict keys `0.weight` and
/// `1.*` (the activation has none). Apply it with [`forward_conv_norm`].
pub type ConvNormActivation = (Conv2d, BatchNorm2d, Activation);

/// Configuration of a [`ConvNormActivation`], named as torchvision's `Conv2dNormActivation`
/// (padding `(kernel_size - 1) / 2`); `eps` and `momentum` are the batch norm's.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{forward_conv_norm, Activation, ConvNormActivationConfig, Silu};
/// let device = ferrovision::device::ndarray();
/// let layer = ConvNormActivationConfig::new(3, 8, 3)
///     .with_stride(2)
///     .init(Activation::Silu(Silu), &device);
/// let y = forward_conv_norm(&layer, Tensor::<4>::ones([2, 3, 9, 9], &device));
/// assert_eq!(y.dims(), [2, 8, 5, 5]);
/// ```
#[derive(Config, Debug)]
pub struct ConvNormActivationConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Square kernel side.
    pub kernel_size: usize,
    /// Step between windows.
    #[config(default = 1)]
    pub stride: usize,
    /// Blocked connections (the input channels for a depthwise convolution).
    #[config(default = 1)]
    pub groups: usize,
    /// The batch norm's `eps`.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// The batch norm's `momentum`.
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl ConvNormActivationConfig {
    /// Builds the layer on `device` with torchvision's model init: `kaiming_normal_(fan_out)`
    /// convolution weights, batch norm weight 1 and bias 0.
    pub fn init(&self, activation: Activation, device: &Device) -> ConvNormActivation {
        let conv = Conv2dConfig::new(self.in_channels, self.out_channels, [self.kernel_size; 2])
            .with_stride([self.stride; 2])
            .with_padding([(self.kernel_size - 1) / 2; 2])
            .with_groups(self.groups)
            .with_bias(false)
            .init(device)
            .with_kaiming_normal_fan_out(device);
        let bn = BatchNorm2dConfig::new(self.out_channels)
            .with_eps(self.eps)
            .with_momentum(self.momentum)
            .init(device);
        (conv, bn, activation)
    }
}

/// Applies a [`ConvNormActivation`] (a ReLU fused into the batch norm's pass).
///
/// # Shapes
/// - input: `[batch, in_channels, h, w]`; output: `[batch, out_channels, h / stride, w / stride]`
pub fn forward_conv_norm(
    (conv, bn, activation): &ConvNormActivation,
    input: Tensor<4>,
) -> Tensor<4> {
    let x = conv.forward(input);
    match activation {
        Activation::Relu(_) => bn.forward_relu(x),
        other => other.forward(bn.forward(x)),
    }
}
