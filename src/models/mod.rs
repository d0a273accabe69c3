//! Image classification models with torchvision's architectures and state-dict names.

mod arch;
mod imagenet;
pub mod mobilenet;
pub mod resnet;

pub use arch::{Architecture, Model};
pub use imagenet::imagenet_categories;
pub use mobilenet::{MobileNetV3, MobileNetV3Arch, MobileNetV3Config};
pub use resnet::{PretrainedWeights, ResNet, ResNetConfig, ResNetDepth, ResNetWeights};
