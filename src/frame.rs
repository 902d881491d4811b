//! Raw OpenCV-style frames (BGR, BGRA or gray, rows possibly padded) to RGB.

use crate::error::{Error, Result};
use crate::image::RgbImage;

/// A borrowed raw frame as the judge hands it over (`cv::Mat` fields).
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    pub pixels: &'a [u8],
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (>= width * channels).
    pub stride: usize,
    /// 3 = BGR, 4 = BGRA, 1 = gray.
    pub channels: u32,
}

impl RawFrame<'_> {
    /// Bytes the frame must span: every row but the last at full stride, plus one packed row
    /// (`None` when that does not fit in `usize`).
    pub fn required_len(width: u32, height: u32, stride: usize, channels: u32) -> Option<usize> {
        if height == 0 {
            return Some(0);
        }
        stride
            .checked_mul(height as usize - 1)?
            .checked_add(width as usize * channels as usize)
    }

    /// Checks a frame's geometry before any view of its buffer exists: size, channels,
    /// `max_pixels` (absurd sizes), stride. Returns the bytes the frame spans.
    pub fn check_geometry(
        width: u32,
        height: u32,
        stride: usize,
        channels: u32,
        max_pixels: u64,
    ) -> Result<usize> {
        Self::check_pixel_limit(width, height, max_pixels)?;
        Self::check_shape(width, height, stride, channels)
    }

    /// The image-size limit alone: `width * height` at most `max_pixels`.
    pub fn check_pixel_limit(width: u32, height: u32, max_pixels: u64) -> Result<()> {
        let pixels = width as u64 * height as u64;
        if pixels > max_pixels {
            return Err(Error::ImageTooLarge {
                width: width as u64,
                height: height as u64,
                pixels,
                limit: max_pixels,
            });
        }
        Ok(())
    }

    /// The geometry without the pixel limit: size, channels, stride. Returns the bytes the
    /// frame spans.
    pub fn check_shape(width: u32, height: u32, stride: usize, channels: u32) -> Result<usize> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if width == 0 || height == 0 {
            return bad(format!("frame size {width}x{height} is empty"));
        }
        if !matches!(channels, 1 | 3 | 4) {
            return bad(format!(
                "unsupported channel count {channels} (1 = gray, 3 = BGR, 4 = BGRA)"
            ));
        }
        let row = width as usize * channels as usize;
        if stride < row {
            return bad(format!(
                "stride {stride} bytes is smaller than a row of {width} pixels x {channels} \
                 channels = {row} bytes"
            ));
        }
        Self::required_len(width, height, stride, channels)
            .ok_or_else(|| Error::InvalidArgument("frame geometry overflows".into()))
    }

    /// Checks the geometry and that the buffer spans it; `max_pixels` guards against absurd
    /// sizes.
    pub fn validate(&self, max_pixels: u64) -> Result<()> {
        Self::check_pixel_limit(self.width, self.height, max_pixels)?;
        self.validate_shape()
    }

    /// [`validate`](Self::validate) without the pixel limit.
    pub fn validate_shape(&self) -> Result<()> {
        let need = Self::check_shape(self.width, self.height, self.stride, self.channels)?;
        if self.pixels.len() < need {
            return Err(Error::InvalidArgument(format!(
                "frame buffer holds {} bytes, {}x{} with stride {} needs {need}",
                self.pixels.len(),
                self.width,
                self.height,
                self.stride
            )));
        }
        Ok(())
    }

    /// The frame's pixels with the row padding removed (an unmodified copy for the caller),
    /// written into `out` (cleared first; its allocation is reused).
    pub fn packed_copy_into(&self, out: &mut Vec<u8>) {
        let row = self.width as usize * self.channels as usize;
        let len = row * self.height as usize;
        if out.capacity() > len.saturating_mul(2).max(1 << 20) {
            *out = Vec::new(); // do not keep an earlier, much larger frame's allocation
        }
        out.clear();
        out.reserve(len);
        for y in 0..self.height as usize {
            out.extend_from_slice(&self.pixels[y * self.stride..y * self.stride + row]);
        }
    }

    /// The frame's pixels with the row padding removed, in a new buffer.
    pub fn packed_copy(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.packed_copy_into(&mut out);
        out
    }

    /// Converts to RGB the way `convert('RGB')` treats the equivalent PIL image
    /// (gray replicated, alpha dropped).
    pub fn to_rgb(&self, max_pixels: u64) -> Result<RgbImage> {
        self.to_rgb_reusing(max_pixels, Vec::new())
    }

    /// `to_rgb` into `data`'s allocation (cleared first), so a caller can pool the buffer.
    pub fn to_rgb_reusing(&self, max_pixels: u64, mut data: Vec<u8>) -> Result<RgbImage> {
        self.validate(max_pixels)?;
        let (w, h, c) = (
            self.width as usize,
            self.height as usize,
            self.channels as usize,
        );
        data.clear();
        data.try_reserve_exact(w * h * 3).map_err(|_| {
            Error::InvalidArgument(format!("cannot allocate {} bytes for the frame", w * h * 3))
        })?;
        for y in 0..h {
            let row = &self.pixels[y * self.stride..y * self.stride + w * c];
            match c {
                1 => row.iter().for_each(|&g| data.extend_from_slice(&[g, g, g])),
                _ => row
                    .chunks_exact(c)
                    .for_each(|px| data.extend_from_slice(&[px[2], px[1], px[0]])),
            }
        }
        Ok(RgbImage::from_raw(self.width, self.height, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgr_with_padding_bgra_and_gray() {
        // 2x2 BGR with 2 padding bytes per row.
        let px = [1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12];
        let f = RawFrame {
            pixels: &px,
            width: 2,
            height: 2,
            stride: 8,
            channels: 3,
        };
        assert_eq!(
            f.to_rgb(u64::MAX).unwrap().data,
            [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]
        );
        let px = [1, 2, 3, 255, 4, 5, 6, 0];
        let f = RawFrame {
            pixels: &px,
            width: 2,
            height: 1,
            stride: 8,
            channels: 4,
        };
        assert_eq!(f.to_rgb(u64::MAX).unwrap().data, [3, 2, 1, 6, 5, 4]);
        let px = [10, 20];
        let f = RawFrame {
            pixels: &px,
            width: 1,
            height: 2,
            stride: 1,
            channels: 1,
        };
        assert_eq!(f.to_rgb(u64::MAX).unwrap().data, [10, 10, 10, 20, 20, 20]);
    }

    #[test]
    fn bad_geometry_is_rejected() {
        let px = [0u8; 12];
        let f = |w, h, stride, channels| RawFrame {
            pixels: &px,
            width: w,
            height: h,
            stride,
            channels,
        };
        assert!(f(0, 1, 3, 3).to_rgb(u64::MAX).is_err());
        assert!(f(2, 2, 5, 3).to_rgb(u64::MAX).is_err()); // stride < row
        assert!(f(2, 3, 6, 3).to_rgb(u64::MAX).is_err()); // buffer too short
        assert!(f(2, 2, 6, 2).to_rgb(u64::MAX).is_err()); // channels
        assert!(matches!(
            f(2, 2, 6, 3).to_rgb(3),
            Err(Error::ImageTooLarge { .. })
        ));
        assert!(f(2, 2, 6, 3).to_rgb(u64::MAX).is_ok());
    }
}
