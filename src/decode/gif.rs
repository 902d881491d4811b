//! GIF, first frame, the way Pillow's `GifImagePlugin` shows it, then `convert('RGB')`.
//!
//! Pillow keeps frame 0 as palette indices on a canvas the size of the logical screen (grown
//! if the frame sticks out), filled with the frame's transparent index, or 0, where the frame
//! does not cover it; the background colour is not used. `convert('RGB')` then looks every
//! index up in the frame's palette (local, else global), transparency ignored; an index past
//! the palette is black. A palette that is the identity gray ramp is dropped and the indices
//! are gray levels. The `image` crate composites onto transparent black instead, so frames
//! that do not cover the canvas, or use their transparent index, came out differently.

use std::io::Cursor;

use super::check_size;
use super::DecodeOptions;
use crate::error::{Error, Result};
use crate::image::RgbImage;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Decode(format!("GIF: {e}"))
}

/// Pillow's `_is_palette_needed`: false for the identity gray ramp.
fn palette_needed(p: &[u8]) -> bool {
    p.chunks(3)
        .enumerate()
        .any(|(i, c)| c.len() < 3 || !(c[0] as usize == i && c[1] == c[0] && c[2] == c[0]))
}

pub(super) fn decode_gif(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    let mut o = gif::DecodeOptions::new();
    o.set_color_output(gif::ColorOutput::Indexed);
    // The canvas is checked against max_pixels below; a frame may be up to 65535 x 65535.
    o.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(opts.max_pixels.saturating_add(1 << 20)).unwrap(),
    ));
    // The gif crate refuses a frame without any colour table; Pillow reads one as gray levels
    // (mode L). An identity gray global table means exactly that here (see palette_needed).
    let with_gray_table;
    let bytes = if bytes.len() >= 13 && bytes[10] & 0x80 == 0 {
        let mut v = Vec::with_capacity(bytes.len() + 768);
        v.extend_from_slice(&bytes[..13]);
        v[10] |= 0x87;
        v.extend((0..=255u8).flat_map(|i| [i, i, i]));
        v.extend_from_slice(&bytes[13..]);
        with_gray_table = v;
        &with_gray_table[..]
    } else {
        bytes
    };
    // Pillow decodes only whole data sub-blocks: a frame whose last sub-block is cut short is
    // decoded without it (and fails if pixels are then missing). The gif crate would use the
    // partial block, so drop it.
    let whole_blocks;
    let bytes = match partial_block_at(bytes) {
        Some(p) => {
            whole_blocks = [&bytes[..p], &[0x00, 0x3B]].concat();
            &whole_blocks[..]
        }
        None => bytes,
    };
    let mut dec = o.read_info(Cursor::new(bytes)).map_err(err)?;
    let (sw, sh) = (dec.width() as usize, dec.height() as usize);
    check_size(sw as u64, sh as u64, opts)?;
    let global = dec
        .global_palette()
        .filter(|p| palette_needed(p))
        .map(|p| p.to_vec());
    let info = dec
        .next_frame_info()
        .map_err(err)?
        .ok_or_else(|| err("image not found in GIF frame"))?;
    let (left, top) = (info.left as usize, info.top as usize);
    let (fw, fh) = (info.width as usize, info.height as usize);
    // A frame that sticks out grows the canvas (Pillow does the same for frame 0).
    let (w, h) = (sw.max(left + fw), sh.max(top + fh));
    check_size(w as u64, h as u64, opts)?;
    let fill = info.transparent.unwrap_or(0);
    let local = info.palette.clone();
    let mut indices = vec![0u8; dec.buffer_size()];
    dec.read_into_buffer(&mut indices).map_err(err)?;

    let palette = match local {
        Some(p) => palette_needed(&p).then_some(p),
        None => global,
    };
    let rgb = |i: u8| -> [u8; 3] {
        match &palette {
            Some(p) => p
                .get(i as usize * 3..i as usize * 3 + 3)
                .map_or([0, 0, 0], |c| [c[0], c[1], c[2]]),
            None => [i; 3],
        }
    };
    let mut out = Vec::new();
    out.try_reserve_exact(w * h * 3)
        .map_err(|_| err("cannot allocate the decoded image"))?;
    let bg = rgb(fill);
    for _ in 0..w * h {
        out.extend_from_slice(&bg);
    }
    if fw > 0 {
        for (y, row) in indices.chunks_exact(fw).take(fh).enumerate() {
            let start = ((top + y) * w + left) * 3;
            for (o, &i) in out[start..start + fw * 3].chunks_exact_mut(3).zip(row) {
                o.copy_from_slice(&rgb(i));
            }
        }
    }
    Ok(RgbImage::from_raw(w as u32, h as u32, out))
}

/// Where the first frame's image data has a sub-block that runs past the end of the file.
fn partial_block_at(b: &[u8]) -> Option<usize> {
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let mut pos = 13 + table(*b.get(10)?);
    // Skip extensions (0x21, label, sub-blocks) up to the first image descriptor.
    while *b.get(pos)? == 0x21 {
        pos += 2;
        while *b.get(pos)? != 0 {
            pos += 1 + *b.get(pos)? as usize;
        }
        pos += 1;
    }
    if *b.get(pos)? != 0x2C {
        return None;
    }
    pos += 10 + table(*b.get(pos + 9)?) + 1; // descriptor, local table, LZW code size
    loop {
        let n = *b.get(pos)? as usize;
        if n == 0 {
            return None;
        }
        if pos + 1 + n > b.len() {
            return Some(pos);
        }
        pos += 1 + n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cut_data_block() {
        // 1x1 screen, no tables, descriptor, code size 2, blocks of 2 and (cut) 5 bytes.
        let mut g = b"GIF89a\x01\0\x01\0\0\0\0".to_vec();
        g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 5, 1, 2]);
        assert_eq!(partial_block_at(&g), Some(27));
        // A graphic control extension before the descriptor is skipped.
        let mut e = b"GIF89a\x01\0\x01\0\0\0\0".to_vec();
        e.extend_from_slice(&[0x21, 0xF9, 4, 1, 0, 0, 0, 0]);
        e.extend_from_slice(&g[13..]);
        assert_eq!(partial_block_at(&e), Some(35));
        g.extend_from_slice(&[3, 4, 5, 0, 0x3B]);
        assert_eq!(partial_block_at(&g), None);
    }
}
