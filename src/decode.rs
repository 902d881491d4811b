//! Image decoding that reproduces `PIL.Image.open(f).convert('RGB')` (Pillow 13.0).
//!
//! * JPEG goes through libjpeg-turbo (the `turbojpeg` crate): accurate integer IDCT and fancy
//!   upsampling, as Pillow. CMYK/YCCK JPEGs are decoded to CMYK and converted with Pillow's
//!   formula for inverted (Adobe) CMYK.
//! * BMP and GIF (first frame) follow Pillow's plugins in [`bmp`] and [`gif`] (bit fields, RLE,
//!   frames that do not cover the canvas, transparent indices).
//! * PNG, WebP and TIFF go through the `image` crate. 16-bit samples are converted by hand:
//!   RGB(A) and LA keep the high byte as Pillow does, 16-bit grayscale (Pillow's `I;16`) is
//!   clamped to 255. CMYK, 8-bit palette and JPEG-in-strips TIFFs are read by hand ([`tif`]).
//! * Alpha is dropped, never composited.
//! * The header is read first; images declaring more than `max_pixels` pixels are refused with
//!   [`Error::ImageTooLarge`] before any pixel buffer is allocated.
//! * [`decode_image_window`] (the engine's encoded-image path) decodes a JPEG only around the
//!   pixels the preprocessing reads, with the same result there and the same errors.
//! * EXIF orientation is ignored unless [`DecodeOptions::exif_transpose`] asks for it, in which
//!   case it is applied like `PIL.ImageOps.exif_transpose`.

mod bmp;
mod cvbmp;
mod gif;
mod ifd;
pub mod imread;
mod tif;

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use image::{ColorType, ImageDecoder};

use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::resize::Roi;

/// How to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Apply the EXIF orientation tag (2..8) like `PIL.ImageOps.exif_transpose`.
    /// Off by default: `PIL.Image.open` does not rotate.
    pub exif_transpose: bool,
    /// Refuse images whose header declares more pixels than this.
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

/// Container formats recognised from their magic bytes (as Pillow's `_accept` functions do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Bmp,
    Gif,
    WebP,
    Tiff,
}

fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(b"BM") {
        Some(Format::Bmp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(Format::Tiff)
    } else {
        None
    }
}

/// Decodes an encoded image (JPEG, PNG, BMP, WebP, GIF, TIFF) to packed 8-bit RGB, pixel for
/// pixel what `PIL.Image.open(f).convert('RGB')` gives.
pub fn decode_image(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    decode_image_reusing(bytes, opts, Vec::new())
}

/// [`decode_image`] that decodes JPEGs into `reuse` (a buffer from an earlier image, taken
/// back from its `RgbImage::data`), so a steady stream of same-sized images allocates and
/// zero-fills nothing. Other formats decode through the `image` crate's own buffers.
pub fn decode_image_reusing(
    bytes: &[u8],
    opts: &DecodeOptions,
    reuse: Vec<u8>,
) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::Decode("empty input".into()));
    }
    let format = sniff(bytes).ok_or_else(|| {
        Error::Decode("unrecognised image format (not JPEG, PNG, BMP, GIF, WebP or TIFF)".into())
    })?;
    let (img, orientation) = match format {
        Format::Jpeg => {
            let img = decode_jpeg(bytes, opts, reuse)?;
            let o = if opts.exif_transpose {
                jpeg_exif(bytes).and_then(exif_orientation)
            } else {
                None
            };
            (img, o)
        }
        Format::Png => {
            // The IHDR comes first in every PNG: refuse a bomb before the decoder looks
            // further (it would otherwise report a missing IDAT first).
            if let Some((w, h)) = png_ihdr_size(bytes) {
                check_size(w, h, opts)?;
            }
            let img = decode_png(bytes, opts)?;
            // Our own chunk walk: Pillow also reads an eXIf chunk that comes after the image
            // data, where the png crate does not look.
            let o = if opts.exif_transpose {
                png_exif(bytes).and_then(exif_orientation)
            } else {
                None
            };
            (img, o)
        }
        Format::Bmp => (bmp::decode_bmp(bytes, opts)?, None),
        Format::Gif => (gif::decode_gif(bytes, opts)?, None),
        Format::WebP => decode_with(
            image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)),
            opts,
        )?,
        Format::Tiff => tif::decode_tiff(bytes, opts)?,
    };
    Ok(match orientation {
        Some(o) if opts.exif_transpose => apply_orientation(&img, o),
        _ => img,
    })
}

/// [`decode_image_reusing`] for a caller that reads only part of the image: `window(width,
/// height)` names the source pixels it will read (see `preprocess::source_window`), or `None`
/// for all of them. A baseline or progressive 8-bit YCbCr or grayscale JPEG with no EXIF
/// rotation to apply is then decoded only where needed (see [`decode_jpeg_window`]); every
/// other input is decoded whole, exactly as [`decode_image_reusing`] does.
///
/// Returns the image (always full-size, in full-image coordinates) and the region that was
/// decoded when it is not the whole image: it contains the window, and pixels outside it
/// hold unspecified values (whatever the reused buffer held). Inside it the pixels, and the
/// errors for broken files, are those of a full decode.
pub fn decode_image_window(
    bytes: &[u8],
    opts: &DecodeOptions,
    reuse: Vec<u8>,
    window: &dyn Fn(u32, u32) -> Option<Roi>,
) -> Result<(RgbImage, Option<Roi>)> {
    if sniff(bytes) == Some(Format::Jpeg) {
        // Orientations 2..8 move pixels, so the window (in the rotated image's
        // coordinates) does not apply to the stored one: those decode whole.
        let rotates = opts.exif_transpose
            && jpeg_exif(bytes)
                .and_then(exif_orientation)
                .is_some_and(|o| o != 1);
        if !rotates {
            let (img, region) =
                decode_jpeg_window(bytes, opts, reuse, window, JPEG_WINDOW_MARGIN, Bands::Auto)?;
            return Ok((img, region));
        }
    }
    decode_image_reusing(bytes, opts, reuse).map(|img| (img, None))
}

/// Width and height from a PNG's IHDR chunk (bytes 16..24), if the header is there.
fn png_ihdr_size(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

fn check_size(width: u64, height: u64, opts: &DecodeOptions) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Decode(format!(
            "image has zero size ({width}x{height})"
        )));
    }
    let pixels = width.saturating_mul(height);
    if pixels > opts.max_pixels {
        return Err(Error::ImageTooLarge {
            width,
            height,
            pixels,
            limit: opts.max_pixels,
        });
    }
    Ok(())
}

/// Allocates a zeroed buffer, reporting allocation failure as an error instead of aborting.
/// A `len`-byte buffer, reusing `v` (left as it is when it already has that length: the
/// decoder overwrites every byte).
fn alloc_buffer(mut v: Vec<u8>, len: usize) -> Result<Vec<u8>> {
    // A pooled buffer far larger than this image needs is let go, so one huge image does not
    // keep its allocation alive through every later small one.
    if v.capacity() > len.saturating_mul(2).max(1 << 20) {
        v = Vec::new();
    }
    if v.len() != len {
        v.clear();
        v.try_reserve_exact(len).map_err(|_| {
            Error::Decode(format!("cannot allocate {len} bytes for the decoded image"))
        })?;
        v.resize(len, 0);
    }
    Ok(v)
}

fn pixel_count(width: u64, height: u64) -> Result<usize> {
    usize::try_from(width.saturating_mul(height))
        .map_err(|_| Error::Decode("image dimensions overflow".into()))
}

// ---------------------------------------------------------------------------------------------
// JPEG

/// libjpeg warnings come back from TurboJPEG as errors, although the image was fully decoded.
/// Pillow ignores every warning except running out of data ("image file is truncated").
fn is_libjpeg_warning(msg: &str) -> bool {
    const WARNINGS: &[&str] = &[
        "Corrupt JPEG data",
        "Inconsistent progression sequence",
        "Unknown Adobe color transform code",
        "Warning: unknown JFIF revision",
        "Invalid SOS parameters for sequential JPEG",
        "Application transferred too many scanlines",
        "Premature end of JPEG file",
        "Warning: thumbnail image size does not match data length",
    ];
    WARNINGS.iter().any(|w| msg.contains(w))
}

const JPEG_EOF_WARNING: &str = "Premature end of JPEG file";

fn decode_jpeg(bytes: &[u8], opts: &DecodeOptions, reuse: Vec<u8>) -> Result<RgbImage> {
    let mut dec = turbojpeg::Decompressor::new()
        .map_err(|e| Error::Decode(format!("cannot initialise libjpeg-turbo: {e}")))?;
    let header = dec
        .read_header(bytes)
        .map_err(|e| Error::Decode(format!("invalid JPEG header: {e}")))?;
    let (w, h) = (header.width as u64, header.height as u64);
    check_size(w, h, opts)?;
    let n = pixel_count(w, h)?;
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let format = if cmyk {
        turbojpeg::PixelFormat::CMYK
    } else {
        turbojpeg::PixelFormat::RGB
    };
    let bpp = format.size();
    let mut pixels = alloc_buffer(
        reuse,
        n.checked_mul(bpp)
            .ok_or_else(|| Error::Decode("image dimensions overflow".into()))?,
    )?;

    let run = |dec: &mut turbojpeg::Decompressor, data: &[u8], pixels: &mut [u8]| {
        let out = turbojpeg::Image {
            pixels,
            width: w as usize,
            pitch: w as usize * bpp,
            height: h as usize,
            format,
        };
        dec.decompress(data, out)
    };

    if let Err(e) = run(&mut dec, bytes, &mut pixels) {
        let msg = e.to_string();
        if !is_libjpeg_warning(&msg) {
            return Err(Error::Decode(format!("JPEG decode failed: {msg}")));
        }
        if msg.contains(JPEG_EOF_WARNING) {
            // Out of data before the EOI marker: Pillow raises "image file is truncated"
            // (even when only the EOI marker itself is missing).
            return Err(Error::Decode(
                "JPEG data is truncated (image file is truncated)".into(),
            ));
        }
        // Any other libjpeg warning: the image was decoded in full, and Pillow ignores it.
    }

    if cmyk {
        Ok(RgbImage::from_raw(
            w as u32,
            h as u32,
            cmyk_to_rgb(&pixels, true),
        ))
    } else {
        Ok(RgbImage::from_raw(w as u32, h as u32, pixels))
    }
}

/// Pixels decoded beyond the window on every side. libjpeg's "fancy" 4:2:2 / 4:2:0 chroma
/// upsampling treats the left and right edges of a partially decoded row as image edges,
/// so the columns next to them can differ from a full decode (libjpeg.txt, "Partial image
/// decompression"); the decode also starts on an iMCU row above the window. 16 pixels is one
/// iMCU (the widest is 16 for 4:2:0 / 4:2:2, 32 for 4:1:1) and far more than the two
/// columns the upsampler touches; tests/partial_decode.rs checks it, and that a margin of 0
/// is not enough.
const JPEG_WINDOW_MARGIN: u32 = 16;

/// Decode only a region when it is at most this fraction of the image: below that, the
/// saving does not repay the cropped decode's setup.
const PARTIAL_MAX_FRACTION: f64 = 0.9;

/// A TurboJPEG decompressor handle of our own (the `turbojpeg` crate does not expose cropped
/// decoding), destroyed on drop.
struct TjDecompressor(turbojpeg::raw::tjhandle);

impl TjDecompressor {
    /// A decompressor that has read the JPEG header of `bytes` (needed before decompressing);
    /// None when TurboJPEG cannot make one or rejects the header.
    fn with_header(bytes: &[u8]) -> Option<TjDecompressor> {
        // SAFETY: tj3Init has no preconditions; it returns a new handle or null.
        let h = unsafe { turbojpeg::raw::tj3Init(turbojpeg::raw::TJINIT_TJINIT_DECOMPRESS as _) };
        let tj = (!h.is_null()).then_some(TjDecompressor(h))?;
        let len = turbojpeg::raw::size_t::try_from(bytes.len()).ok()?;
        // SAFETY: `tj.0` is a live decompression handle; `bytes` is a valid slice of `len`
        // bytes that outlives the call (TurboJPEG only reads it, and keeps no pointer to it
        // after returning).
        let ok = unsafe { turbojpeg::raw::tj3DecompressHeader(tj.0, bytes.as_ptr(), len) == 0 };
        ok.then_some(tj)
    }

    fn get(&self, param: turbojpeg::raw::TJPARAM) -> i32 {
        // SAFETY: `self.0` is a live handle from tj3Init (destroyed only in drop); tj3Get
        // reads a parameter and returns -1 for an unknown one.
        unsafe { turbojpeg::raw::tj3Get(self.0, param as _) }
    }

    fn set(&mut self, param: turbojpeg::raw::TJPARAM, value: i32) -> bool {
        // SAFETY: as in `get`; tj3Set validates the parameter and value.
        unsafe { turbojpeg::raw::tj3Set(self.0, param as _, value) == 0 }
    }
}

impl Drop for TjDecompressor {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from tj3Init, is not null, and is destroyed only here.
        unsafe { turbojpeg::raw::tj3Destroy(self.0) }
    }
}

/// The region to decode for `window` in a `w x h` JPEG with the given subsampling: the window
/// widened by `margin` on every side, its left edge moved left to an iMCU column boundary (as
/// TurboJPEG requires) and its top to an iMCU row boundary, clamped to the image. It reaches
/// the last row unless `stop_early` (see [`rows_below_may_be_skipped`]): when TurboJPEG skips
/// the last rows it stops reading the file there, so a file cut below the window would
/// decode instead of failing as truncated like a full decode.
fn jpeg_region(
    w: u32,
    h: u32,
    window: Roi,
    subsamp: turbojpeg::Subsamp,
    margin: u32,
    stop_early: bool,
) -> Roi {
    let (mcu_w, mcu_h) = (subsamp.mcu_width() as u32, subsamp.mcu_height() as u32);
    let x0 = window.x.min(w).saturating_sub(margin) / mcu_w * mcu_w;
    let y0 = window.y.min(h).saturating_sub(margin) / mcu_h * mcu_h;
    let x1 = (window.x.saturating_add(window.width))
        .saturating_add(margin)
        .min(w);
    let y1 = if stop_early {
        (window.y.saturating_add(window.height))
            .saturating_add(margin)
            .min(h)
    } else {
        h
    };
    Roi {
        x: x0,
        y: y0,
        width: x1.saturating_sub(x0),
        height: y1.saturating_sub(y0),
    }
}

/// Whether a cropped decode may skip the rows below the window and still end as a full
/// decode would. Skipping to the end makes libjpeg stop reading the file (it marks the end of
/// image as reached), so it is allowed only when the full decode could not have met the end
/// of the data either:
///
/// * progressive files: libjpeg reads every scan, to the EOI marker, before the first row
///   comes out, whatever is skipped afterwards;
/// * single-scan files whose entropy-coded data is followed by the EOI marker: the first
///   marker after the scan's data, restart markers aside, is EOI. A full decode's Huffman or
///   arithmetic decoder stops at the first marker it meets (reading no further: missing data
///   then decodes as zeros, with a warning Pillow ignores), and the end of the decode reads
///   that EOI, so it never runs out of data; and what it meets in the skipped rows can only
///   be such warnings.
///
/// Anything unusual before the scan (bytes between segments, a second SOS) answers `false`.
fn rows_below_may_be_skipped(bytes: &[u8], progressive: bool) -> bool {
    if progressive {
        return true;
    }
    let n = bytes.len();
    // The marker segments from SOI to the first SOS, as libjpeg walks them.
    let mut i = 2;
    let data = loop {
        if i >= n || bytes[i] != 0xFF {
            return false;
        }
        while i < n && bytes[i] == 0xFF {
            i += 1; // fill bytes
        }
        if i + 2 >= n {
            return false;
        }
        let marker = bytes[i];
        let len = u16::from_be_bytes([bytes[i + 1], bytes[i + 2]]) as usize;
        match marker {
            // Segments with a length: SOFn, DHT, DQT, DRI, APPn, COM, ...
            0xC0..=0xCF | 0xDB..=0xDF | 0xE0..=0xFE if len >= 2 => i += 1 + len,
            0xDA if len >= 2 => break i + 1 + len,
            _ => return false,
        }
    };
    // The entropy-coded data: the first marker that is not a restart marker.
    let mut i = data;
    while i < n {
        let Some(p) = bytes[i..].iter().position(|&b| b == 0xFF) else {
            return false;
        };
        i += p;
        while i < n && bytes[i] == 0xFF {
            i += 1;
        }
        match bytes.get(i) {
            Some(0x00 | 0xD0..=0xD7) => i += 1, // a stuffed 0xFF byte, RSTn
            Some(&m) => return m == 0xD9,
            None => return false,
        }
    }
    false
}

fn tj_subsamp(v: i32) -> Option<turbojpeg::Subsamp> {
    use turbojpeg::raw;
    use turbojpeg::Subsamp;
    Some(match v {
        x if x == raw::TJSAMP_TJSAMP_444 => Subsamp::None,
        x if x == raw::TJSAMP_TJSAMP_422 => Subsamp::Sub2x1,
        x if x == raw::TJSAMP_TJSAMP_420 => Subsamp::Sub2x2,
        x if x == raw::TJSAMP_TJSAMP_GRAY => Subsamp::Gray,
        x if x == raw::TJSAMP_TJSAMP_440 => Subsamp::Sub1x2,
        x if x == raw::TJSAMP_TJSAMP_411 => Subsamp::Sub4x1,
        x if x == raw::TJSAMP_TJSAMP_441 => Subsamp::Sub1x4,
        _ => return None,
    })
}

/// A JPEG decoded only in the region around `window(width, height)` (see `jpeg_region`;
/// `margin` pixels around the window, 16 in [`decode_image_window`]; other values are for
/// tests), into a full-size image at the region's place, with TurboJPEG's cropped
/// decompression (`tj3SetCroppingRegion`: columns are cropped with `jpeg_crop_scanline`; rows
/// above, and below when `rows_below_may_be_skipped`, skipped with `jpeg_skip_scanlines`).
/// The decoder runs with TurboJPEG's defaults, as the `turbojpeg` crate's `Decompressor` of
/// `decode_jpeg` does: accurate integer IDCT and fancy upsampling (set explicitly).
///
/// A large region of a baseline file is decoded as two bands of rows at once, on libtorch's
/// intra-op threads (`bands`, see [`Bands`]): each band is a cropped decode of its own, so the
/// pixels are those of one decode. The band below must entropy-decode every row above it
/// (a JPEG cannot be decoded from the middle), which is why the split is not in the middle.
///
/// Everything that is not the plain case goes to `decode_jpeg`, so that the pixels and the
/// errors are the full decode's: no window, a region not much smaller than the image, a
/// header TurboJPEG rejects, a size over `max_pixels`, CMYK/YCCK, 12-bit or lossless data, an
/// unknown subsampling, and any error or warning from the cropped decode itself (the full
/// decode then decides, as before, between a warning Pillow ignores and an error).
///
/// Returns the image and the decoded region (`None`: the whole image).
pub fn decode_jpeg_window(
    bytes: &[u8],
    opts: &DecodeOptions,
    reuse: Vec<u8>,
    window: &dyn Fn(u32, u32) -> Option<Roi>,
    margin: u32,
    bands: Bands,
) -> Result<(RgbImage, Option<Roi>)> {
    use turbojpeg::raw;
    let full = |reuse| decode_jpeg(bytes, opts, reuse).map(|img| (img, None));
    let Some(mut tj) = TjDecompressor::with_header(bytes) else {
        return full(reuse);
    };
    let (w, h) = (
        tj.get(raw::TJPARAM_TJPARAM_JPEGWIDTH),
        tj.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let colorspace = tj.get(raw::TJPARAM_TJPARAM_COLORSPACE) as raw::TJCS;
    let plain = (colorspace == raw::TJCS_TJCS_YCbCr || colorspace == raw::TJCS_TJCS_GRAY)
        && tj.get(raw::TJPARAM_TJPARAM_PRECISION) == 8
        && tj.get(raw::TJPARAM_TJPARAM_LOSSLESS) == 0;
    let subsamp = tj_subsamp(tj.get(raw::TJPARAM_TJPARAM_SUBSAMP));
    let (Ok(w), Ok(h), true, Some(subsamp)) = (u32::try_from(w), u32::try_from(h), plain, subsamp)
    else {
        return full(reuse);
    };
    if w == 0 || h == 0 || check_size(w as u64, h as u64, opts).is_err() {
        return full(reuse);
    }
    let Some(win) = window(w, h) else {
        return full(reuse);
    };
    let progressive = tj.get(raw::TJPARAM_TJPARAM_PROGRESSIVE) == 1;
    let stop_early = rows_below_may_be_skipped(bytes, progressive);
    let region = jpeg_region(w, h, win, subsamp, margin, stop_early);
    let fraction = (region.width as f64 * region.height as f64) / (w as f64 * h as f64);
    if region.width == 0 || region.height == 0 || fraction > PARTIAL_MAX_FRACTION {
        return full(reuse);
    }
    let Ok(n) = pixel_count(w as u64, h as u64) else {
        return full(reuse);
    };
    let stride = w as usize * 3;
    let offset = (region.y as usize * w as usize + region.x as usize) * 3;
    // TurboJPEG writes `region.height` rows `stride` bytes apart from `offset`, each
    // `region.width * 3` bytes long; its contract asks for `stride * rows` bytes from there,
    // which is `region.x * 3` bytes past the image: that slack is allocated and cut off after.
    let image_len = n * 3;
    let mut pixels = alloc_buffer(reuse, image_len)?;
    let needed = (offset + stride * region.height as usize).max(image_len);
    if pixels.try_reserve_exact(needed - image_len).is_err() {
        return full(pixels);
    }
    pixels.resize(needed, 0);
    let split = band_split(region, subsamp, progressive, bands);
    let ok = match split {
        None => decompress_region(&mut tj, bytes, region, &mut pixels[offset..], stride),
        Some(s) => {
            // Two bands of rows, each decoded by its own decompressor on its own thread, into
            // disjoint parts of `pixels`: band A's rows end where band B's first row starts
            // (at column `region.x`), and each part is `stride * rows` bytes or more.
            let (a, b) = pixels[offset..].split_at_mut((s - region.y) as usize * stride);
            let top = Roi {
                height: s - region.y,
                ..region
            };
            let bottom = Roi {
                y: s,
                height: region.y + region.height - s,
                ..region
            };
            let parts = [Mutex::new(Some((top, a))), Mutex::new(Some((bottom, b)))];
            let done = [AtomicBool::new(false), AtomicBool::new(false)];
            crate::parallel::for_each(parts.len(), |i| {
                let part = parts[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((crop, dst)) = part {
                    let ok = TjDecompressor::with_header(bytes)
                        .is_some_and(|mut tj| decompress_region(&mut tj, bytes, crop, dst, stride));
                    done[i].store(ok, Ordering::SeqCst);
                }
            });
            done.iter().all(|d| d.load(Ordering::SeqCst))
        }
    };
    pixels.truncate(image_len);
    if !ok {
        // An error, or a warning (corrupt data, a truncated file): the full decode gives the
        // answer and the message a full decode gives.
        return full(pixels);
    }
    Ok((RgbImage::from_raw(w, h, pixels), Some(region)))
}

/// How [`decode_jpeg_window`] spreads its work over libtorch's intra-op threads
/// ([`crate::parallel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bands {
    /// Two bands of rows decoded at once when it pays: a baseline (single-scan) file, a
    /// region of at least `SPLIT_MIN_PIXELS` (100k), and two threads or more.
    Auto,
    /// One decode.
    One,
    /// Two bands split at this image row (moved up to an iMCU row boundary), whatever the
    /// size, the file or the thread count; one decode when that leaves a band empty (tests).
    At(u32),
}

/// The smallest decoded region worth two bands. Measured after a forward pass (2 threads,
/// q90 4:2:0 photos, the demo's window): 1920x1080 files decode 28% faster in two bands,
/// 500x375 ones (a region of ~400x390) still 20% with libgomp's default wait policy and 9%
/// with `OMP_WAIT_POLICY=PASSIVE` (the second thread must be woken).
const SPLIT_MIN_PIXELS: u64 = 100_000;

/// Where band B starts, as a fraction of the region's height. Band B must entropy-decode
/// (skip) every row above its own, band A only those above the region, so band A takes more
/// rows: this balances them for a window near the top of a q90 photo.
const SPLIT_FRACTION: f64 = 0.65;

/// The row where a two-band decode of `region` splits, or None for one decode.
fn band_split(
    region: Roi,
    subsamp: turbojpeg::Subsamp,
    progressive: bool,
    bands: Bands,
) -> Option<u32> {
    let mcu_h = subsamp.mcu_height() as u32;
    let row = match bands {
        Bands::One => return None,
        Bands::At(row) => row,
        Bands::Auto => {
            let pixels = region.width as u64 * region.height as u64;
            // A progressive file is entropy-decoded whole before any row comes out, by each
            // band: nothing to gain.
            if progressive || pixels < SPLIT_MIN_PIXELS || crate::parallel::threads() < 2 {
                return None;
            }
            region.y + (region.height as f64 * SPLIT_FRACTION) as u32
        }
    };
    // On an iMCU row boundary (region.y is one, see `jpeg_region`), so that neither band
    // decodes the other's first iMCU row (any row would be exact: libjpeg-turbo's skipping is;
    // tests/partial_decode.rs checks every row).
    let s = region.y + row.saturating_sub(region.y) / mcu_h * mcu_h;
    (s > region.y && s < region.y + region.height).then_some(s)
}

/// Decodes the rows and columns `crop` of the JPEG (whose header `tj` has read) into `dst`,
/// row `i` of the crop at `dst[i * pitch..]`, with Pillow's decoder settings (accurate integer
/// DCT, smooth "fancy" upsampling: TurboJPEG's defaults, set explicitly). False on any error
/// or warning, or when `dst` is shorter than the `pitch * crop.height` bytes TurboJPEG asks for.
fn decompress_region(
    tj: &mut TjDecompressor,
    bytes: &[u8],
    crop: Roi,
    dst: &mut [u8],
    pitch: usize,
) -> bool {
    use turbojpeg::raw;
    let (Ok(len), Ok(pitch_i32)) = (raw::size_t::try_from(bytes.len()), i32::try_from(pitch))
    else {
        return false;
    };
    if (dst.len() as u64) < pitch as u64 * crop.height as u64
        || (crop.width as u64) * 3 > pitch as u64
    {
        return false;
    }
    let region = raw::tjregion {
        x: crop.x as _,
        y: crop.y as _,
        w: crop.width as _,
        h: crop.height as _,
    };
    let configured = tj.set(raw::TJPARAM_TJPARAM_FASTDCT, 0)
        && tj.set(raw::TJPARAM_TJPARAM_FASTUPSAMPLE, 0)
        // SAFETY: `tj.0` is a live handle whose header was read; TurboJPEG validates the
        // region (left edge on an iMCU boundary, inside the image) and only stores it.
        && unsafe { raw::tj3SetCroppingRegion(tj.0, region) } == 0;
    if !configured {
        return false;
    }
    // SAFETY: `tj.0` is a live handle; `bytes` is valid for `len` bytes and only read. TurboJPEG
    // writes row `i` of the crop at `dst + i * pitch`, `crop.width * 3 <= pitch` bytes long,
    // for i < crop.height: inside the `pitch * crop.height <= dst.len()` bytes checked above.
    // `dst` is not otherwise borrowed during the call, and no pointer is kept after it.
    unsafe {
        raw::tj3Decompress8(
            tj.0,
            bytes.as_ptr(),
            len,
            dst.as_mut_ptr(),
            pitch_i32,
            raw::TJPF_TJPF_RGB as _,
        ) == 0
    }
}

/// Pillow's `MULDIV255`.
#[inline]
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Pillow's `cmyk2rgb`: `nk = 255 - k; out = clip(nk - muldiv255(c, nk))`. CMYK JPEGs are
/// read as `CMYK;I` (Adobe, inverted): `inverted` undoes that first.
fn cmyk_to_rgb(raw: &[u8], inverted: bool) -> Vec<u8> {
    let flip = if inverted { 255 } else { 0 };
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    for px in raw.chunks_exact(4) {
        let nk = 255 - (px[3] ^ flip) as u32;
        for &c in &px[..3] {
            let v = nk as i32 - muldiv255((c ^ flip) as u32, nk) as i32;
            out.push(v.clamp(0, 255) as u8);
        }
    }
    out
}

/// The TIFF payload of the first APP1 "Exif\0\0" segment before the first scan.
fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if len < 2 {
            return None;
        }
        let start = i + 4;
        let end = (i + 2 + len).min(bytes.len());
        if marker == 0xE1 && end >= start && bytes[start..end].starts_with(b"Exif\0\0") {
            return Some(&bytes[start + 6..end]);
        }
        i += 2 + len;
    }
    None
}

/// The EXIF Orientation (tag 0x0112 in IFD0) when it is a single BYTE/SHORT/LONG in 1..=8.
/// Accepts an optional "Exif\0\0" prefix.
fn exif_orientation(exif: &[u8]) -> Option<u8> {
    let d = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    if !(d.starts_with(b"II*\0") || d.starts_with(b"MM\0*")) {
        return None;
    }
    let ifd = ifd::Ifd::parse(d)?;
    let (typ, count, _) = ifd.entry(0x0112)?;
    if count != 1 || !matches!(typ, 1 | 3 | 4) {
        return None;
    }
    let v = ifd.value(0x0112)?;
    (1..=8).contains(&v).then_some(v as u8)
}

/// `ImageOps.exif_transpose`: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
/// 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (PIL's rotations are counter-clockwise).
fn apply_orientation(img: &RgbImage, orientation: u8) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    if !(2..=8).contains(&orientation) || w == 0 || h == 0 {
        return img.clone();
    }
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x), // 8
            };
            let s = (sy * w + sx) * 3;
            let d = (y * ow + x) * 3;
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbImage::from_raw(ow as u32, oh as u32, out)
}

// ---------------------------------------------------------------------------------------------
// PNG

const IEND_CHUNK: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

/// The pixels only: the orientation comes from [`png_exif`].
fn decode_png(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    let opts = &DecodeOptions {
        exif_transpose: false,
        ..opts.clone()
    };
    let first = decode_with(
        image::codecs::png::PngDecoder::new(Cursor::new(bytes)),
        opts,
    );
    match first {
        Err(Error::Decode(msg)) => {
            // Pillow stops at the end of the image data and tolerates a file that ends there,
            // or inside the header of a later chunk (its `load_end` breaks on a short read).
            // The png crate wants the IEND chunk: give it one and retry. Truncated image data
            // still fails, as in Pillow.
            match png_complete_prefix(bytes) {
                Some(cut) => {
                    let mut patched = Vec::with_capacity(cut + IEND_CHUNK.len());
                    patched.extend_from_slice(&bytes[..cut]);
                    patched.extend_from_slice(&IEND_CHUNK);
                    decode_with(
                        image::codecs::png::PngDecoder::new(Cursor::new(&patched[..])),
                        opts,
                    )
                    .map_err(|_| Error::Decode(msg))
                }
                None => Err(Error::Decode(msg)),
            }
        }
        other => other,
    }
    .map(|(img, _)| img)
}

/// The payload of the last eXIf chunk, before or after the image data (as Pillow, whose later
/// chunks overwrite earlier ones).
fn png_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut pos = 8;
    let mut found = None;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
        let typ = &bytes[pos + 4..pos + 8];
        let end = (pos + 8).checked_add(len)?;
        if typ == b"IEND" || end > bytes.len() {
            break;
        }
        if typ == b"eXIf" {
            found = Some(&bytes[pos + 8..end]);
        }
        pos = end + 4; // CRC
    }
    found
}

/// When a PNG has no IEND and ends after complete chunks (possibly followed by less than a
/// chunk header), the length of those complete chunks.
fn png_complete_prefix(bytes: &[u8]) -> Option<usize> {
    let mut pos = 8;
    let mut seen_idat = false;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
        let typ = &bytes[pos + 4..pos + 8];
        if typ == b"IEND" {
            return None;
        }
        let end = pos.checked_add(12)?.checked_add(len)?;
        if end > bytes.len() {
            return None; // cut inside a chunk: Pillow raises too
        }
        seen_idat |= typ == b"IDAT";
        pos = end;
    }
    seen_idat.then_some(pos)
}

// ---------------------------------------------------------------------------------------------
// Everything else, through the `image` crate

fn decode_with<D: ImageDecoder>(
    decoder: image::ImageResult<D>,
    opts: &DecodeOptions,
) -> Result<(RgbImage, Option<u8>)> {
    let mut orientation = None;
    let (w, h, color, buf) = read_samples_with(decoder, opts, |dec| {
        if opts.exif_transpose {
            orientation = dec
                .exif_metadata()
                .ok()
                .flatten()
                .and_then(|exif| exif_orientation(&exif));
        }
    })?;
    let n = pixel_count(w as u64, h as u64)?;
    let rgb = to_rgb(&buf, color, n)?;
    drop(buf);
    Ok((RgbImage::from_raw(w, h, rgb), orientation))
}

/// The decoder's samples as it gives them: `(width, height, color type, bytes)`, the size
/// checked against `opts.max_pixels` first.
fn read_samples<D: ImageDecoder>(
    decoder: image::ImageResult<D>,
    opts: &DecodeOptions,
) -> Result<(u32, u32, ColorType, Vec<u8>)> {
    read_samples_with(decoder, opts, |_| {})
}

/// [`read_samples`], with `inspect` called on the decoder after the size check and before
/// the pixels are read (where its metadata is available).
fn read_samples_with<D: ImageDecoder>(
    decoder: image::ImageResult<D>,
    opts: &DecodeOptions,
    inspect: impl FnOnce(&mut D),
) -> Result<(u32, u32, ColorType, Vec<u8>)> {
    let mut dec = decoder.map_err(|e| Error::Decode(e.to_string()))?;
    let (w, h) = dec.dimensions();
    check_size(w as u64, h as u64, opts)?;

    let mut limits = image::Limits::no_limits();
    // Headroom for the widest layout (RGBA 32-bit float) plus decoder state, never below the
    // image crate's own default.
    limits.max_alloc = Some(
        opts.max_pixels
            .saturating_mul(16)
            .saturating_add(64 << 20)
            .max(512 << 20),
    );
    dec.set_limits(limits)
        .map_err(|e| Error::Decode(e.to_string()))?;

    inspect(&mut dec);

    let color = dec.color_type();
    let total = usize::try_from(dec.total_bytes())
        .map_err(|_| Error::Decode("image dimensions overflow".into()))?;
    let mut buf = alloc_buffer(Vec::new(), total)?;
    dec.read_image(&mut buf)
        .map_err(|e| Error::Decode(e.to_string()))?;
    Ok((w, h, color, buf))
}

/// `convert('RGB')` of the decoded samples, Pillow style.
fn to_rgb(buf: &[u8], color: ColorType, n: usize) -> Result<Vec<u8>> {
    let mut out = alloc_buffer(Vec::new(), n * 3)?;
    let ne16 = |b: &[u8]| u16::from_ne_bytes([b[0], b[1]]);
    match color {
        ColorType::L8 => {
            for (o, &v) in out.chunks_exact_mut(3).zip(buf) {
                o.fill(v);
            }
        }
        ColorType::La8 => {
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(2)) {
                o.fill(p[0]);
            }
        }
        ColorType::Rgb8 => out.copy_from_slice(&buf[..n * 3]),
        ColorType::Rgba8 => {
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(4)) {
                o.copy_from_slice(&p[..3]);
            }
        }
        // Pillow opens 16-bit gray as I;16; I;16 -> RGB clamps instead of scaling.
        ColorType::L16 => {
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(2)) {
                o.fill(ne16(p).min(255) as u8);
            }
        }
        // LA;16B, RGB;16B and RGBA;16B unpack to the high byte.
        ColorType::La16 => {
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(4)) {
                o.fill((ne16(&p[0..2]) >> 8) as u8);
            }
        }
        ColorType::Rgb16 | ColorType::Rgba16 => {
            let step = if color == ColorType::Rgb16 { 6 } else { 8 };
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(step)) {
                for c in 0..3 {
                    o[c] = (ne16(&p[c * 2..c * 2 + 2]) >> 8) as u8;
                }
            }
        }
        ColorType::Rgb32F | ColorType::Rgba32F => {
            let step = if color == ColorType::Rgb32F { 12 } else { 16 };
            for (o, p) in out.chunks_exact_mut(3).zip(buf.chunks_exact(step)) {
                for c in 0..3 {
                    let b = &p[c * 4..c * 4 + 4];
                    let f = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                    o[c] = (f * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        other => {
            return Err(Error::Decode(format!(
                "unsupported decoded color type {other:?}"
            )))
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_decode_error() {
        let o = DecodeOptions::default();
        for bytes in [
            &b""[..],
            b"\xFF",
            b"hello world",
            b"\xFF\xD8\xFF\xE0",
            b"\x89PNG\r\n\x1a\n",
        ] {
            match decode_image(bytes, &o) {
                Err(Error::Decode(_)) => {}
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn jpeg_region_widens_aligns_and_reaches_the_bottom() {
        use turbojpeg::Subsamp;
        let win = |x, y, width, height| Roi {
            x,
            y,
            width,
            height,
        };
        // 4:2:0: iMCU 16x16. Left edge 100 - 16 = 84 -> 80; top 50 - 16 = 34 -> 32; right
        // edge 100 + 300 + 16 = 416; down to the last row.
        assert_eq!(
            jpeg_region(
                1000,
                700,
                win(100, 50, 300, 200),
                Subsamp::Sub2x2,
                16,
                false
            ),
            win(80, 32, 336, 668)
        );
        // 4:1:1: iMCU 32x8; 4:4:4 and gray: 8x8.
        assert_eq!(
            jpeg_region(
                1000,
                700,
                win(100, 50, 300, 200),
                Subsamp::Sub4x1,
                16,
                false
            )
            .x,
            64
        );
        assert_eq!(
            jpeg_region(1000, 700, win(100, 50, 300, 200), Subsamp::Gray, 16, false),
            win(80, 32, 336, 668)
        );
        assert_eq!(
            jpeg_region(
                1000,
                700,
                win(100, 50, 300, 200),
                Subsamp::Sub1x2,
                16,
                false
            )
            .y,
            32
        );
        // Clamped to the image at every edge.
        assert_eq!(
            jpeg_region(333, 517, win(5, 3, 320, 500), Subsamp::Sub2x1, 16, false),
            win(0, 0, 333, 517)
        );
        assert_eq!(
            jpeg_region(333, 517, win(300, 510, 33, 7), Subsamp::None, 16, false),
            win(280, 488, 53, 29)
        );
    }

    /// A baseline JPEG of noise from libjpeg-turbo.
    fn baseline(w: usize, h: usize) -> Vec<u8> {
        let mut x = 12345u32;
        let pixels: Vec<u8> = (0..w * h * 3)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 24) as u8
            })
            .collect();
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.compress_to_vec(turbojpeg::Image {
            pixels: &pixels[..],
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap()
    }

    #[test]
    fn rows_below_are_skipped_only_when_the_eoi_follows_the_scan() {
        let jpeg = baseline(64, 48);
        let n = jpeg.len();
        assert!(rows_below_may_be_skipped(&jpeg, false));
        // Data after the EOI is never read.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"\xFF\xD8junk");
        assert!(rows_below_may_be_skipped(&trailing, false));
        // Cut anywhere, or only the EOI missing: the full decode runs out of data.
        for cut in [n - 1, n - 2, n - 3, n / 2, 300, 20, 3] {
            assert!(!rows_below_may_be_skipped(&jpeg[..cut], false), "{cut}");
            // A progressive file is read whole before any row comes out.
            assert!(rows_below_may_be_skipped(&jpeg[..cut], true));
        }
        // Another marker between the scan and the EOI (here a COM segment): it could
        // reach past the end of the data, so the decode goes to the last row.
        let mut com = jpeg[..n - 2].to_vec();
        com.extend_from_slice(b"\xFF\xFE\x00\x04hi\xFF\xD9");
        assert!(!rows_below_may_be_skipped(&com, false));
        // Bytes between header segments: not the plain case.
        let mut junk = jpeg[..2].to_vec();
        junk.push(0);
        junk.extend_from_slice(&jpeg[2..]);
        assert!(!rows_below_may_be_skipped(&junk, false));
    }

    #[test]
    fn cmyk_formula() {
        // raw (non-inverted) white paper, no ink -> stored inverted as 255s.
        assert_eq!(
            cmyk_to_rgb(&[255, 255, 255, 255], true),
            vec![255, 255, 255]
        );
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0], true), vec![0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[0, 128, 255, 255], true), vec![0, 128, 255]);
        // Plain CMYK: no ink is white, full black ink is black whatever c, m, y are.
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0], false), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[10, 200, 0, 255], false), vec![0, 0, 0]);
        // c = 128 at k = 0: 255 - muldiv255(128, 255) = 127.
        assert_eq!(cmyk_to_rgb(&[128, 0, 255, 0], false), vec![127, 255, 0]);
    }

    #[test]
    fn orientation_parsing() {
        // Little-endian TIFF, one IFD entry: Orientation SHORT 1 = 6.
        let mut d = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
        d.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(exif_orientation(&d), Some(6));
        let mut be = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0]);
        assert_eq!(exif_orientation(&be), Some(8));
        assert_eq!(exif_orientation(b"II*\0\xFF\xFF\0\0"), None);
    }

    #[test]
    fn orientations_are_permutations() {
        let img = RgbImage::from_raw(3, 2, (0..18).collect());
        for o in 1..=8 {
            let t = apply_orientation(&img, o);
            let mut a = t.data.clone();
            a.sort_unstable();
            assert_eq!(a, (0..18).collect::<Vec<u8>>());
            if o >= 5 {
                assert_eq!((t.width, t.height), (2, 3));
            }
        }
        // ROTATE_270 (orientation 6, clockwise): top-left comes from bottom-left.
        assert_eq!(apply_orientation(&img, 6).pixel(0, 0), img.pixel(0, 1));
    }
}
