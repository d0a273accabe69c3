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
//! let tensor = eval.apply(image, &mut rand::rngs::StdRng::seed_from_u64(0))?;
//! assert_eq!(tensor.shape, [3, 224, 224]);
//! # Ok::<(), ferrovision::data::transforms::TransformError>(())
//! ```

mod color;
mod geometry;
pub mod presets;
mod resample;
mod tensor;

pub use crate::error::TransformError;
pub use color::{ColorJitter, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
pub use geometry::{
    CenterCrop, RandomHorizontalFlip, RandomResizedCrop, RandomRotation, Resize, rotate,
};
pub use tensor::{ImageTensor, Normalize};

use image::RgbImage;
use rand::rngs::StdRng;

/// The most pixels (height x width) a [`Compose`] lets any step produce unless told otherwise:
/// 2^26, e.g. 8192 x 8192, far above any classifier's input. A 1 x 16384 strip resized by its
/// shorter edge to 256 would otherwise become 256 x 4,194,304 (3 GiB).
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

/// One step on an 8-bit RGB image. Random steps draw only from `rng`.
pub trait ImageTransform: Send + Sync + std::fmt::Debug {
    /// Transforms `image`.
    fn apply(&self, image: RgbImage, rng: &mut StdRng) -> RgbImage;

    /// The `(height, width)` this step gives an input of `height` x `width`, or the largest it
    /// can give when that is random; [`Compose`] checks it against its pixel cap before the
    /// step runs. The default, for steps that keep the size, returns the input's.
    fn output_size(&self, height: u32, width: u32) -> (u32, u32) {
        (height, width)
    }
}

/// Image transforms in order, then `ToTensor`, then an optional [`Normalize`]
/// (`torchvision.transforms.Compose([..., ToTensor(), Normalize(...)])`).
#[derive(Debug)]
pub struct Compose {
    steps: Vec<Box<dyn ImageTransform>>,
    normalize: Option<Normalize>,
    max_pixels: u64,
}

impl Default for Compose {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            normalize: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl Compose {
    /// No image step: `ToTensor` alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most pixels any step may produce ([`DEFAULT_MAX_PIXELS`] unless set).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
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
    ///
    /// # Errors
    /// [`TransformError::TooLarge`] when a step would pass the pixel cap (checked before it runs).
    pub fn apply_image(
        &self,
        mut image: RgbImage,
        rng: &mut StdRng,
    ) -> Result<RgbImage, TransformError> {
        for step in &self.steps {
            let (input_height, input_width) = (image.height(), image.width());
            let (height, width) = step.output_size(input_height, input_width);
            if height as u64 * width as u64 > self.max_pixels {
                return Err(TransformError::TooLarge {
                    step: format!("{step:?}"),
                    input_height,
                    input_width,
                    height,
                    width,
                    max_pixels: self.max_pixels,
                });
            }
            image = step.apply(image, rng);
        }
        Ok(image)
    }

    /// Runs the image steps, converts to a `[3, H, W]` tensor in `[0, 1]`, and normalises.
    ///
    /// # Errors
    /// As [`apply_image`](Self::apply_image).
    pub fn apply(&self, image: RgbImage, rng: &mut StdRng) -> Result<ImageTensor, TransformError> {
        let mut data = Vec::new();
        let shape = self.apply_into(image, rng, &mut data)?;
        Ok(ImageTensor { shape, data })
    }

    /// As [`apply`](Self::apply), appending the tensor's values to `out` (a batch being filled)
    /// and returning its `[3, H, W]` shape.
    ///
    /// # Errors
    /// As [`apply_image`](Self::apply_image); `out` is left as it was.
    pub fn apply_into(
        &self,
        image: RgbImage,
        rng: &mut StdRng,
        out: &mut Vec<f32>,
    ) -> Result<[usize; 3], TransformError> {
        let image = self.apply_image(image, rng)?;
        Ok(tensor::write_chw(&image, self.normalize.as_ref(), out))
    }
}
