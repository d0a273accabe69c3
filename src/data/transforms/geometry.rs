//! Geometric transforms: resize, crops, flip, rotation.

use image::RgbImage;
use rand::Rng;
use rand::rngs::StdRng;

use super::ImageTransform;
use super::resample::resized_crop;

/// `torchvision.transforms.Resize` with bilinear antialiased interpolation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    size: ResizeTo,
    max_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ResizeTo {
    ShorterEdge(u32),
    Exact { height: u32, width: u32 },
}

impl Resize {
    /// Scales the shorter edge to `size`, keeping the aspect ratio (`Resize(int)`).
    pub fn new(size: u32) -> Self {
        Self {
            size: ResizeTo::ShorterEdge(size),
            max_size: None,
        }
    }

    /// Resizes to exactly `height` x `width` (`Resize((h, w))`).
    pub fn exact(height: u32, width: u32) -> Self {
        Self {
            size: ResizeTo::Exact { height, width },
            max_size: None,
        }
    }

    /// Caps the longer edge at `max_size` after a shorter-edge resize.
    ///
    /// # Panics
    /// With an exact size (torchvision refuses it too), or when `max_size` is not above the
    /// shorter-edge size.
    pub fn with_max_size(mut self, max_size: u32) -> Self {
        match self.size {
            ResizeTo::ShorterEdge(size) => assert!(
                max_size > size,
                "Resize: max_size ({max_size}) must be larger than size ({size})"
            ),
            ResizeTo::Exact { .. } => {
                panic!("Resize: max_size only applies to a shorter-edge size")
            }
        }
        self.max_size = Some(max_size);
        self
    }

    /// The `(height, width)` an image of `height` x `width` is resized to.
    pub fn output_size(&self, height: u32, width: u32) -> (u32, u32) {
        match self.size {
            ResizeTo::Exact { height, width } => (height, width),
            ResizeTo::ShorterEdge(size) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                let (mut new_short, mut new_long) =
                    (size, (size as f64 * long as f64 / short as f64) as u32);
                if let Some(max) = self.max_size
                    && new_long > max
                {
                    new_short = (max as f64 * new_short as f64 / new_long as f64) as u32;
                    new_long = max;
                }
                if width <= height {
                    (new_long, new_short)
                } else {
                    (new_short, new_long)
                }
            }
        }
    }
}

impl ImageTransform for Resize {
    fn output_size(&self, height: u32, width: u32) -> (u32, u32) {
        Resize::output_size(self, height, width)
    }

    fn apply(&self, image: RgbImage, _rng: &mut StdRng) -> RgbImage {
        let (h, w) = self.output_size(image.height(), image.width());
        let region = (0, 0, image.width(), image.height());
        resized_crop(image, region, w, h)
    }
}

/// `torchvision.transforms.CenterCrop`: the central `height` x `width` region, zero-padded
/// first when the image is smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CenterCrop {
    height: u32,
    width: u32,
}

impl CenterCrop {
    /// A square crop.
    pub fn new(size: u32) -> Self {
        Self::rect(size, size)
    }

    /// A `height` x `width` crop.
    pub fn rect(height: u32, width: u32) -> Self {
        Self { height, width }
    }
}

/// Python's `round` (ties to even), which torchvision's crop offsets use.
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

impl ImageTransform for CenterCrop {
    fn output_size(&self, _height: u32, _width: u32) -> (u32, u32) {
        (self.height, self.width)
    }

    fn apply(&self, image: RgbImage, _rng: &mut StdRng) -> RgbImage {
        let (w, h) = (image.width() as i64, image.height() as i64);
        let (tw, th) = (self.width as i64, self.height as i64);
        // Offsets of the crop in the (virtually) padded image, as torchvision computes them.
        let (pad_left, pad_top) = (((tw - w).max(0)) / 2, ((th - h).max(0)) / 2);
        let (pw, ph) = (
            w + pad_left + (tw - w + 1).max(0) / 2,
            h + pad_top + (th - h + 1).max(0) / 2,
        );
        let top = py_round((ph - th) as f64 / 2.0);
        let left = py_round((pw - tw) as f64 / 2.0);
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let sx = x as i64 + left - pad_left;
            let sy = y as i64 + top - pad_top;
            if (0..w).contains(&sx) && (0..h).contains(&sy) {
                *image.get_pixel(sx as u32, sy as u32)
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }
}

/// `torchvision.transforms.RandomResizedCrop`: a random region of random area and aspect ratio,
/// resized to `size` x `size`; ten tries, then torchvision's central fallback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    size: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// Defaults: scale (0.08, 1.0), ratio (3/4, 4/3).
    pub fn new(size: u32) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// The range of the crop's area, as fractions of the image's.
    pub fn with_scale(mut self, min: f64, max: f64) -> Self {
        self.scale = (min, max);
        self
    }

    /// The range of the crop's aspect ratio (width / height).
    pub fn with_ratio(mut self, min: f64, max: f64) -> Self {
        self.ratio = (min, max);
        self
    }

    /// The `(top, left, height, width)` region for an image of `height` x `width`.
    pub fn region(&self, height: u32, width: u32, rng: &mut StdRng) -> (u32, u32, u32, u32) {
        let area = (height as f64) * (width as f64);
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale.0..=self.scale.1);
            let aspect = rng.random_range(log_lo..=log_hi).exp();
            let w = py_round((target * aspect).sqrt());
            let h = py_round((target / aspect).sqrt());
            if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
                let top = rng.random_range(0..=(height as i64 - h)) as u32;
                let left = rng.random_range(0..=(width as i64 - w)) as u32;
                return (top, left, h as u32, w as u32);
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (width, py_round(width as f64 / self.ratio.0) as u32)
        } else if in_ratio > self.ratio.1 {
            (py_round(height as f64 * self.ratio.1) as u32, height)
        } else {
            (width, height)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }
}

impl ImageTransform for RandomResizedCrop {
    fn output_size(&self, _height: u32, _width: u32) -> (u32, u32) {
        (self.size, self.size)
    }

    fn apply(&self, image: RgbImage, rng: &mut StdRng) -> RgbImage {
        let (top, left, h, w) = self.region(image.height(), image.width(), rng);
        resized_crop(image, (left, top, w, h), self.size, self.size)
    }
}

/// `torchvision.transforms.RandomHorizontalFlip(p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// Flips with probability `p`.
    ///
    /// # Panics
    /// When `p` is outside `[0, 1]`.
    pub fn new(p: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "RandomHorizontalFlip: p must be in [0, 1], got {p}"
        );
        Self { p }
    }
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        Self::new(0.5)
    }
}

impl ImageTransform for RandomHorizontalFlip {
    fn apply(&self, mut image: RgbImage, rng: &mut StdRng) -> RgbImage {
        if rng.random::<f64>() < self.p {
            image::imageops::flip_horizontal_in_place(&mut image);
        }
        image
    }
}

/// `torchvision.transforms.RandomRotation(degrees)`: rotation by a uniform angle in
/// `[-degrees, degrees]` (counter-clockwise for positive angles) about the centre, same size,
/// nearest-neighbour sampling, corners filled with black.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomRotation {
    degrees: f64,
}

impl RandomRotation {
    /// Rotates by up to `degrees` either way.
    ///
    /// # Panics
    /// When `degrees` is negative.
    pub fn new(degrees: f64) -> Self {
        assert!(
            degrees >= 0.0,
            "RandomRotation: degrees must be non-negative, got {degrees}"
        );
        Self { degrees }
    }
}

impl ImageTransform for RandomRotation {
    fn apply(&self, image: RgbImage, rng: &mut StdRng) -> RgbImage {
        rotate(&image, rng.random_range(-self.degrees..=self.degrees))
    }
}

/// `torchvision.transforms.functional.rotate(image, degrees, NEAREST)` on a PIL image: rotates
/// counter-clockwise about the centre, keeping the size; uncovered corners are black.
/// Source positions are stepped in PIL's 16.16 fixed point, so the result is PIL's exactly.
///
/// ```
/// use ferrovision::data::transforms::rotate;
/// let mut image = image::RgbImage::new(3, 2);
/// image.put_pixel(0, 0, image::Rgb([255, 0, 0]));
/// let turned = rotate(&image, 180.0);
/// assert_eq!(turned.get_pixel(2, 1).0, [255, 0, 0]);
/// ```
pub fn rotate(image: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let (cx, cy) = (w as f64 * 0.5, h as f64 * 0.5);
    // The inverse map, output pixel centre -> source, rounded to 15 decimals as PIL does.
    let (sin, cos) = degrees.rem_euclid(360.0).to_radians().sin_cos();
    let (sin, cos) = (round15(sin), round15(cos));
    let (a, b, d, e) = (cos, -sin, sin, cos);
    let c = -a * cx - b * cy + cx;
    let f = -d * cx - e * cy + cy;
    let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
    let (step_x, step_y) = ((fix(a), fix(d)), (fix(b), fix(e)));
    let mut row = (fix(c + (a + b) * 0.5), fix(f + (d + e) * 0.5));
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        let (mut sx, mut sy) = row;
        for x in 0..w {
            let (ix, iy) = (sx >> 16, sy >> 16);
            if (0..w as i64).contains(&ix) && (0..h as i64).contains(&iy) {
                out.put_pixel(x, y, *image.get_pixel(ix as u32, iy as u32));
            }
            sx += step_x.0;
            sy += step_x.1;
        }
        row.0 += step_y.0;
        row.1 += step_y.1;
    }
    out
}

fn round15(x: f64) -> f64 {
    (x * 1e15).round() / 1e15
}
