//! The residual blocks: `BasicBlock` (ResNet-18/34) and `Bottleneck` (ResNet-50 and deeper).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::nn::{BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Relu};

/// A bias-free convolution with torchvision's ResNet init (`kaiming_normal_`, fan-out, ReLU gain).
pub(super) fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(in_channels, out_channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding([padding, padding])
        .with_bias(false)
        .init(device)
        .with_kaiming_normal_fan_out(device)
}

fn bn(channels: usize, device: &Device) -> BatchNorm2d {
    BatchNorm2dConfig::new(channels).init(device)
}

/// The projection shortcut (`downsample.0` a 1x1 conv, `downsample.1` a batch norm) used when a
/// block changes resolution or width.
fn downsample(
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    device: &Device,
) -> Option<(Conv2d, BatchNorm2d)> {
    (stride != 1 || in_channels != out_channels).then(|| {
        (
            conv(in_channels, out_channels, 1, stride, 0, device),
            bn(out_channels, device),
        )
    })
}

fn shortcut(downsample: &Option<(Conv2d, BatchNorm2d)>, input: Tensor<4>) -> Tensor<4> {
    match downsample {
        Some((conv, bn)) => bn.forward(conv.forward(input)),
        None => input,
    }
}

/// torchvision's `BasicBlock`: two 3x3 convolutions and a residual connection.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3x3 convolution, carrying the block's stride.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm2d,
    /// Shared ReLU.
    pub relu: Relu,
    /// 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm2d,
    /// Projection shortcut, when the shape changes.
    pub downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 1;

    /// A block from `in_channels` to `planes` channels, with `stride` on its first convolution.
    pub fn new(in_channels: usize, planes: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv1: conv(in_channels, planes, 3, stride, 1, device),
            bn1: bn(planes, device),
            relu: Relu,
            conv2: conv(planes, planes, 3, 1, 1, device),
            bn2: bn(planes, device),
            downsample: downsample(in_channels, planes, stride, device),
        }
    }

    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, planes, h / stride, w / stride]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let out = self
            .bn1
            .forward_relu_conv(self.conv1.forward(input.clone()), &self.conv2);
        let out = self.bn2.forward(out);
        self.relu
            .forward_sum(out, shortcut(&self.downsample, input))
    }
}

/// torchvision's `Bottleneck` (ResNet v1.5: the stride sits on the 3x3 convolution).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm2d,
    /// 3x3 convolution, carrying the block's stride.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm2d,
    /// 1x1 expansion to `planes * 4`.
    pub conv3: Conv2d,
    /// Batch norm after `conv3`.
    pub bn3: BatchNorm2d,
    /// Shared ReLU.
    pub relu: Relu,
    /// Projection shortcut, when the shape changes.
    pub downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Bottleneck {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 4;

    /// A block from `in_channels` to `planes * 4` channels, with `stride` on its 3x3 convolution.
    pub fn new(in_channels: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out = planes * Self::EXPANSION;
        Self {
            conv1: conv(in_channels, planes, 1, 1, 0, device),
            bn1: bn(planes, device),
            conv2: conv(planes, planes, 3, stride, 1, device),
            bn2: bn(planes, device),
            conv3: conv(planes, out, 1, 1, 0, device),
            bn3: bn(out, device),
            relu: Relu,
            downsample: downsample(in_channels, out, stride, device),
        }
    }

    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, planes * 4, h / stride, w / stride]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let out = self
            .bn1
            .forward_relu_conv(self.conv1.forward(input.clone()), &self.conv2);
        let out = self.bn2.forward_relu_conv(out, &self.conv3);
        let out = self.bn3.forward(out);
        self.relu
            .forward_sum(out, shortcut(&self.downsample, input))
    }
}

/// Either kind of block; the variant is not part of state-dict keys.
#[derive(Module, Debug)]
pub enum Block {
    /// A [`BasicBlock`].
    Basic(BasicBlock),
    /// A [`Bottleneck`].
    Bottleneck(Bottleneck),
}

impl Block {
    /// Applies the block.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        match self {
            Block::Basic(block) => block.forward(input),
            Block::Bottleneck(block) => block.forward(input),
        }
    }
}
