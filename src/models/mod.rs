//! Image classification models with torchvision's architectures and state-dict names.

mod imagenet;
pub mod resnet;

pub use imagenet::imagenet_categories;
pub use resnet::{PretrainedWeights, ResNet, ResNetConfig, ResNetDepth, ResNetWeights};
