//! BMP as OpenCV's own reader (`imgcodecs`, `BmpDecoder`) gives it to `cv::imread` with
//! `IMREAD_COLOR`: packed BGR. It differs from Pillow's reader ([`super::bmp`]) on ordinary
//! files, which is why it has its own module:
//!
//! * 5- and 6-bit channels are shifted left (`v << 3`, `v << 2`), not scaled;
//! * palette indices past the palette read black (the palette is a zeroed 256-entry table);
//! * RLE absolute runs are padded to an even byte count (Pillow: an even file position); an
//!   end of line, end of bitmap or delta fills the pixels it skips with palette entry 0, and an
//!   end of bitmap before the last row is no error; in RLE4 a delta moves along the row only
//!   and an end of bitmap ends just the row (reading on);
//! * 16-bit bit fields are read after the header (so a V4/V5 header's own masks are not seen)
//!   and only the 5-5-5 and 5-6-5 layouts are accepted; 32-bit pixels are B, G, R, X whatever
//!   the masks say; 2-bit files, JPEG/PNG inside BMP, and bit fields at 24 bits are refused;
//! * reading past the end of the file is an error (a last row without its padding too).
//!
//! Measured against `cv2.imread` (opencv-python-headless 4.14) by `tests/imread.rs` on the
//! fixtures of `tools/make_imread_fixtures.py`.

use crate::error::{Error, Result};
use crate::image::RgbImage;

const RGB: u32 = 0;
const RLE8: u32 = 1;
const RLE4: u32 = 2;
const BITFIELDS: u32 = 3;

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Decode(format!("BMP: {msg}"))
}

/// OpenCV's byte stream: reading past the end throws, and imread returns an empty image.
struct Stream<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Stream<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(err("unexpected end of file"));
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn word(&mut self) -> Result<u32> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as u32)
    }

    fn dword(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The header as OpenCV reads it.
struct Header {
    width: usize,
    height: usize,
    bottom_up: bool,
    /// Bits per pixel; 15 for 16-bit 5-5-5.
    bpp: u32,
    compression: u32,
    offset: usize,
    /// Blue, green, red (the order in the file); 256 entries, zero past the file's.
    palette: Vec<[u8; 3]>,
}

fn read_header(s: &mut Stream, max_pixels: u64) -> Result<Header> {
    s.skip(10);
    let offset = s.dword()? as usize;
    let size = s.dword()? as i32;
    if size <= 0 {
        return Err(err(format!("header size {size}")));
    }
    let mut palette = vec![[0u8; 3]; 256];
    let (width, height, mut bpp, compression);
    if size >= 36 {
        width = s.dword()? as i32;
        height = s.dword()? as i32;
        bpp = s.dword()? >> 16;
        compression = s.dword()?;
        s.skip(12);
        let clr_used = s.dword()? as i32;
        s.skip(size as usize - 36);
        let layout_ok = (matches!(bpp, 1 | 4 | 8 | 24 | 32) && compression == RGB)
            || (matches!(bpp, 16 | 32) && matches!(compression, RGB | BITFIELDS))
            || (bpp == 4 && compression == RLE4)
            || (bpp == 8 && compression == RLE8);
        if width <= 0 || height == 0 || height == i32::MIN || !layout_ok {
            return Err(err(format!(
                "{width}x{height}, {bpp} bits per pixel, compression {compression}: \
                 not a layout OpenCV reads"
            )));
        }
        if bpp <= 8 {
            if !(0..=256).contains(&clr_used) {
                return Err(err(format!("{clr_used} palette entries")));
            }
            let n = if clr_used == 0 { 1 << bpp } else { clr_used };
            let raw = s.take(n as usize * 4)?;
            for (p, e) in palette.iter_mut().zip(raw.chunks_exact(4)) {
                *p = [e[0], e[1], e[2]];
            }
        } else if bpp == 16 && compression == BITFIELDS {
            let (r, g, b) = (s.dword()?, s.dword()?, s.dword()?);
            match (r, g, b) {
                (0x7C00, 0x3E0, 0x1F) => bpp = 15,
                (0xF800, 0x7E0, 0x1F) => {}
                _ => {
                    return Err(err(format!(
                        "16-bit bit fields {r:#x}/{g:#x}/{b:#x}: only 5-5-5 and 5-6-5 are read"
                    )))
                }
            }
        } else if bpp == 16 {
            bpp = 15;
        }
    } else if size == 12 {
        width = s.word()? as i32;
        height = s.word()? as i32;
        bpp = s.dword()? >> 16;
        compression = RGB;
        if width <= 0 || height == 0 || !matches!(bpp, 1 | 4 | 8 | 24 | 32) {
            return Err(err(format!(
                "OS/2 header: {width}x{height}, {bpp} bits per pixel"
            )));
        }
        if bpp <= 8 {
            let raw = s.take((1usize << bpp) * 3)?;
            for (p, e) in palette.iter_mut().zip(raw.chunks_exact(3)) {
                *p = [e[0], e[1], e[2]];
            }
        }
    } else {
        return Err(err(format!("header size {size}")));
    }
    super::check_size(
        width as u64,
        height.unsigned_abs() as u64,
        &super::DecodeOptions {
            exif_transpose: false,
            max_pixels,
        },
    )?;
    Ok(Header {
        width: width as usize,
        height: height.unsigned_abs() as usize,
        bottom_up: height > 0,
        bpp,
        compression,
        offset,
        palette,
    })
}

/// The output in the order rows are stored, with OpenCV's RLE cursor: `(y, x)` is the next
/// pixel, `y` counting stored rows.
struct Canvas {
    width: usize,
    height: usize,
    bottom_up: bool,
    bgr: Vec<u8>,
    y: usize,
    x: usize,
}

impl Canvas {
    fn put(&mut self, c: [u8; 3]) {
        let row = if self.bottom_up {
            self.height - 1 - self.y
        } else {
            self.y
        };
        let i = (row * self.width + self.x) * 3;
        self.bgr[i..i + 3].copy_from_slice(&c);
        self.x += 1;
    }

    /// `FillUniColor`: `count` pixels of one colour from the cursor on, wrapping to the next
    /// row at the end of one (also when `count` is 0 and the cursor is at the end of a row);
    /// stops after the last row.
    fn fill(&mut self, mut count: usize, c: [u8; 3]) {
        loop {
            let n = count.min(self.width - self.x);
            for _ in 0..n {
                self.put(c);
            }
            count -= n;
            if self.x >= self.width {
                self.x = 0;
                self.y += 1;
                if self.y >= self.height {
                    break;
                }
            }
            if count == 0 {
                break;
            }
        }
    }

    fn done(&self) -> bool {
        self.y >= self.height
    }
}

/// Decodes a BMP to packed BGR, as `cv::imread(path)` does (see the module docs).
pub(super) fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let mut s = Stream { bytes, pos: 0 };
    let h = read_header(&mut s, max_pixels)?;
    let (w, ht) = (h.width, h.height);
    let mut out = Canvas {
        width: w,
        height: ht,
        bottom_up: h.bottom_up,
        bgr: vec![0u8; w * ht * 3],
        y: 0,
        x: 0,
    };
    s.pos = h.offset;
    let pal = &h.palette;
    let stored_bits = if h.bpp == 15 { 16 } else { h.bpp as usize };
    let pitch = (w * stored_bits).div_ceil(8).div_ceil(4) * 4;
    match (h.bpp, h.compression) {
        (4, RLE4) => rle4(&mut s, &mut out, pal)?,
        (8, RLE8) => rle8(&mut s, &mut out, pal)?,
        (bpp, _) => {
            for _ in 0..ht {
                let src = s.take(pitch)?;
                for x in 0..w {
                    let c = match bpp {
                        1 => pal[((src[x >> 3] >> (7 - (x & 7))) & 1) as usize],
                        4 => pal[((src[x >> 1] >> if x & 1 == 0 { 4 } else { 0 }) & 15) as usize],
                        8 => pal[src[x] as usize],
                        15 => {
                            let t = u16::from_le_bytes([src[2 * x], src[2 * x + 1]]) as u32;
                            [(t << 3) as u8, ((t >> 2) & !7) as u8, ((t >> 7) & !7) as u8]
                        }
                        16 => {
                            let t = u16::from_le_bytes([src[2 * x], src[2 * x + 1]]) as u32;
                            [(t << 3) as u8, ((t >> 3) & !3) as u8, ((t >> 8) & !7) as u8]
                        }
                        24 => [src[3 * x], src[3 * x + 1], src[3 * x + 2]],
                        _ => [src[4 * x], src[4 * x + 1], src[4 * x + 2]], // 32: B, G, R, X
                    };
                    out.put(c);
                }
                out.x = 0;
                out.y += 1;
            }
        }
    }
    Ok(RgbImage::from_raw(w as u32, ht as u32, out.bgr))
}

fn run_past_row() -> Error {
    err("an RLE run goes past the end of its row")
}

fn rle8(s: &mut Stream, out: &mut Canvas, pal: &[[u8; 3]]) -> Result<()> {
    // Whether the last run ended its row exactly (and wrapped): the end of line that follows
    // then adds no blank row.
    let mut wrapped = false;
    loop {
        let word = s.word()?;
        let (len, code) = ((word & 255) as usize, (word >> 8) as usize);
        if len != 0 {
            if out.x + len > out.width {
                return Err(run_past_row());
            }
            let y = out.y;
            out.fill(len, pal[code]);
            wrapped = out.y != y;
            if out.done() {
                return Ok(());
            }
        } else if code > 2 {
            if out.x + code > out.width {
                return Err(run_past_row());
            }
            let src = s.take((code + 1) & !1)?;
            for &i in &src[..code] {
                out.put(pal[i as usize]);
            }
            wrapped = false;
        } else {
            let to_row_end = out.width - out.x;
            if code != 0 || !wrapped || to_row_end < out.width {
                let (mut skip, mut rows) = (to_row_end, out.height - out.y);
                if code == 2 {
                    skip = s.byte()? as usize;
                    rows = s.byte()? as usize;
                }
                if code != 0 {
                    skip += rows * out.width;
                }
                if out.done() {
                    return Ok(());
                }
                out.fill(skip, pal[0]);
                if out.done() {
                    return Ok(());
                }
            }
            wrapped = false;
            if out.done() {
                return Ok(());
            }
        }
    }
}

fn rle4(s: &mut Stream, out: &mut Canvas, pal: &[[u8; 3]]) -> Result<()> {
    loop {
        let word = s.word()?;
        let (len, code) = ((word & 255) as usize, (word >> 8) as usize);
        if len != 0 {
            if out.x + len > out.width {
                return Err(run_past_row());
            }
            let pair = [pal[code >> 4], pal[code & 15]];
            for i in 0..len {
                out.put(pair[i & 1]);
            }
        } else if code > 2 {
            if out.x + code > out.width {
                return Err(run_past_row());
            }
            let src = s.take((code.div_ceil(2) + 1) & !1)?;
            for i in 0..code {
                let v = src[i >> 1] >> if i & 1 == 0 { 4 } else { 0 };
                out.put(pal[(v & 15) as usize]);
            }
        } else {
            // An end of line or of bitmap ends the row; a delta moves right (its rows are
            // not applied).
            let mut skip = out.width - out.x;
            if code == 2 {
                skip = s.byte()? as usize;
                s.byte()?;
            }
            out.fill(skip, pal[0]);
            if out.done() {
                return Ok(());
            }
        }
    }
}
