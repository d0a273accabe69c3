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

fn gray(p: &[u8]) -> f32 {
    // ITU-R 601-2 luma, as PIL's convert("L").
    (p[0] as f32 * 299.0 + p[1] as f32 * 587.0 + p[2] as f32 * 114.0) / 1000.0
}

fn blend(image: &mut RgbImage, factor: f32, other: impl Fn(&[u8]) -> [f32; 3]) {
    for px in image.as_mut().chunks_exact_mut(3) {
        let o = other(px);
        for c in 0..3 {
            px[c] = (o[c] + factor * (px[c] as f32 - o[c]))
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

fn shift_hue(image: &mut RgbImage, shift: f32) {
    for px in image.as_mut().chunks_exact_mut(3) {
        let [r, g, b] = [
            px[0] as f32 / 255.0,
            px[1] as f32 / 255.0,
            px[2] as f32 / 255.0,
        ];
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta == 0.0 {
            continue; // grey: no hue to shift
        }
        let h = if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        let h = (h + shift).rem_euclid(1.0) * 6.0;
        let (s, v) = (delta / max, max);
        let f = h - h.floor();
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match h.floor() as u32 % 6 {
            0 => [v, t, p],
            1 => [q, v, p],
            2 => [p, v, t],
            3 => [p, q, v],
            4 => [t, p, v],
            _ => [v, p, q],
        };
        for c in 0..3 {
            px[c] = (rgb[c] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
}

impl ImageTransform for ColorJitter {
    fn apply(&self, mut image: RgbImage, rng: &mut StdRng) -> RgbImage {
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |rng: &mut StdRng, v: f32| rng.random_range((1.0 - v).max(0.0)..=1.0 + v);
        for step in order {
            match step {
                0 if self.brightness > 0.0 => {
                    let f = factor(rng, self.brightness);
                    blend(&mut image, f, |_| [0.0; 3]);
                }
                1 if self.contrast > 0.0 => {
                    let f = factor(rng, self.contrast);
                    let n = (image.width() * image.height()).max(1) as f32;
                    let mean = (image.as_raw().chunks_exact(3).map(gray).sum::<f32>() / n).round();
                    blend(&mut image, f, |_| [mean; 3]);
                }
                2 if self.saturation > 0.0 => {
                    let f = factor(rng, self.saturation);
                    blend(&mut image, f, |p| [gray(p).round(); 3]);
                }
                3 if self.hue > 0.0 => {
                    let shift = rng.random_range(-self.hue..=self.hue);
                    shift_hue(&mut image, shift);
                }
                _ => {}
            }
        }
        image
    }
}
