//! PLACEHOLDER until the exact Pillow port lands (helper is writing it): float separable bilinear.
use crate::image::RgbImage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PillowCompat {
    #[default]
    Pillow13,
    Pillow12,
}

pub fn resize_bilinear(src: &RgbImage, out_w: u32, out_h: u32, _compat: PillowCompat) -> RgbImage {
    let mut out = RgbImage::new(out_w, out_h);
    for y in 0..out_h {
        for x in 0..out_w {
            let sx = ((x as f64 + 0.5) * src.width as f64 / out_w as f64) as u32;
            let sy = ((y as f64 + 0.5) * src.height as f64 / out_h as f64) as u32;
            let p = src.pixel(sx.min(src.width - 1), sy.min(src.height - 1));
            let i = (y as usize * out_w as usize + x as usize) * 3;
            out.data[i..i + 3].copy_from_slice(&p);
        }
    }
    out
}
