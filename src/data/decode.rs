//! Decoding any supported image file to 8-bit RGB, with limits against decompression bombs.

use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// Limits checked before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
    /// Largest decoder allocation, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// 16,384 pixels a side, 1 GiB: far above any training image, far below a bomb.
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_alloc: 1 << 30,
        }
    }
}

/// Decodes `path` to 8-bit RGB whatever it holds: grayscale, RGBA (alpha dropped, as PIL's
/// `convert("RGB")`), palette, 16-bit (scaled to 8 bits), CMYK JPEG. The format is found from
/// the content, so a PNG named `.jpg` still decodes.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Image`] naming the file when it is
/// empty, truncated, not an image, of an unsupported format, or over `limits`.
pub fn decode_rgb(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let image_error = |source| Error::Image {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let image = reader.decode().map_err(image_error)?;
    Ok(image.into_rgb8())
}
