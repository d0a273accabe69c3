//! MobileNetV3 Large and Small with torchvision's architecture, init and state-dict names
//! (`torchvision.models.mobilenet_v3_large` / `mobilenet_v3_small`, width 1.0).
//!
//! ```
//! use burn::tensor::Tensor;
//! use ferrovision::models::{MobileNetV3Arch, MobileNetV3Config};
//! let device = ferrovision::device::ndarray();
//! let model = MobileNetV3Config::new(MobileNetV3Arch::Small).with_num_classes(10).init(&device);
//! assert_eq!(model.num_parameters(), 1_528_106);
//! let logits = model.eval().forward(Tensor::<4>::zeros([1, 3, 64, 64], &device));
//! assert_eq!(logits.dims(), [1, 10]);
//! ```

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::make_divisible;
use crate::nn::{
    Activation, AdaptiveAvgPool2d, ConvNormActivationConfig, Dropout, Hardsigmoid, Hardswish,
    Linear, LinearConfig, Relu, SqueezeExcitation, forward_conv_norm,
};

/// Which MobileNetV3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MobileNetV3Arch {
    /// `mobilenet_v3_large`: 15 blocks, 960 channels into a 1280-wide classifier.
    Large,
    /// `mobilenet_v3_small`: 11 blocks, 576 channels into a 1024-wide classifier.
    Small,
}

impl MobileNetV3Arch {
    /// Both, largest first.
    pub const ALL: [MobileNetV3Arch; 2] = [MobileNetV3Arch::Large, MobileNetV3Arch::Small];

    /// torchvision's block table: `(input, kernel, expanded, out, squeeze-excitation,
    /// hard swish, stride)` per inverted residual block.
    fn blocks(self) -> &'static [BlockSpec] {
        const LARGE: [BlockSpec; 15] = [
            (16, 3, 16, 16, false, false, 1),
            (16, 3, 64, 24, false, false, 2),
            (24, 3, 72, 24, false, false, 1),
            (24, 5, 72, 40, true, false, 2),
            (40, 5, 120, 40, true, false, 1),
            (40, 5, 120, 40, true, false, 1),
            (40, 3, 240, 80, false, true, 2),
            (80, 3, 200, 80, false, true, 1),
            (80, 3, 184, 80, false, true, 1),
            (80, 3, 184, 80, false, true, 1),
            (80, 3, 480, 112, true, true, 1),
            (112, 3, 672, 112, true, true, 1),
            (112, 5, 672, 160, true, true, 2),
            (160, 5, 960, 160, true, true, 1),
            (160, 5, 960, 160, true, true, 1),
        ];
        const SMALL: [BlockSpec; 11] = [
            (16, 3, 16, 16, true, false, 2),
            (16, 3, 72, 24, false, false, 2),
            (24, 3, 88, 24, false, false, 1),
            (24, 5, 96, 40, true, true, 2),
            (40, 5, 240, 40, true, true, 1),
            (40, 5, 240, 40, true, true, 1),
            (40, 5, 120, 48, true, true, 1),
            (48, 5, 144, 48, true, true, 1),
            (48, 5, 288, 96, true, true, 2),
            (96, 5, 576, 96, true, true, 1),
            (96, 5, 576, 96, true, true, 1),
        ];
        match self {
            MobileNetV3Arch::Large => &LARGE,
            MobileNetV3Arch::Small => &SMALL,
        }
    }

    /// Width of the classifier's hidden layer.
    fn last_channel(self) -> usize {
        match self {
            MobileNetV3Arch::Large => 1280,
            MobileNetV3Arch::Small => 1024,
        }
    }
}

/// `(input, kernel, expanded, out, squeeze-excitation, hard swish, stride)`.
type BlockSpec = (usize, usize, usize, usize, bool, bool, usize);

/// torchvision's architecture name: `mobilenet_v3_large`, `mobilenet_v3_small`.
impl std::fmt::Display for MobileNetV3Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MobileNetV3Arch::Large => "mobilenet_v3_large",
            MobileNetV3Arch::Small => "mobilenet_v3_small",
        })
    }
}

/// Parses torchvision's architecture name.
///
/// ```
/// use ferrovision::models::MobileNetV3Arch;
/// assert_eq!("mobilenet_v3_small".parse::<MobileNetV3Arch>()?, MobileNetV3Arch::Small);
/// assert!("mobilenet_v3".parse::<MobileNetV3Arch>().is_err());
/// # Ok::<(), ferrovision::Error>(())
/// ```
impl std::str::FromStr for MobileNetV3Arch {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        super::arch::by_name(&MobileNetV3Arch::ALL, name)
    }
}

/// Configuration of a [`MobileNetV3`].
#[derive(Config, Debug)]
pub struct MobileNetV3Config {
    /// Large or small.
    pub arch: MobileNetV3Arch,
    /// Outputs of the last classifier layer `classifier.3`.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout probability before the last classifier layer (training mode only).
    #[config(default = 0.2)]
    pub dropout: f64,
    /// The batch norms' momentum: torchvision's 0.01 suits its 600-epoch ImageNet recipe; over
    /// a few hundred steps the running statistics (what eval mode uses) trail the weights, and
    /// 0.1 (PyTorch's default) follows them.
    #[config(default = 0.01)]
    pub norm_momentum: f64,
}

pub use crate::nn::ConvNormActivation;

/// One entry of `features`: the stem and last convolutions, or an inverted residual block.
/// The variant is not part of state-dict keys.
#[derive(Module, Debug)]
pub enum Feature {
    /// A [`ConvNormActivation`].
    Conv(ConvNormActivation),
    /// An [`InvertedResidual`].
    Block(InvertedResidual),
}

/// One layer of an [`InvertedResidual`]'s `block`; the variant is not part of state-dict keys.
#[derive(Module, Debug)]
pub enum BlockLayer {
    /// Expansion (1x1), depthwise (k x k) or projection (1x1, no activation) convolution.
    Conv(ConvNormActivation),
    /// Squeeze-and-excitation with a hard sigmoid gate, after the depthwise convolution.
    SqueezeExcitation(SqueezeExcitation),
}

/// torchvision's MobileNetV3 `InvertedResidual`: expand (when wider), depthwise, optional
/// squeeze-and-excitation, project; the input added back when stride 1 keeps the width.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// The layers in order (`block.0`, `block.1`, ...).
    pub block: Vec<BlockLayer>,
    /// Whether the input is added to the output.
    pub use_res_connect: bool,
}

/// torchvision's `MobileNetV3`. Field names are the state-dict keys: `features.0.0.weight`,
/// `features.1.block.0.0.weight`, `features.4.block.2.fc1.weight`, `classifier.0.weight`,
/// `classifier.3.weight`, ...
#[derive(Module, Debug)]
pub struct MobileNetV3 {
    /// Stem, inverted residual blocks, last 1x1 convolution.
    pub features: Vec<Feature>,
    /// Global average pool.
    pub avgpool: AdaptiveAvgPool2d,
    /// Linear, hard swish, dropout, linear (`classifier.0` and `classifier.3` hold weights).
    pub classifier: (Linear, Hardswish, Dropout, Linear),
}

/// A [`ConvNormActivation`]'s config with MobileNetV3's batch norm (eps 0.001, the given
/// momentum).
fn conv_norm(
    [in_channels, out_channels]: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    momentum: f64,
) -> ConvNormActivationConfig {
    ConvNormActivationConfig::new(in_channels, out_channels, kernel)
        .with_stride(stride)
        .with_groups(groups)
        .with_eps(0.001)
        .with_momentum(momentum)
}

impl BlockLayer {
    /// Applies the layer.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        match self {
            BlockLayer::Conv(layer) => forward_conv_norm(layer, input),
            BlockLayer::SqueezeExcitation(se) => se.forward(input),
        }
    }
}

impl InvertedResidual {
    fn new(spec: BlockSpec, momentum: f64, device: &Device) -> Self {
        let (input, kernel, expanded, out, use_se, use_hs, stride) = spec;
        let activation = || {
            if use_hs {
                Activation::Hardswish(Hardswish)
            } else {
                Activation::Relu(Relu)
            }
        };
        let mut block = Vec::new();
        if expanded != input {
            let expand = conv_norm([input, expanded], 1, 1, 1, momentum);
            block.push(BlockLayer::Conv(expand.init(activation(), device)));
        }
        let depthwise = conv_norm([expanded, expanded], kernel, stride, expanded, momentum);
        block.push(BlockLayer::Conv(depthwise.init(activation(), device)));
        if use_se {
            let squeeze = make_divisible((expanded / 4) as f64);
            let se = SqueezeExcitation::new(expanded, squeeze, device)
                .with_scale_activation(Activation::Hardsigmoid(Hardsigmoid))
                .with_kaiming_normal_fan_out(device);
            block.push(BlockLayer::SqueezeExcitation(se));
        }
        let project = conv_norm([expanded, out], 1, 1, 1, momentum);
        block.push(BlockLayer::Conv(
            project.init(Activation::identity(), device),
        ));
        InvertedResidual {
            block,
            use_res_connect: stride == 1 && input == out,
        }
    }

    /// Applies the block.
    ///
    /// # Shapes
    /// - input: `[batch, input, h, w]`; output: `[batch, out, h / stride, w / stride]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = self
            .block
            .iter()
            .fold(input.clone(), |x, layer| layer.forward(x));
        if self.use_res_connect { x + input } else { x }
    }
}

/// A linear layer with torchvision's MobileNet init: weights `N(0, 0.01)`, bias 0.
fn classifier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .init(device)
        .with_drawn_weight(Distribution::Normal(0.0, 0.01), device)
}

impl MobileNetV3Config {
    /// Builds the network on `device` with torchvision's init, in training mode.
    ///
    /// # Panics
    /// When `dropout` or `norm_momentum` is outside `[0, 1]`.
    pub fn init(&self, device: &Device) -> MobileNetV3 {
        let specs = self.arch.blocks();
        let first = specs[0].0;
        let last_in = specs[specs.len() - 1].3;
        let last_out = 6 * last_in;
        let hard_swish = || Activation::Hardswish(Hardswish);
        let momentum = self.norm_momentum;
        let stem = conv_norm([3, first], 3, 2, 1, momentum);
        let mut features = vec![Feature::Conv(stem.init(hard_swish(), device))];
        features.extend(
            specs
                .iter()
                .map(|&spec| Feature::Block(InvertedResidual::new(spec, momentum, device))),
        );
        let last = conv_norm([last_in, last_out], 1, 1, 1, momentum);
        features.push(Feature::Conv(last.init(hard_swish(), device)));
        let hidden = self.arch.last_channel();
        MobileNetV3 {
            features,
            avgpool: AdaptiveAvgPool2d::new([1, 1]),
            classifier: (
                classifier_linear(last_out, hidden, device),
                Hardswish,
                Dropout::new(self.dropout),
                classifier_linear(hidden, self.num_classes, device),
            ),
        }
    }
}

impl MobileNetV3 {
    /// Class scores (logits).
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]` (normalised images; 224x224 for ImageNet weights)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mut x = input;
        for feature in &self.features {
            x = match feature {
                Feature::Conv(layer) => forward_conv_norm(layer, x),
                Feature::Block(block) => block.forward(x),
            };
        }
        let [batch, channels, _, _] = x.dims();
        let x = self.avgpool.forward(x).reshape([batch, channels]);
        let (hidden, activation, dropout, last) = &self.classifier;
        last.forward(dropout.forward(activation.forward(hidden.forward(x))))
    }

    /// Training mode for every batch norm and the dropout (PyTorch's `model.train()`).
    pub fn train(self) -> Self {
        crate::nn::train_mode(self)
    }

    /// Evaluation mode for every batch norm and the dropout (PyTorch's `model.eval()`).
    pub fn eval(self) -> Self {
        crate::nn::eval_mode(self)
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        self.classifier.3.weight.lazy_shape().dims::<2>()[0]
    }

    /// Learnable parameters, as `sum(p.numel() for p in model.parameters())` counts them.
    pub fn num_parameters(&self) -> usize {
        crate::weights::num_parameters(self)
    }
}
