//! End-to-end preprocessing parity: decode + resize mode + centre crop + normalise must give
//! the tensor PIL + torchvision build, and the C API must give the Python pipeline's
//! predictions on the same TorchScript model. References come from
//! tools/make_pipeline_fixtures.py (generated on first use).

mod common;

use common::*;
use ji::config::Config;
use ji::decode::{decode_image, decode_image_window, DecodeOptions};
use ji::ffi::evsdk::*;
use ji::preprocess::{preprocess_into, source_window};
use serde_json::Value;
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr;

fn pipeline() -> PathBuf {
    // "version-2": the set with the pad_square modes (tools/make_pipeline_fixtures.py STAMP).
    generated("pipeline", "make_pipeline_fixtures.py", "version-2")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(pipeline().join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn tensors_match_torchvision_in_every_mode() {
    let dir = pipeline();
    let m = manifest();
    for mode in ["letterbox", "pad_square", "pad_square_rect"] {
        assert!(m["modes"].get(mode).is_some(), "no {mode} in the fixtures");
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut buf = Vec::new();
    let mut windowed = Vec::new();
    let mut partial = 0;
    for case in m["cases"].as_array().unwrap() {
        let mode = case["mode"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let cfg = Config::load(&dir.join(m["modes"][mode].as_str().unwrap())).unwrap();
        let bytes = std::fs::read(dir.join("images").join(image)).unwrap();
        let img = decode_image(&bytes, &DecodeOptions::default()).unwrap();
        let size = preprocess_into(&img, &cfg.preprocess, &mut buf).unwrap();
        // The engine's path decodes only the pixels the preprocessing reads (JPEG): the
        // same tensor, bit for bit.
        let (part, region) =
            decode_image_window(&bytes, &DecodeOptions::default(), Vec::new(), &|w, h| {
                source_window(w, h, &cfg.preprocess)
            })
            .unwrap();
        preprocess_into(&part, &cfg.preprocess, &mut windowed).unwrap();
        if windowed != buf {
            failures.push(format!(
                "{mode}/{image}: the windowed decode ({region:?}) differs"
            ));
        }
        partial += region.is_some() as usize;
        let shape: Vec<u64> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let raw =
            std::fs::read(dir.join("tensors").join(case["tensor"].as_str().unwrap())).unwrap();
        let want: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        if shape != [3, size.height as u64, size.width as u64] {
            failures.push(format!(
                "{mode}/{image}: shape {:?} vs ours {}x{}",
                shape, size.height, size.width
            ));
            continue;
        }
        let max_diff = buf
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let differing = buf.iter().zip(&want).filter(|(a, b)| a != b).count();
        if max_diff > 1e-6 {
            failures.push(format!(
                "{mode}/{image}: max |diff| {max_diff}, {differing} values differ"
            ));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        checked + failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 100, "only {checked} cases checked");
    assert!(partial >= 5, "only {partial} windowed decodes were partial");
}

#[test]
fn c_api_predictions_match_the_python_pipeline_on_real_photos() {
    let dir = pipeline();
    let m = manifest();
    let args = CString::new(r#"{"topk": 5, "confidence_decimals": null}"#).unwrap();
    for mode in m["photo_modes"].as_array().unwrap() {
        let mode = mode.as_str().unwrap();
        let reference: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("reference_{mode}.json"))).unwrap(),
        )
        .unwrap();
        let h = evsdk_open(&dir.join(m["modes"][mode].as_str().unwrap()));
        let images = reference["images"].as_array().unwrap();
        assert!(images.len() >= 4);
        for r in images {
            let path = cstring(&dir.join("photos").join(r["path"].as_str().unwrap()));
            let mut out = ptr::null_mut();
            assert_eq!(
                unsafe { evsdk_process_file(h, path.as_ptr(), args.as_ptr(), &mut out) },
                EVSDK_OK,
                "{}",
                last_error()
            );
            let ours = take_json(out);
            let ours_topk = ours["model_data"]["topk"].as_array().unwrap();
            let theirs = r["topk"].as_array().unwrap();
            let ids = |v: &[Value]| {
                v.iter()
                    .map(|t| t["class_id"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                ids(ours_topk),
                ids(theirs),
                "{mode}/{}: top-5 differs",
                r["path"]
            );
            for (a, b) in ours_topk.iter().zip(theirs) {
                let (a, b) = (
                    a["confidence"].as_f64().unwrap(),
                    b["confidence"].as_f64().unwrap(),
                );
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{mode}/{}: confidence {a} vs {b}",
                    r["path"]
                );
            }
        }
        unsafe { evsdk_release(h) };
    }
}
