//! ResNet-18/34/50/101/152 with torchvision's architecture, init and state-dict names.
//!
//! ```
//! use burn::tensor::Tensor;
//! use ferrovision::models::{ResNetConfig, ResNetDepth};
//! let device = ferrovision::device::ndarray();
//! let model = ResNetConfig::new(ResNetDepth::R18).with_num_classes(10).init(&device).eval();
//! let logits = model.forward(Tensor::<4>::zeros([1, 3, 64, 64], &device));
//! assert_eq!(logits.dims(), [1, 10]);
//! ```

mod block;
mod pretrained;
mod weights;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use block::{BasicBlock, Block, Bottleneck};
pub use pretrained::{PretrainedWeights, ResNetWeights};

use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, BatchNorm2dConfig, Conv2d, Linear, LinearConfig, MaxPool2d,
    MaxPool2dConfig, Relu,
};

/// Which ResNet: the number of blocks per stage and the block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResNetDepth {
    /// ResNet-18: BasicBlock, [2, 2, 2, 2].
    R18,
    /// ResNet-34: BasicBlock, [3, 4, 6, 3].
    R34,
    /// ResNet-50: Bottleneck, [3, 4, 6, 3].
    R50,
    /// ResNet-101: Bottleneck, [3, 4, 23, 3].
    R101,
    /// ResNet-152: Bottleneck, [3, 8, 36, 3].
    R152,
}

impl ResNetDepth {
    /// Blocks in each of the four stages.
    pub fn layers(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R34 | ResNetDepth::R50 => [3, 4, 6, 3],
            ResNetDepth::R101 => [3, 4, 23, 3],
            ResNetDepth::R152 => [3, 8, 36, 3],
        }
    }

    /// Whether the stages are made of bottleneck blocks.
    pub fn is_bottleneck(self) -> bool {
        !matches!(self, ResNetDepth::R18 | ResNetDepth::R34)
    }

    /// Every depth, smallest first.
    pub const ALL: [ResNetDepth; 5] = [
        ResNetDepth::R18,
        ResNetDepth::R34,
        ResNetDepth::R50,
        ResNetDepth::R101,
        ResNetDepth::R152,
    ];
}

/// torchvision's architecture name: `resnet18` ... `resnet152`.
impl std::fmt::Display for ResNetDepth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResNetDepth::R18 => "resnet18",
            ResNetDepth::R34 => "resnet34",
            ResNetDepth::R50 => "resnet50",
            ResNetDepth::R101 => "resnet101",
            ResNetDepth::R152 => "resnet152",
        })
    }
}

/// Parses torchvision's architecture name, `resnet18` ... `resnet152`.
///
/// ```
/// use ferrovision::models::ResNetDepth;
/// assert_eq!("resnet50".parse::<ResNetDepth>()?, ResNetDepth::R50);
/// assert!("resnet19".parse::<ResNetDepth>().is_err());
/// # Ok::<(), ferrovision::Error>(())
/// ```
impl std::str::FromStr for ResNetDepth {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        ResNetDepth::ALL
            .into_iter()
            .find(|d| d.to_string() == name)
            .ok_or_else(|| crate::Error::UnknownArchitecture {
                name: name.to_string(),
            })
    }
}

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Which ResNet.
    pub depth: ResNetDepth,
    /// Outputs of the classifier `fc`.
    #[config(default = 1000)]
    pub num_classes: usize,
}

/// torchvision's ResNet. Field names are the state-dict keys: `conv1`, `bn1`, `layer1.0.conv1`,
/// `layer2.0.downsample.0`, `fc`, ...
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7x7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm2d,
    /// Shared ReLU.
    pub relu: Relu,
    /// 3x3 stride-2 max pool.
    pub maxpool: MaxPool2d,
    /// Stage 1 (64 planes, stride 1).
    pub layer1: Vec<Block>,
    /// Stage 2 (128 planes, stride 2).
    pub layer2: Vec<Block>,
    /// Stage 3 (256 planes, stride 2).
    pub layer3: Vec<Block>,
    /// Stage 4 (512 planes, stride 2).
    pub layer4: Vec<Block>,
    /// Global average pool.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
}

impl ResNetConfig {
    /// Builds the network on `device` with torchvision's init: convolutions
    /// `kaiming_normal_(fan_out, relu)`, batch norms weight 1 bias 0, `fc` PyTorch's default.
    /// The model starts in training mode, as in PyTorch.
    pub fn init(&self, device: &Device) -> ResNet {
        let expansion = if self.depth.is_bottleneck() {
            Bottleneck::EXPANSION
        } else {
            BasicBlock::EXPANSION
        };
        let mut in_channels = 64;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Block> {
            (0..blocks)
                .map(|i| {
                    let stride = if i == 0 { stride } else { 1 };
                    let block = if self.depth.is_bottleneck() {
                        Block::Bottleneck(Bottleneck::new(in_channels, planes, stride, device))
                    } else {
                        Block::Basic(BasicBlock::new(in_channels, planes, stride, device))
                    };
                    in_channels = planes * expansion;
                    block
                })
                .collect()
        };
        let [l1, l2, l3, l4] = self.depth.layers();
        let (layer1, layer2, layer3, layer4) = (
            stage(64, l1, 1),
            stage(128, l2, 2),
            stage(256, l3, 2),
            stage(512, l4, 2),
        );
        ResNet {
            conv1: block::conv(3, 64, 7, 2, 3, device),
            bn1: BatchNorm2dConfig::new(64).init(device),
            relu: Relu,
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_stride(Some([2, 2]))
                .with_padding([1, 1])
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2d::new([1, 1]),
            fc: LinearConfig::new(512 * expansion, self.num_classes).init(device),
        }
    }
}

/// The stem's output size (bytes of `f32`) from which training recomputes its convolution in the
/// backward pass instead of keeping its output: at 64 images of 224² that map is 196 MiB, the
/// widest a ResNet keeps, and recomputing costs about 2% of a step; small batches keep it.
const RECOMPUTE_STEM_FROM_BYTES: usize = 64 << 20;

impl ResNet {
    /// Class scores (logits).
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]` (normalised images; 224x224 for ImageNet weights,
    ///   any size from 32x32 up works)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mut x = self.maxpool.forward(self.stem(input));
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let x = self.avgpool.forward(x).reshape([batch, channels]);
        self.fc.forward(x)
    }

    /// `relu(bn1(conv1(input)))`, the convolution recomputed in backward when its output is
    /// large (see [`RECOMPUTE_STEM_FROM_BYTES`]).
    fn stem(&self, input: Tensor<4>) -> Tensor<4> {
        let [batch, _, height, width] = input.dims();
        // `ceil(side / stride)`: exact for the stem's 7x7 kernel with padding 3.
        let [stride_y, stride_x] = self.conv1.stride;
        let out_channels = self.conv1.weight.lazy_shape().dims::<4>()[0];
        let bytes = 4 * batch * out_channels * height.div_ceil(stride_y) * width.div_ceil(stride_x);
        if bytes >= RECOMPUTE_STEM_FROM_BYTES {
            self.bn1.forward_conv_relu(&self.conv1, input)
        } else {
            self.bn1.forward_relu(self.conv1.forward(input))
        }
    }

    /// Training mode for every batch norm (PyTorch's `model.train()`).
    pub fn train(self) -> Self {
        crate::nn::train_mode(self)
    }

    /// Evaluation mode for every batch norm (PyTorch's `model.eval()`).
    pub fn eval(self) -> Self {
        crate::nn::eval_mode(self)
    }

    /// Which ResNet this is, from its blocks per stage and block kind; `None` for a net
    /// assembled by hand that matches none.
    pub fn depth(&self) -> Option<ResNetDepth> {
        let blocks = [&self.layer1, &self.layer2, &self.layer3, &self.layer4].map(Vec::len);
        let bottleneck = matches!(self.layer1.first(), Some(Block::Bottleneck(_)));
        ResNetDepth::ALL
            .into_iter()
            .find(|d| d.layers() == blocks && d.is_bottleneck() == bottleneck)
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.lazy_shape().dims::<2>()[0]
    }

    /// Learnable parameters, as `sum(p.numel() for p in model.parameters())` counts them
    /// (buffers such as running statistics excluded).
    pub fn num_parameters(&self) -> usize {
        crate::weights::num_parameters(self)
    }
}
