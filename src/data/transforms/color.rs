//! Colour transforms.

use image::RgbImage;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::ImageTransform;

/// `torchvision.transforms.ColorJitter(brightness, contrast, saturation, hue)`: each enabled
/// adjustment with a random factor, in a random order.
///
/// Factors are drawn from `[max(0, 1 - v), 1 + v]` (hue shifts from `[-hue, hue]`, at most 0.5).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    brightness: f32,
    contrast: f32,
    saturation: f32,
    hue: f32,
}

impl ColorJitter {
    /// Jitter amounts for brightness, contrast, saturation and hue; 0 disables one.
    ///
    /// # Panics
    /// When an amount is negative or `hue` is above 0.5.
    pub fn new(brightness: f32, contrast: f32, saturation: f32, hue: f32) -> Self {
        assert!(
            brightness >= 0.0 && contrast >= 0.0 && saturation >= 0.0 && (0.0..=0.5).contains(&hue),
            "ColorJitter: amounts must be non-negative and hue at most 0.5, got {brightness}, {contrast}, {saturation}, {hue}"
        );
        Self {
            brightness,
            contrast,
            saturation,
            hue,
        }
    }
}

/// ITU-R 601-2 luma in PIL's fixed point (`convert("L")`).
fn luma(p: &[u8]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// PIL's `Image.blend(degenerate, image, factor)`: `d + factor * (x - d)`, truncated and
/// clipped to a byte, with `degenerate` given per pixel.
fn blend(mut image: RgbImage, factor: f32, degenerate: impl Fn(&[u8]) -> u8) -> RgbImage {
    for px in image.as_mut().chunks_exact_mut(3) {
        let d = degenerate(px) as f32;
        for v in px.iter_mut() {
            *v = (d + factor * (*v as f32 - d)).clamp(0.0, 255.0) as u8;
        }
    }
    image
}

/// `torchvision.transforms.functional.adjust_brightness`: blends with black; 0 gives black,
/// 1 the image unchanged, 2 twice as bright.
///
/// ```
/// use ferrovision::data::transforms::adjust_brightness;
/// let image = image::RgbImage::from_pixel(1, 1, image::Rgb([100, 50, 200]));
/// assert_eq!(adjust_brightness(image, 1.5).as_raw(), &[150, 75, 255]);
/// ```
pub fn adjust_brightness(image: RgbImage, factor: f32) -> RgbImage {
    blend(image, factor, |_| 0)
}

/// `torchvision.transforms.functional.adjust_contrast`: blends with the image's mean grey
/// level; 0 gives a flat grey image, 1 the image unchanged.
pub fn adjust_contrast(image: RgbImage, factor: f32) -> RgbImage {
    let n = (image.width() as u64 * image.height() as u64).max(1);
    let sum: u64 = image.as_raw().chunks_exact(3).map(|p| luma(p) as u64).sum();
    let mean = (sum as f64 / n as f64 + 0.5) as u8;
    blend(image, factor, |_| mean)
}

/// `torchvision.transforms.functional.adjust_saturation`: blends with the image's greyscale
/// version; 0 gives grey, 1 the image unchanged, 2 doubles the saturation.
pub fn adjust_saturation(image: RgbImage, factor: f32) -> RgbImage {
    blend(image, factor, luma)
}

/// `torchvision.transforms.functional.adjust_hue`: shifts the hue by `shift` of a full turn
/// (`-0.5..=0.5`) through PIL's 8-bit HSV, as torchvision does on PIL images.
///
/// # Panics
/// When `shift` is outside `[-0.5, 0.5]`.
pub fn adjust_hue(mut image: RgbImage, shift: f64) -> RgbImage {
    assert!(
        (-0.5..=0.5).contains(&shift),
        "adjust_hue: shift must be in [-0.5, 0.5], got {shift}"
    );
    // numpy: np.int32(shift * 255).astype(np.uint8), i.e. truncate, then wrap modulo 256.
    let step = (shift * 255.0) as i32 as u8;
    for px in image.as_mut().chunks_exact_mut(3) {
        let [h, s, v] = rgb_to_hsv(px[0], px[1], px[2]);
        px.copy_from_slice(&hsv_to_rgb(h.wrapping_add(step), s, v));
    }
    image
}

/// PIL's RGB to 8-bit HSV (`convert("HSV")`), with its mix of single and double precision.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max == min {
        return [0, 0, max];
    }
    let range = (max - min) as f32;
    let s = range / max as f32;
    let [rc, gc, bc] = [r, g, b].map(|c| (max - c) as f32 / range);
    // Single-precision variables, double-precision constants: the sums run in f64.
    let h = if r == max {
        bc - gc
    } else if g == max {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
    let byte = |x: f32| ((x as f64 * 255.0) as i32).clamp(0, 255) as u8;
    [byte(h), byte(s), max]
}

/// PIL's 8-bit HSV to RGB.
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    if s == 0 {
        return [v; 3];
    }
    let sector = (h as f32 as f64 * 6.0 / 255.0).floor();
    let f = (h as f32 as f64 * 6.0 / 255.0 - sector) as f32;
    let fs = f * s as f32;
    let level = |x: f64| ((v as f32 as f64 * (1.0 - x / 255.0)).round() as i32).clamp(0, 255) as u8;
    let (p, q, t) = (
        level(s as f64),
        level(fs as f64),
        level((s as f32 - fs) as f64),
    );
    match sector as i32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

impl ImageTransform for ColorJitter {
    fn apply(&self, mut image: RgbImage, rng: &mut StdRng) -> RgbImage {
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |rng: &mut StdRng, v: f32| rng.random_range((1.0 - v).max(0.0)..=1.0 + v);
        for step in order {
            image = match step {
                0 if self.brightness > 0.0 => {
                    adjust_brightness(image, factor(rng, self.brightness))
                }
                1 if self.contrast > 0.0 => adjust_contrast(image, factor(rng, self.contrast)),
                2 if self.saturation > 0.0 => {
                    adjust_saturation(image, factor(rng, self.saturation))
                }
                3 if self.hue > 0.0 => {
                    adjust_hue(image, rng.random_range(-self.hue..=self.hue) as f64)
                }
                _ => image,
            };
        }
        image
    }
}
