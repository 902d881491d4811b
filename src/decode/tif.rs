//! TIFF: the `image` crate, except for three layouts it gets wrong or refuses.
//!
//! * 8-bit CMYK: `image` converts with its own formula; Pillow uses `cmyk2rgb`, so the raw
//!   samples are read with the `tiff` crate and converted here.
//! * 8-bit palette (PhotometricInterpretation 3): neither crate reads it. The indices are read
//!   as gray from a copy whose photometric tag says so, then looked up in the ColorMap, whose
//!   16-bit entries Pillow cuts to their high byte.
//! * JPEG-compressed strips: `image` decodes them with zune-jpeg, ±1 from Pillow's libjpeg on
//!   some pixels. Each strip, joined with the JPEGTables, goes through our libjpeg-turbo path.
//!   (JPEG in tiles still goes through `image`.)

use std::io::Cursor;

use image::ImageDecoder;
use tiff::decoder::{Decoder, DecodingResult, Limits};

use super::ifd::Ifd;
use super::{check_size, cmyk_to_rgb, decode_with, pixel_count, DecodeOptions};
use crate::error::{Error, Result};
use crate::image::RgbImage;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Decode(format!("TIFF: {e}"))
}

pub(super) fn decode_tiff(bytes: &[u8], opts: &DecodeOptions) -> Result<(RgbImage, Option<u8>)> {
    if let Some(ifd) = Ifd::parse(bytes) {
        if let Some((3, 1, at)) = ifd.entry(PHOTOMETRIC) {
            if ifd.value(PHOTOMETRIC) == Some(3) {
                return Ok((decode_palette(&ifd, at, opts)?, None));
            }
        }
        if is_jpeg_in_strips(&ifd) {
            return Ok((decode_jpeg_strips(&ifd, opts)?, None));
        }
    }
    let dec = image::codecs::tiff::TiffDecoder::new(Cursor::new(bytes));
    match &dec {
        Ok(d) if d.original_color_type() == image::ExtendedColorType::Cmyk8 => {
            let (w, h, raw) = read_u8(bytes, 4, opts)?;
            Ok((RgbImage::from_raw(w, h, cmyk_to_rgb(&raw, false)), None))
        }
        _ => decode_with(dec, opts),
    }
}

const PHOTOMETRIC: u16 = 262;

/// JPEG-compressed (7), 8-bit, chunky, in strips (not tiles): the layouts decoded here.
fn is_jpeg_in_strips(ifd: &Ifd) -> bool {
    ifd.value(259) == Some(7)
        && ifd.values(258).is_some_and(|b| b.iter().all(|&v| v == 8))
        && ifd.value(284).unwrap_or(1) == 1
        && ifd.entry(324).is_none()
        && matches!(ifd.value(PHOTOMETRIC), Some(1 | 2 | 6))
}

/// Each strip of a JPEG-compressed TIFF is a JPEG stream whose tables may sit in the
/// JPEGTables tag. Joined, they are a plain JPEG: libjpeg-turbo decodes it exactly as the
/// libjpeg under Pillow's libtiff does (YCbCr converted by libjpeg, fancy upsampling).
fn decode_jpeg_strips(ifd: &Ifd, opts: &DecodeOptions) -> Result<RgbImage> {
    let (w, h) = match (ifd.value(256), ifd.value(257)) {
        (Some(w), Some(h)) => (w, h),
        _ => return Err(err("missing image width or length")),
    };
    check_size(w, h, opts)?;
    let rows = ifd.value(278).unwrap_or(h).clamp(1, h) as usize;
    let offsets = ifd.values(273).ok_or_else(|| err("missing StripOffsets"))?;
    let counts = ifd
        .values(279)
        .ok_or_else(|| err("missing StripByteCounts"))?;
    let (w, h) = (w as usize, h as usize);
    let strips = h.div_ceil(rows);
    if offsets.len() < strips || counts.len() < strips {
        return Err(err("fewer strips than the image needs"));
    }
    let tables = ifd
        .bytes(347)
        .filter(|t| t.len() >= 4 && t.ends_with(&[0xFF, 0xD9]));
    let mut out = Vec::new();
    out.try_reserve_exact(w * h * 3)
        .map_err(|_| err("cannot allocate the decoded image"))?;
    for s in 0..strips {
        let data = usize::try_from(offsets[s])
            .ok()
            .zip(usize::try_from(counts[s]).ok())
            .and_then(|(o, n)| ifd.b.get(o..o.checked_add(n)?))
            .ok_or_else(|| err("image file is truncated"))?;
        let joined;
        let jpeg = match tables {
            Some(t) if data.starts_with(&[0xFF, 0xD8]) => {
                joined = [&t[..t.len() - 2], &data[2..]].concat();
                &joined[..]
            }
            _ => data,
        };
        let strip = super::decode_jpeg(jpeg, opts, Vec::new())?;
        let want = rows.min(h - s * rows);
        if strip.width as usize != w || (strip.height as usize) < want {
            return Err(err(format!(
                "strip {s} is {}x{}, expected {w}x{want}",
                strip.width, strip.height
            )));
        }
        out.extend_from_slice(&strip.data[..w * want * 3]);
    }
    Ok(RgbImage::from_raw(w as u32, h as u32, out))
}

/// The first image's samples as bytes, `channels` per pixel, chunky; anything else is refused.
fn read_u8(bytes: &[u8], channels: usize, opts: &DecodeOptions) -> Result<(u32, u32, Vec<u8>)> {
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(err)?;
    let (w, h) = dec.dimensions().map_err(err)?;
    check_size(w as u64, h as u64, opts)?;
    let want = pixel_count(w as u64, h as u64)? * channels;
    let mut limits = Limits::default();
    limits.decoding_buffer_size = want.max(1 << 20);
    let mut dec = dec.with_limits(limits);
    match dec.read_image().map_err(err)? {
        DecodingResult::U8(raw) if raw.len() == want => Ok((w, h, raw)),
        _ => Err(err(
            "unsupported sample layout (planar, extra samples or not 8-bit)",
        )),
    }
}

fn decode_palette(ifd: &Ifd, photometric_at: usize, opts: &DecodeOptions) -> Result<RgbImage> {
    let map = ifd.values(320).ok_or_else(|| err("missing ColorMap"))?;
    if map.len() != 3 * 256 {
        return Err(err(format!("ColorMap has {} entries, not 768", map.len())));
    }
    // BlackIsZero (1) in the copy: same byte length, same byte order either way for 3 -> 1.
    let mut gray = ifd.b.to_vec();
    let v = if ifd.le { [1, 0] } else { [0, 1] };
    gray[photometric_at..photometric_at + 2].copy_from_slice(&v);
    let (w, h, idx) = read_u8(&gray, 1, opts)?;
    let mut out = Vec::new();
    out.try_reserve_exact(idx.len() * 3)
        .map_err(|_| err("cannot allocate the decoded image"))?;
    for &i in &idx {
        let i = i as usize;
        out.extend_from_slice(&[
            (map[i] >> 8) as u8,
            (map[256 + i] >> 8) as u8,
            (map[512 + i] >> 8) as u8,
        ]);
    }
    Ok(RgbImage::from_raw(w, h, out))
}
