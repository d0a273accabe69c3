//! torchvision's transforms on 8-bit RGB images, then `ToTensor` and `Normalize`.
//!
//! A [`Compose`] runs image transforms in order, then converts to a `[3, H, W]` float tensor in
//! `[0, 1]` (`ToTensor`) and optionally normalises it. Random transforms draw from the RNG they
//! are given; the loader seeds it from (seed, epoch, sample index), so a run's batches do not
//! depend on the number of workers.
//!
//! ```
//! use ferrovision::data::transforms::{CenterCrop, Compose, Normalize, Resize};
//! use rand::SeedableRng;
//! let eval = Compose::new()
//!     .then(Resize::new(256))
//!     .then(CenterCrop::new(224))
//!     .normalize(Normalize::imagenet());
//! let image = image::RgbImage::new(500, 375);
//! let tensor = eval.apply(image, &mut rand::rngs::StdRng::seed_from_u64(0));
//! assert_eq!(tensor.shape, [3, 224, 224]);
//! ```

mod color;
mod geometry;
pub mod presets;
mod resample;
mod tensor;

pub use color::{ColorJitter, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
pub use geometry::{
    CenterCrop, RandomHorizontalFlip, RandomResizedCrop, RandomRotation, Resize, rotate,
};
pub use tensor::{ImageTensor, Normalize};

use image::RgbImage;
use rand::rngs::StdRng;

/// One step on an 8-bit RGB image. Random steps draw only from `rng`.
pub trait ImageTransform: Send + Sync + std::fmt::Debug {
    /// Transforms `image`.
    fn apply(&self, image: RgbImage, rng: &mut StdRng) -> RgbImage;
}

/// Image transforms in order, then `ToTensor`, then an optional [`Normalize`]
/// (`torchvision.transforms.Compose([..., ToTensor(), Normalize(...)])`).
#[derive(Debug, Default)]
pub struct Compose {
    steps: Vec<Box<dyn ImageTransform>>,
    normalize: Option<Normalize>,
}

impl Compose {
    /// No image step: `ToTensor` alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an image step.
    pub fn then(mut self, step: impl ImageTransform + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Normalises the tensor at the end.
    pub fn normalize(mut self, normalize: Normalize) -> Self {
        self.normalize = Some(normalize);
        self
    }

    /// Runs the image steps only, leaving out `ToTensor` and `Normalize`.
    pub fn apply_image(&self, image: RgbImage, rng: &mut StdRng) -> RgbImage {
        self.steps
            .iter()
            .fold(image, |img, step| step.apply(img, rng))
    }

    /// Runs the image steps, converts to a `[3, H, W]` tensor in `[0, 1]`, and normalises.
    pub fn apply(&self, image: RgbImage, rng: &mut StdRng) -> ImageTensor {
        let mut data = Vec::new();
        let shape = self.apply_into(image, rng, &mut data);
        ImageTensor { shape, data }
    }

    /// As [`apply`](Self::apply), appending the tensor's values to `out` (a batch being filled)
    /// and returning its `[3, H, W]` shape.
    pub fn apply_into(&self, image: RgbImage, rng: &mut StdRng, out: &mut Vec<f32>) -> [usize; 3] {
        let image = self.apply_image(image, rng);
        tensor::write_chw(&image, self.normalize.as_ref(), out)
    }
}
