//! Test-time preprocessing, as torchvision does it on a PIL image:
//! resize (stretch / shorter side / letterbox), `CenterCrop`, `ToTensor` + `Normalize`.

use crate::config::{PreprocessConfig, ResizeMode, Size, TtaView};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::resize::{resize_bilinear_roi_into, roi_source_window, PillowCompat, Roi, Scratch};
use std::sync::Mutex;

/// Reusable buffers for preprocessing, so steady-state calls do not allocate: keep one per
/// thread (the engine pools them).
#[derive(Default)]
pub struct Preprocessor {
    scratch: Scratch,
    canvas: RgbImage,
    resized: RgbImage,
    /// The second half's buffers when a resize is split in two (see `resize_roi`).
    lower: Box<(Scratch, RgbImage)>,
}

/// A resize reading this many source pixels or more is split in two halves of output rows,
/// computed at once on libtorch's intra-op threads (`crate::parallel`).
const RESIZE_SPLIT_MIN_PIXELS: u64 = 100_000;

impl Preprocessor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Heap bytes these buffers hold on to, for the engine's pool bound.
    pub fn retained_bytes(&self) -> usize {
        self.scratch.retained_bytes()
            + self.canvas.data.capacity()
            + self.resized.data.capacity()
            + self.lower.0.retained_bytes()
            + self.lower.1.data.capacity()
    }

    /// The image the resize step reads (the letterbox canvas or `img`) and its target size.
    fn resize_input<'a>(
        canvas: &'a mut RgbImage,
        img: &'a RgbImage,
        cfg: &PreprocessConfig,
    ) -> Result<(&'a RgbImage, u32, u32)> {
        let target = cfg.resize_size;
        // `direct_resize_size` (shared with `source_window`) for the modes that resize `img`.
        let (src, w, h) = match direct_resize_size(img.width, img.height, cfg) {
            Some((w, h)) => (img, w, h),
            None if cfg.resize_mode == ResizeMode::Letterbox => {
                letterbox_canvas_into(img, target, cfg.max_image_pixels, canvas)?;
                (&*canvas, target.width, target.height)
            }
            None => {
                pad_square_canvas_into(img, cfg.max_image_pixels, canvas)?;
                (&*canvas, target.width, target.height)
            }
        };
        check_pixels(w as u64, h as u64, cfg.max_image_pixels)?;
        Ok((src, w, h))
    }

    /// Resize + crop + `ToTensor` + `Normalize`, appended to `out` as CHW float32 (so a batch
    /// is built in place). Returns the tensor's height and width.
    ///
    /// Only the part of the resized image that the centre crop keeps is computed: the same
    /// pixels as resizing everything and cropping (see `resize_bilinear_roi_into`).
    pub fn append_tensor(
        &mut self,
        img: &RgbImage,
        cfg: &PreprocessConfig,
        out: &mut Vec<f32>,
    ) -> Result<Size> {
        let (src, w, h) = Self::resize_input(&mut self.canvas, img, cfg)?;
        let crop = cfg.crop_size.unwrap_or(Size {
            height: h,
            width: w,
        });
        let (left, top, roi) = crop_window(w, h, crop);
        if (src.width, src.height) == (w, h) {
            normalize_region_chw(src, left, top, crop, &cfg.mean, &cfg.std, out);
            return Ok(crop);
        }
        let read = roi_source_window(src.width, src.height, w, h, roi);
        let split = read.width as u64 * read.height as u64 >= RESIZE_SPLIT_MIN_PIXELS
            && crate::parallel::threads() >= 2;
        Self::resize_roi(
            src,
            (w, h),
            roi,
            cfg.pillow_compat,
            (&mut self.scratch, &mut self.resized),
            &mut self.lower,
            split,
        );
        normalize_region_chw(
            &self.resized,
            left - roi.x as i64,
            top - roi.y as i64,
            crop,
            &cfg.mean,
            &cfg.std,
            out,
        );
        Ok(crop)
    }
}

impl Preprocessor {
    /// `resize_bilinear_roi_into` of `roi` into `out.1`; with `split` (the engine's choice:
    /// the resize reads `RESIZE_SPLIT_MIN_PIXELS` or more and libtorch has two threads) in two
    /// halves of rows at once, the second in `lower` and then appended. Each output row
    /// depends only on its own coefficients, so the halves together are the whole.
    fn resize_roi(
        src: &RgbImage,
        (w, h): (u32, u32),
        roi: Roi,
        compat: PillowCompat,
        out: (&mut Scratch, &mut RgbImage),
        lower: &mut (Scratch, RgbImage),
        split: bool,
    ) {
        if !split || roi.height < 2 {
            resize_bilinear_roi_into(src, w, h, roi, compat, out.0, out.1);
            return;
        }
        let top = Roi {
            height: roi.height / 2,
            ..roi
        };
        let bottom = Roi {
            y: roi.y + top.height,
            height: roi.height - top.height,
            ..roi
        };
        let (scratch, resized) = out;
        let parts = [
            Mutex::new(Some((top, scratch, &mut *resized))),
            Mutex::new(Some((bottom, &mut lower.0, &mut lower.1))),
        ];
        crate::parallel::for_each(parts.len(), |i| {
            let part = parts[i].lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((r, s, d)) = part {
                resize_bilinear_roi_into(src, w, h, r, compat, s, d);
            }
        });
        resized.data.extend_from_slice(&lower.1.data);
        resized.height += lower.1.height;
    }
}

/// The size a `Stretch` or `ShorterSide` resize gives a `width x height` image; `None` for the
/// modes that resize a padded canvas instead.
fn direct_resize_size(width: u32, height: u32, cfg: &PreprocessConfig) -> Option<(u32, u32)> {
    let target = cfg.resize_size;
    match cfg.resize_mode {
        ResizeMode::Stretch => Some((target.width, target.height)),
        ResizeMode::ShorterSide => Some(shorter_side_size(width, height, target.height)),
        ResizeMode::Letterbox | ResizeMode::PadSquare => None,
    }
}

/// The centre crop of a `w x h` image: its top-left corner (negative where torchvision pads)
/// and the part of the image it keeps.
fn crop_window(w: u32, h: u32, crop: Size) -> (i64, i64, Roi) {
    let (left, top) = crop_offsets(w, h, crop);
    // The crop's window clamped to the image (the rest is zero padding).
    let x0 = left.clamp(0, w as i64);
    let y0 = top.clamp(0, h as i64);
    let x1 = (left + crop.width as i64).clamp(0, w as i64);
    let y1 = (top + crop.height as i64).clamp(0, h as i64);
    let roi = Roi {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    };
    (left, top, roi)
}

/// The pixels of a `width x height` source image that [`Preprocessor::append_tensor`] reads
/// with `cfg`, when that is not the whole image: the resampler's supports of the output
/// pixels the centre crop keeps (see [`roi_source_window`]), or the crop itself when the
/// image is not resized. The tensor depends on nothing else, so a decoder may leave every
/// other pixel undecoded.
///
/// `None` when the whole image is read (no crop, a crop as large as the resized image) or
/// when this cannot be told from the size alone: `letterbox` and `pad_square` resize a padded
/// canvas, and a resize over `max_image_pixels` is refused by `append_tensor` anyway.
pub fn source_window(width: u32, height: u32, cfg: &PreprocessConfig) -> Option<Roi> {
    let crop = cfg.crop_size?;
    let (w, h) = direct_resize_size(width, height, cfg)?;
    if width == 0 || height == 0 || w == 0 || h == 0 {
        return None;
    }
    if (w as u64).saturating_mul(h as u64) > cfg.max_image_pixels {
        return None;
    }
    let (_, _, roi) = crop_window(w, h, crop);
    let win = if (width, height) == (w, h) {
        roi
    } else {
        roi_source_window(width, height, w, h, roi)
    };
    let whole = win.x == 0 && win.y == 0 && win.width == width && win.height == height;
    (!whole && win.width > 0 && win.height > 0).then_some(win)
}

/// Appends to `out` the test-time view `view` of the CHW float32 tensor of `size` that starts
/// at `out[start]`: the tensor flipped along its width (`HFlip`) or height (`VFlip`) axis, as
/// `torch.flip(x, dims=[-1])` or `[-2]` gives it.
pub fn append_view(out: &mut Vec<f32>, start: usize, size: Size, view: TtaView) {
    let (h, w) = (size.height as usize, size.width as usize);
    out.reserve(3 * h * w);
    for c in 0..3 {
        let plane = start + c * h * w;
        for y in 0..h {
            let src_y = match view {
                TtaView::HFlip => y,
                TtaView::VFlip => h - 1 - y,
            };
            let row = plane + src_y * w;
            let at = out.len();
            out.extend_from_within(row..row + w);
            if view == TtaView::HFlip {
                out[at..].reverse();
            }
        }
    }
}

/// Full preprocessing into `out` as CHW float32 (cleared and refilled); returns the tensor's size.
pub fn preprocess_into(img: &RgbImage, cfg: &PreprocessConfig, out: &mut Vec<f32>) -> Result<Size> {
    out.clear();
    Preprocessor::new().append_tensor(img, cfg, out)
}

fn check_pixels(w: u64, h: u64, limit: u64) -> Result<()> {
    let pixels = w.saturating_mul(h);
    if pixels > limit {
        return Err(Error::ImageTooLarge {
            width: w,
            height: h,
            pixels,
            limit,
        });
    }
    Ok(())
}

/// torchvision `Resize(n)`: the shorter side becomes `n`, the longer `int(n * long / short)`.
/// Returns (width, height).
pub fn shorter_side_size(w: u32, h: u32, n: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // Python evaluates `n * long` exactly as an int, then true division (correctly rounded).
    let new_long = ((n as u64 * long as u64) as f64 / short as f64) as u32;
    if w <= h {
        (n, new_long)
    } else {
        (new_long, n)
    }
}

/// The training write-up's letterbox: pad with black to the aspect ratio of `target`, centred.
/// Reproduces its arithmetic exactly, including the canvas that can be one pixel short of `t`
/// and Python's floor division (a negative pad crops).
pub fn letterbox_canvas(img: &RgbImage, target: Size, max_pixels: u64) -> Result<RgbImage> {
    let mut out = RgbImage::default();
    letterbox_canvas_into(img, target, max_pixels, &mut out)?;
    Ok(out)
}

/// [`letterbox_canvas`] into a reusable image.
pub fn letterbox_canvas_into(
    img: &RgbImage,
    target: Size,
    max_pixels: u64,
    out: &mut RgbImage,
) -> Result<()> {
    let (w, h) = (img.width as i64, img.height as i64);
    let ratio = target.width as f64 / target.height as f64;
    let (left, top, right, bottom) = if (w as f64) / (h as f64) < ratio {
        let t = (h as f64 * ratio) as i64;
        let p = (t - w).div_euclid(2);
        (-p, 0, w + p, h)
    } else {
        let t = (w as f64 / ratio) as i64;
        let p = (t - h).div_euclid(2);
        (0, -p, w, h + p)
    };
    crop_with_fill(img, left, top, right, bottom, max_pixels, out)
}

/// The common square padding: `img` pasted on a black square of side `s = max(w, h)` at
/// `((s - w) // 2, (s - h) // 2)`, as `Image.new("RGB", (s, s)).paste(img, offset)` does.
pub fn pad_square_canvas(img: &RgbImage, max_pixels: u64) -> Result<RgbImage> {
    let mut out = RgbImage::default();
    pad_square_canvas_into(img, max_pixels, &mut out)?;
    Ok(out)
}

/// [`pad_square_canvas`] into a reusable image.
pub fn pad_square_canvas_into(img: &RgbImage, max_pixels: u64, out: &mut RgbImage) -> Result<()> {
    let (w, h) = (img.width as i64, img.height as i64);
    let s = w.max(h);
    let (left, top) = (-((s - w) / 2), -((s - h) / 2));
    crop_with_fill(img, left, top, left + s, top + s, max_pixels, out)
}

/// PIL `Image.crop(box)`: the part of the box outside the image is black.
fn crop_with_fill(
    img: &RgbImage,
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
    max_pixels: u64,
    out: &mut RgbImage,
) -> Result<()> {
    let (cw, ch) = ((right - left).max(0), (bottom - top).max(0));
    check_pixels(cw as u64, ch as u64, max_pixels)?;
    if cw == 0 || ch == 0 {
        return Err(Error::Decode(format!(
            "letterbox of a {}x{} image leaves no pixels",
            img.width, img.height
        )));
    }
    out.width = cw as u32;
    out.height = ch as u32;
    out.data.clear();
    out.data.resize(cw as usize * ch as usize * 3, 0);
    copy_region(img, left, top, out);
    Ok(())
}

/// Fills `out` with `img` shifted so that `out(0, 0)` is `img(left, top)`; outside stays as is.
fn copy_region(img: &RgbImage, left: i64, top: i64, out: &mut RgbImage) {
    let (ow, oh) = (out.width as i64, out.height as i64);
    let x0 = (-left).clamp(0, ow);
    let x1 = (img.width as i64 - left).clamp(0, ow);
    if x0 >= x1 {
        return;
    }
    for oy in 0..oh {
        let sy = oy + top;
        if sy < 0 || sy >= img.height as i64 {
            continue;
        }
        let src_row = sy as usize * img.width as usize * 3;
        let s = src_row + (x0 + left) as usize * 3;
        let d = (oy as usize * ow as usize + x0 as usize) * 3;
        let n = (x1 - x0) as usize * 3;
        out.data[d..d + n].copy_from_slice(&img.data[s..s + n]);
    }
}

/// torchvision `CenterCrop([h, w])` offsets of the crop's top-left corner in `img`: negative
/// where the crop is larger (torchvision zero-pads by `(c - size) // 2` on that side first),
/// else `int(round((size - c) / 2.0))` with round half to even.
fn crop_offsets(width: u32, height: u32, crop: Size) -> (i64, i64) {
    let offset = |size: u32, c: u32| -> i64 {
        if c > size {
            -(((c - size) / 2) as i64)
        } else {
            ((size - c) as f64 / 2.0).round_ties_even() as i64
        }
    };
    (offset(width, crop.width), offset(height, crop.height))
}

/// torchvision `CenterCrop([h, w])` on uint8 pixels (zero padding when the crop is larger).
pub fn center_crop(img: &RgbImage, crop: Size) -> RgbImage {
    if img.width == crop.width && img.height == crop.height {
        return img.clone();
    }
    let (left, top) = crop_offsets(img.width, img.height, crop);
    let mut out = RgbImage::new(crop.width, crop.height);
    copy_region(img, left, top, &mut out);
    out
}

/// Per-channel lookup: `(v / 255 - mean) / std` in float32 exactly as torchvision computes it.
fn normalize_lut(mean: &[f32; 3], std: &[f32; 3]) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    lut
}

/// `ToTensor` + `Normalize` of the `crop`-sized window of `img` at (`left`, `top`), appended to
/// `out` as CHW float32; pixels outside `img` are the zero padding torchvision adds.
fn normalize_region_chw(
    img: &RgbImage,
    left: i64,
    top: i64,
    crop: Size,
    mean: &[f32; 3],
    std: &[f32; 3],
    out: &mut Vec<f32>,
) {
    let lut = normalize_lut(mean, std);
    let (cw, ch) = (crop.width as usize, crop.height as usize);
    let plane = cw * ch;
    let base = out.len();
    out.resize(base + plane * 3, 0.0);
    let (r, rest) = out[base..].split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    // The part of each output row that lies inside the image.
    let x0 = (-left).clamp(0, cw as i64) as usize;
    let x1 = (img.width as i64 - left).clamp(0, cw as i64) as usize;
    for y in 0..ch {
        let row = y * cw;
        let sy = y as i64 + top;
        let inside = sy >= 0 && sy < img.height as i64 && x0 < x1;
        let (a, z) = if inside { (x0, x1) } else { (cw, cw) };
        for x in (0..a).chain(z..cw) {
            r[row + x] = lut[0][0];
            g[row + x] = lut[1][0];
            b[row + x] = lut[2][0];
        }
        if inside {
            let start = (sy as usize * img.width as usize + (x0 as i64 + left) as usize) * 3;
            let src = &img.data[start..start + (x1 - x0) * 3];
            for (i, px) in src.chunks_exact(3).enumerate() {
                r[row + x0 + i] = lut[0][px[0] as usize];
                g[row + x0 + i] = lut[1][px[1] as usize];
                b[row + x0 + i] = lut[2][px[2] as usize];
            }
        }
    }
}

/// `ToTensor` + `Normalize` in float32, CHW, computed as torchvision does: `(v / 255 - mean) / std`.
pub fn normalize_chw(img: &RgbImage, mean: &[f32; 3], std: &[f32; 3], out: &mut Vec<f32>) {
    out.clear();
    let size = Size {
        height: img.height,
        width: img.width,
    };
    normalize_region_chw(img, 0, 0, size, mean, std, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_flip_the_tensor_along_one_axis() {
        // 3 channels of 2x3, values c*100 + y*10 + x, after something already in the buffer.
        let size = Size {
            height: 2,
            width: 3,
        };
        let mut out = vec![-1.0];
        for c in 0..3 {
            for y in 0..2 {
                for x in 0..3 {
                    out.push((c * 100 + y * 10 + x) as f32);
                }
            }
        }
        append_view(&mut out, 1, size, TtaView::HFlip);
        append_view(&mut out, 1, size, TtaView::VFlip);
        let at = |v: usize, c: usize, y: usize, x: usize| out[1 + v * 18 + c * 6 + y * 3 + x];
        for c in 0..3 {
            for y in 0..2 {
                for x in 0..3 {
                    let plain = at(0, c, y, x);
                    assert_eq!(at(1, c, y, 2 - x), plain, "hflip c{c} y{y} x{x}");
                    assert_eq!(at(2, c, 1 - y, x), plain, "vflip c{c} y{y} x{x}");
                }
            }
        }
        assert_eq!(out.len(), 1 + 3 * 18);
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 7 % 256) as u8,
                    (y * 5 % 256) as u8,
                    ((x + y) % 256) as u8,
                ]
            })
            .collect();
        RgbImage::from_raw(w, h, data)
    }

    #[test]
    fn shorter_side_truncates_like_torchvision() {
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(300, 300, 224), (224, 224));
        // 256 * 333 / 517 = 164.89 -> 164
        assert_eq!(shorter_side_size(517, 333, 256), (397, 256));
    }

    #[test]
    fn center_crop_rounds_half_to_even() {
        let img = gradient(5, 5);
        // (5 - 2) / 2 = 1.5 -> 2
        let c = center_crop(
            &img,
            Size {
                height: 2,
                width: 2,
            },
        );
        assert_eq!(c.pixel(0, 0), img.pixel(2, 2));
        let img = gradient(6, 6);
        // (6 - 1) / 2 = 2.5 -> 2
        let c = center_crop(
            &img,
            Size {
                height: 1,
                width: 1,
            },
        );
        assert_eq!(c.pixel(0, 0), img.pixel(2, 2));
    }

    #[test]
    fn center_crop_pads_with_zeros_when_larger() {
        let img = gradient(3, 2);
        let c = center_crop(
            &img,
            Size {
                height: 4,
                width: 6,
            },
        );
        // left pad (6-3)//2 = 1, top pad (4-2)//2 = 1
        assert_eq!(c.pixel(0, 0), [0, 0, 0]);
        assert_eq!(c.pixel(1, 1), img.pixel(0, 0));
        assert_eq!(c.pixel(3, 2), img.pixel(2, 1));
        assert_eq!(c.pixel(4, 2), [0, 0, 0]);
        assert_eq!(c.pixel(1, 3), [0, 0, 0]);
    }

    #[test]
    fn letterbox_follows_the_writeup_arithmetic() {
        // Tall image into a square target: t = int(300 * 1.0) = 300, p = (300 - 101) // 2 = 99,
        // canvas width 101 + 198 = 299 (one short of t).
        let img = gradient(101, 300);
        let c = letterbox_canvas(
            &img,
            Size {
                height: 224,
                width: 224,
            },
            u64::MAX,
        )
        .unwrap();
        assert_eq!((c.width, c.height), (299, 300));
        assert_eq!(c.pixel(98, 10), [0, 0, 0]);
        assert_eq!(c.pixel(99, 10), img.pixel(0, 10));
        assert_eq!(c.pixel(199, 10), img.pixel(100, 10));
        assert_eq!(c.pixel(200, 10), [0, 0, 0]);
        // Wide image: pads top and bottom.
        let img = gradient(400, 100);
        let c = letterbox_canvas(
            &img,
            Size {
                height: 224,
                width: 224,
            },
            u64::MAX,
        )
        .unwrap();
        assert_eq!((c.width, c.height), (400, 400));
        assert_eq!(c.pixel(5, 149), [0, 0, 0]);
        assert_eq!(c.pixel(5, 150), img.pixel(5, 0));
        // Same aspect ratio: unchanged.
        let img = gradient(50, 50);
        let c = letterbox_canvas(
            &img,
            Size {
                height: 10,
                width: 10,
            },
            u64::MAX,
        )
        .unwrap();
        assert_eq!(c, img);
    }

    #[test]
    fn pad_square_pastes_at_pil_offsets() {
        // 5x2: s = 5, offset (0, (5 - 2) // 2 = 1); 2x5: offset ((5 - 2) // 2 = 1, 0).
        let img = RgbImage {
            width: 5,
            height: 2,
            data: (1..=30).collect(),
        };
        let c = pad_square_canvas(&img, u64::MAX).unwrap();
        assert_eq!((c.width, c.height), (5, 5));
        assert!(c.data[..15].iter().all(|&v| v == 0));
        assert_eq!(&c.data[15..45], &img.data[..]);
        assert!(c.data[45..].iter().all(|&v| v == 0));
        let tall = RgbImage {
            width: 2,
            height: 5,
            data: (1..=30).collect(),
        };
        let c = pad_square_canvas(&tall, u64::MAX).unwrap();
        assert_eq!((c.width, c.height), (5, 5));
        for y in 0..5 {
            let row = &c.data[y * 15..(y + 1) * 15];
            assert_eq!(&row[..3], &[0, 0, 0]);
            assert_eq!(&row[3..9], &tall.data[y * 6..(y + 1) * 6]);
            assert!(row[9..].iter().all(|&v| v == 0));
        }
        assert!(pad_square_canvas(&tall, 24).is_err());
    }

    #[test]
    fn letterbox_refuses_huge_canvases() {
        let img = gradient(1, 1000);
        let err = letterbox_canvas(
            &img,
            Size {
                height: 1,
                width: 1,
            },
            10_000,
        )
        .unwrap_err();
        assert!(matches!(err, Error::ImageTooLarge { .. }));
    }

    #[test]
    fn fused_crop_normalize_equals_crop_then_normalize() {
        let img = gradient(13, 7);
        let mean = [0.485, 0.456, 0.406];
        let std = [0.229, 0.224, 0.225];
        for (h, w) in [(7, 13), (4, 5), (9, 20), (3, 17), (10, 2), (1, 1)] {
            let crop = Size {
                height: h,
                width: w,
            };
            let mut want = Vec::new();
            normalize_chw(&center_crop(&img, crop), &mean, &std, &mut want);
            let (left, top) = crop_offsets(img.width, img.height, crop);
            let mut got = vec![9.0];
            normalize_region_chw(&img, left, top, crop, &mean, &std, &mut got);
            assert_eq!(got[0], 9.0, "appends, keeps what was there");
            assert_eq!(&got[1..], &want[..], "crop {h}x{w}");
        }
    }

    #[test]
    fn preprocessor_reuse_gives_identical_results() {
        let cfg = PreprocessConfig::default();
        let mut pre = Preprocessor::new();
        let (a, b) = (gradient(300, 200), gradient(64, 480));
        let mut first = Vec::new();
        pre.append_tensor(&a, &cfg, &mut first).unwrap();
        let mut other = Vec::new();
        pre.append_tensor(&b, &cfg, &mut other).unwrap();
        let mut again = Vec::new();
        pre.append_tensor(&a, &cfg, &mut again).unwrap();
        assert_eq!(first, again);
        let mut fresh = Vec::new();
        preprocess_into(&b, &cfg, &mut fresh).unwrap();
        assert_eq!(other, fresh);
    }

    /// A resize split in two halves of rows gives the whole resize's pixels: for both pass
    /// orders, odd and even heights, a one-row crop, and crops touching the edges.
    #[test]
    fn split_resize_equals_one_resize() {
        let noise = |w: u32, h: u32, seed: u32| {
            let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
            let data = (0..w * h * 3)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                })
                .collect();
            RgbImage::from_raw(w, h, data)
        };
        let cases = [
            // (source, output, roi)
            ((1920, 1080), (455, 256), (115, 16, 224, 224)),
            ((1080, 1920), (256, 455), (16, 115, 224, 225)),
            ((640, 480), (341, 256), (0, 0, 341, 256)),
            ((300, 1000), (128, 427), (3, 400, 120, 27)),
            ((500, 375), (341, 256), (58, 16, 224, 1)),
            ((200, 200), (256, 256), (16, 16, 224, 224)),
        ];
        for (i, ((sw, sh), (w, h), (x, y, rw, rh))) in cases.into_iter().enumerate() {
            let src = noise(sw, sh, i as u32);
            let roi = Roi {
                x,
                y,
                width: rw,
                height: rh,
            };
            for compat in [PillowCompat::Pillow12, PillowCompat::Pillow13] {
                let mut one = (Scratch::new(), RgbImage::default());
                let mut lower = (Scratch::new(), RgbImage::default());
                let (s, d) = (&mut one.0, &mut one.1);
                Preprocessor::resize_roi(&src, (w, h), roi, compat, (s, d), &mut lower, false);
                let mut two = (Scratch::new(), RgbImage::from_raw(1, 1, vec![9; 3]));
                for _ in 0..2 {
                    let (s, d) = (&mut two.0, &mut two.1);
                    Preprocessor::resize_roi(&src, (w, h), roi, compat, (s, d), &mut lower, true);
                    assert_eq!(one.1, two.1, "case {i} {compat:?}");
                }
                assert_eq!((one.1.width, one.1.height), (rw, rh));
            }
        }
    }

    #[test]
    fn normalize_matches_formula_and_layout() {
        let img = RgbImage::from_raw(2, 1, vec![0, 128, 255, 10, 20, 30]);
        let mut out = Vec::new();
        normalize_chw(&img, &[0.5, 0.5, 0.5], &[0.25, 0.5, 1.0], &mut out);
        let f = |v: u8, m: f32, s: f32| (v as f32 / 255.0 - m) / s;
        assert_eq!(
            out,
            vec![
                f(0, 0.5, 0.25),
                f(10, 0.5, 0.25),
                f(128, 0.5, 0.5),
                f(20, 0.5, 0.5),
                f(255, 0.5, 1.0),
                f(30, 0.5, 1.0)
            ]
        );
    }
}
