//! Decoding any supported image file to 8-bit RGB, with limits against decompression bombs.

use std::io::Cursor;
use std::path::Path;

use image::error::{DecodingError, ImageFormatHint};
use image::{ImageError, ImageFormat, ImageReader, ImageResult, Limits, RgbImage};

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
/// [`Error::Io`] when the file cannot be read; [`Error::Image`] naming the file when it is
/// empty, truncated, not an image, of an unsupported format, zero pixels wide or high, or over
/// `limits`.
pub fn decode_rgb(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb_bytes(&bytes, limits).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

fn decode_rgb_bytes(bytes: &[u8], limits: DecodeLimits) -> ImageResult<RgbImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    if reader.format() == Some(ImageFormat::Jpeg) && !has_end_marker(bytes) {
        // The JPEG decoder fills what is missing with grey; PIL refuses such a file, so do we.
        return Err(ImageError::Decoding(DecodingError::new(
            ImageFormat::Jpeg.into(),
            "truncated JPEG: no end-of-image marker",
        )));
    }
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let format = reader.format();
    let image = reader.decode()?.into_rgb8();
    if image.width() == 0 || image.height() == 0 {
        // A valid header can declare a zero side (`P5 0 1`); no transform can scale it.
        return Err(ImageError::Decoding(DecodingError::new(
            format.map_or(ImageFormatHint::Unknown, Into::into),
            format!(
                "the image is {}x{} pixels: nothing to show",
                image.width(),
                image.height()
            ),
        )));
    }
    Ok(image)
}

/// Whether a JPEG stream holds its end-of-image marker (`FF D9`); trailing bytes after it are
/// allowed, as decoders ignore them. In entropy-coded data `FF` is always followed by `00` or a
/// restart marker, so the pair only occurs as a marker.
fn has_end_marker(bytes: &[u8]) -> bool {
    bytes.windows(2).rev().any(|w| w == [0xFF, 0xD9])
}
