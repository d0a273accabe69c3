//! Image classification models with torchvision's architectures and state-dict names.

mod arch;
pub mod convnext;
pub mod efficientnet;
mod imagenet;
pub mod mobilenet;
pub mod resnet;

pub use arch::{Architecture, Model};
pub use convnext::{ConvNeXt, ConvNeXtArch, ConvNeXtConfig};
pub use efficientnet::{EfficientNet, EfficientNetArch, EfficientNetConfig};
pub use imagenet::imagenet_categories;
pub use mobilenet::{MobileNetV3, MobileNetV3Arch, MobileNetV3Config};
pub use resnet::{PretrainedWeights, ResNet, ResNetConfig, ResNetDepth, ResNetWeights};

/// torchvision's `_make_divisible(value, 8)`: the nearest multiple of 8, at least 8, and not
/// more than 10% below `value` (channel widths of MobileNet and EfficientNet).
pub(crate) fn make_divisible(value: f64) -> usize {
    let rounded = (((value + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * value {
        rounded + 8
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn make_divisible_rounds_as_torchvision() {
        // torchvision.models._utils._make_divisible(v, 8) for each v
        for (value, expected) in [
            (18.0, 24),
            (16.0, 16),
            (35.2, 32),
            (3.0, 8),
            (44.8, 48),
            (60.0, 64),
            (76.8, 80),
            (20.0, 24),
        ] {
            assert_eq!(super::make_divisible(value), expected, "{value}");
        }
    }
}
