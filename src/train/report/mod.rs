//! Pictures of a run: learning curves ([`Curves`]) and the confusion matrix
//! ([`ConfusionPicture`]), drawn with `plotters` as SVG (for a browser or a document) and PNG
//! (for any image viewer).
//!
//! Text is laid out and rasterised with DejaVu Sans, embedded in the crate, so a picture looks
//! the same on a machine without system fonts.

mod confusion;
mod curves;

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::atomic::write_atomically;
use crate::error::{Error, Result};

pub use confusion::{ConfusionPicture, ConfusionView};
pub use curves::Curves;

/// The font family every picture's text uses (registered by [`font`]).
const FONT: &str = "sans-serif";

/// The file formats a picture is written in by `save`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PictureFormat {
    /// Scalable vector graphics: text stays text.
    Svg,
    /// A PNG image (RGB, 8 bits a channel).
    Png,
}

impl PictureFormat {
    /// Every format, in the order `save` writes them.
    pub const ALL: [PictureFormat; 2] = [PictureFormat::Svg, PictureFormat::Png];

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            PictureFormat::Svg => "svg",
            PictureFormat::Png => "png",
        }
    }
}

/// A picture that can draw itself on any plotters backend at a size it chooses.
pub(crate) trait Draw {
    /// The title, for error messages.
    fn title(&self) -> &str;
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole picture on `area` (of [`Draw::size`]).
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// Registers the embedded DejaVu Sans as [`FONT`] once per process; every drawing and text
/// measurement needs it first.
fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let fonts = [
                (FontStyle::Normal, dejavu::sans::regular()),
                (FontStyle::Bold, dejavu::sans::bold()),
            ];
            for (style, bytes) in fonts {
                plotters::style::register_font(FONT, style, bytes)
                    .map_err(|_| "the embedded DejaVu Sans font does not parse".to_string())?;
            }
            Ok(())
        })
        .clone()
}

/// The width and height in pixels of `text` in [`FONT`] at `size` points (0 if the font is
/// unavailable, which [`svg`] and [`png`] then report).
fn text_size(text: &str, size: f64) -> (u32, u32) {
    if font().is_err() {
        return (0, 0);
    }
    (FONT, size).into_font().box_size(text).unwrap_or((0, 0))
}

fn picture_error(picture: &impl Draw, problem: impl ToString) -> Error {
    Error::Picture {
        picture: picture.title().to_string(),
        problem: problem.to_string(),
    }
}

/// The picture as an SVG document.
fn svg(picture: &impl Draw) -> Result<String> {
    font().map_err(|e| picture_error(picture, e))?;
    let mut text = String::new();
    {
        let area = SVGBackend::with_string(&mut text, picture.size()).into_drawing_area();
        picture
            .draw(&area)
            .and_then(|()| area.present())
            .map_err(|e| picture_error(picture, e))?;
    }
    Ok(text)
}

/// The picture as the bytes of a PNG file.
fn png(picture: &impl Draw) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    font().map_err(|e| picture_error(picture, e))?;
    let (width, height) = picture.size();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        picture
            .draw(&area)
            .and_then(|()| area.present())
            .map_err(|e| picture_error(picture, e))?;
    }
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| picture_error(picture, e))?;
    Ok(bytes)
}

/// Writes `stem.svg` and `stem.png` in `folder`, each atomically.
fn save(picture: &impl Draw, folder: &Path, stem: &str) -> Result<()> {
    for format in PictureFormat::ALL {
        let bytes = match format {
            PictureFormat::Svg => svg(picture)?.into_bytes(),
            PictureFormat::Png => png(picture)?,
        };
        write_atomically(
            &folder.join(format!("{stem}.{}", format.extension())),
            &bytes,
        )?;
    }
    Ok(())
}

/// `text` cut to `max` characters with an ellipsis, so that one long class name cannot stretch
/// a picture without bound.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

/// Implements the public `svg`, `png` and `save` of a picture type through [`Draw`].
macro_rules! picture_methods {
    ($picture:ident) => {
        impl $picture<'_> {
            /// The picture as an SVG document.
            ///
            /// # Errors
            /// [`Error::Picture`](crate::Error::Picture) if plotters cannot draw it.
            pub fn svg(&self) -> crate::Result<String> {
                super::svg(self)
            }

            /// The picture as the bytes of a PNG file.
            ///
            /// # Errors
            /// [`Error::Picture`](crate::Error::Picture) if it cannot be drawn or encoded.
            pub fn png(&self) -> crate::Result<Vec<u8>> {
                super::png(self)
            }

            /// Writes `folder/stem.svg` and `folder/stem.png`, each atomically (a reader
            /// never sees half a picture).
            ///
            /// # Errors
            /// [`Error::Picture`](crate::Error::Picture), or [`Error::Io`](crate::Error::Io)
            /// naming the file that could not be written.
            pub fn save(&self, folder: &std::path::Path, stem: &str) -> crate::Result<()> {
                super::save(self, folder, stem)
            }
        }
    };
}
use picture_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(shorten("circle", 8), "circle");
        assert_eq!(shorten("a_very_long_class_name", 8), "a_very_…");
    }

    #[test]
    fn the_embedded_font_measures_text() {
        let (short, _) = text_size("cat", 12.0);
        let (long, height) = text_size("a much longer label", 12.0);
        assert!(
            short > 0 && long > 3 * short && height > 0,
            "{short} {long} {height}"
        );
    }
}
