//! Image classification models with torchvision's architectures and state-dict names.

pub mod resnet;

pub use resnet::{ResNet, ResNetConfig, ResNetDepth};
