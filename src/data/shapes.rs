//! A built-in dataset: procedurally drawn shapes, written as PNG files in ImageFolder layout.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::seed::mix;
use crate::atomic::{temporary_beside, write_atomically};
use crate::{Error, Result};

/// The classes of [`write_shapes`], in index order.
pub const SHAPES: [&str; 5] = ["circle", "cross", "ring", "square", "triangle"];

/// Options of [`write_shapes`].
#[derive(Debug, Clone, PartialEq)]
pub struct ShapesConfig {
    /// Side of the square images, pixels.
    pub size: u32,
    /// Training images per class.
    pub train_per_class: usize,
    /// Validation images per class.
    pub val_per_class: usize,
    /// Seed of every drawing.
    pub seed: u64,
}

impl Default for ShapesConfig {
    /// 64-pixel images, 400 training and 60 validation images per class, seed 0.
    fn default() -> Self {
        Self {
            size: 64,
            train_per_class: 400,
            val_per_class: 60,
            seed: 0,
        }
    }
}

/// Whether the point `(x, y)`, in the shape's own frame scaled so its radius is 1, is inside.
fn inside(shape: &str, x: f32, y: f32) -> bool {
    match shape {
        "circle" => x * x + y * y <= 1.0,
        "ring" => (0.36..=1.0).contains(&(x * x + y * y)),
        "square" => x.abs() <= 0.75 && y.abs() <= 0.75,
        "triangle" => y >= -0.5 && y <= 1.0 - 3f32.sqrt() * x.abs(),
        "cross" => (x.abs() <= 0.28 && y.abs() <= 1.0) || (y.abs() <= 0.28 && x.abs() <= 1.0),
        _ => false,
    }
}

/// Draws one `shape` of random colour, size, place and angle on a random background, with noise.
pub fn draw_shape(shape: &str, size: u32, rng: &mut StdRng) -> RgbImage {
    let background: [f32; 3] = [rng.random(), rng.random(), rng.random()];
    let mut foreground: [f32; 3];
    loop {
        foreground = [rng.random(), rng.random(), rng.random()];
        let distance: f32 = (0..3).map(|c| (foreground[c] - background[c]).abs()).sum();
        if distance > 0.8 {
            break;
        }
    }
    let s = size as f32;
    let radius = s * rng.random_range(0.28..0.42);
    let cx = rng.random_range(radius..s - radius);
    let cy = rng.random_range(radius..s - radius);
    let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (sin, cos) = angle.sin_cos();
    let mut image = RgbImage::new(size, size);
    for (px, py, pixel) in image.enumerate_pixels_mut() {
        // 2x2 supersampling for smooth edges.
        let mut coverage = 0.0;
        for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let dx = (px as f32 + ox - cx) / radius;
            let dy = (py as f32 + oy - cy) / radius;
            let (x, y) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            if inside(shape, x, y) {
                coverage += 0.25;
            }
        }
        let noise = rng.random_range(-0.04..0.04f32);
        *pixel = Rgb(std::array::from_fn(|c| {
            let v = background[c] + coverage * (foreground[c] - background[c]) + noise;
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        }));
    }
    image
}

/// Writes the shapes dataset under `root`: `root/train/<shape>/NNNN.png` and
/// `root/val/<shape>/NNNN.png` for every class of [`SHAPES`]. The same seed draws the same
/// pictures. Files already there are overwritten.
///
/// ```
/// use ferrovision::data::{write_shapes, ImageFolder, ShapesConfig};
/// let root = std::env::temp_dir().join(format!("ferrovision-doc-shapes-{}", std::process::id()));
/// let config = ShapesConfig { size: 24, train_per_class: 2, val_per_class: 1, seed: 1 };
/// write_shapes(&root, &config)?;
/// let train = ImageFolder::new(root.join("train"))?;
/// assert_eq!((train.classes().len(), train.len()), (5, 10));
/// # std::fs::remove_dir_all(&root).unwrap();
/// # Ok::<(), ferrovision::Error>(())
/// ```
///
/// Into a folder that does not exist yet, the whole dataset is drawn in a temporary sibling
/// folder renamed into place at the end, so an interrupted call leaves no half-written dataset
/// behind; into an existing folder, each file is written atomically (a temporary file renamed
/// over it).
///
/// # Errors
/// [`Error::Io`] / [`Error::Image`] when a folder or file cannot be written.
pub fn write_shapes(root: impl AsRef<Path>, config: &ShapesConfig) -> Result<()> {
    let root = root.as_ref();
    if root.exists() {
        return draw_all(root, config, write_atomically);
    }
    let staging = temporary_beside(root);
    let _ = std::fs::remove_dir_all(&staging);
    // Inside the staging folder plain writes do: the rename publishes the dataset whole.
    let write =
        |path: &Path, bytes: &[u8]| std::fs::write(path, bytes).map_err(|e| Error::io(path, e));
    let result = draw_all(&staging, config, write)
        .and_then(|()| std::fs::rename(&staging, root).map_err(|e| Error::io(root, e)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Draws every image of `config` under `root`, each PNG written by `write`.
fn draw_all(
    root: &Path,
    config: &ShapesConfig,
    write: impl Fn(&Path, &[u8]) -> Result<()>,
) -> Result<()> {
    for (split, count, salt) in [
        ("train", config.train_per_class, 1u64),
        ("val", config.val_per_class, 2),
    ] {
        for (label, shape) in SHAPES.iter().enumerate() {
            let dir = root.join(split).join(shape);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            for i in 0..count {
                let mut rng =
                    StdRng::seed_from_u64(mix(&[config.seed, salt, label as u64, i as u64]));
                let path = dir.join(format!("{i:04}.png"));
                let mut png = Vec::new();
                draw_shape(shape, config.size, &mut rng)
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|source| Error::Image {
                        path: path.clone(),
                        source,
                    })?;
                write(&path, &png)?;
            }
        }
    }
    Ok(())
}
