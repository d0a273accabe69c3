//! Layers with PyTorch's semantics, parameter shapes, state-dict names and default init.
//!
//! Each layer is a Burn [`Module`](burn::module::Module) built from a `*Config` whose field names
//! and defaults are PyTorch's (`stride`, `padding`, `eps`, `momentum`, ...).

mod activation;
mod buffer;
mod conv;
mod conv_norm;
mod dropout;
pub(crate) mod init;
mod layer_norm;
mod linear;
mod loss;
mod mode;
mod norm;
mod pool;
mod reshape;
mod squeeze;
mod stochastic_depth;

pub use activation::{
    Activation, Gelu, Hardsigmoid, Hardswish, Identity, Relu, Relu6, Sigmoid, Silu,
};
pub use buffer::Buffer;
pub use conv::{Conv2d, Conv2dConfig};
pub use conv_norm::{ConvNormActivation, ConvNormActivationConfig, forward_conv_norm};
pub use dropout::Dropout;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::{Linear, LinearConfig};
pub use loss::{CrossEntropyLoss, CrossEntropyLossConfig, Reduction};
pub use mode::{eval_mode, is_training, train_mode};
pub use norm::{BatchNorm2d, BatchNorm2dConfig};
pub use pool::{AdaptiveAvgPool2d, MaxPool2d, MaxPool2dConfig};
pub use reshape::{ChannelsFirst, ChannelsLast, Flatten};
pub use squeeze::SqueezeExcitation;
pub use stochastic_depth::{StochasticDepth, StochasticDepthMode};
