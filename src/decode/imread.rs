//! What `cv::imread(path)` with its default flag (`IMREAD_COLOR`) gives the platform's test
//! tools, which pass it to `ji_calc_frame` / `ji_calc_image` as a BGR frame: the judge's
//! decode, without linking OpenCV. `harness` uses it (its default `--decode imread`); the
//! library's own file and buffer calls keep PIL's decode ([`super::decode_image`]).
//!
//! Measured against `cv2.imread` from opencv-python-headless 4.14 (tools/requirements.txt),
//! pixel for pixel, by `tests/imread.rs` on `tools/make_imread_fixtures.py`'s files:
//!
//! * JPEG: libjpeg-turbo with its defaults (accurate integer IDCT, fancy upsampling), as
//!   PIL: the same pixels. Different from PIL: the EXIF orientation (the first APP1 "Exif"
//!   segment) is applied; CMYK and YCCK files are converted with OpenCV's formula
//!   (`k - ((255 - c) * k >> 8)` on the stored values, Adobe marker or not), off by one
//!   from PIL's; a file cut short decodes (libjpeg's warning, the missing part filled as
//!   libjpeg fills it) where PIL refuses it.
//! * PNG (libpng in OpenCV, the `png` crate here): 16-bit samples keep their high byte, gray
//!   included (PIL clamps 16-bit gray to 255); alpha is dropped, palettes and gray expanded;
//!   the orientation of an `eXIf` chunk (before or after the image data; it must start with
//!   the TIFF header) is applied; a file without its IEND chunk is refused (PIL reads it).
//! * WebP (libwebp in both): PIL's pixels, alpha dropped; the orientation of the EXIF chunk
//!   (starting with the TIFF header, as for PNG) is applied.
//! * BMP: OpenCV's own reader, see [`super::cvbmp`].
//! * GIF and TIFF are not emulated ([`Imread::NotEmulated`]): OpenCV reads them with its own
//!   GIF reader and libtiff, whose results were not matched; the harness decodes them as
//!   PIL does and says so.
//!
//! The orientations are applied as `ImageOps.exif_transpose` applies them (measured equal
//! for all eight); values outside 1..=8 are ignored, as OpenCV ignores them.

use super::{apply_orientation, check_size, exif_orientation, DecodeOptions};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use std::io::Cursor;

/// An image as `cv::imread` returns it: a continuous `CV_8UC3` matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CvImage {
    pub width: u32,
    pub height: u32,
    /// Packed BGR, row-major, `width * height * 3` bytes (a `cv::Mat`'s data).
    pub bgr: Vec<u8>,
    /// The container format: "JPEG", "PNG", "BMP" or "WebP".
    pub format: &'static str,
    /// The EXIF orientation OpenCV applied (2..=8; 1 and invalid values change nothing).
    pub orientation: Option<u8>,
    /// A CMYK (or YCCK) JPEG, converted with OpenCV's formula.
    pub cmyk: bool,
}

/// The outcome of [`imread`] for a file it could read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Imread {
    /// Decoded as `cv::imread` decodes it.
    Decoded(CvImage),
    /// A format this emulation does not cover ("GIF", "TIFF"): nothing decoded.
    NotEmulated(&'static str),
}

/// Decodes an encoded image as `cv::imread(path, IMREAD_COLOR)` does (see the module docs).
/// An error means imread returns an empty image for it; images over `max_pixels` are refused
/// before their pixels are decoded (`Error::ImageTooLarge`), as the library refuses them.
pub fn imread(bytes: &[u8], max_pixels: u64) -> Result<Imread> {
    let opts = DecodeOptions {
        exif_transpose: false,
        max_pixels,
    };
    let empty = |e: Error| match e {
        Error::Decode(m) => Error::Decode(format!("cv::imread would return an empty image: {m}")),
        other => other,
    };
    let decoded = match super::sniff(bytes) {
        Some(super::Format::Jpeg) => jpeg(bytes, &opts),
        Some(super::Format::Png) => png(bytes, &opts),
        Some(super::Format::Bmp) => super::cvbmp::decode(bytes, max_pixels).map(|img| CvImage {
            width: img.width,
            height: img.height,
            bgr: img.data,
            format: "BMP",
            orientation: None,
            cmyk: false,
        }),
        Some(super::Format::WebP) => webp(bytes, &opts),
        Some(super::Format::Gif) => return Ok(Imread::NotEmulated("GIF")),
        Some(super::Format::Tiff) => return Ok(Imread::NotEmulated("TIFF")),
        None => Err(Error::Decode(
            "unrecognised image format (not JPEG, PNG, BMP, GIF, WebP or TIFF)".into(),
        )),
    };
    decoded.map(Imread::Decoded).map_err(empty)
}

/// Applies a valid orientation (2..=8) to packed 3-byte pixels; returns what was applied.
fn orient(img: RgbImage, orientation: Option<u8>) -> (RgbImage, Option<u8>) {
    match orientation {
        Some(o @ 2..=8) => (apply_orientation(&img, o), Some(o)),
        _ => (img, None),
    }
}

fn cv_image(img: RgbImage, format: &'static str, orientation: Option<u8>, cmyk: bool) -> CvImage {
    let (img, orientation) = orient(img, orientation);
    CvImage {
        width: img.width,
        height: img.height,
        bgr: img.data,
        format,
        orientation,
        cmyk,
    }
}

/// RGB to BGR in place.
fn swap_rb(mut data: Vec<u8>) -> Vec<u8> {
    for px in data.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
    data
}

// ---------------------------------------------------------------------------------------------
// JPEG

fn jpeg(bytes: &[u8], opts: &DecodeOptions) -> Result<CvImage> {
    use turbojpeg::raw;
    let mut tj = super::TjDecompressor::with_header(bytes)
        .ok_or_else(|| Error::Decode("invalid JPEG header".into()))?;
    let (w, h) = (
        tj.get(raw::TJPARAM_TJPARAM_JPEGWIDTH),
        tj.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if w <= 0 || h <= 0 {
        return Err(Error::Decode(format!("invalid JPEG size {w}x{h}")));
    }
    check_size(w as u64, h as u64, opts)?;
    let cs = tj.get(raw::TJPARAM_TJPARAM_COLORSPACE);
    let cmyk = cs == raw::TJCS_TJCS_CMYK as i32 || cs == raw::TJCS_TJCS_YCCK as i32;
    let (format, bpp) = if cmyk {
        (raw::TJPF_TJPF_CMYK, 4)
    } else {
        (raw::TJPF_TJPF_BGR, 3)
    };
    let (w, h) = (w as usize, h as usize);
    let pitch = w * bpp;
    let mut pixels = super::alloc_buffer(Vec::new(), pitch * h)?;
    // OpenCV's libjpeg settings are libjpeg's defaults: accurate DCT, fancy upsampling.
    if !(tj.set(raw::TJPARAM_TJPARAM_FASTDCT, 0)
        && tj.set(raw::TJPARAM_TJPARAM_FASTUPSAMPLE, 0)
        && tj.set(raw::TJPARAM_TJPARAM_STOPONWARNING, 0))
    {
        return Err(Error::Decode("cannot configure libjpeg-turbo".into()));
    }
    let len = raw::size_t::try_from(bytes.len())
        .map_err(|_| Error::Decode("JPEG file too large".into()))?;
    // SAFETY: `tj.0` is a live handle that has read this file's header; `bytes` is valid for
    // `len` bytes and only read; TurboJPEG writes `h` rows of `pitch` bytes (`w` pixels of
    // `bpp` bytes each) into `pixels`, which holds exactly `pitch * h` bytes, and keeps no
    // pointer after the call.
    let rc = unsafe {
        raw::tj3Decompress8(
            tj.0,
            bytes.as_ptr(),
            len,
            pixels.as_mut_ptr(),
            pitch as i32,
            format,
        )
    };
    // SAFETY: `tj.0` is a live handle.
    if rc != 0 && unsafe { raw::tj3GetErrorCode(tj.0) } != raw::TJERR_TJERR_WARNING as i32 {
        // SAFETY: `tj.0` is a live handle; the string it returns is NUL-terminated and lives
        // until the next call on the handle (copied at once).
        let msg = unsafe { std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(tj.0)) }
            .to_string_lossy()
            .into_owned();
        return Err(Error::Decode(format!("JPEG decode failed: {msg}")));
    }
    // A warning (data cut short, corrupt data): libjpeg decoded every row, filling what was
    // missing, and OpenCV keeps the image.
    let bgr = if cmyk { cmyk_to_bgr(&pixels) } else { pixels };
    let orientation = super::jpeg_exif(bytes).and_then(exif_orientation);
    Ok(cv_image(
        RgbImage::from_raw(w as u32, h as u32, bgr),
        "JPEG",
        orientation,
        cmyk,
    ))
}

/// OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R` on libjpeg's CMYK output.
fn cmyk_to_bgr(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = px[3] as u32;
        let f = |c: u8| (k - (((255 - c as u32) * k) >> 8)) as u8;
        out.extend_from_slice(&[f(px[2]), f(px[1]), f(px[0])]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// PNG

fn png(bytes: &[u8], opts: &DecodeOptions) -> Result<CvImage> {
    if let Some((w, h)) = super::png_ihdr_size(bytes) {
        check_size(w, h, opts)?;
    }
    // No IEND patching (see `decode_png`): libpng reads to the end of the file, and OpenCV
    // refuses a file without its IEND chunk.
    let (w, h, color, buf) = super::read_samples(
        image::codecs::png::PngDecoder::new(Cursor::new(bytes)),
        opts,
    )?;
    let n = super::pixel_count(w as u64, h as u64)?;
    let bgr = samples_to_bgr(&buf, color, n)?;
    Ok(cv_image(
        RgbImage::from_raw(w, h, bgr),
        "PNG",
        png_exif_orientation(bytes),
        false,
    ))
}

/// 8-bit or 16-bit samples to BGR as OpenCV's PNG reader gives them: gray expanded, alpha
/// dropped, 16-bit samples to their high byte (libpng's `png_set_strip_16`).
fn samples_to_bgr(buf: &[u8], color: image::ColorType, n: usize) -> Result<Vec<u8>> {
    use image::ColorType;
    let mut out = super::alloc_buffer(Vec::new(), n * 3)?;
    let (step, gray, hi) = match color {
        ColorType::L8 => (1, true, 0),
        ColorType::La8 => (2, true, 0),
        ColorType::Rgb8 => (3, false, 0),
        ColorType::Rgba8 => (4, false, 0),
        // Native-endian u16 samples: the high byte is the second on a little-endian machine.
        ColorType::L16 => (2, true, cfg!(target_endian = "little") as usize),
        ColorType::La16 => (4, true, cfg!(target_endian = "little") as usize),
        ColorType::Rgb16 => (6, false, cfg!(target_endian = "little") as usize),
        ColorType::Rgba16 => (8, false, cfg!(target_endian = "little") as usize),
        other => {
            return Err(Error::Decode(format!(
                "unsupported decoded color type {other:?}"
            )))
        }
    };
    let wide = matches!(
        color,
        ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16
    );
    let sample = |p: &[u8], c: usize| if wide { p[2 * c + hi] } else { p[c] };
    for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(step)) {
        if gray {
            o.fill(sample(p, 0));
        } else {
            o.copy_from_slice(&[sample(p, 2), sample(p, 1), sample(p, 0)]);
        }
    }
    Ok(out)
}

/// The orientation in the first `eXIf` chunk, which must hold a bare TIFF header (libpng
/// drops one with an "Exif\0\0" prefix); chunks after the image data count too.
fn png_exif_orientation(bytes: &[u8]) -> Option<u8> {
    let mut pos = 8;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
        let typ = &bytes[pos + 4..pos + 8];
        let end = (pos + 8).checked_add(len)?;
        if typ == b"IEND" || end > bytes.len() {
            return None;
        }
        if typ == b"eXIf" {
            return tiff_orientation(&bytes[pos + 8..end]);
        }
        pos = end + 4; // CRC
    }
    None
}

/// The orientation in an EXIF block that starts with its TIFF header, as PNG's `eXIf` and
/// WebP's `EXIF` chunks must (OpenCV ignores one with an "Exif\0\0" prefix there, which
/// only JPEG's APP1 segment has).
fn tiff_orientation(exif: &[u8]) -> Option<u8> {
    let tiff = exif.starts_with(b"II*\0") || exif.starts_with(b"MM\0*");
    tiff.then(|| exif_orientation(exif)).flatten()
}

// ---------------------------------------------------------------------------------------------
// WebP

fn webp(bytes: &[u8], opts: &DecodeOptions) -> Result<CvImage> {
    let (img, _) = super::decode_with(
        image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)),
        opts,
    )?;
    let (w, h) = (img.width, img.height);
    Ok(cv_image(
        RgbImage::from_raw(w, h, swap_rb(img.data)),
        "WebP",
        webp_exif(bytes).and_then(tiff_orientation),
        false,
    ))
}

/// The payload of the RIFF container's first `EXIF` chunk.
fn webp_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let end = (pos + 8).checked_add(len)?.min(bytes.len());
        if &bytes[pos..pos + 4] == b"EXIF" {
            return Some(&bytes[pos + 8..end]);
        }
        pos = (pos + 8).checked_add(len)?.checked_add(len & 1)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_uses_opencvs_formula() {
        // No ink (stored inverted: 255) is white; full black ink (k stored 0) is black.
        assert_eq!(cmyk_to_bgr(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(cmyk_to_bgr(&[10, 200, 30, 0]), [0, 0, 0]);
        // c = 0 (full cyan), k = 255: r = 255 - (255 * 255 >> 8) = 1 (PIL's formula gives 0).
        assert_eq!(cmyk_to_bgr(&[0, 255, 255, 255]), [255, 255, 1]);
    }

    #[test]
    fn sixteen_bit_png_samples_keep_the_high_byte() {
        let v: u16 = 0x12FF;
        let px: Vec<u8> = [v, v.wrapping_add(0x100), v.wrapping_add(0x200)]
            .iter()
            .flat_map(|s| s.to_ne_bytes())
            .collect();
        let bgr = samples_to_bgr(&px, image::ColorType::Rgb16, 1).unwrap();
        assert_eq!(bgr, [0x14, 0x13, 0x12]);
        let gray = samples_to_bgr(&v.to_ne_bytes(), image::ColorType::L16, 1).unwrap();
        assert_eq!(gray, [0x12, 0x12, 0x12]);
    }

    #[test]
    fn gif_and_tiff_are_not_emulated() {
        assert_eq!(
            imread(b"GIF89a\x01\x00\x01\x00", 1 << 20).unwrap(),
            Imread::NotEmulated("GIF")
        );
        assert_eq!(
            imread(b"II*\0\x08\0\0\0", 1 << 20).unwrap(),
            Imread::NotEmulated("TIFF")
        );
        match imread(b"hello", 1 << 20) {
            Err(Error::Decode(m)) => assert!(m.contains("cv::imread would return an empty image")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn png_exif_needs_the_bare_tiff_header() {
        let tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0";
        let chunk = |payload: &[u8]| {
            let mut c = (payload.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(b"eXIf");
            c.extend_from_slice(payload);
            c.extend_from_slice(&[0; 4]);
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(tiff));
        assert_eq!(png_exif_orientation(&png), Some(6));
        let mut prefixed = b"\x89PNG\r\n\x1a\n".to_vec();
        prefixed.extend(chunk(&[b"Exif\0\0".as_slice(), tiff].concat()));
        assert_eq!(png_exif_orientation(&prefixed), None);
    }
}
