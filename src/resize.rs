//! Bit-exact port of Pillow's BILINEAR `Image.resize` for 8-bit RGB images.
//!
//! This follows `src/libImaging/Resample.c` (`ImagingResample` with the full image as the box):
//!
//! * `precompute_coeffs`: triangle filter of support 1.0, widened by the downscale factor
//!   (antialiasing); weights computed in `f64` and normalised by their sum;
//! * `normalize_coeffs_8bpc`: weights become `i32` with 22 fractional bits, rounded half away
//!   from zero;
//! * each output sample starts at `1 << 21`, accumulates `pixel * weight` in `i32` and ends as
//!   `clip8(sum >> 22)`;
//! * the image between the two passes is 8-bit (rounded and clamped), so the pass order matters.
//!
//! Pillow up to 12.x always resizes horizontally first. Pillow 13.0 resizes vertically first
//! when `in_h - out_h > 0 && in_h - out_h > 2 * (in_w - out_w)`; [`PillowCompat`] selects which
//! behaviour to reproduce.
//!
//! A pass is skipped when its axis keeps its size (`need_horizontal` / `need_vertical`), and an
//! unchanged size returns a copy, as in Pillow.

use crate::image::RgbImage;

/// Fixed-point precision of the 8-bit resampler (`PRECISION_BITS` in Pillow: 32 - 8 - 2).
const PRECISION_BITS: u32 = 22;
/// Rounding term every accumulation starts with.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Which Pillow release's pass order to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PillowCompat {
    /// Pillow 13.x: vertical pass first when
    /// `in_h - out_h > 0 && in_h - out_h > 2 * (in_w - out_w)`, horizontal first otherwise.
    #[default]
    Pillow13,
    /// Pillow <= 12.x: always the horizontal pass first.
    Pillow12,
}

impl PillowCompat {
    /// Whether this Pillow version runs the vertical pass before the horizontal one.
    pub fn vertical_first(self, in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> bool {
        match self {
            PillowCompat::Pillow12 => false,
            PillowCompat::Pillow13 => {
                let dh = in_h as i64 - out_h as i64;
                let dw = in_w as i64 - out_w as i64;
                dh > 0 && dh > 2 * dw
            }
        }
    }
}

/// Integer filter coefficients for one axis (`in_size -> out_size`).
#[derive(Clone, Debug, Default)]
struct Coeffs {
    in_size: u32,
    out_size: u32,
    /// Maximum number of taps per output sample (row stride of `kk`).
    ksize: usize,
    /// Per output sample: first input index and number of taps.
    bounds: Vec<(u32, u32)>,
    /// `out_size * ksize` weights with 22 fractional bits.
    kk: Vec<i32>,
}

impl Coeffs {
    fn matches(&self, in_size: u32, out_size: u32) -> bool {
        self.ksize != 0 && self.in_size == in_size && self.out_size == out_size
    }

    /// `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter and the box
    /// `[0, in_size)`. Reuses the vectors' capacity.
    fn compute(&mut self, in_size: u32, out_size: u32, scratch_f64: &mut Vec<f64>) {
        debug_assert!(in_size > 0 && out_size > 0);
        // Pillow passes the box as float: in1 - in0 = (float)in_size, exact below 2^24.
        let in_span = in_size as f32 as f64;
        let scale = in_span / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = 1.0 * filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;

        self.in_size = in_size;
        self.out_size = out_size;
        self.ksize = ksize;
        self.bounds.clear();
        self.bounds.reserve(out_size as usize);
        self.kk.clear();
        self.kk.resize(out_size as usize * ksize, 0);
        scratch_f64.clear();
        scratch_f64.resize(ksize, 0.0);

        let ss = 1.0 / filterscale;
        for xx in 0..out_size as usize {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero, as does `as i64`.
            let mut xmin = (center - support + 0.5) as i64;
            if xmin < 0 {
                xmin = 0;
            }
            let mut xmax = (center + support + 0.5) as i64;
            if xmax > in_size as i64 {
                xmax = in_size as i64;
            }
            let n = (xmax - xmin).max(0) as usize;
            let k = &mut scratch_f64[..ksize];
            let mut ww = 0.0f64;
            for (x, slot) in k.iter_mut().enumerate().take(n) {
                let arg = ((x as i64 + xmin) as f64 - center + 0.5) * ss;
                let w = bilinear_filter(arg);
                *slot = w;
                ww += w;
            }
            let out = &mut self.kk[xx * ksize..xx * ksize + ksize];
            for x in 0..ksize {
                let mut v = if x < n { k[x] } else { 0.0 };
                if x < n && ww != 0.0 {
                    v /= ww;
                }
                out[x] = if v < 0.0 {
                    (-0.5 + v * (1u32 << PRECISION_BITS) as f64) as i32
                } else {
                    (0.5 + v * (1u32 << PRECISION_BITS) as f64) as i32
                };
            }
            self.bounds.push((xmin as u32, n as u32));
        }
    }
}

#[inline]
fn bilinear_filter(x: f64) -> f64 {
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Coefficients for a contiguous range of output samples. `shift` is subtracted from every
/// input index (the first input sample held by the buffer the pass reads).
#[derive(Clone, Copy)]
struct Taps<'a> {
    ksize: usize,
    bounds: &'a [(u32, u32)],
    kk: &'a [i32],
    shift: u32,
}

impl Coeffs {
    fn taps(&self, start: u32, len: u32) -> Taps<'_> {
        let (a, b) = (start as usize, (start + len) as usize);
        Taps {
            ksize: self.ksize,
            bounds: &self.bounds[a..b],
            kk: &self.kk[a * self.ksize..b * self.ksize],
            shift: 0,
        }
    }
}

impl Taps<'_> {
    /// The input samples `[first, last)` these outputs read (before `shift`).
    fn span(&self) -> (u32, u32) {
        let first = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let last = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        (first, last.max(first))
    }
}

/// Reusable buffers for [`resize_bilinear_into`]: coefficients (cached per axis while the
/// sizes stay the same), the 8-bit intermediate image and the vertical accumulators.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    horiz: Coeffs,
    vert: Coeffs,
    tmp: Vec<u8>,
    acc: Vec<i32>,
    row4: Vec<[u8; 4]>,
    f64_buf: Vec<f64>,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// A rectangle of the output image: `width x height` pixels at (`x`, `y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roi {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Resizes `src` to `out_w x out_h` exactly like Pillow's `img.resize((out_w, out_h),
/// Image.BILINEAR)` on an RGB image, with the pass order of the given Pillow version.
///
/// The same size returns a copy. A zero-sized source or target gives a black (or empty) image
/// of the requested size rather than panicking.
pub fn resize_bilinear(src: &RgbImage, out_w: u32, out_h: u32, compat: PillowCompat) -> RgbImage {
    let mut scratch = Scratch::new();
    let mut dst = RgbImage::default();
    resize_bilinear_into(src, out_w, out_h, compat, &mut scratch, &mut dst);
    dst
}

/// Like [`resize_bilinear`], writing into `dst` (its buffer is reused) and keeping coefficients
/// and intermediate buffers in `scratch` between calls.
pub fn resize_bilinear_into(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    compat: PillowCompat,
    scratch: &mut Scratch,
    dst: &mut RgbImage,
) {
    let full = Roi {
        x: 0,
        y: 0,
        width: out_w,
        height: out_h,
    };
    resize_bilinear_roi_into(src, out_w, out_h, full, compat, scratch, dst)
}

/// Computes only the `roi` part of the `out_w x out_h` resize (clamped to the output): the
/// same pixels as cropping the full result, for a fraction of the work. Each output sample
/// of Pillow's separable resampler depends only on its own coefficients, and the pass order
/// is still decided by the full sizes, so the crop of the result is unchanged.
pub fn resize_bilinear_roi_into(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    roi: Roi,
    compat: PillowCompat,
    scratch: &mut Scratch,
    dst: &mut RgbImage,
) {
    let in_w = src.width;
    let in_h = src.height;
    assert_eq!(
        src.data.len(),
        in_w as usize * in_h as usize * 3,
        "RgbImage data length does not match its size"
    );
    let rx = roi.x.min(out_w);
    let ry = roi.y.min(out_h);
    let rw = roi.width.min(out_w - rx);
    let rh = roi.height.min(out_h - ry);
    let out_len = rw as usize * rh as usize * 3;
    dst.width = rw;
    dst.height = rh;
    dst.data.clear();

    if in_w == out_w && in_h == out_h {
        for y in ry..ry + rh {
            let start = (y as usize * in_w as usize + rx as usize) * 3;
            dst.data
                .extend_from_slice(&src.data[start..start + rw as usize * 3]);
        }
        return;
    }
    if in_w == 0 || in_h == 0 || out_len == 0 {
        dst.data.resize(out_len, 0);
        return;
    }

    let need_h = in_w != out_w;
    let need_v = in_h != out_h;
    let Scratch {
        horiz,
        vert,
        tmp,
        acc,
        row4,
        f64_buf,
    } = scratch;
    if need_h && !horiz.matches(in_w, out_w) {
        horiz.compute(in_w, out_w, f64_buf);
    }
    if need_v && !vert.matches(in_h, out_h) {
        vert.compute(in_h, out_h, f64_buf);
    }
    dst.data.resize(out_len, 0);
    let stride = in_w as usize * 3;

    match (need_h, need_v) {
        // One axis keeps its size: output rows (or columns) are source rows (columns).
        (true, false) => {
            let h = horiz.taps(rx, rw);
            horizontal_pass(&src.data, in_w, ry, rh, h, row4, &mut dst.data)
        }
        (false, true) => vertical_pass(
            &src.data,
            stride,
            rx,
            rw,
            vert.taps(ry, rh),
            acc,
            &mut dst.data,
        ),
        (true, true) => {
            let mut h = horiz.taps(rx, rw);
            let mut v = vert.taps(ry, rh);
            if compat.vertical_first(in_w, in_h, out_w, out_h) {
                // Vertical pass over just the source columns the horizontal pass reads.
                let (first, last) = h.span();
                let cols = last - first;
                tmp.clear();
                tmp.resize(cols as usize * rh as usize * 3, 0);
                vertical_pass(&src.data, stride, first, cols, v, acc, tmp);
                h.shift = first;
                horizontal_pass(tmp, cols, 0, rh, h, row4, &mut dst.data);
            } else {
                // Horizontal pass over just the source rows the vertical pass reads.
                let (first, last) = v.span();
                let rows = last - first;
                tmp.clear();
                tmp.resize(rw as usize * rows as usize * 3, 0);
                horizontal_pass(&src.data, in_w, first, rows, h, row4, tmp);
                v.shift = first;
                vertical_pass(tmp, rw as usize * 3, 0, rw, v, acc, &mut dst.data);
            }
        }
        (false, false) => unreachable!(),
    }
}

/// `ImagingResampleHorizontal_8bpc` for packed RGB: rows `y0..y0+rows` of `src` (width `in_w`)
/// into `dst` (width `c.bounds.len()`, `rows` rows).
///
/// The source columns the taps read are first widened to 4 bytes per pixel (`row4`, like
/// Pillow's own RGBX layout) so the per-tap work is one 4-lane multiply-add the compiler can
/// vectorise; the fourth lane is ignored. The arithmetic is unchanged: the same integer
/// products and sums.
fn horizontal_pass(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    row4: &mut Vec<[u8; 4]>,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.1") {
            // SAFETY: the CPU supports SSE4.1 (checked just above); the function body is the
            // same safe Rust, only compiled with native 32-bit lane multiplies.
            unsafe { horizontal_pass_sse41(src, in_w, y0, rows, c, row4, dst) };
            return;
        }
    }
    horizontal_pass_impl(src, in_w, y0, rows, c, row4, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn horizontal_pass_sse41(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    row4: &mut Vec<[u8; 4]>,
    dst: &mut [u8],
) {
    horizontal_pass_impl(src, in_w, y0, rows, c, row4, dst)
}

#[inline(always)]
fn horizontal_pass_impl(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    row4: &mut Vec<[u8; 4]>,
    dst: &mut [u8],
) {
    let in_stride = in_w as usize * 3;
    let out_stride = c.bounds.len() * 3;
    let ksize = c.ksize;
    let (first, last) = c.span();
    let lo = (first - c.shift) as usize;
    let hi = (last - c.shift) as usize;
    row4.clear();
    row4.resize(hi - lo, [0; 4]);
    for y in 0..rows as usize {
        let src_row = &src[(y0 as usize + y) * in_stride..][..in_stride];
        for (q, p) in row4.iter_mut().zip(src_row[lo * 3..hi * 3].chunks_exact(3)) {
            *q = [p[0], p[1], p[2], 0];
        }
        let dst_row = &mut dst[y * out_stride..][..out_stride];
        for ((out, &(xmin, n)), k) in dst_row
            .chunks_exact_mut(3)
            .zip(c.bounds.iter())
            .zip(c.kk.chunks_exact(ksize))
        {
            let n = n as usize;
            let start = (xmin - first) as usize;
            let px = &row4[start..start + n];
            let mut acc = [HALF; 4];
            for (p, &w) in px.iter().zip(&k[..n]) {
                for ch in 0..4 {
                    acc[ch] = acc[ch].wrapping_add(p[ch] as i32 * w);
                }
            }
            out[0] = clip8(acc[0]);
            out[1] = clip8(acc[1]);
            out[2] = clip8(acc[2]);
        }
    }
}

/// `ImagingResampleVertical_8bpc` for packed RGB: columns `col0..col0+cols` of `src` (rows
/// `stride` bytes apart) into `dst` (`cols` wide, `c.bounds.len()` rows). Sums are accumulated
/// row by row; integer addition makes the order irrelevant to the result.
fn vertical_pass(
    src: &[u8],
    stride: usize,
    col0: u32,
    cols: u32,
    c: Taps,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above); same safe Rust body.
            unsafe { vertical_pass_avx2(src, stride, col0, cols, c, acc, dst) };
            return;
        }
        if std::arch::is_x86_feature_detected!("sse4.1") {
            // SAFETY: SSE4.1 is available (checked above); same safe Rust body.
            unsafe { vertical_pass_sse41(src, stride, col0, cols, c, acc, dst) };
            return;
        }
    }
    vertical_pass_impl(src, stride, col0, cols, c, acc, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_pass_avx2(
    src: &[u8],
    stride: usize,
    col0: u32,
    cols: u32,
    c: Taps,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    vertical_pass_impl(src, stride, col0, cols, c, acc, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn vertical_pass_sse41(
    src: &[u8],
    stride: usize,
    col0: u32,
    cols: u32,
    c: Taps,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    vertical_pass_impl(src, stride, col0, cols, c, acc, dst)
}

#[inline(always)]
fn vertical_pass_impl(
    src: &[u8],
    stride: usize,
    col0: u32,
    cols: u32,
    c: Taps,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    let width = cols as usize * 3;
    let offset = col0 as usize * 3;
    acc.clear();
    acc.resize(width, 0);
    let ksize = c.ksize;
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.kk[yy * ksize..yy * ksize + n as usize];
        acc.fill(HALF);
        for (j, &wgt) in k.iter().enumerate() {
            let row = &src[(ymin - c.shift) as usize * stride + j * stride + offset..][..width];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(p as i32 * wgt);
            }
        }
        let out = &mut dst[yy * width..][..width];
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = (y as usize * w as usize + x as usize) * 3;
                img.data[i] = (x * 7 + y * 3) as u8;
                img.data[i + 1] = (x ^ y) as u8;
                img.data[i + 2] = ((x * y) % 251) as u8;
            }
        }
        img
    }

    #[test]
    fn same_size_is_copy() {
        let img = gradient(17, 9);
        assert_eq!(resize_bilinear(&img, 17, 9, PillowCompat::Pillow13), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let mut img = RgbImage::new(123, 77);
        img.data.iter_mut().for_each(|v| *v = 200);
        for &(w, h) in &[(1, 1), (224, 224), (10, 300), (500, 3)] {
            let out = resize_bilinear(&img, w, h, PillowCompat::Pillow13);
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.data.iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn coefficients_sum_to_one() {
        let mut c = Coeffs::default();
        let mut buf = Vec::new();
        for &(i, o) in &[(1920u32, 224u32), (224, 1920), (3, 2), (1, 5), (5, 1)] {
            c.compute(i, o, &mut buf);
            for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i64 = c.kk[xx * c.ksize..xx * c.ksize + n as usize]
                    .iter()
                    .map(|&v| v as i64)
                    .sum();
                assert!((s - (1 << 22)).abs() <= n as i64, "{i}->{o} [{xx}] {s}");
            }
        }
    }

    #[test]
    fn pass_order_condition() {
        let c = PillowCompat::Pillow13;
        assert!(c.vertical_first(333, 517, 224, 224));
        assert!(c.vertical_first(720, 1280, 224, 224));
        assert!(!c.vertical_first(1920, 1080, 224, 224));
        assert!(!c.vertical_first(224, 224, 448, 448));
        assert!(!PillowCompat::Pillow12.vertical_first(333, 517, 224, 224));
    }

    #[test]
    fn into_reuses_buffers_and_matches() {
        let img = gradient(333, 517);
        let mut scratch = Scratch::new();
        let mut dst = RgbImage::default();
        for compat in [PillowCompat::Pillow13, PillowCompat::Pillow12] {
            for &(w, h) in &[(224, 224), (100, 517), (333, 50), (224, 224)] {
                resize_bilinear_into(&img, w, h, compat, &mut scratch, &mut dst);
                assert_eq!(dst, resize_bilinear(&img, w, h, compat));
            }
        }
    }

    #[test]
    fn dispatched_passes_equal_portable_code() {
        let img = gradient(97, 131);
        let mut h = Coeffs::default();
        let mut v = Coeffs::default();
        let mut buf = Vec::new();
        h.compute(97, 40, &mut buf);
        v.compute(131, 33, &mut buf);
        let (mut a, mut b) = (vec![0u8; 40 * 131 * 3], vec![0u8; 40 * 131 * 3]);
        let mut row4 = Vec::new();
        horizontal_pass(&img.data, 97, 0, 131, h.taps(0, 40), &mut row4, &mut a);
        horizontal_pass_impl(&img.data, 97, 0, 131, h.taps(0, 40), &mut row4, &mut b);
        assert_eq!(a, b);
        let (mut c, mut d) = (vec![0u8; 97 * 33 * 3], vec![0u8; 97 * 33 * 3]);
        let mut acc = Vec::new();
        vertical_pass(&img.data, 97 * 3, 0, 97, v.taps(0, 33), &mut acc, &mut c);
        vertical_pass_impl(&img.data, 97 * 3, 0, 97, v.taps(0, 33), &mut acc, &mut d);
        assert_eq!(c, d);
    }

    fn crop(img: &RgbImage, roi: Roi) -> RgbImage {
        let mut out = RgbImage::new(roi.width, roi.height);
        for y in 0..roi.height {
            let s = ((roi.y + y) as usize * img.width as usize + roi.x as usize) * 3;
            let d = y as usize * roi.width as usize * 3;
            out.data[d..d + roi.width as usize * 3]
                .copy_from_slice(&img.data[s..s + roi.width as usize * 3]);
        }
        out
    }

    #[test]
    fn roi_equals_crop_of_the_full_resize() {
        let mut scratch = Scratch::new();
        let mut dst = RgbImage::default();
        for (iw, ih) in [(333, 517), (517, 333), (64, 64), (40, 300)] {
            let img = gradient(iw, ih);
            for (ow, oh) in [
                (224, 224),
                (455, 256),
                (64, 100),
                (333, 90),
                (50, 517),
                (900, 700),
            ] {
                for compat in [PillowCompat::Pillow13, PillowCompat::Pillow12] {
                    let full = resize_bilinear(&img, ow, oh, compat);
                    for roi in [
                        Roi {
                            x: 0,
                            y: 0,
                            width: ow,
                            height: oh,
                        },
                        Roi {
                            x: ow / 4,
                            y: oh / 3,
                            width: ow / 2,
                            height: oh / 2,
                        },
                        Roi {
                            x: ow - 1,
                            y: 0,
                            width: 1,
                            height: oh,
                        },
                        Roi {
                            x: 3,
                            y: oh - 2,
                            width: ow - 3,
                            height: 2,
                        },
                    ] {
                        resize_bilinear_roi_into(&img, ow, oh, roi, compat, &mut scratch, &mut dst);
                        assert_eq!(
                            dst,
                            crop(&full, roi),
                            "{iw}x{ih} -> {ow}x{oh} {roi:?} {compat:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn zero_sizes_do_not_panic() {
        let img = gradient(5, 5);
        assert_eq!(
            resize_bilinear(&img, 0, 3, PillowCompat::Pillow13)
                .data
                .len(),
            0
        );
        let empty = RgbImage::new(0, 0);
        let out = resize_bilinear(&empty, 4, 2, PillowCompat::Pillow13);
        assert_eq!(out.data, vec![0; 24]);
    }
}
