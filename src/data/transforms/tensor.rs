//! `ToTensor` and `Normalize`.

use image::RgbImage;

/// A `[3, height, width]` float image, channel-major, as `ToTensor` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTensor {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// The values, channel-major.
    pub data: Vec<f32>,
}

impl ImageTensor {
    /// `torchvision.transforms.ToTensor`: `[H, W, 3]` bytes to `[3, H, W]` floats in `[0, 1]`.
    pub fn from_image(image: &RgbImage) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut data = vec![0.0f32; 3 * h * w];
        let plane = h * w;
        for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + i] = px[c] as f32 / 255.0;
            }
        }
        Self {
            shape: [3, h, w],
            data,
        }
    }
}

/// `torchvision.transforms.Normalize(mean, std)`: `(x - mean[c]) / std[c]` per channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl Normalize {
    /// Normalisation by `mean` and `std`.
    ///
    /// # Panics
    /// When a standard deviation is not positive.
    pub fn new(mean: [f32; 3], std: [f32; 3]) -> Self {
        assert!(
            std.iter().all(|s| *s > 0.0),
            "Normalize: std must be positive, got {std:?}"
        );
        Self { mean, std }
    }

    /// The ImageNet statistics torchvision's pretrained models expect.
    pub fn imagenet() -> Self {
        Self::new([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    }

    /// Normalises `tensor` in place.
    pub fn apply(&self, tensor: &mut ImageTensor) {
        let plane = tensor.shape[1] * tensor.shape[2];
        for (c, values) in tensor.data.chunks_mut(plane).enumerate() {
            for v in values {
                *v = (*v - self.mean[c]) / self.std[c];
            }
        }
    }
}
