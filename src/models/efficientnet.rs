//! EfficientNet B0-B7 with torchvision's architecture, init and state-dict names
//! (`torchvision.models.efficientnet_b0` .. `efficientnet_b7`).
//!
//! ```
//! use burn::tensor::Tensor;
//! use ferrovision::models::{EfficientNetArch, EfficientNetConfig};
//! let device = ferrovision::device::ndarray();
//! let model = EfficientNetConfig::new(EfficientNetArch::B0).with_num_classes(10).init(&device);
//! assert_eq!(model.num_parameters(), 4_020_358);
//! let logits = model.eval().forward(Tensor::<4>::zeros([1, 3, 32, 32], &device));
//! assert_eq!(logits.dims(), [1, 10]);
//! ```

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::make_divisible;
use super::mobilenet::BlockLayer;
use crate::nn::{
    Activation, AdaptiveAvgPool2d, ConvNormActivation, ConvNormActivationConfig, Dropout, Linear,
    LinearConfig, Silu, SqueezeExcitation, StochasticDepth, StochasticDepthMode, forward_conv_norm,
};

/// Which EfficientNet: B0 scaled in width, depth (and input resolution, which the weights were
/// trained at) by the compound coefficients of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EfficientNetArch {
    /// `efficientnet_b0`: width 1.0, depth 1.0, dropout 0.2 (224 px).
    B0,
    /// `efficientnet_b1`: width 1.0, depth 1.1, dropout 0.2 (240 px).
    B1,
    /// `efficientnet_b2`: width 1.1, depth 1.2, dropout 0.3 (288 px).
    B2,
    /// `efficientnet_b3`: width 1.2, depth 1.4, dropout 0.3 (300 px).
    B3,
    /// `efficientnet_b4`: width 1.4, depth 1.8, dropout 0.4 (380 px).
    B4,
    /// `efficientnet_b5`: width 1.6, depth 2.2, dropout 0.4 (456 px), batch norm eps 1e-3.
    B5,
    /// `efficientnet_b6`: width 1.8, depth 2.6, dropout 0.5 (528 px), batch norm eps 1e-3.
    B6,
    /// `efficientnet_b7`: width 2.0, depth 3.1, dropout 0.5 (600 px), batch norm eps 1e-3.
    B7,
}

impl EfficientNetArch {
    /// All eight, smallest first.
    pub const ALL: [EfficientNetArch; 8] = [
        EfficientNetArch::B0,
        EfficientNetArch::B1,
        EfficientNetArch::B2,
        EfficientNetArch::B3,
        EfficientNetArch::B4,
        EfficientNetArch::B5,
        EfficientNetArch::B6,
        EfficientNetArch::B7,
    ];

    /// torchvision's `(width_mult, depth_mult, dropout)`.
    fn scaling(self) -> (f64, f64, f64) {
        match self {
            EfficientNetArch::B0 => (1.0, 1.0, 0.2),
            EfficientNetArch::B1 => (1.0, 1.1, 0.2),
            EfficientNetArch::B2 => (1.1, 1.2, 0.3),
            EfficientNetArch::B3 => (1.2, 1.4, 0.3),
            EfficientNetArch::B4 => (1.4, 1.8, 0.4),
            EfficientNetArch::B5 => (1.6, 2.2, 0.4),
            EfficientNetArch::B6 => (1.8, 2.6, 0.5),
            EfficientNetArch::B7 => (2.0, 3.1, 0.5),
        }
    }

    /// The batch norm's `(eps, momentum)`: PyTorch's defaults, except B5-B7, whose weights
    /// were ported from TensorFlow with `eps = 0.001, momentum = 0.01`.
    fn batch_norm(self) -> (f64, f64) {
        match self {
            EfficientNetArch::B5 | EfficientNetArch::B6 | EfficientNetArch::B7 => (0.001, 0.01),
            _ => (1e-5, 0.1),
        }
    }

    /// The default dropout before the classifier.
    pub fn dropout(self) -> f64 {
        self.scaling().2
    }

    /// The stages, channel widths and depths scaled: torchvision's `MBConvConfig`s.
    fn stages(self) -> Vec<StageSpec> {
        // (expand ratio, kernel, stride, input channels, output channels, blocks) of B0
        const B0: [(usize, usize, usize, usize, usize, usize); 7] = [
            (1, 3, 1, 32, 16, 1),
            (6, 3, 2, 16, 24, 2),
            (6, 5, 2, 24, 40, 2),
            (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3),
            (6, 5, 2, 112, 192, 4),
            (6, 3, 1, 192, 320, 1),
        ];
        let (width, depth, _) = self.scaling();
        let channels = |c: usize| make_divisible(c as f64 * width);
        B0.iter()
            .map(
                |&(expand_ratio, kernel, stride, input, out, blocks)| StageSpec {
                    expand_ratio,
                    kernel,
                    stride,
                    input: channels(input),
                    out: channels(out),
                    blocks: (blocks as f64 * depth).ceil() as usize,
                },
            )
            .collect()
    }
}

/// One stage of MBConv blocks, as torchvision's `MBConvConfig` after width and depth scaling.
#[derive(Debug, Clone, Copy)]
struct StageSpec {
    expand_ratio: usize,
    kernel: usize,
    stride: usize,
    input: usize,
    out: usize,
    blocks: usize,
}

/// torchvision's architecture name: `efficientnet_b0` .. `efficientnet_b7`.
impl std::fmt::Display for EfficientNetArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = EfficientNetArch::ALL
            .iter()
            .position(|a| a == self)
            .unwrap_or(0);
        write!(f, "efficientnet_b{index}")
    }
}

/// Parses torchvision's architecture name.
///
/// ```
/// use ferrovision::models::EfficientNetArch;
/// assert_eq!("efficientnet_b3".parse::<EfficientNetArch>()?, EfficientNetArch::B3);
/// assert!("efficientnet_b8".parse::<EfficientNetArch>().is_err());
/// # Ok::<(), ferrovision::Error>(())
/// ```
impl std::str::FromStr for EfficientNetArch {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        super::arch::by_name(&EfficientNetArch::ALL, name)
    }
}

/// Configuration of an [`EfficientNet`].
#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// B0 .. B7.
    pub arch: EfficientNetArch,
    /// Outputs of the classifier layer `classifier.1`.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout probability before the classifier (training mode only); `None` for the
    /// architecture's own (0.2 for B0 up to 0.5 for B7).
    #[config(default = "None")]
    pub dropout: Option<f64>,
    /// Drop probability of the last block's residual branch; block `i` of `n` drops with
    /// `stochastic_depth_prob · i / n`.
    #[config(default = 0.2)]
    pub stochastic_depth_prob: f64,
    /// The batch norms' momentum; `None` for the architecture's own (0.1, or 0.01 for B5-B7).
    #[config(default = "None")]
    pub norm_momentum: Option<f64>,
}

/// torchvision's `MBConv`: expand (when wider), depthwise, squeeze-and-excitation (SiLU,
/// sigmoid gate), project; when stride 1 keeps the width, the result goes through stochastic
/// depth and the input is added back.
#[derive(Module, Debug)]
pub struct MBConv {
    /// The layers in order (`block.0`, `block.1`, ...).
    pub block: Vec<BlockLayer>,
    /// Drops the residual branch at random in training mode.
    pub stochastic_depth: StochasticDepth,
    /// Whether the input is added to the output.
    pub use_res_connect: bool,
}

impl MBConv {
    fn new(spec: StageSpec, drop_prob: f64, (eps, momentum): (f64, f64), device: &Device) -> Self {
        let expanded = make_divisible((spec.input * spec.expand_ratio) as f64);
        let conv = |[input, output]: [usize; 2], kernel, stride, groups, activation| {
            BlockLayer::Conv(
                ConvNormActivationConfig::new(input, output, kernel)
                    .with_stride(stride)
                    .with_groups(groups)
                    .with_eps(eps)
                    .with_momentum(momentum)
                    .init(activation, device),
            )
        };
        let silu = || Activation::Silu(Silu);
        let mut block = Vec::new();
        if expanded != spec.input {
            block.push(conv([spec.input, expanded], 1, 1, 1, silu()));
        }
        block.push(conv(
            [expanded, expanded],
            spec.kernel,
            spec.stride,
            expanded,
            silu(),
        ));
        let squeeze = (spec.input / 4).max(1);
        let se = SqueezeExcitation::new(expanded, squeeze, device)
            .with_activation(silu())
            .with_kaiming_normal_fan_out(device);
        block.push(BlockLayer::SqueezeExcitation(se));
        block.push(conv([expanded, spec.out], 1, 1, 1, Activation::identity()));
        MBConv {
            block,
            stochastic_depth: StochasticDepth::new(drop_prob, StochasticDepthMode::Row),
            use_res_connect: spec.stride == 1 && spec.input == spec.out,
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
        if self.use_res_connect {
            self.stochastic_depth.forward(x) + input
        } else {
            x
        }
    }
}

/// One entry of `features`: the stem and last convolutions, or a stage of MBConv blocks
/// (`features.1.0.block.0.0.weight`). The variant is not part of state-dict keys.
#[derive(Module, Debug)]
pub enum Feature {
    /// A [`ConvNormActivation`] with SiLU.
    Conv(ConvNormActivation),
    /// The blocks of one stage.
    Stage(Vec<MBConv>),
}

/// torchvision's `EfficientNet`. Field names are the state-dict keys: `features.0.0.weight`,
/// `features.2.1.block.1.0.weight`, `features.8.1.running_var`, `classifier.1.weight`, ...
#[derive(Module, Debug)]
pub struct EfficientNet {
    /// Stem, stages, last 1x1 convolution.
    pub features: Vec<Feature>,
    /// Global average pool.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout, linear (`classifier.1` holds the weights).
    pub classifier: (Dropout, Linear),
}

impl EfficientNetConfig {
    /// Builds the network on `device` with torchvision's init, in training mode.
    ///
    /// # Panics
    /// When `dropout`, `stochastic_depth_prob` or `norm_momentum` is outside `[0, 1]`.
    pub fn init(&self, device: &Device) -> EfficientNet {
        let stages = self.arch.stages();
        let (eps, momentum) = self.arch.batch_norm();
        let norm = (eps, self.norm_momentum.unwrap_or(momentum));
        let conv = |input, output, kernel, stride| {
            Feature::Conv(
                ConvNormActivationConfig::new(input, output, kernel)
                    .with_stride(stride)
                    .with_eps(norm.0)
                    .with_momentum(norm.1)
                    .init(Activation::Silu(Silu), device),
            )
        };
        let mut features = vec![conv(3, stages[0].input, 3, 2)];
        let total: usize = stages.iter().map(|s| s.blocks).sum();
        let mut index = 0;
        for stage in &stages {
            let blocks = (0..stage.blocks)
                .map(|i| {
                    let spec = if i == 0 {
                        *stage
                    } else {
                        StageSpec {
                            input: stage.out,
                            stride: 1,
                            ..*stage
                        }
                    };
                    let drop = self.stochastic_depth_prob * index as f64 / total as f64;
                    index += 1;
                    MBConv::new(spec, drop, norm, device)
                })
                .collect();
            features.push(Feature::Stage(blocks));
        }
        let last_in = stages[stages.len() - 1].out;
        let last_out = 4 * last_in;
        features.push(conv(last_in, last_out, 1, 1));
        EfficientNet {
            features,
            avgpool: AdaptiveAvgPool2d::new([1, 1]),
            classifier: (
                Dropout::new(self.dropout.unwrap_or(self.arch.dropout())),
                classifier_linear(last_out, self.num_classes, device),
            ),
        }
    }
}

/// torchvision's EfficientNet init of the classifier: `U(-r, r)` with `r = 1/sqrt(outputs)`,
/// bias 0.
fn classifier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let range = 1.0 / (d_out as f64).sqrt();
    LinearConfig::new(d_in, d_out)
        .init(device)
        .with_drawn_weight(Distribution::Uniform(-range, range), device)
}

impl EfficientNet {
    /// Class scores (logits).
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]` (normalised images; B0 was trained at 224x224, B7
    ///   at 600x600)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mut x = input;
        for feature in &self.features {
            x = match feature {
                Feature::Conv(layer) => forward_conv_norm(layer, x),
                Feature::Stage(blocks) => blocks.iter().fold(x, |x, block| block.forward(x)),
            };
        }
        let [batch, channels, _, _] = x.dims();
        let x = self.avgpool.forward(x).reshape([batch, channels]);
        let (dropout, linear) = &self.classifier;
        linear.forward(dropout.forward(x))
    }

    /// Training mode for every batch norm, stochastic depth and the dropout.
    pub fn train(self) -> Self {
        crate::nn::train_mode(self)
    }

    /// Evaluation mode for every layer (PyTorch's `model.eval()`).
    pub fn eval(self) -> Self {
        crate::nn::eval_mode(self)
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        self.classifier.1.weight.lazy_shape().dims::<2>()[0]
    }

    /// Learnable parameters, as `sum(p.numel() for p in model.parameters())` counts them.
    pub fn num_parameters(&self) -> usize {
        crate::weights::num_parameters(self)
    }
}
