//! TIFF: the `image` crate, except for two layouts it gets wrong or refuses.
//!
//! * 8-bit CMYK: `image` converts with its own formula; Pillow uses `cmyk2rgb`, so the raw
//!   samples are read with the `tiff` crate and converted here.
//! * 8-bit palette (PhotometricInterpretation 3): neither crate reads it. The indices are read
//!   as gray from a copy whose photometric tag says so, then looked up in the ColorMap, whose
//!   16-bit entries Pillow cuts to their high byte.
//!
//! JPEG-compressed TIFF still goes through `image` (zune-jpeg): up to ±1 from Pillow's
//! libjpeg on a few pixels (see tests/parity_pixels.rs).

use std::io::Cursor;

use image::ImageDecoder;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

use super::{check_size, cmyk_to_rgb, decode_with, pixel_count, DecodeOptions};
use crate::error::{Error, Result};
use crate::image::RgbImage;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Decode(format!("TIFF: {e}"))
}

pub(super) fn decode_tiff(bytes: &[u8], opts: &DecodeOptions) -> Result<(RgbImage, Option<u8>)> {
    if let Some((at, 3)) = photometric(bytes) {
        return Ok((decode_palette(bytes, at, opts)?, None));
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

/// Where the first IFD's PhotometricInterpretation value sits, and the value (an inline SHORT).
fn photometric(b: &[u8]) -> Option<(usize, u16)> {
    let le = b.get(0..2)? == b"II";
    let u16_at = |o: usize| {
        let s = b.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        })
    };
    let s = b.get(4..8)?;
    let ifd = if le {
        u32::from_le_bytes([s[0], s[1], s[2], s[3]])
    } else {
        u32::from_be_bytes([s[0], s[1], s[2], s[3]])
    } as usize;
    for i in 0..u16_at(ifd)? as usize {
        let e = ifd + 2 + i * 12;
        if u16_at(e)? == 262 {
            return (u16_at(e + 2)? == 3).then_some((e + 8, u16_at(e + 8)?));
        }
    }
    None
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

fn decode_palette(bytes: &[u8], photometric_at: usize, opts: &DecodeOptions) -> Result<RgbImage> {
    // BlackIsZero (1) in the copy: same byte length, same byte order either way for 3 -> 1.
    let mut gray = bytes.to_vec();
    let v = if gray[0] == b'I' { [1, 0] } else { [0, 1] };
    gray[photometric_at..photometric_at + 2].copy_from_slice(&v);
    let (w, h, idx) = read_u8(&gray, 1, opts)?;
    let map = Decoder::new(Cursor::new(bytes))
        .and_then(|mut d| d.get_tag_u16_vec(Tag::ColorMap))
        .map_err(err)?;
    if map.len() != 3 * 256 {
        return Err(err(format!("ColorMap has {} entries, not 768", map.len())));
    }
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
