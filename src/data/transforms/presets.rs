//! The pipelines torchvision's reference scripts use for ImageNet classification.

use super::{CenterCrop, Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, Resize};

/// Training: `RandomResizedCrop(size)`, `RandomHorizontalFlip()`, `ToTensor()`,
/// `Normalize(ImageNet)`.
pub fn train(size: u32) -> Compose {
    Compose::new()
        .then(RandomResizedCrop::new(size))
        .then(RandomHorizontalFlip::default())
        .normalize(Normalize::imagenet())
}

/// Evaluation: `Resize(size * 256 / 224)`, `CenterCrop(size)`, `ToTensor()`,
/// `Normalize(ImageNet)`; for 224 that is torchvision's `Resize(256)`, `CenterCrop(224)`.
pub fn eval(size: u32) -> Compose {
    Compose::new()
        .then(Resize::new(size * 256 / 224))
        .then(CenterCrop::new(size))
        .normalize(Normalize::imagenet())
}
