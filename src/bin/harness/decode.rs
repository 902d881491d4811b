//! How the harness turns an image file into what the library is called with.
//!
//! * `--decode imread` (the default): as the platform's test tools do, `cv::imread(path)`
//!   (emulated by `ji::decode::imread`, pixel for pixel) and the BGR frame to the frame API.
//!   Each image is also decoded as PIL does (the config's `exif_transpose` applied, as the
//!   library's file calls apply it), and where the two decodes differ the image is run a
//!   second time with PIL's frame (untimed), so the report can give the accuracy both ways.
//!   GIF and TIFF are not emulated: their frame is PIL's decode, and the report says so.
//! * `--decode pil`: the library decodes the file itself (`ji_calc_file` /
//!   `evsdk_process_file`: PIL's decode), or, for `--batch`, the harness decodes as PIL does.

use crate::abi::BgrFrame;
use ji::decode::imread::{imread, Imread};
use ji::decode::{decode_image, DecodeOptions};
use ji::image::RgbImage;
use std::path::Path;

/// The harness's `--decode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Decode {
    /// As the judge: cv::imread(path) (emulated), then the frame API.
    Imread,
    /// As PIL: the library's file API (PIL.Image.open(path).convert('RGB')).
    Pil,
}

impl Decode {
    pub fn name(self) -> &'static str {
        match self {
            Decode::Imread => "imread",
            Decode::Pil => "pil",
        }
    }
}

/// How the judge's decode of an image differs from PIL's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// OpenCV applied this EXIF orientation (2..=8); PIL's `Image.open` does not rotate.
    Rotated(u8),
    /// A CMYK JPEG: OpenCV's conversion is off by one level from PIL's.
    Cmyk,
    /// Anything else (16-bit gray PNG, BMP layouts, a file only one of them reads).
    Other(String),
}

impl Difference {
    /// "rotated", "cmyk" or "other" (the report's counts).
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::Rotated(_) => "rotated",
            Difference::Cmyk => "cmyk",
            Difference::Other(_) => "other",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Difference::Rotated(o) => format!(
                "EXIF orientation {o}: cv::imread rotates it{}",
                if *o >= 5 {
                    " (width and height swapped)"
                } else {
                    ""
                }
            ),
            Difference::Cmyk => {
                "CMYK JPEG: OpenCV's CMYK conversion, up to 1 level from PIL's".into()
            }
            Difference::Other(d) => d.clone(),
        }
    }
}

/// A decoded frame, or the code and message of why there is none.
pub type Frame = Result<BgrFrame, (i32, String)>;

/// One image, decoded for a call.
pub struct Prepared {
    /// The frame to classify, or the code and message of why there is none.
    pub frame: Frame,
    /// `--decode imread` on a format it does not emulate ("GIF", "TIFF"): `frame` is PIL's.
    pub not_emulated: Option<&'static str>,
    /// Where the judge's decode differs from PIL's: how, and PIL's frame (or why PIL cannot
    /// read the file).
    pub difference: Option<(Difference, Frame)>,
}

fn harness_error(e: ji::Error) -> (i32, String) {
    (e.code(), format!("[{}, in the harness] {e}", e.kind()))
}

fn bgr_from_rgb(img: RgbImage) -> BgrFrame {
    let mut data = img.data;
    for px in data.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
    BgrFrame {
        width: img.width,
        height: img.height,
        data,
    }
}

/// Reads and decodes an image as PIL does (`opts`: the config's `exif_transpose` and
/// `max_image_pixels`), to packed BGR.
pub fn pil_frame(path: &Path, opts: &DecodeOptions) -> Frame {
    let bytes = std::fs::read(path).map_err(|e| (-7, format!("[io, in the harness] {e}")))?;
    decode_image(&bytes, opts)
        .map(bgr_from_rgb)
        .map_err(harness_error)
}

/// The judge's frame for `path`, and PIL's where it differs (see the module docs).
pub fn judge_frame(path: &Path, pil_opts: &DecodeOptions) -> Prepared {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Prepared {
                frame: Err((-7, format!("[io, in the harness] {e}"))),
                not_emulated: None,
                difference: None,
            }
        }
    };
    let pil = decode_image(&bytes, pil_opts).map_err(harness_error);
    match imread(&bytes, pil_opts.max_pixels) {
        Ok(Imread::NotEmulated(format)) => Prepared {
            frame: pil.map(bgr_from_rgb),
            not_emulated: Some(format),
            difference: None,
        },
        Ok(Imread::Decoded(cv)) => {
            let difference = match &pil {
                Ok(p) if same_pixels(&cv, p) => None,
                Ok(p) => Some(if cv.orientation.is_some() && !pil_opts.exif_transpose {
                    Difference::Rotated(cv.orientation.unwrap_or(1))
                } else if cv.cmyk {
                    Difference::Cmyk
                } else {
                    Difference::Other(pixel_difference(&cv, p))
                }),
                Err((_, m)) => Some(Difference::Other(format!(
                    "{}: PIL cannot read it ({}); cv::imread can",
                    cv.format,
                    m.trim_start_matches("[decode, in the harness] ")
                ))),
            };
            let frame = BgrFrame {
                width: cv.width,
                height: cv.height,
                data: cv.bgr,
            };
            Prepared {
                frame: Ok(frame),
                not_emulated: None,
                difference: difference.map(|d| (d, pil.map(bgr_from_rgb))),
            }
        }
        Err(e) => {
            let judge = harness_error(e);
            let difference = pil.ok().map(|p| {
                (
                    Difference::Other(format!(
                        "cv::imread returns an empty image; PIL reads it ({})",
                        judge
                            .1
                            .trim_start_matches("[decode, in the harness] ")
                            .trim_start_matches("cv::imread would return an empty image: ")
                    )),
                    Ok(bgr_from_rgb(p)),
                )
            });
            Prepared {
                frame: Err(judge),
                not_emulated: None,
                difference,
            }
        }
    }
}

fn same_pixels(cv: &ji::decode::imread::CvImage, pil: &RgbImage) -> bool {
    (cv.width, cv.height) == (pil.width, pil.height)
        && cv
            .bgr
            .chunks_exact(3)
            .zip(pil.data.chunks_exact(3))
            .all(|(b, r)| b[0] == r[2] && b[1] == r[1] && b[2] == r[0])
}

/// "PNG: 812 of 851 pixels differ, by up to 254 levels" (or the two sizes).
fn pixel_difference(cv: &ji::decode::imread::CvImage, pil: &RgbImage) -> String {
    if (cv.width, cv.height) != (pil.width, pil.height) {
        return format!(
            "{}: cv::imread gives {}x{}, PIL {}x{}",
            cv.format, cv.width, cv.height, pil.width, pil.height
        );
    }
    let (mut n, mut max) = (0usize, 0u8);
    for (b, r) in cv.bgr.chunks_exact(3).zip(pil.data.chunks_exact(3)) {
        let d = b[0]
            .abs_diff(r[2])
            .max(b[1].abs_diff(r[1]))
            .max(b[2].abs_diff(r[0]));
        n += (d > 0) as usize;
        max = max.max(d);
    }
    format!(
        "{}: {n} of {} pixels differ, by up to {max} levels",
        cv.format,
        cv.width as usize * cv.height as usize
    )
}
