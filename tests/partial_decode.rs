//! Decoding only the part of a JPEG that preprocessing reads (`decode_image_window`, the
//! engine's encoded-image path) must give the same tensor as a full decode, bit for bit, and
//! the same errors. JPEGs are written here by libjpeg-turbo in every subsampling it has
//! (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, 4:4:1, grayscale), baseline and progressive, with and
//! without restart markers, smooth and noisy, from 1x1 to 1999x1123, and run through
//! configs whose windows are small, thin, at the edges, larger than the image, upscaled.

use ji::config::{PreprocessConfig, ResizeMode, Size};
use ji::decode::{
    decode_image_reusing, decode_image_window, decode_jpeg_window, Bands, DecodeOptions,
};
use ji::image::RgbImage;
use ji::preprocess::{source_window, Preprocessor};
use ji::resize::{PillowCompat, Roi};
use turbojpeg::raw;

mod common;

/// Pseudo-random bytes (a fixed LCG).
fn noise(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..w as usize * h as usize * 3)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            (x >> 24) as u8
        })
        .collect()
}

/// Smooth colour ramps with some curvature, and a few sharp edges.
fn smooth(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64 / w.max(2) as f64, y as f64 / h.max(2) as f64);
            let edge = if (x / 37 + y / 23) % 5 == 0 {
                60.0
            } else {
                0.0
            };
            out.push((255.0 * fx * fx * 0.8 + edge) as u8);
            out.push((255.0 * (0.5 + 0.5 * (fy * 9.0 + fx * 3.0).sin()) * 0.9) as u8);
            out.push((255.0 * (1.0 - fx) * fy) as u8);
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
struct Enc {
    subsamp: raw::TJSAMP,
    progressive: bool,
    /// Restart interval in MCU rows (0: none).
    restart_rows: i32,
    quality: i32,
}

/// A JPEG of `rgb` written by the bundled libjpeg-turbo (the `turbojpeg` crate's
/// `Compressor` has no restart-interval setting, hence the raw API).
fn encode(rgb: &[u8], w: u32, h: u32, e: Enc) -> Vec<u8> {
    // SAFETY: a fresh handle, used only here and destroyed at the end; `rgb` holds
    // `w * h * 3` bytes (pitch `w * 3`), which tj3Compress8 only reads; it allocates the
    // output with tj3Alloc, which is copied and then freed with tj3Free.
    unsafe {
        let tj = raw::tj3Init(raw::TJINIT_TJINIT_COMPRESS as _);
        assert!(!tj.is_null());
        let set = |p: raw::TJPARAM, v: i32| assert_eq!(raw::tj3Set(tj, p as _, v), 0, "{p}");
        set(raw::TJPARAM_TJPARAM_QUALITY, e.quality);
        set(raw::TJPARAM_TJPARAM_SUBSAMP, e.subsamp);
        set(raw::TJPARAM_TJPARAM_PROGRESSIVE, e.progressive as i32);
        set(raw::TJPARAM_TJPARAM_RESTARTROWS, e.restart_rows);
        let mut buf: *mut u8 = std::ptr::null_mut();
        let mut size: raw::size_t = 0;
        assert_eq!(rgb.len(), w as usize * h as usize * 3);
        let rc = raw::tj3Compress8(
            tj,
            rgb.as_ptr(),
            w as _,
            (w * 3) as _,
            h as _,
            raw::TJPF_TJPF_RGB as _,
            &mut buf,
            &mut size,
        );
        assert_eq!(rc, 0, "tj3Compress8 {w}x{h} {e:?}");
        let out = std::slice::from_raw_parts(buf, size as usize).to_vec();
        raw::tj3Free(buf as *mut _);
        raw::tj3Destroy(tj);
        out
    }
}

fn encodings() -> Vec<Enc> {
    let e = |subsamp, progressive, restart_rows| Enc {
        subsamp,
        progressive,
        restart_rows,
        quality: 90,
    };
    vec![
        e(raw::TJSAMP_TJSAMP_420, false, 0),
        e(raw::TJSAMP_TJSAMP_422, false, 0),
        e(raw::TJSAMP_TJSAMP_444, false, 0),
        e(raw::TJSAMP_TJSAMP_440, false, 0),
        e(raw::TJSAMP_TJSAMP_411, false, 0),
        e(raw::TJSAMP_TJSAMP_441, false, 0),
        e(raw::TJSAMP_TJSAMP_GRAY, false, 0),
        e(raw::TJSAMP_TJSAMP_420, true, 0),
        e(raw::TJSAMP_TJSAMP_422, true, 0),
        e(raw::TJSAMP_TJSAMP_420, false, 1),
        e(raw::TJSAMP_TJSAMP_444, true, 2),
    ]
}

fn size(height: u32, width: u32) -> Size {
    Size { height, width }
}

fn configs() -> Vec<PreprocessConfig> {
    let base = PreprocessConfig::default();
    let shorter = |n: u32, crop: Size| PreprocessConfig {
        resize_mode: ResizeMode::ShorterSide,
        resize_size: size(n, n),
        crop_size: Some(crop),
        ..base.clone()
    };
    let stretch = |t: Size, crop: Size| PreprocessConfig {
        resize_mode: ResizeMode::Stretch,
        resize_size: t,
        crop_size: Some(crop),
        ..base.clone()
    };
    vec![
        // The common ImageNet evaluation.
        shorter(256, size(224, 224)),
        // The same, Pillow 12's pass order.
        PreprocessConfig {
            pillow_compat: PillowCompat::Pillow12,
            ..shorter(256, size(224, 224))
        },
        stretch(size(224, 224), size(200, 200)),
        // A crop larger than the resized image on one axis (zero padding).
        shorter(64, size(100, 40)),
        // Crop edges one pixel from the resized image's edges; a thin band.
        stretch(size(120, 300), size(118, 298)),
        shorter(256, size(32, 224)),
        // Upscaling small sources, a small crop.
        stretch(size(1000, 900), size(50, 60)),
        // Not resized at all (1920 wide images): the window is the crop itself.
        stretch(size(1080, 1920), size(300, 500)),
    ]
}

fn tensor(img: &RgbImage, cfg: &PreprocessConfig) -> Result<Vec<f32>, String> {
    let mut out = Vec::new();
    Preprocessor::new()
        .append_tensor(img, cfg, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn contains(outer: Roi, inner: Roi) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && inner.x + inner.width <= outer.x + outer.width
        && inner.y + inner.height <= outer.y + outer.height
}

/// Copies `win` of `from` into `to` (same size).
fn copy_window(from: &RgbImage, to: &mut RgbImage, win: Roi) {
    for y in win.y..win.y + win.height {
        let s = (y as usize * from.width as usize + win.x as usize) * 3;
        let n = win.width as usize * 3;
        to.data[s..s + n].copy_from_slice(&from.data[s..s + n]);
    }
}

/// Partial decodes that stopped above the last row (see `rows_below_may_be_skipped`).
static STOPPED_EARLY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Checks one JPEG under every config: the windowed decode's tensor equals the full
/// decode's, the decoded region holds the window, the window's pixels equal the full
/// decode's, and the full decode with every pixel outside the window poisoned still gives
/// the same tensor. Returns how many configs decoded only a region.
fn check_jpeg(jpeg: &[u8], what: &str, cfgs: &[PreprocessConfig]) -> usize {
    let opts = DecodeOptions::default();
    let full = decode_image_reusing(jpeg, &opts, Vec::new()).unwrap();
    let (w, h) = (full.width, full.height);
    let mut partial_count = 0;
    // A dirty reused buffer: pixels outside the region must not matter.
    let mut reuse = vec![0xA5u8; w as usize * h as usize * 3];
    for (ci, cfg) in cfgs.iter().enumerate() {
        let want = tensor(&full, cfg);
        let win = source_window(w, h, cfg);
        let (img, region) =
            decode_image_window(jpeg, &opts, std::mem::take(&mut reuse), &|a, b| {
                assert_eq!((a, b), (w, h));
                source_window(a, b, cfg)
            })
            .unwrap();
        assert_eq!((img.width, img.height), (w, h));
        let got = tensor(&img, cfg);
        assert!(
            got == want,
            "{what} config {ci}: tensor differs (window {win:?}, region {region:?})"
        );
        if let Some(win) = win {
            // Nothing outside the window matters to the tensor.
            for poison in [0u8, 255] {
                let mut p = RgbImage::from_raw(w, h, vec![poison; full.data.len()]);
                copy_window(&full, &mut p, win);
                assert!(
                    tensor(&p, cfg) == want,
                    "{what} config {ci}: window {win:?} misses a pixel the resampler reads \
                     (poison {poison})"
                );
            }
            if let Some(region) = region {
                partial_count += 1;
                STOPPED_EARLY.fetch_add(
                    (region.y + region.height < h) as usize,
                    std::sync::atomic::Ordering::Relaxed,
                );
                assert!(contains(region, win), "{what}: {region:?} misses {win:?}");
                let mut a = RgbImage::from_raw(w, h, vec![0; full.data.len()]);
                let mut b = a.clone();
                copy_window(&full, &mut a, win);
                copy_window(&img, &mut b, win);
                assert!(a == b, "{what} config {ci}: window pixels differ");
            }
        } else {
            assert_eq!(region, None, "{what} config {ci}: no window, yet cropped");
        }
        reuse = img.data;
    }
    partial_count
}

#[test]
fn windowed_decode_gives_the_full_decode_tensor() {
    let sizes: &[(u32, u32)] = &[
        (1, 1),
        (17, 9),
        (33, 1999),
        (1999, 1123),
        (1920, 1080),
        (641, 479),
        (500, 375),
        (123, 457),
    ];
    let cfgs = configs();
    let mut partial = 0;
    let mut checked = 0;
    for (si, &(w, h)) in sizes.iter().enumerate() {
        for (ei, enc) in encodings().into_iter().enumerate() {
            // Smooth and noisy content alternate; both for the big photo-like sizes.
            let contents: Vec<(&str, Vec<u8>)> = if w * h >= 500 * 375 && ei < 3 {
                vec![("smooth", smooth(w, h)), ("noise", noise(w, h, ei as u32))]
            } else if (si + ei) % 2 == 0 {
                vec![("smooth", smooth(w, h))]
            } else {
                vec![("noise", noise(w, h, (si * 31 + ei) as u32))]
            };
            for (name, rgb) in contents {
                let jpeg = encode(&rgb, w, h, enc);
                let what = format!("{w}x{h} {name} {enc:?}");
                partial += check_jpeg(&jpeg, &what, &cfgs);
                checked += cfgs.len();
            }
        }
    }
    let early = STOPPED_EARLY.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{checked} decodes, {partial} of them partial, {early} stopping above the last row");
    assert!(
        early >= 50,
        "only {early} partial decodes skipped the rows below the window"
    );
    // The big images under the cropping configs must take the partial path.
    assert!(partial >= 100, "only {partial} partial decodes");
}

/// Configs that read the whole image, and inputs that must be decoded whole, go the old way.
#[test]
fn whole_image_cases_are_decoded_whole() {
    let (w, h) = (640, 480);
    let rgb = smooth(w, h);
    let jpeg = encode(
        &rgb,
        w,
        h,
        Enc {
            subsamp: raw::TJSAMP_TJSAMP_420,
            progressive: false,
            restart_rows: 0,
            quality: 90,
        },
    );
    let opts = DecodeOptions::default();
    let base = PreprocessConfig::default();
    let whole = [
        PreprocessConfig {
            crop_size: None,
            ..base.clone()
        },
        PreprocessConfig {
            resize_mode: ResizeMode::Letterbox,
            ..base.clone()
        },
        PreprocessConfig {
            resize_mode: ResizeMode::PadSquare,
            ..base.clone()
        },
        // A crop as large as the resized image.
        PreprocessConfig {
            resize_size: size(300, 300),
            crop_size: Some(size(300, 300)),
            ..base.clone()
        },
    ];
    for cfg in &whole {
        assert_eq!(source_window(w, h, cfg), None, "{cfg:?}");
        let (_, region) =
            decode_image_window(&jpeg, &opts, Vec::new(), &|a, b| source_window(a, b, cfg))
                .unwrap();
        assert_eq!(region, None);
    }
    assert_eq!(check_jpeg(&jpeg, "whole", &whole), 0);

    // ImageNet's evaluation reads part of it, so it is cropped...
    let imagenet = PreprocessConfig {
        resize_mode: ResizeMode::ShorterSide,
        resize_size: size(256, 256),
        ..base.clone()
    };
    let base = imagenet;
    let some = |a, b| source_window(a, b, &base);
    assert!(decode_image_window(&jpeg, &opts, Vec::new(), &some)
        .unwrap()
        .1
        .is_some());
    // ... but not a PNG,
    let png = {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    };
    use image::ImageEncoder;
    assert_eq!(
        decode_image_window(&png, &opts, Vec::new(), &some)
            .unwrap()
            .1,
        None
    );
    // ... nor a CMYK JPEG,
    let cmyk: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 40])
        .collect();
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_colorspace(turbojpeg::Colorspace::CMYK).unwrap();
    let cmyk_jpeg = c
        .compress_to_vec(turbojpeg::Image {
            pixels: &cmyk[..],
            width: w as usize,
            pitch: w as usize * 4,
            height: h as usize,
            format: turbojpeg::PixelFormat::CMYK,
        })
        .unwrap();
    let (img, region) = decode_image_window(&cmyk_jpeg, &opts, Vec::new(), &some).unwrap();
    assert_eq!(region, None);
    assert_eq!(
        img,
        decode_image_reusing(&cmyk_jpeg, &opts, Vec::new()).unwrap()
    );
    // ... nor one whose EXIF orientation is applied (6: rotated, the window would be in the
    // rotated image's coordinates); orientation 1, or exif_transpose off, still is.
    let exif = DecodeOptions {
        exif_transpose: true,
        ..opts.clone()
    };
    for (o, rotated) in [(6u8, true), (1, false)] {
        let tagged = with_orientation(&jpeg, o);
        let (img, region) = decode_image_window(&tagged, &exif, Vec::new(), &some).unwrap();
        assert_eq!(region.is_none(), rotated, "orientation {o}");
        let full = decode_image_reusing(&tagged, &exif, Vec::new()).unwrap();
        assert_eq!((img.width, img.height), (full.width, full.height));
        assert!(
            tensor(&img, &base) == tensor(&full, &base),
            "orientation {o}"
        );
        let (_, region) = decode_image_window(&tagged, &opts, Vec::new(), &some).unwrap();
        assert!(region.is_some(), "orientation {o} ignored");
    }
}

/// `jpeg` with an APP1 Exif segment holding Orientation `o`, right after the SOI.
fn with_orientation(jpeg: &[u8], o: u8) -> Vec<u8> {
    let mut tiff = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A file cut anywhere, in particular below the window (where a cropped decode could stop
/// reading), fails exactly as the full decode does; corrupt but complete files give the same
/// tensor. Also with two bands (where the upper band stops reading at the split).
#[test]
fn truncated_and_corrupt_files_behave_as_with_a_full_decode() {
    let cfg = imagenet_eval();
    let opts = DecodeOptions::default();
    let (w, h) = (960, 720);
    let mut cut_errors = 0;
    for enc in [
        Enc {
            subsamp: raw::TJSAMP_TJSAMP_420,
            progressive: false,
            restart_rows: 0,
            quality: 85,
        },
        Enc {
            subsamp: raw::TJSAMP_TJSAMP_422,
            progressive: false,
            restart_rows: 1,
            quality: 85,
        },
        Enc {
            subsamp: raw::TJSAMP_TJSAMP_420,
            progressive: true,
            restart_rows: 0,
            quality: 85,
        },
    ] {
        let jpeg = encode(&smooth(w, h), w, h, enc);
        let win = |a, b| source_window(a, b, &cfg);
        assert!(decode_image_window(&jpeg, &opts, Vec::new(), &win)
            .unwrap()
            .1
            .is_some());
        let n = jpeg.len();
        // The engine's path (two bands when libtorch has two threads), and two bands forced
        // (split mid-image, whatever the thread count).
        let partial = |data: &[u8]| {
            [
                decode_image_window(data, &opts, Vec::new(), &win),
                decode_jpeg_window(data, &opts, Vec::new(), &win, 16, Bands::At(h / 2)),
            ]
        };
        // Cuts all over the file, dense near the end (the rows below the window, the EOI).
        let mut cuts: Vec<usize> = (1..40).map(|i| n * i / 40).collect();
        cuts.extend([n - 1, n - 2, n - 3, n - 50, n - 500, n * 97 / 100]);
        for cut in cuts {
            let data = &jpeg[..cut];
            let full = decode_image_reusing(data, &opts, Vec::new());
            for part in partial(data) {
                match (&full, &part) {
                    (Err(a), Err(b)) => {
                        assert_eq!(a.to_string(), b.to_string(), "{enc:?} cut at {cut}/{n}");
                        cut_errors += 1;
                    }
                    (Ok(a), Ok((b, _))) => {
                        assert!(
                            tensor(a, &cfg) == tensor(b, &cfg),
                            "{enc:?} cut at {cut}/{n}"
                        )
                    }
                    _ => panic!(
                        "{enc:?} cut at {cut}/{n}: full {:?} vs windowed {:?}",
                        full.as_ref().map(|_| ()),
                        part.as_ref().map(|_| ())
                    ),
                }
            }
        }
        // A file that only lacks its EOI marker is truncated for Pillow.
        let err = decode_image_window(&jpeg[..n - 2], &opts, Vec::new(), &win).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // Flipped bits in the entropy-coded data (a warning for libjpeg, ignored as Pillow
        // does): same outcome either way.
        for i in 1..20 {
            let mut bad = jpeg.clone();
            let pos = n / 3 + i * (n / 2) / 20;
            bad[pos] ^= 0x10 << (i % 4);
            let full = decode_image_reusing(&bad, &opts, Vec::new());
            for part in partial(&bad) {
                match (&full, &part) {
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (Ok(a), Ok((b, _))) => {
                        assert!(tensor(a, &cfg) == tensor(b, &cfg), "{enc:?} flip at {pos}")
                    }
                    _ => panic!("{enc:?} flip at {pos}: outcomes differ"),
                }
            }
        }
    }
    assert!(cut_errors > 80, "{cut_errors}");
}

/// Two bands of rows decode exactly the pixels of one decode wherever the split falls: at
/// every iMCU row of the region, for every subsampling, progressive files and restart markers
/// (forced with `Bands::At`, so whatever the thread count). `Bands::Auto` is what the other
/// tests here use (two bands on the large files when libtorch has two threads).
#[test]
fn two_bands_decode_the_pixels_of_one() {
    let opts = DecodeOptions::default();
    let cfg = imagenet_eval();
    let window = |a, b| source_window(a, b, &cfg);
    let mut splits = 0;
    for (w, h) in [(640u32, 480u32), (123, 457), (300, 97)] {
        for (ei, enc) in encodings().into_iter().enumerate() {
            let rgb = if ei % 2 == 0 {
                noise(w, h, ei as u32)
            } else {
                smooth(w, h)
            };
            let jpeg = encode(&rgb, w, h, enc);
            let full = decode_image_reusing(&jpeg, &opts, Vec::new()).unwrap();
            let (one, region) =
                decode_jpeg_window(&jpeg, &opts, Vec::new(), &window, 16, Bands::One).unwrap();
            let region = region.expect("a cropping config decodes a region");
            let rows = |img: &RgbImage| -> Vec<Vec<u8>> {
                (region.y..region.y + region.height)
                    .map(|y| {
                        let at = ((y * w + region.x) * 3) as usize;
                        img.data[at..at + region.width as usize * 3].to_vec()
                    })
                    .collect()
            };
            // The window is the full decode's (the region's edge columns may not be: see
            // the margin); the whole region must be the same in one decode and in two.
            let win = window(w, h).unwrap();
            let (mut a, mut b) = (full.clone(), full.clone());
            copy_window(&full, &mut a, win);
            copy_window(&one, &mut b, win);
            assert!(
                a == b,
                "{w}x{h} {enc:?}: the window differs from the full decode"
            );
            let want = rows(&one);
            // Every row of the region (moved up to its iMCU row), the ones above and below.
            // (A split moves up to an iMCU row, of 8 or 16 rows: steps of 3 meet every one.)
            for split in (region.y.saturating_sub(1)..=region.y + region.height + 1).step_by(3) {
                let (two, r2) = decode_jpeg_window(
                    &jpeg,
                    &opts,
                    vec![0x5Au8; full.data.len()],
                    &window,
                    16,
                    Bands::At(split),
                )
                .unwrap();
                assert_eq!(r2, Some(region));
                assert!(
                    rows(&two) == want,
                    "{w}x{h} {enc:?}: split at {split} differs"
                );
                splits += 1;
            }
        }
    }
    assert!(splits > 1500, "{splits}");
}

/// The margin is needed: decoding exactly the window (margin 0) changes pixels at its left
/// and right edges in 4:2:0 and 4:2:2 files (libjpeg's fancy upsampling treats them as image
/// edges), so the equality checks above would catch a margin that is too small. With the
/// margin `decode_image_window` uses (16) the same files are exact.
#[test]
fn without_the_margin_the_window_edges_differ() {
    let (w, h) = (1280, 720);
    let cfg = imagenet_eval();
    let opts = DecodeOptions::default();
    let mut differ = 0;
    for subsamp in [raw::TJSAMP_TJSAMP_420, raw::TJSAMP_TJSAMP_422] {
        for seed in 0..4 {
            let enc = Enc {
                subsamp,
                progressive: false,
                restart_rows: 0,
                quality: 95,
            };
            let jpeg = encode(&noise(w, h, seed), w, h, enc);
            let full = decode_image_reusing(&jpeg, &opts, Vec::new()).unwrap();
            // Windows shifted by a pixel, so that their right edge falls both on and between
            // chroma sample pairs.
            for shift in 0..2u32 {
                let window = |a, b| {
                    source_window(a, b, &cfg).map(|r| Roi {
                        width: r.width - shift,
                        ..r
                    })
                };
                let win = window(w, h).unwrap();
                let pixels_equal = |margin: Option<u32>| {
                    let (img, region) = match margin {
                        Some(m) => {
                            decode_jpeg_window(&jpeg, &opts, Vec::new(), &window, m, Bands::One)
                        }
                        None => decode_image_window(&jpeg, &opts, Vec::new(), &window),
                    }
                    .unwrap();
                    assert!(region.is_some());
                    let mut a = RgbImage::from_raw(w, h, vec![0; full.data.len()]);
                    let mut b = a.clone();
                    copy_window(&full, &mut a, win);
                    copy_window(&img, &mut b, win);
                    a == b
                };
                assert!(pixels_equal(None), "{subsamp} {seed} {shift}");
                if !pixels_equal(Some(0)) {
                    differ += 1;
                }
            }
        }
    }
    assert!(differ > 0, "a margin of 0 was exact every time");
}

/// The engine's encoded-image path (`run_encoded_json`, behind `evsdk_process_image/file` and
/// `ji_calc_buffer/file`) decodes JPEGs in part with its own config's window, and renders
/// exactly the JSON of classifying the fully decoded image; a truncated file gives the
/// decode error.
#[test]
fn engine_encoded_path_equals_classifying_the_full_decode() {
    let mut cfg = ji::config::Config::load(&common::fixture("conv.json")).unwrap();
    cfg.device = ji::config::DeviceSpec::Cpu;
    // conv.json: shorter_side 256 + crop 224, the common windowed case.
    assert!(cfg.preprocess.crop_size.is_some());
    let engine = ji::engine::Engine::new(cfg).unwrap();
    let args = Some(r#"{"topk": 3, "confidence_decimals": null}"#);
    let mut partial = 0;
    for (i, &(w, h, enc)) in [
        (1920, 1080, raw::TJSAMP_TJSAMP_420),
        (1080, 1920, raw::TJSAMP_TJSAMP_422),
        (1280, 720, raw::TJSAMP_TJSAMP_GRAY),
        (777, 333, raw::TJSAMP_TJSAMP_444),
    ]
    .iter()
    .enumerate()
    {
        let rgb = if i % 2 == 0 {
            smooth(w, h)
        } else {
            noise(w, h, 5)
        };
        let jpeg = encode(
            &rgb,
            w,
            h,
            Enc {
                subsamp: enc,
                progressive: i == 1,
                restart_rows: 0,
                quality: 90,
            },
        );
        let pre = &engine.config().preprocess;
        partial += decode_image_window(&jpeg, &Default::default(), Vec::new(), &|a, b| {
            source_window(a, b, pre)
        })
        .unwrap()
        .1
        .is_some() as usize;
        let full = engine.decode(&jpeg).unwrap();
        // Twice: the second call reuses the pooled (now dirty) buffer.
        for _ in 0..2 {
            let got = engine.run_encoded_json(&jpeg, None, args).unwrap();
            let want = engine.run_json(&full, args).unwrap();
            assert_eq!(got.json, want.json, "{w}x{h}");
        }
        let cut = &jpeg[..jpeg.len() - 100];
        let err = engine.run_encoded_json(cut, None, args).unwrap_err();
        assert_eq!(err.to_string(), engine.decode(cut).unwrap_err().to_string());
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    assert_eq!(partial, 4);
}

/// ImageNet's evaluation transform: shorter side 256, centre crop 224.
fn imagenet_eval() -> PreprocessConfig {
    PreprocessConfig {
        resize_mode: ResizeMode::ShorterSide,
        resize_size: size(256, 256),
        crop_size: Some(size(224, 224)),
        ..Default::default()
    }
}
