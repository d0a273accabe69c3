//! 2-D convolution.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::init::{kaiming_normal_fan_out, uniform_fan_in};
use crate::precision::like;

/// Configuration of a [`Conv2d`], named and defaulted as `torch.nn.Conv2d`.
///
/// ```
/// use ferrovision::nn::Conv2dConfig;
/// let device = ferrovision::device::ndarray();
/// let conv = Conv2dConfig::new(3, 64, [7, 7])
///     .with_stride([2, 2])
///     .with_padding([3, 3])
///     .with_bias(false)
///     .init(&device);
/// assert_eq!(conv.weight.dims(), [64, 3, 7, 7]);
/// ```
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Step between windows.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Zero padding added on each side (top/bottom, left/right).
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Blocked connections from input to output channels; both channel counts must divide by it.
    #[config(default = 1)]
    pub groups: usize,
    /// Whether to add a learnable bias.
    #[config(default = true)]
    pub bias: bool,
}

/// `torch.nn.Conv2d`: weight `[out_channels, in_channels / groups, kh, kw]`, optional bias
/// `[out_channels]`, PyTorch's default init (`U(-k, k)`, `k = 1/sqrt(fan_in)`).
#[derive(Module, Debug)]
pub struct Conv2d {
    /// Kernel, `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Param<Tensor<4>>,
    /// Bias, `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Step between windows.
    pub stride: [usize; 2],
    /// Zero padding on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl Conv2dConfig {
    /// Builds the layer on `device` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// When a channel count does not divide by `groups`, or a size, stride or dilation is zero.
    pub fn init(&self, device: &Device) -> Conv2d {
        assert!(
            self.groups > 0
                && self.in_channels.is_multiple_of(self.groups)
                && self.out_channels.is_multiple_of(self.groups),
            "Conv2d: in_channels ({}) and out_channels ({}) must be divisible by groups ({})",
            self.in_channels,
            self.out_channels,
            self.groups
        );
        assert!(
            self.kernel_size
                .iter()
                .chain(&self.stride)
                .chain(&self.dilation)
                .all(|&v| v > 0),
            "Conv2d: kernel_size {:?}, stride {:?} and dilation {:?} must be positive",
            self.kernel_size,
            self.stride,
            self.dilation
        );
        let [kh, kw] = self.kernel_size;
        let fan_in = self.in_channels / self.groups * kh * kw;
        Conv2d {
            weight: uniform_fan_in(
                [self.out_channels, self.in_channels / self.groups, kh, kw],
                fan_in,
                device,
            ),
            bias: self
                .bias
                .then(|| uniform_fan_in([self.out_channels], fan_in, device)),
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

impl Conv2d {
    /// Applies the convolution, in the dtype of `input` (see [`Precision`](crate::Precision)).
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]` with
    ///   `out = (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let weight = like(self.weight.val(), &input);
        let bias = self.bias.as_ref().map(|bias| like(bias.val(), &input));
        crate::kernels::conv2d(input, weight, bias, self.options())
    }

    /// Stride, padding, dilation and groups as Burn's op takes them.
    pub(crate) fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(self.stride, self.padding, self.dilation, self.groups)
    }

    /// The same layer with its kernel drawn again as torchvision's models initialise theirs,
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`; the bias is kept.
    pub(crate) fn with_kaiming_normal_fan_out(self, device: &Device) -> Self {
        let dims: [usize; 4] = self.weight.lazy_shape().dims();
        Conv2d {
            weight: kaiming_normal_fan_out(dims, self.fan_out(), device),
            ..self
        }
    }

    /// Fan-out of the kernel as `torch.nn.init` computes it: `out_channels * kh * kw`.
    pub fn fan_out(&self) -> usize {
        let [out, _, kh, kw] = self.weight.lazy_shape().dims();
        out * kh * kw
    }
}
