//! ConvNeXt Tiny, Small, Base and Large with torchvision's architecture, init and state-dict
//! names (`torchvision.models.convnext_tiny` .. `convnext_large`).
//!
//! ```
//! use burn::tensor::Tensor;
//! use ferrovision::models::{ConvNeXtArch, ConvNeXtConfig};
//! let device = ferrovision::device::ndarray();
//! let model = ConvNeXtConfig::new(ConvNeXtArch::Tiny).with_num_classes(10).init(&device);
//! assert_eq!(model.num_parameters(), 27_827_818);
//! let logits = model.eval().forward(Tensor::<4>::zeros([1, 3, 32, 32], &device));
//! assert_eq!(logits.dims(), [1, 10]);
//! ```

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::nn::{
    AdaptiveAvgPool2d, ChannelsFirst, ChannelsLast, Conv2d, Conv2dConfig, Flatten, Gelu, LayerNorm,
    LayerNormConfig, Linear, StochasticDepth, StochasticDepthMode,
};
use crate::precision::like;

/// Which ConvNeXt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvNeXtArch {
    /// `convnext_tiny`: widths 96-768, depths 3, 3, 9, 3.
    Tiny,
    /// `convnext_small`: widths 96-768, depths 3, 3, 27, 3.
    Small,
    /// `convnext_base`: widths 128-1024, depths 3, 3, 27, 3.
    Base,
    /// `convnext_large`: widths 192-1536, depths 3, 3, 27, 3.
    Large,
}

impl ConvNeXtArch {
    /// All four, smallest first.
    pub const ALL: [ConvNeXtArch; 4] = [
        ConvNeXtArch::Tiny,
        ConvNeXtArch::Small,
        ConvNeXtArch::Base,
        ConvNeXtArch::Large,
    ];

    /// Channels and blocks of the four stages.
    fn stages(self) -> ([usize; 4], [usize; 4]) {
        match self {
            ConvNeXtArch::Tiny => ([96, 192, 384, 768], [3, 3, 9, 3]),
            ConvNeXtArch::Small => ([96, 192, 384, 768], [3, 3, 27, 3]),
            ConvNeXtArch::Base => ([128, 256, 512, 1024], [3, 3, 27, 3]),
            ConvNeXtArch::Large => ([192, 384, 768, 1536], [3, 3, 27, 3]),
        }
    }

    /// torchvision's default stochastic depth of the last block.
    pub fn stochastic_depth_prob(self) -> f64 {
        match self {
            ConvNeXtArch::Tiny => 0.1,
            ConvNeXtArch::Small => 0.4,
            ConvNeXtArch::Base | ConvNeXtArch::Large => 0.5,
        }
    }
}

/// torchvision's architecture name: `convnext_tiny` .. `convnext_large`.
impl std::fmt::Display for ConvNeXtArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvNeXtArch::Tiny => "convnext_tiny",
            ConvNeXtArch::Small => "convnext_small",
            ConvNeXtArch::Base => "convnext_base",
            ConvNeXtArch::Large => "convnext_large",
        })
    }
}

/// Parses torchvision's architecture name.
///
/// ```
/// use ferrovision::models::ConvNeXtArch;
/// assert_eq!("convnext_base".parse::<ConvNeXtArch>()?, ConvNeXtArch::Base);
/// assert!("convnext_huge".parse::<ConvNeXtArch>().is_err());
/// # Ok::<(), ferrovision::Error>(())
/// ```
impl std::str::FromStr for ConvNeXtArch {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        super::arch::by_name(&ConvNeXtArch::ALL, name)
    }
}

/// Configuration of a [`ConvNeXt`].
#[derive(Config, Debug)]
pub struct ConvNeXtConfig {
    /// Tiny, small, base or large.
    pub arch: ConvNeXtArch,
    /// Outputs of the classifier layer `classifier.2`.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Drop probability of the last block's residual branch (block `i` of `n` drops with
    /// `p · i / (n - 1)`); `None` for the architecture's own.
    #[config(default = "None")]
    pub stochastic_depth_prob: Option<f64>,
    /// Initial value of every block's layer scale.
    #[config(default = 1e-6)]
    pub layer_scale: f64,
}

/// The layers of a [`CNBlock`] at torchvision's `nn.Sequential` indices: 7x7 depthwise
/// convolution, channels last, layer norm, linear to 4x, GELU, linear back, channels first.
/// (The permutes hold their places; [`CNBlock::forward`] computes the same in NCHW.)
pub type CNBlockLayers = (
    Conv2d,
    ChannelsLast,
    LayerNorm,
    Linear,
    Gelu,
    Linear,
    ChannelsFirst,
);

/// torchvision's `CNBlock`: `input + stochastic_depth(layer_scale · block(input))`.
#[derive(Module, Debug)]
pub struct CNBlock {
    /// The residual branch (`block.0`, `block.2`, `block.3`, `block.5` hold weights).
    pub block: CNBlockLayers,
    /// Per-channel scale of the branch, `[channels, 1, 1]`.
    pub layer_scale: Param<Tensor<3>>,
    /// Drops the branch at random in training mode.
    pub stochastic_depth: StochasticDepth,
}

impl CNBlock {
    fn new(channels: usize, layer_scale: f64, drop_prob: f64, device: &Device) -> Self {
        let depthwise = Conv2dConfig::new(channels, channels, [7, 7])
            .with_padding([3, 3])
            .with_groups(channels);
        CNBlock {
            block: (
                truncated_normal_conv(depthwise, device),
                ChannelsLast,
                layer_norm(channels, device),
                truncated_normal_linear(channels, 4 * channels, device),
                Gelu::default(),
                truncated_normal_linear(4 * channels, channels, device),
                ChannelsFirst,
            ),
            layer_scale: Param::from_tensor(
                Tensor::ones([channels, 1, 1], device).mul_scalar(layer_scale),
            ),
            stochastic_depth: StochasticDepth::new(drop_prob, StochasticDepthMode::Row),
        }
    }

    /// Applies the block.
    ///
    /// # Shapes
    /// - input and output: `[batch, channels, h, w]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        // torchvision permutes to channels-last around the layer norm and linear layers; the
        // same sums run here on the channels of each pixel in place (`forward_channels`: the
        // linear layers as 1x1 convolutions), so no permute copies the map.
        let (depthwise, _, norm, expand, gelu, project, _) = &self.block;
        let x = norm.forward_channels(depthwise.forward(input.clone()));
        let x = project.forward_channels(gelu.forward(expand.forward_channels(x)));
        let scale = like(self.layer_scale.val(), &x).unsqueeze::<4>();
        self.stochastic_depth.forward(x * scale) + input
    }
}

/// One entry of `features`. The variant is not part of state-dict keys.
#[derive(Module, Debug)]
pub enum Feature {
    /// `features.0`: 4x4 stride-4 convolution with bias, then channel layer norm.
    Stem((Conv2d, LayerNorm)),
    /// The blocks of one stage (`features.1`, `.3`, `.5`, `.7`).
    Stage(Vec<CNBlock>),
    /// Between stages: channel layer norm, then 2x2 stride-2 convolution with bias.
    Downsample((LayerNorm, Conv2d)),
}

/// torchvision's `ConvNeXt`. Field names are the state-dict keys: `features.0.0.weight`,
/// `features.1.0.block.3.weight`, `features.1.0.layer_scale`, `features.2.1.weight`,
/// `classifier.0.weight`, `classifier.2.weight`, ...
#[derive(Module, Debug)]
pub struct ConvNeXt {
    /// Stem, stages and the downsampling layers between them.
    pub features: Vec<Feature>,
    /// Global average pool.
    pub avgpool: AdaptiveAvgPool2d,
    /// Channel layer norm, flatten, linear (`classifier.2` is the head fine-tuning replaces).
    pub classifier: (LayerNorm, Flatten, Linear),
}

/// ConvNeXt's layer norm, eps 1e-6.
fn layer_norm(channels: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(channels).with_eps(1e-6).init(device)
}

/// torchvision's ConvNeXt init, `trunc_normal_(std=0.02)` (cut at ±2, a hundred standard
/// deviations out, so a normal draw), bias 0.
fn truncated_normal<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Normal(0.0, 0.02),
        device,
    ))
}

fn truncated_normal_conv(config: Conv2dConfig, device: &Device) -> Conv2d {
    let conv = config.init(device);
    let shape = conv.weight.lazy_shape().dims::<4>();
    Conv2d {
        weight: truncated_normal(shape, device),
        bias: Some(Param::from_tensor(Tensor::zeros([shape[0]], device))),
        ..conv
    }
}

fn truncated_normal_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: truncated_normal([d_out, d_in], device),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

impl ConvNeXtConfig {
    /// Builds the network on `device` with torchvision's init, in training mode.
    ///
    /// # Panics
    /// When `stochastic_depth_prob` is outside `[0, 1]`.
    pub fn init(&self, device: &Device) -> ConvNeXt {
        let (widths, depths) = self.arch.stages();
        let drop = self
            .stochastic_depth_prob
            .unwrap_or(self.arch.stochastic_depth_prob());
        let total: usize = depths.iter().sum();
        let stem = Conv2dConfig::new(3, widths[0], [4, 4]).with_stride([4, 4]);
        let mut features = vec![Feature::Stem((
            truncated_normal_conv(stem, device),
            layer_norm(widths[0], device),
        ))];
        let mut index = 0;
        for stage in 0..4 {
            let blocks = (0..depths[stage])
                .map(|_| {
                    let prob = drop * index as f64 / (total as f64 - 1.0);
                    index += 1;
                    CNBlock::new(widths[stage], self.layer_scale, prob, device)
                })
                .collect();
            features.push(Feature::Stage(blocks));
            if let Some(&next) = widths.get(stage + 1) {
                let down = Conv2dConfig::new(widths[stage], next, [2, 2]).with_stride([2, 2]);
                features.push(Feature::Downsample((
                    layer_norm(widths[stage], device),
                    truncated_normal_conv(down, device),
                )));
            }
        }
        let last = widths[3];
        ConvNeXt {
            features,
            avgpool: AdaptiveAvgPool2d::new([1, 1]),
            classifier: (
                layer_norm(last, device),
                Flatten,
                truncated_normal_linear(last, self.num_classes, device),
            ),
        }
    }
}

impl ConvNeXt {
    /// Class scores (logits).
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]` (normalised images; 224x224 for ImageNet weights;
    ///   height and width at least 32)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mut x = input;
        for feature in &self.features {
            x = match feature {
                Feature::Stem((conv, norm)) => norm.forward_channels(conv.forward(x)),
                Feature::Stage(blocks) => blocks.iter().fold(x, |x, block| block.forward(x)),
                Feature::Downsample((norm, conv)) => conv.forward(norm.forward_channels(x)),
            };
        }
        let (norm, flatten, linear) = &self.classifier;
        let x = norm.forward_channels(self.avgpool.forward(x));
        linear.forward(flatten.forward(x))
    }

    /// Training mode for every stochastic depth (PyTorch's `model.train()`).
    pub fn train(self) -> Self {
        crate::nn::train_mode(self)
    }

    /// Evaluation mode for every layer (PyTorch's `model.eval()`).
    pub fn eval(self) -> Self {
        crate::nn::eval_mode(self)
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        self.classifier.2.weight.lazy_shape().dims::<2>()[0]
    }

    /// Learnable parameters, as `sum(p.numel() for p in model.parameters())` counts them.
    pub fn num_parameters(&self) -> usize {
        crate::weights::num_parameters(self)
    }
}
