//! BMP, read the way Pillow's `BmpImagePlugin` reads it, then `convert('RGB')`.
//!
//! The `image` crate's BMP decoder differs from Pillow on real files: it scales 5- and 6-bit
//! channels with rounding where Pillow truncates (`v * 255 / 31`), rejects RLE delta escapes
//! that Pillow accepts, and accepts layouts and early ends that Pillow refuses. So this is a
//! port of Pillow's rules:
//!
//! * headers: OS/2 1.x (12 bytes) and Windows 40/52/56/64/108/124 bytes; a negative height
//!   (top byte 0xFF) means top-down rows;
//! * 1/4/8-bit palettes (4-byte entries, 3-byte for OS/2), `biClrUsed` entries or `1 << bits`;
//!   an all-gray palette makes the image `L` (or `1`) and the indices are the gray levels;
//! * 16-bit (5-5-5, or 5-6-5 with bit fields), 24-bit, 32-bit with the bit-field layouts Pillow
//!   knows (alpha is dropped); any other bit-field layout is refused, as Pillow does;
//! * RLE8/RLE4 with Pillow's exact handling of runs, absolute runs, end of line, deltas, and an
//!   end of bitmap before the last row ("not enough image data").

use super::check_size;
use super::DecodeOptions;
use crate::error::{Error, Result};
use crate::image::RgbImage;

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Decode(format!("BMP: {msg}"))
}

fn u16_at(b: &[u8], o: usize) -> Result<u32> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as u32)
        .ok_or_else(|| err("truncated header"))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| err("truncated header"))
}

/// How the stored pixels unpack (Pillow's raw modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Raw {
    /// Palette indices of 1, 4 or 8 bits.
    Index(u32),
    /// Gray levels of 8 bits (an all-gray palette), or 1 bit scaled to 0/255 (black & white).
    Gray(u32),
    /// 16-bit 5-5-5 (`BGR;15`).
    Bgr15,
    /// 16-bit 5-6-5 (`BGR;16`).
    Bgr16,
    /// Bytes per pixel and the byte positions of R, G, B.
    Bytes(usize, [usize; 3]),
}

impl Raw {
    fn bits(self) -> u64 {
        match self {
            Raw::Index(b) | Raw::Gray(b) => b as u64,
            Raw::Bgr15 | Raw::Bgr16 => 16,
            Raw::Bytes(n, _) => n as u64 * 8,
        }
    }
}

/// Pillow's 32-bit bit-field layouts (R, G, B, A masks) and where R, G, B sit in each pixel.
const MASKS_32: [([u32; 4], [usize; 3]); 8] = [
    ([0xFF0000, 0xFF00, 0xFF, 0], [2, 1, 0]),          // BGRX
    ([0xFF000000, 0xFF0000, 0xFF00, 0], [3, 2, 1]),    // XBGR
    ([0xFF000000, 0xFF00, 0xFF, 0], [3, 1, 0]),        // BGXR
    ([0xFF000000, 0xFF0000, 0xFF00, 0xFF], [3, 2, 1]), // ABGR
    ([0xFF, 0xFF00, 0xFF0000, 0xFF000000], [0, 1, 2]), // RGBA
    ([0xFF0000, 0xFF00, 0xFF, 0xFF000000], [2, 1, 0]), // BGRA
    ([0xFF000000, 0xFF00, 0xFF, 0xFF0000], [3, 1, 0]), // BGAR
    ([0, 0, 0, 0], [2, 1, 0]),                         // BGRA
];

pub(super) fn decode_bmp(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    let mut offset = u32_at(bytes, 10)? as usize;
    let header_size = u32_at(bytes, 14)? as usize;
    let hd = bytes
        .get(18..14 + header_size.max(4))
        .ok_or_else(|| err("truncated header"))?;
    // Where Pillow's file cursor is: after the header (and the 40-byte header's masks).
    let mut pos = 14 + header_size;
    let (width, height, bits, compression, colors, entry, top_down);
    let mut masks = [0u32; 4];
    match header_size {
        12 => {
            width = u16_at(hd, 0)?;
            height = u16_at(hd, 2)?;
            bits = u16_at(hd, 6)?;
            compression = 0;
            colors = 0u64;
            entry = 3usize;
            top_down = false;
        }
        40 | 52 | 56 | 64 | 108 | 124 => {
            top_down = hd.get(7) == Some(&0xFF);
            width = u32_at(hd, 0)?;
            let h = u32_at(hd, 4)?;
            height = if top_down { h.wrapping_neg() } else { h };
            bits = u16_at(hd, 10)?;
            compression = u32_at(hd, 12)?;
            colors = u32_at(hd, 28)? as u64;
            entry = 4;
            if compression == 3 {
                if hd.len() >= 48 {
                    for (i, m) in masks.iter_mut().take(3).enumerate() {
                        *m = u32_at(hd, 36 + i * 4)?;
                    }
                    if hd.len() >= 52 {
                        masks[3] = u32_at(hd, 48)?;
                    }
                } else {
                    for (i, m) in masks.iter_mut().take(3).enumerate() {
                        *m = u32_at(bytes, pos + i * 4)?;
                    }
                    pos += 12;
                }
            }
        }
        n => return Err(err(format!("unsupported header type ({n})"))),
    }
    check_size(width as u64, height as u64, opts)?;
    let colors = if colors == 0 {
        1u64 << bits.min(63)
    } else {
        colors
    };
    if offset == 14 + header_size && bits <= 8 {
        offset += entry * colors as usize;
    }

    let mut raw = match bits {
        1 | 4 | 8 => Raw::Index(bits),
        16 => Raw::Bgr15,
        24 => Raw::Bytes(3, [2, 1, 0]),
        32 => Raw::Bytes(4, [2, 1, 0]),
        b => return Err(err(format!("unsupported pixel depth ({b})"))),
    };
    let rle = match compression {
        0 => None,
        1 | 2 => Some(compression == 2),
        3 => {
            let rgb = [masks[0], masks[1], masks[2]];
            raw = match bits {
                32 => MASKS_32
                    .iter()
                    .find(|(m, _)| *m == masks)
                    .map(|&(_, at)| Raw::Bytes(4, at)),
                24 if rgb == [0xFF0000, 0xFF00, 0xFF] => Some(Raw::Bytes(3, [2, 1, 0])),
                16 if rgb == [0xF800, 0x7E0, 0x1F] => Some(Raw::Bgr16),
                16 if rgb == [0x7C00, 0x3E0, 0x1F] => Some(Raw::Bgr15),
                _ => None,
            }
            .ok_or_else(|| err("unsupported bit-field layout"))?;
            None
        }
        c => return Err(err(format!("unsupported compression ({c})"))),
    };

    // The palette, read where Pillow's cursor is (not at the pixel offset).
    let mut palette: Vec<[u8; 3]> = Vec::new();
    if matches!(raw, Raw::Index(_)) {
        if !(1..=65536).contains(&colors) {
            return Err(err(format!("unsupported palette size ({colors})")));
        }
        let avail = bytes.len().saturating_sub(pos);
        let table = &bytes[pos..pos + (entry * colors as usize).min(avail)];
        palette = table
            .chunks_exact(entry)
            .map(|e| [e[2], e[1], e[0]])
            .collect();
        pos += table.len();
        let gray = |i: usize, v: u64| {
            table.get(i * entry..i * entry + 3) == Some(&[v as u8, v as u8, v as u8][..])
        };
        let all_gray = if colors == 2 {
            gray(0, 0) && gray(1, 255)
        } else {
            (0..colors).all(|i| gray(i as usize, i & 255))
        };
        if all_gray {
            // Pillow's raw mode becomes "1" or "L", whatever the stored depth (RLE output in a
            // "1" image: any non-zero index is white).
            raw = Raw::Gray(if colors <= 2 { 1 } else { 8 });
        }
    } else if rle.is_some() {
        return Err(err(format!("RLE compression with {bits}-bit pixels")));
    }
    if offset == 0 {
        offset = pos;
    }
    let data = bytes.get(offset..).unwrap_or(&[]);
    let (w, h) = (width as usize, height as usize);
    let alloc = || -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(w * h * 3)
            .map_err(|_| err("cannot allocate the decoded image"))?;
        out.resize(w * h * 3, 0);
        Ok(out)
    };

    let out = match rle {
        Some(rle4) => {
            let idx = rle_decode(data, offset, w, h, rle4)?;
            let mut out = alloc()?;
            for (i, row) in idx.chunks_exact(w).enumerate() {
                let y = if top_down { i } else { h - 1 - i };
                let dst = &mut out[y * w * 3..(y + 1) * w * 3];
                for (o, &v) in dst.chunks_exact_mut(3).zip(row) {
                    o.copy_from_slice(&lookup(raw, &palette, v as u32));
                }
            }
            out
        }
        None => {
            let stride = ((width as u64 * bits as u64 + 31) >> 3) & !3;
            let row_bytes = (width as u64 * raw.bits()).div_ceil(8);
            if row_bytes > stride {
                return Err(err("stride too small for the pixel layout"));
            }
            let (stride, row_bytes) = (stride as usize, row_bytes as usize);
            let need = stride * (h - 1) + row_bytes;
            if data.len() < need {
                return Err(err("image file is truncated"));
            }
            let mut out = alloc()?;
            for i in 0..h {
                let y = if top_down { i } else { h - 1 - i };
                let src = &data[i * stride..i * stride + row_bytes];
                unpack_row(raw, &palette, src, &mut out[y * w * 3..(y + 1) * w * 3]);
            }
            out
        }
    };
    Ok(RgbImage::from_raw(width, height, out))
}

/// One palette index or gray level to RGB. Indices past the palette are black, as in Pillow.
#[inline]
fn lookup(raw: Raw, palette: &[[u8; 3]], v: u32) -> [u8; 3] {
    match raw {
        Raw::Gray(1) => [if v != 0 { 255 } else { 0 }; 3],
        Raw::Gray(_) => [v as u8; 3],
        _ => palette.get(v as usize).copied().unwrap_or([0, 0, 0]),
    }
}

fn unpack_row(raw: Raw, palette: &[[u8; 3]], src: &[u8], dst: &mut [u8]) {
    match raw {
        Raw::Index(b) | Raw::Gray(b) => {
            let per_byte = 8 / b as usize;
            let mask = (1u32 << b) - 1;
            for (x, o) in dst.chunks_exact_mut(3).enumerate() {
                let byte = src[x / per_byte] as u32;
                let shift = 8 - b as usize * (x % per_byte + 1);
                o.copy_from_slice(&lookup(raw, palette, (byte >> shift) & mask));
            }
        }
        Raw::Bgr15 | Raw::Bgr16 => {
            let g6 = raw == Raw::Bgr16;
            for (o, p) in dst.chunks_exact_mut(3).zip(src.chunks_exact(2)) {
                let v = u16::from_le_bytes([p[0], p[1]]) as u32;
                o[2] = ((v & 31) * 255 / 31) as u8;
                if g6 {
                    o[1] = (((v >> 5) & 63) * 255 / 63) as u8;
                    o[0] = (((v >> 11) & 31) * 255 / 31) as u8;
                } else {
                    o[1] = (((v >> 5) & 31) * 255 / 31) as u8;
                    o[0] = (((v >> 10) & 31) * 255 / 31) as u8;
                }
            }
        }
        Raw::Bytes(n, [r, g, b]) => {
            for (o, p) in dst.chunks_exact_mut(3).zip(src.chunks_exact(n)) {
                o.copy_from_slice(&[p[r], p[g], p[b]]);
            }
        }
    }
}

/// Pillow's `BmpRleDecoder`: one byte per pixel, rows in file order, `w * h` bytes. `data`
/// starts at file offset `base` (absolute runs are padded to an even file position).
fn rle_decode(data: &[u8], base: usize, w: usize, h: usize, rle4: bool) -> Result<Vec<u8>> {
    let dest = w * h;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(dest)
        .map_err(|_| err("cannot allocate the decoded image"))?;
    let mut x = 0usize;
    let mut i = 0usize;
    while out.len() < dest {
        let (Some(&count), Some(&byte)) = (data.get(i), data.get(i + 1)) else {
            break;
        };
        i += 2;
        if count != 0 {
            // Encoded run, cut at the end of the row.
            let n = (count as usize).min(w.saturating_sub(x));
            if rle4 {
                out.extend((0..n).map(|k| if k % 2 == 0 { byte >> 4 } else { byte & 15 }));
            } else {
                out.extend(std::iter::repeat_n(byte, n));
            }
            x += n;
        } else if byte == 0 {
            // End of line.
            let pad = (w - out.len() % w) % w;
            out.extend(std::iter::repeat_n(0, pad));
            x = 0;
        } else if byte == 1 {
            break; // end of bitmap
        } else if byte == 2 {
            let (Some(&right), Some(&up)) = (data.get(i), data.get(i + 1)) else {
                break;
            };
            i += 2;
            let n = (right as usize + up as usize * w).min(dest - out.len());
            out.extend(std::iter::repeat_n(0, n));
            x = out.len() % w;
        } else {
            // Absolute run of `byte` pixels, padded to a 16-bit boundary in the file.
            let n = (byte as usize).min(dest - out.len());
            let want = if rle4 { n.div_ceil(2) } else { n };
            let got = &data[i.min(data.len())..(i + want).min(data.len())];
            i += got.len();
            if rle4 {
                for (k, &b) in got.iter().enumerate() {
                    out.push(b >> 4);
                    if k * 2 + 1 < n {
                        out.push(b & 15);
                    }
                }
            } else {
                out.extend_from_slice(got);
            }
            if got.len() < want || out.len() == dest {
                break;
            }
            x += byte as usize;
            if !(base + i).is_multiple_of(2) {
                i += 1;
            }
        }
    }
    if out.len() < dest {
        return Err(err("not enough image data"));
    }
    out.truncate(dest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_bit_channels_truncate_like_pillow() {
        let px = |v: u16, raw| {
            let mut o = [0u8; 3];
            unpack_row(raw, &[], &v.to_le_bytes(), &mut o);
            o
        };
        // 5-bit 1 -> 255 / 31 = 8 (rounding would give 8 too); 5-bit 30 -> 246 (not 247).
        assert_eq!(px(30 << 10 | 1, Raw::Bgr15), [246, 0, 8]);
        // 6-bit 62 -> 62 * 255 / 63 = 250 (rounding: 251).
        assert_eq!(px(62 << 5, Raw::Bgr16), [0, 250, 0]);
        assert_eq!(px(0xFFFF, Raw::Bgr16), [255, 255, 255]);
    }

    #[test]
    fn rle_runs_deltas_and_early_end() {
        // 4x2: run of 2 x 7, delta (1 right, 0 up), run of 1 x 9, absolute [1 2 3] (padded to
        // an even length), end of line (fills the row with 0).
        let data = [2, 7, 0, 2, 1, 0, 1, 9, 0, 3, 1, 2, 3, 0, 0, 0];
        assert_eq!(
            rle_decode(&data, 0, 4, 2, false).unwrap(),
            [7, 7, 0, 9, 1, 2, 3, 0]
        );
        assert!(rle_decode(&[2, 7, 0, 1], 0, 4, 2, false).is_err());
        // RLE4 alternates the two nibbles of a run.
        assert_eq!(
            rle_decode(&[3, 0x12, 0, 0], 0, 3, 1, true).unwrap(),
            [1, 2, 1]
        );
    }
}
