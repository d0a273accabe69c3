//! Layers with PyTorch's semantics, parameter shapes, state-dict names and default init.
//!
//! Each layer is a Burn [`Module`](burn::module::Module) built from a `*Config` whose field names
//! and defaults are PyTorch's (`stride`, `padding`, `eps`, `momentum`, ...).

mod activation;
mod buffer;
mod conv;
mod dropout;
pub(crate) mod init;
mod linear;
mod loss;
mod mode;
mod norm;
mod pool;
mod squeeze;

pub use activation::{
    Activation, Gelu, Hardsigmoid, Hardswish, Identity, Relu, Relu6, Sigmoid, Silu,
};
pub use buffer::Buffer;
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use linear::{Linear, LinearConfig};
pub use loss::{CrossEntropyLoss, CrossEntropyLossConfig, Reduction};
pub use mode::{eval_mode, is_training, train_mode};
pub use norm::{BatchNorm2d, BatchNorm2dConfig};
pub use pool::{AdaptiveAvgPool2d, MaxPool2d, MaxPool2dConfig};
pub use squeeze::SqueezeExcitation;
