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

mod kernels;
use kernels::{horizontal_pass, vertical_pass, RowBufs};

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
    /// Number of 4-tap groups per output sample for the SIMD kernels: `ceil(ksize / 4)`.
    groups: usize,
    /// The weights of `kk` split for the exact 16-bit multiply-adds of the SIMD kernels:
    /// `k = (kh << SPLIT_BITS) + kl`, `kl` in `[0, 2^SPLIT_BITS)`, `kh` in `[0, 2048]`. Per
    /// output sample, `groups` groups of 8 values: `kh` of 4 taps, then `kl` of the same taps
    /// (zero past `ksize`).
    split: Vec<i16>,
    /// Whether every weight is in `[0, 2^22]`, so that `split` is exact and the SIMD kernels'
    /// sums cannot overflow. Always the case for the bilinear filter (its weights are never
    /// negative and their normalised value is at most 1); otherwise the portable code runs.
    split_ok: bool,
}

impl Coeffs {
    fn matches(&self, in_size: u32, out_size: u32) -> bool {
        self.ksize != 0 && self.in_size == in_size && self.out_size == out_size
    }

    /// `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter and the box
    /// `[0, in_size)`. Reuses the vectors' capacity.
    fn compute(&mut self, in_size: u32, out_size: u32, scratch_f64: &mut Vec<f64>) {
        let axis = AxisFilter::new(in_size, out_size);
        let AxisFilter {
            filterscale, ksize, ..
        } = axis;

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
            let (center, xmin, xmax) = axis.support(xx);
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
        self.compute_split();
    }

    /// Fills `groups`, `split` and `split_ok` from `kk`.
    fn compute_split(&mut self) {
        let ksize = self.ksize;
        self.groups = ksize.div_ceil(4);
        self.split_ok = self
            .kk
            .iter()
            .all(|&k| (0..=1 << PRECISION_BITS).contains(&k));
        self.split.clear();
        if !self.split_ok {
            return;
        }
        self.split.reserve(self.out_size as usize * self.groups * 8);
        for k in self.kk.chunks_exact(ksize) {
            for g in 0..self.groups {
                let tap = |t: usize| k.get(g * 4 + t).copied().unwrap_or(0);
                for t in 0..4 {
                    self.split.push((tap(t) >> SPLIT_BITS) as i16);
                }
                for t in 0..4 {
                    self.split.push((tap(t) & ((1 << SPLIT_BITS) - 1)) as i16);
                }
            }
        }
    }
}

/// The filter's geometry on one axis (`in_size -> out_size`): the first lines of Pillow's
/// `precompute_coeffs` for the bilinear filter and the box `[0, in_size)`. Both the
/// coefficients ([`Coeffs::compute`]) and the source window ([`roi_source_window`]) come from
/// here, so they cannot disagree on which input samples an output reads.
#[derive(Clone, Copy, Debug)]
struct AxisFilter {
    in_size: u32,
    scale: f64,
    filterscale: f64,
    support: f64,
    ksize: usize,
}

impl AxisFilter {
    fn new(in_size: u32, out_size: u32) -> AxisFilter {
        debug_assert!(in_size > 0 && out_size > 0);
        // Pillow passes the box as float: in1 - in0 = (float)in_size, exact below 2^24.
        let in_span = in_size as f32 as f64;
        let scale = in_span / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = 1.0 * filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;
        AxisFilter {
            in_size,
            scale,
            filterscale,
            support,
            ksize,
        }
    }

    /// Output sample `xx`: the centre of its filter and the input samples `[xmin, xmax)` it
    /// reads (`xmax - xmin` taps; the weights of later taps are zero).
    fn support(&self, xx: usize) -> (f64, i64, i64) {
        let center = 0.0 + (xx as f64 + 0.5) * self.scale;
        // C `(int)` truncates toward zero, as does `as i64`.
        let mut xmin = (center - self.support + 0.5) as i64;
        if xmin < 0 {
            xmin = 0;
        }
        let mut xmax = (center + self.support + 0.5) as i64;
        if xmax > self.in_size as i64 {
            xmax = self.in_size as i64;
        }
        (center, xmin, xmax)
    }

    /// The input samples `[first, last)` that outputs `start..start + len` read together
    /// (the same as [`Taps::span`] of their coefficients).
    fn span(&self, start: u32, len: u32) -> (u32, u32) {
        let mut first = i64::MAX;
        let mut last = 0;
        for xx in start as usize..(start + len) as usize {
            let (_, xmin, xmax) = self.support(xx);
            first = first.min(xmin);
            last = last.max(xmin + (xmax - xmin).max(0));
        }
        if first == i64::MAX {
            return (0, 0);
        }
        (first as u32, last.max(first) as u32)
    }
}

/// Low bits of a weight in the split form used by the SIMD kernels (see `Coeffs::split`).
/// With weights in `[0, 2^22]` both halves fit `i16` (`kh <= 2^11`, `kl < 2^11`), and
/// `pixel * kh + pixel * kh'` (`pixel <= 255`) fits the `i32` of a 16-bit multiply-add.
const SPLIT_BITS: u32 = 11;

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
    /// `Coeffs::groups`, and `Coeffs::split` for these outputs (empty unless `split_ok`).
    groups: usize,
    split: &'a [i16],
    split_ok: bool,
}

impl Coeffs {
    fn taps(&self, start: u32, len: u32) -> Taps<'_> {
        let (a, b) = (start as usize, (start + len) as usize);
        Taps {
            ksize: self.ksize,
            bounds: &self.bounds[a..b],
            kk: &self.kk[a * self.ksize..b * self.ksize],
            shift: 0,
            groups: self.groups,
            split: if self.split_ok {
                &self.split[a * self.groups * 8..b * self.groups * 8]
            } else {
                &[]
            },
            split_ok: self.split_ok,
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
    rows: RowBufs,
    f64_buf: Vec<f64>,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Heap bytes these buffers hold on to (their capacities), for the engine's pool bound.
    pub fn retained_bytes(&self) -> usize {
        let coeffs = |c: &Coeffs| capacity_bytes(&c.bounds) + capacity_bytes(&c.kk);
        coeffs(&self.horiz)
            + coeffs(&self.vert)
            + capacity_bytes(&self.tmp)
            + capacity_bytes(&self.acc)
            + self.rows.retained_bytes()
            + capacity_bytes(&self.f64_buf)
    }
}

/// The heap bytes `v` holds on to.
fn capacity_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

/// A rectangle of an image: `width x height` pixels at (`x`, `y`).
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
        rows: row_bufs,
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
            horizontal_pass(&src.data, in_w, ry, rh, h, row_bufs, &mut dst.data)
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
                // The pass writes every byte: `resize` only fills what the vector grows by.
                tmp.resize(cols as usize * rh as usize * 3, 0);
                vertical_pass(&src.data, stride, first, cols, v, acc, tmp);
                h.shift = first;
                horizontal_pass(tmp, cols, 0, rh, h, row_bufs, &mut dst.data);
            } else {
                // Horizontal pass over just the source rows the vertical pass reads.
                let (first, last) = v.span();
                let rows = last - first;
                // The pass writes every byte: `resize` only fills what the vector grows by.
                tmp.resize(rw as usize * rows as usize * 3, 0);
                horizontal_pass(&src.data, in_w, first, rows, h, row_bufs, tmp);
                v.shift = first;
                vertical_pass(tmp, rw as usize * 3, 0, rw, v, acc, &mut dst.data);
            }
        }
        (false, false) => unreachable!(),
    }
}

/// The source pixels [`resize_bilinear_roi_into`] reads for `roi` of an `in_w x in_h` ->
/// `out_w x out_h` resize: a rectangle (the union of the resampler's supports of the kept
/// columns, times that of the kept rows), whatever the pass order. Every other source pixel
/// may hold anything without changing the result: the passes multiply-add only the taps of
/// each output sample's support (the SIMD kernels also load a few bytes past it, with zero
/// weights, which integer arithmetic turns into exact zeros). Empty (all zero) when nothing is
/// read.
pub fn roi_source_window(in_w: u32, in_h: u32, out_w: u32, out_h: u32, roi: Roi) -> Roi {
    // The clamping of `resize_bilinear_roi_into`.
    let rx = roi.x.min(out_w);
    let ry = roi.y.min(out_h);
    let rw = roi.width.min(out_w - rx);
    let rh = roi.height.min(out_h - ry);
    let empty = Roi {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
    };
    if in_w == 0 || in_h == 0 || rw == 0 || rh == 0 {
        return empty;
    }
    // An axis that keeps its size is not resampled: output sample i is input sample i.
    let span = |in_size: u32, out_size: u32, start: u32, len: u32| {
        if in_size == out_size {
            (start, start + len)
        } else {
            AxisFilter::new(in_size, out_size).span(start, len)
        }
    };
    let (x0, x1) = span(in_w, out_w, rx, rw);
    let (y0, y1) = span(in_h, out_h, ry, rh);
    if x0 >= x1 || y0 >= y1 {
        return empty;
    }
    Roi {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

#[cfg(test)]
mod tests {
    use super::kernels::*;
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

    /// Pseudo-random pixels (a fixed LCG), so that every byte value shows up.
    fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
        for v in img.data.iter_mut() {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            *v = (x >> 24) as u8;
        }
        img
    }

    #[test]
    fn split_coefficients_are_exact() {
        let mut c = Coeffs::default();
        let mut buf = Vec::new();
        for &(i, o) in &[
            (1u32, 7u32),
            (7, 1),
            (1920, 455),
            (455, 1920),
            (3000, 2),
            (5, 4),
        ] {
            c.compute(i, o, &mut buf);
            assert!(c.split_ok, "{i}->{o}");
            assert!(c.groups * 4 >= c.ksize);
            assert_eq!(c.split.len(), o as usize * c.groups * 8);
            for xx in 0..o as usize {
                for t in 0..c.groups * 4 {
                    let g = &c.split[(xx * c.groups + t / 4) * 8..][..8];
                    let (kh, kl) = (g[t % 4] as i32, g[4 + t % 4] as i32);
                    assert!((0..=2048).contains(&kh) && (0..2048).contains(&kl));
                    let k = if t < c.ksize {
                        c.kk[xx * c.ksize + t]
                    } else {
                        0
                    };
                    assert_eq!((kh << SPLIT_BITS) + kl, k, "{i}->{o} [{xx}] tap {t}");
                }
            }
        }
        // Weights the split cannot hold send the pass to the portable code.
        c.compute(10, 4, &mut buf);
        c.kk[1] = -1;
        c.compute_split();
        assert!(!c.split_ok && c.split.is_empty());
        assert_eq!(HKernel::detect(&c.taps(0, 4)), HKernel::Portable);
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
        let mut bufs = RowBufs::default();
        horizontal_pass(&img.data, 97, 0, 131, h.taps(0, 40), &mut bufs, &mut a);
        horizontal_pass_impl(&img.data, 97, 0, 131, h.taps(0, 40), &mut bufs.row4, &mut b);
        assert_eq!(a, b);
        let (mut c, mut d) = (vec![0u8; 97 * 33 * 3], vec![0u8; 97 * 33 * 3]);
        let mut acc = Vec::new();
        vertical_pass(&img.data, 97 * 3, 0, 97, v.taps(0, 33), &mut acc, &mut c);
        vertical_pass_impl(&img.data, 97 * 3, 0, 97, v.taps(0, 33), &mut acc, &mut d);
        assert_eq!(c, d);
    }

    /// Every supported horizontal kernel against the portable code: upscaling, downscaling
    /// (1 to 6+ groups of taps, so both the unrolled and the generic loops), 1-pixel rows,
    /// widths that are not multiples of anything, sub-ranges of outputs with a shifted
    /// source (as in the vertical-first order), rows at the very end of the source buffer
    /// (the zero-padded copy), and extreme pixel values.
    #[test]
    fn simd_horizontal_kernels_equal_portable_code() {
        let kernels = HKernel::supported();
        eprintln!("kernels: {kernels:?}");
        let in_sizes = [
            1u32, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 97, 200, 333, 1000,
        ];
        let out_sizes = [1u32, 2, 3, 4, 5, 7, 16, 17, 40, 64, 100, 224, 455, 701];
        let mut coeffs = Coeffs::default();
        let mut buf = Vec::new();
        let mut bufs = RowBufs::default();
        let rows = 3u32;
        for &in_w in &in_sizes {
            let images = [
                noise(in_w, rows + 2, in_w),
                RgbImage {
                    width: in_w,
                    height: rows + 2,
                    data: vec![255; in_w as usize * (rows as usize + 2) * 3],
                },
                gradient(in_w, rows + 2),
            ];
            for &out_w in &out_sizes {
                coeffs.compute(in_w, out_w, &mut buf);
                assert!(coeffs.split_ok);
                let ranges = [
                    (0, out_w),
                    (out_w / 3, out_w - out_w / 3 - out_w / 5),
                    (out_w - 1, 1),
                ];
                for img in &images {
                    for &(start, len) in &ranges {
                        let full = coeffs.taps(start, len);
                        // The source as the pass sees it: the whole rows, or just the
                        // columns the taps read (`shift`).
                        let (first, last) = full.span();
                        let cols = last - first;
                        let mut narrow = RgbImage::new(cols, img.height);
                        for y in 0..img.height as usize {
                            let s = (y * in_w as usize + first as usize) * 3;
                            narrow.data[y * cols as usize * 3..][..cols as usize * 3]
                                .copy_from_slice(&img.data[s..s + cols as usize * 3]);
                        }
                        let shifted = Taps {
                            shift: first,
                            ..full
                        };
                        for (src, w, taps) in [(img, in_w, full), (&narrow, cols, shifted)] {
                            // Rows at the start, and the last rows of the buffer.
                            for y0 in [0, 2] {
                                let size = len as usize * rows as usize * 3;
                                let mut want = vec![0u8; size];
                                horizontal_pass_impl(
                                    &src.data,
                                    w,
                                    y0,
                                    rows,
                                    taps,
                                    &mut bufs.row4,
                                    &mut want,
                                );
                                for &k in &kernels {
                                    let mut got = vec![7u8; size];
                                    horizontal_pass_with(
                                        k, &src.data, w, y0, rows, taps, &mut bufs, &mut got,
                                    );
                                    let diff = got.iter().zip(&want).position(|(a, b)| a != b);
                                    assert_eq!(
                                        diff, None,
                                        "{k:?} {in_w}->{out_w} [{start}; {len}] shift {} y0 {y0}",
                                        taps.shift
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
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

    /// The window is the coefficients' own span, and no pixel outside it changes the result:
    /// poisoned with 0 or 255 (or noise), every ROI of every resize (both pass orders, each
    /// axis resampled or not, up- and downscaling) gives the same pixels.
    #[test]
    fn roi_source_window_covers_every_pixel_read() {
        let mut scratch = Scratch::new();
        let (mut want, mut got) = (RgbImage::default(), RgbImage::default());
        let mut c = Coeffs::default();
        let mut buf = Vec::new();
        for (iw, ih) in [(333, 517), (517, 333), (64, 64), (40, 300), (1, 9), (97, 1)] {
            let img = noise(iw, ih, iw * 7 + ih);
            for (ow, oh) in [
                (224, 224),
                (455, 256),
                (iw, 100),
                (333, ih),
                (50, 517),
                (900, 700),
                (3, 2),
            ] {
                let rois = [
                    Roi {
                        x: 0,
                        y: 0,
                        width: ow,
                        height: oh,
                    },
                    Roi {
                        x: ow / 4,
                        y: oh / 3,
                        width: (ow / 2).max(1),
                        height: (oh / 2).max(1),
                    },
                    Roi {
                        x: ow - 1,
                        y: 0,
                        width: 1,
                        height: oh,
                    },
                    Roi {
                        x: 3.min(ow - 1),
                        y: oh - 1,
                        width: ow,
                        height: 9,
                    },
                ];
                for roi in rois {
                    let win = roi_source_window(iw, ih, ow, oh, roi);
                    assert!(
                        win.width > 0 && win.height > 0,
                        "{iw}x{ih} -> {ow}x{oh} {roi:?} {win:?}"
                    );
                    assert!(win.x + win.width <= iw && win.y + win.height <= ih);
                    // Same span as the coefficients the passes use.
                    let rw = roi.width.min(ow - roi.x);
                    let rh = roi.height.min(oh - roi.y);
                    if iw != ow {
                        c.compute(iw, ow, &mut buf);
                        assert_eq!(c.taps(roi.x, rw).span(), (win.x, win.x + win.width));
                    }
                    if ih != oh {
                        c.compute(ih, oh, &mut buf);
                        assert_eq!(c.taps(roi.y, rh).span(), (win.y, win.y + win.height));
                    }
                    for compat in [PillowCompat::Pillow13, PillowCompat::Pillow12] {
                        resize_bilinear_roi_into(
                            &img,
                            ow,
                            oh,
                            roi,
                            compat,
                            &mut scratch,
                            &mut want,
                        );
                        for poison in [0u8, 255, 1] {
                            let mut p = if poison == 1 {
                                noise(iw, ih, 99)
                            } else {
                                RgbImage {
                                    width: iw,
                                    height: ih,
                                    data: vec![poison; iw as usize * ih as usize * 3],
                                }
                            };
                            for y in win.y..win.y + win.height {
                                let s = (y as usize * iw as usize + win.x as usize) * 3;
                                let n = win.width as usize * 3;
                                p.data[s..s + n].copy_from_slice(&img.data[s..s + n]);
                            }
                            resize_bilinear_roi_into(
                                &p,
                                ow,
                                oh,
                                roi,
                                compat,
                                &mut scratch,
                                &mut got,
                            );
                            assert_eq!(
                                got, want,
                                "{iw}x{ih} -> {ow}x{oh} {roi:?} window {win:?} poison {poison} {compat:?}"
                            );
                        }
                    }
                }
            }
        }
        let nothing = Roi {
            x: 0,
            y: 0,
            width: 0,
            height: 0,
        };
        assert_eq!(roi_source_window(10, 10, 5, 5, nothing), nothing);
        assert_eq!(
            roi_source_window(
                0,
                10,
                5,
                5,
                Roi {
                    width: 5,
                    height: 5,
                    ..nothing
                }
            ),
            nothing
        );
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
