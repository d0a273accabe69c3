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
    /// Largest file read, in bytes (checked before reading, and the read stops there).
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    /// 16,384 pixels a side, 1 GiB of decoder memory, 256 MiB files: far above any training
    /// image, far below a bomb.
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_alloc: 1 << 30,
            max_file_bytes: 256 << 20,
        }
    }
}

/// Decodes `path` to 8-bit RGB whatever it holds: grayscale, RGBA (alpha dropped, as PIL's
/// `convert("RGB")`), palette, 16-bit (scaled to 8 bits), CMYK JPEG. The format is found from
/// the content, so a PNG named `.jpg` still decodes.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::FileRejected`] when it is not a regular
/// file (a FIFO, a device: never opened for a blocking read) or over `limits.max_file_bytes`;
/// [`Error::Image`] naming the file when it is empty, truncated, not an image, of an
/// unsupported format, zero pixels wide or high, or over `limits`.
pub fn decode_rgb(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bytes = crate::files::read_limited(path, limits.max_file_bytes, "an image file")?;
    decode_rgb_bytes(&bytes, limits).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

fn decode_rgb_bytes(bytes: &[u8], limits: DecodeLimits) -> ImageResult<RgbImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
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

/// Whether a JPEG stream reaches its end-of-image marker (`FF D9`) by walking its structure:
/// marker segments are skipped by their length fields (so an `FF D9` inside an EXIF thumbnail
/// does not count), and entropy-coded data is scanned for the next marker (there `FF` is always
/// followed by `00` stuffing, a restart marker or fill bytes). Bytes after the end marker are
/// allowed, as decoders ignore them.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // To the next marker; decoders skip stray bytes between segments, and so do we.
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            // Markers without a length field.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(length) = bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
        else {
            return false;
        };
        if length < 2 {
            return false;
        }
        i += length as usize;
        if i > bytes.len() {
            return false;
        }
        if marker == 0xDA {
            i = skip_entropy_coded(bytes, i);
        }
    }
}

/// The index of the first marker after entropy-coded data starting at `i` (or the end).
fn skip_entropy_coded(bytes: &[u8], mut i: usize) -> usize {
    while i + 1 < bytes.len() {
        if bytes[i] == 0xFF {
            match bytes[i + 1] {
                0x00 | 0xD0..=0xD7 => {
                    i += 2;
                    continue;
                }
                0xFF => {
                    i += 1;
                    continue;
                }
                _ => return i,
            }
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::jpeg_is_complete;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn an_end_marker_inside_a_thumbnail_does_not_count() {
        let mut jpeg = vec![0xFF, 0xD8];
        // An APP1 (EXIF) segment holding a whole thumbnail JPEG, end marker included.
        jpeg.extend(segment(0xE1, &[0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9]));
        jpeg.extend(segment(0xDA, &[1, 2, 3]));
        jpeg.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
        assert!(!jpeg_is_complete(&jpeg), "cut after the scan data");
        jpeg.extend_from_slice(&[0xFF, 0xD9, 0, 0]);
        assert!(jpeg_is_complete(&jpeg));
        // A segment whose length runs past the end.
        let mut cut = vec![0xFF, 0xD8];
        cut.extend(segment(0xE1, &[0xFF, 0xD9, 0, 0, 0, 0]));
        cut.truncate(cut.len() - 2);
        assert!(!jpeg_is_complete(&cut));
    }
}
