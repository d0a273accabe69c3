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
    ///
    /// ```
    /// use ferrovision::data::transforms::ImageTensor;
    /// let image = image::RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 51]));
    /// let tensor = ImageTensor::from_image(&image);
    /// assert_eq!(tensor.shape, [3, 1, 2]);
    /// assert_eq!(tensor.data, [1.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
    /// ```
    pub fn from_image(image: &RgbImage) -> Self {
        let mut data = Vec::new();
        let shape = write_chw(image, None, &mut data);
        Self { shape, data }
    }
}

/// Appends `image` to `out` as `[3, H, W]` floats, `ToTensor` then `normalize`, and returns
/// the shape. Each channel's 256 possible values are computed once, exactly as torchvision
/// computes them (`x / 255`, then `(x - mean) / std`), so this is a table lookup per byte.
pub(crate) fn write_chw(
    image: &RgbImage,
    normalize: Option<&Normalize>,
    out: &mut Vec<f32>,
) -> [usize; 3] {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let plane = h * w;
    let table: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|byte| {
            let x = byte as f32 / 255.0;
            match normalize {
                Some(n) => (x - n.mean[c]) / n.std[c],
                None => x,
            }
        })
    });
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let (r, rest) = out[start..].split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        r[i] = table[0][px[0] as usize];
        g[i] = table[1][px[1] as usize];
        b[i] = table[2][px[2] as usize];
    }
    [3, h, w]
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
