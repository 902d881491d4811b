//! PLACEHOLDER until the libjpeg-turbo decoder lands (helper is writing it).
use crate::error::{Error, Result};
use crate::image::RgbImage;

pub struct DecodeOptions {
    pub exif_transpose: bool,
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            exif_transpose: false,
            max_pixels: 100_000_000,
        }
    }
}

pub fn decode_image(bytes: &[u8], _opts: &DecodeOptions) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| Error::Decode(e.to_string()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Ok(RgbImage::from_raw(w, h, img.into_raw()))
}
