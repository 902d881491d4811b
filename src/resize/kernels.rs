//! The two passes of the resampler: the horizontal pass (portable, SSE4.1 and AVX2 kernels,
//! bit-identical) and the vertical pass (portable, with the compiler's SSE4.1 / AVX2 code
//! generation), over the coefficients computed in the parent module.

use super::*;

/// `ImagingResampleHorizontal_8bpc` for packed RGB: rows `y0..y0+rows` of `src` (width `in_w`)
/// into `dst` (width `c.bounds.len()`, `rows` rows).
///
/// On x86_64 with AVX2 or SSE4.1 this runs an exact 16-bit multiply-add kernel
/// ([`horizontal_pass_avx2`], [`horizontal_pass_sse41`]); [`horizontal_pass_impl`] is the
/// portable fallback and the reference they are tested against.
pub(super) fn horizontal_pass(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    bufs: &mut RowBufs,
    dst: &mut [u8],
) {
    horizontal_pass_with(HKernel::detect(&c), src, in_w, y0, rows, c, bufs, dst)
}

/// [`horizontal_pass`] with the given kernel, which must be supported by the CPU (see
/// [`HKernel::supported`]) and, unless `Portable`, `c.split_ok` must hold.
#[allow(clippy::too_many_arguments)]
pub(super) fn horizontal_pass_with(
    kernel: HKernel,
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    bufs: &mut RowBufs,
    dst: &mut [u8],
) {
    assert!(kernel == HKernel::Portable || c.split_ok);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        HKernel::Avx2 => {
            assert!(std::arch::is_x86_feature_detected!("avx2"));
            // SAFETY: the CPU supports AVX2 (asserted just above).
            unsafe { horizontal_pass_avx2(src, in_w, y0, rows, c, &mut bufs.pad, dst) }
        }
        #[cfg(target_arch = "x86_64")]
        HKernel::Sse41 => {
            assert!(std::arch::is_x86_feature_detected!("sse4.1"));
            // SAFETY: the CPU supports SSE4.1 (asserted just above).
            unsafe { horizontal_pass_sse41(src, in_w, y0, rows, c, &mut bufs.pad, dst) }
        }
        HKernel::Portable => horizontal_pass_impl(src, in_w, y0, rows, c, &mut bufs.row4, dst),
    }
}

/// Row buffers of the horizontal pass.
#[derive(Clone, Debug, Default)]
pub(super) struct RowBufs {
    /// The portable code's RGBX row.
    pub(super) row4: Vec<[u8; 4]>,
    /// Zero-padded copies of source rows, for the SIMD kernels' reads past their end.
    pad: [Vec<u8>; 2],
}

impl RowBufs {
    /// Heap bytes these rows hold on to.
    pub(super) fn retained_bytes(&self) -> usize {
        capacity_bytes(&self.row4) + capacity_bytes(&self.pad[0]) + capacity_bytes(&self.pad[1])
    }
}

/// Which horizontal kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HKernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Sse41,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl HKernel {
    /// The kernels this CPU supports, portable first.
    #[cfg(test)]
    pub(super) fn supported() -> Vec<HKernel> {
        #[allow(unused_mut)]
        let mut v = vec![HKernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sse4.1") {
                v.push(HKernel::Sse41);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(HKernel::Avx2);
            }
        }
        v
    }

    /// The fastest kernel this CPU supports for these coefficients.
    pub(super) fn detect(c: &Taps) -> HKernel {
        #[cfg(target_arch = "x86_64")]
        {
            if c.split_ok {
                if std::arch::is_x86_feature_detected!("avx2") {
                    return HKernel::Avx2;
                }
                if std::arch::is_x86_feature_detected!("sse4.1") {
                    return HKernel::Sse41;
                }
            }
        }
        let _ = c;
        HKernel::Portable
    }
}

/// Where the SIMD horizontal kernels read: see [`simd_horizontal_rows`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RowGeom {
    /// The smallest first tap (`Taps::span().0`): output `i` reads from byte
    /// `(bounds[i].0 - first) * 3` of the row slices.
    first: u32,
    /// The length every row slice has at least.
    need: usize,
}

#[cfg(target_arch = "x86_64")]
impl RowGeom {
    /// The last group of the output sample with the largest first tap reads 16 bytes from
    /// `(xmin - first) * 3 + 12 * (groups - 1)`.
    fn new(c: &Taps) -> RowGeom {
        let (first, _) = c.span();
        let max_off = c
            .bounds
            .iter()
            .map(|b| (b.0 - first) as usize * 3)
            .max()
            .unwrap_or(0);
        RowGeom {
            first,
            need: max_off + c.groups * 12 + 4,
        }
    }
}

/// The row loop of the SIMD horizontal kernels, which get one or two rows at a time.
///
/// For every output sample `i` of a row, the kernels read the 16 bytes at
/// `(c.bounds[i].0 - geom.first) * 3 + 12 * g` for `g < c.groups` of the row slice: 4 packed
/// RGB pixels and 4 bytes more. Taps past `n` (and past `ksize`) have zero weights, so
/// whatever they read does not change the sums, but it must be readable: every row slice
/// passed to a kernel starts at pixel `geom.first - c.shift` of its source row and is
/// `geom.need` bytes long (the row itself, followed by the next rows of `src`, or by zeros
/// in a `pads` copy for the last rows). The output slices are `c.bounds.len() * 3` bytes.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn simd_horizontal_rows(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: &Taps,
    geom: RowGeom,
    pads: &mut [Vec<u8>; 2],
    dst: &mut [u8],
    mut one: impl FnMut(&[u8], &mut [u8]),
    mut two: impl FnMut([&[u8]; 2], &mut [u8], &mut [u8]),
) {
    let in_stride = in_w as usize * 3;
    let out_stride = c.bounds.len() * 3;
    let (first, last) = c.span();
    assert_eq!(first, geom.first);
    let lo = (first - c.shift) as usize;
    let hi = (last - c.shift) as usize;
    assert!(hi <= in_w as usize, "taps read past the source row");
    assert_eq!(c.split.len(), c.bounds.len() * c.groups * 8);
    assert!(dst.len() >= rows as usize * out_stride);
    let need = geom.need;
    let [pad0, pad1] = pads;
    let rows = rows as usize;
    let mut y = 0;
    while y < rows {
        let start0 = (y0 as usize + y) * in_stride + lo * 3;
        let row0: &[u8] = if start0 + need <= src.len() {
            &src[start0..start0 + need]
        } else {
            pad0.clear();
            pad0.extend_from_slice(&src[start0..start0 + (hi - lo) * 3]);
            pad0.resize(need.max(pad0.len()), 0);
            &pad0[..need]
        };
        let out = &mut dst[y * out_stride..];
        if y + 1 < rows {
            let start1 = start0 + in_stride;
            let row1: &[u8] = if start1 + need <= src.len() {
                &src[start1..start1 + need]
            } else {
                pad1.clear();
                pad1.extend_from_slice(&src[start1..start1 + (hi - lo) * 3]);
                pad1.resize(need.max(pad1.len()), 0);
                &pad1[..need]
            };
            let (out0, rest) = out.split_at_mut(out_stride);
            two([row0, row1], out0, &mut rest[..out_stride]);
            y += 2;
        } else {
            one(row0, &mut out[..out_stride]);
            y += 1;
        }
    }
}

/// AVX2 horizontal kernel. Per output sample and per group of 4 taps, one 16-byte load
/// broadcast to both 128-bit lanes is shuffled into 16-bit pixels `[R0 R1 R2 R3 G0 G1 G2 G3 |
/// B0 B1 B2 B3 0 0 0 0]` and multiplied-added with `[k0 k1 k2 k3 k0 k1 k2 k3]` (high and low
/// halves of the split weights), giving exact `i32` sums of tap pairs. At the end
/// `(hi << 11) + lo` equals the portable `sum(pixel * k)` exactly (no `i32` overflow: weights
/// in `[0, 2^22]` summing to about `2^22`, pixels <= 255), the pair sums are added, and the
/// result is rounded and clamped as in `clip8`. Two rows are done together, sharing the
/// weight loads and the final packing.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn horizontal_pass_avx2(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    pads: &mut [Vec<u8>; 2],
    dst: &mut [u8],
) {
    let g = RowGeom::new(&c);
    // The group count is a constant for the common ratios (up to 8x downscaling), so that
    // the tap loop unrolls.
    simd_horizontal_rows(
        src,
        in_w,
        y0,
        rows,
        &c,
        g,
        pads,
        dst,
        |row, out| match c.groups {
            1 => horizontal_rows_avx2::<1, 1>([row], g, &c, [out]),
            2 => horizontal_rows_avx2::<2, 1>([row], g, &c, [out]),
            3 => horizontal_rows_avx2::<3, 1>([row], g, &c, [out]),
            4 => horizontal_rows_avx2::<4, 1>([row], g, &c, [out]),
            _ => horizontal_rows_avx2::<0, 1>([row], g, &c, [out]),
        },
        |rows, out0, out1| match c.groups {
            1 => horizontal_rows_avx2::<1, 2>(rows, g, &c, [out0, out1]),
            2 => horizontal_rows_avx2::<2, 2>(rows, g, &c, [out0, out1]),
            3 => horizontal_rows_avx2::<3, 2>(rows, g, &c, [out0, out1]),
            4 => horizontal_rows_avx2::<4, 2>(rows, g, &c, [out0, out1]),
            _ => horizontal_rows_avx2::<0, 2>(rows, g, &c, [out0, out1]),
        },
    );
}

/// `R` (1 or 2) rows of [`horizontal_pass_avx2`], `G` groups of taps (`0`: `c.groups`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn horizontal_rows_avx2<const G: usize, const R: usize>(
    rows: [&[u8]; R],
    geom: RowGeom,
    c: &Taps,
    out: [&mut [u8]; R],
) {
    use std::arch::x86_64::*;
    let groups = if G == 0 { c.groups } else { G };
    assert!(groups == c.groups && (R == 1 || R.is_multiple_of(2)));
    let n = c.bounds.len();
    assert_eq!(c.split.len(), n * groups * 8);
    // `geom` is `RowGeom::new(c)`: built from the same `c` by the only caller.
    debug_assert_eq!(geom, RowGeom::new(c));
    for r in 0..R {
        assert!(rows[r].len() >= geom.need && out[r].len() == n * 3);
    }
    let shuf = _mm256_setr_epi8(
        0, -1, 3, -1, 6, -1, 9, -1, 1, -1, 4, -1, 7, -1, 10, -1, //
        2, -1, 5, -1, 8, -1, 11, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let half = _mm256_set1_epi32(HALF);
    for (i, (&(xmin, _), k)) in c
        .bounds
        .iter()
        .zip(c.split.chunks_exact(groups * 8))
        .enumerate()
    {
        let off = (xmin - geom.first) as usize * 3;
        let mut hi = [_mm256_setzero_si256(); R];
        let mut lo = [_mm256_setzero_si256(); R];
        for g in 0..groups {
            // SAFETY: `geom` is `RowGeom::new(c)`, so `geom.first <= xmin` and
            // `off + 12 * g + 16 <= geom.need` for `g < groups`; every row is at least
            // `geom.need` bytes (asserted above) and `k` holds `groups * 8` i16, so all the
            // reads are in bounds. Unaligned loads have no alignment requirement.
            let (kh, kl) = unsafe {
                let w = k.as_ptr().add(8 * g) as *const i64;
                (
                    _mm256_set1_epi64x(w.read_unaligned()),
                    _mm256_set1_epi64x(w.add(1).read_unaligned()),
                )
            };
            for r in 0..R {
                // SAFETY: as above.
                let px = unsafe {
                    let p = rows[r].as_ptr().add(off + 12 * g) as *const __m128i;
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(p))
                };
                let px = _mm256_shuffle_epi8(px, shuf);
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(px, kh));
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(px, kl));
            }
        }
        // Per row [R01 R23 G01 G23 | B01 B23 0 0]; `hadd` of rows a and b:
        // [Ra Ga Rb Gb | Ba 0 Bb 0].
        for r in (0..R).step_by(2) {
            let r1 = (r + 1).min(R - 1);
            let v0 = _mm256_add_epi32(_mm256_slli_epi32(hi[r], SPLIT_BITS as i32), lo[r]);
            let v1 = _mm256_add_epi32(_mm256_slli_epi32(hi[r1], SPLIT_BITS as i32), lo[r1]);
            let v = _mm256_hadd_epi32(v0, v1);
            let v = _mm256_srai_epi32(_mm256_add_epi32(v, half), PRECISION_BITS as i32);
            // Bytes: [Ra Ga Rb Gb ... | Ba 0 Bb 0 ...] (saturated to 0..=255, as `clip8`).
            let v = _mm256_packus_epi16(_mm256_packs_epi32(v, v), v);
            // Bytes: [Ra Ga Ba 0 Rb Gb Bb 0].
            let v = _mm_unpacklo_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            let q = _mm_cvtsi128_si64(v);
            store_rgb(out[r], i, q as i32);
            if r1 != r {
                store_rgb(out[r1], i, (q >> 32) as i32);
            }
        }
    }
}

/// Writes the low 3 bytes of `rgbx` as output pixel `i` of `out`. Except for the last pixel,
/// all 4 bytes are written (one store instead of two): the 4th is the next pixel's first byte,
/// which is written afterwards.
#[inline(always)]
fn store_rgb(out: &mut [u8], i: usize, rgbx: i32) {
    let b = rgbx.to_le_bytes();
    if let Some(o) = out.get_mut(i * 3..i * 3 + 4) {
        o.copy_from_slice(&b);
    } else {
        out[i * 3..i * 3 + 3].copy_from_slice(&b[..3]);
    }
}

/// SSE4.1 horizontal kernel: [`horizontal_pass_avx2`] one row at a time, with the two
/// 128-bit halves in two registers (`[R0..R3 G0..G3]` and `[B0..B3 0..]`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
fn horizontal_pass_sse41(
    src: &[u8],
    in_w: u32,
    y0: u32,
    rows: u32,
    c: Taps,
    pads: &mut [Vec<u8>; 2],
    dst: &mut [u8],
) {
    let g = RowGeom::new(&c);
    let one = |row: &[u8], out: &mut [u8]| match c.groups {
        1 => horizontal_row_sse41::<1>(row, g, &c, out),
        2 => horizontal_row_sse41::<2>(row, g, &c, out),
        3 => horizontal_row_sse41::<3>(row, g, &c, out),
        4 => horizontal_row_sse41::<4>(row, g, &c, out),
        _ => horizontal_row_sse41::<0>(row, g, &c, out),
    };
    simd_horizontal_rows(
        src,
        in_w,
        y0,
        rows,
        &c,
        g,
        pads,
        dst,
        one,
        |[r0, r1], out0, out1| {
            one(r0, out0);
            one(r1, out1);
        },
    );
}

/// One row of [`horizontal_pass_sse41`]: `G` groups of taps (`0`: `c.groups`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
#[inline]
fn horizontal_row_sse41<const G: usize>(row: &[u8], geom: RowGeom, c: &Taps, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let groups = if G == 0 { c.groups } else { G };
    assert_eq!(groups, c.groups);
    let n = c.bounds.len();
    // `geom` is `RowGeom::new(c)`: built from the same `c` by the only caller.
    debug_assert_eq!(geom, RowGeom::new(c));
    assert!(row.len() >= geom.need && out.len() == n * 3 && c.split.len() == n * groups * 8);
    let shuf_rg = _mm_setr_epi8(0, -1, 3, -1, 6, -1, 9, -1, 1, -1, 4, -1, 7, -1, 10, -1);
    let shuf_b = _mm_setr_epi8(2, -1, 5, -1, 8, -1, 11, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    let half = _mm_set1_epi32(HALF);
    for (i, (&(xmin, _), k)) in c
        .bounds
        .iter()
        .zip(c.split.chunks_exact(groups * 8))
        .enumerate()
    {
        let off = (xmin - geom.first) as usize * 3;
        let mut hi_rg = _mm_setzero_si128();
        let mut lo_rg = _mm_setzero_si128();
        let mut hi_b = _mm_setzero_si128();
        let mut lo_b = _mm_setzero_si128();
        for g in 0..groups {
            // SAFETY: as in `horizontal_rows_avx2`: `off + 12 * g + 16 <= geom.need <=
            // row.len()` and `k` holds `groups * 8` i16.
            let (px, kh, kl) = unsafe {
                let p = row.as_ptr().add(off + 12 * g) as *const __m128i;
                let w = k.as_ptr().add(8 * g) as *const i64;
                (
                    _mm_loadu_si128(p),
                    _mm_set1_epi64x(w.read_unaligned()),
                    _mm_set1_epi64x(w.add(1).read_unaligned()),
                )
            };
            let rg = _mm_shuffle_epi8(px, shuf_rg);
            let b = _mm_shuffle_epi8(px, shuf_b);
            hi_rg = _mm_add_epi32(hi_rg, _mm_madd_epi16(rg, kh));
            lo_rg = _mm_add_epi32(lo_rg, _mm_madd_epi16(rg, kl));
            hi_b = _mm_add_epi32(hi_b, _mm_madd_epi16(b, kh));
            lo_b = _mm_add_epi32(lo_b, _mm_madd_epi16(b, kl));
        }
        let rg = _mm_add_epi32(_mm_slli_epi32(hi_rg, SPLIT_BITS as i32), lo_rg);
        let b = _mm_add_epi32(_mm_slli_epi32(hi_b, SPLIT_BITS as i32), lo_b);
        let v = _mm_hadd_epi32(rg, b);
        let v = _mm_srai_epi32(_mm_add_epi32(v, half), PRECISION_BITS as i32);
        let v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
        store_rgb(out, i, _mm_cvtsi128_si32(v));
    }
}

/// Portable `ImagingResampleHorizontal_8bpc`, the reference for the SIMD kernels.
///
/// The source columns the taps read are first widened to 4 bytes per pixel (`row4`, like
/// Pillow's own RGBX layout) so the per-tap work is one 4-lane multiply-add the compiler can
/// vectorise; the fourth lane is ignored. The arithmetic is unchanged: the same integer
/// products and sums.
#[inline(always)]
pub(super) fn horizontal_pass_impl(
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
pub(super) fn vertical_pass(
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
pub(super) fn vertical_pass_impl(
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
