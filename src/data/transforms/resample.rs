//! Antialiased bilinear resampling (PIL's, which torchvision uses on PIL images), through the
//! SIMD convolution resizer `fast_image_resize`.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// The `(left, top, width, height)` region of `image`, resized to `width` x `height` with an
/// antialiased bilinear filter. Regions may reach outside the image only when padding was
/// applied before.
pub(crate) fn resized_crop(
    image: RgbImage,
    region: (u32, u32, u32, u32),
    width: u32,
    height: u32,
) -> RgbImage {
    let (left, top, w, h) = region;
    if (left, top, w, h) == (0, 0, width, height) && image.dimensions() == (width, height) {
        return image;
    }
    let (src_width, src_height) = image.dimensions();
    let src = Image::from_vec_u8(src_width, src_height, image.into_raw(), PixelType::U8x3)
        .expect("an RgbImage buffer is exactly width * height * 3 bytes");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(left as f64, top as f64, w as f64, h as f64);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel type and a crop inside the image");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("width * height * 3 bytes")
}
