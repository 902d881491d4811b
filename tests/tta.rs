//! Test-time augmentation (`"tta"`) and ensembles (`"models"`): what the probabilities are
//! (the mean over the views, the weighted mean over the members), the sync, batch and async
//! paths, the partial JPEG decode with several members, the members' class check, and parity
//! with tools/reference_predict.py on real photos, directly and through `harness --compare`.
//! Models: the pipeline fixtures' ResNet-18 (logits, no metadata) and
//! tools/make_ensemble_fixtures.py's (a softmax ResNet-18 with metadata and another input size,
//! and small CNNs whose metadata lists other classes).

mod common;

use common::*;
use ji::config::Config;
use ji::ffi::ji::*;
use ji::image::RgbImage;
use ji::Engine;
use serde_json::{json, Value};
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::Mutex;

/// Confidences of the library and of the Python pipeline agree within this (as
/// tests/parity_pipeline.rs holds them).
const TOLERANCE: f64 = 1e-5;

fn pipeline() -> PathBuf {
    generated("pipeline", "make_pipeline_fixtures.py", "version-2")
}

fn ensemble() -> PathBuf {
    generated("ensemble", "make_ensemble_fixtures.py", "version-1")
}

/// The pipeline's ResNet-18 (logits, no metadata) and its class file.
fn resnet() -> (String, String) {
    let d = pipeline().join("model");
    let s = |p: PathBuf| p.to_str().unwrap().to_owned();
    (s(d.join("resnet18_146.pt")), s(d.join("class.txt")))
}

/// The softmax ResNet-18 whose metadata sets letterbox [240, 320], crop [224, 288].
fn softmax_resnet() -> String {
    ensemble()
        .join("model/resnet18_softmax.pt")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Writes `config` as `<suite temp>/<name>.json`.
fn write_config(name: &str, config: Value) -> PathBuf {
    let dir = temp_dir("tta", name);
    let path = dir.join("algo_config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn engine(name: &str, config: Value) -> Engine {
    Engine::from_config_path(Some(&write_config(name, config))).unwrap()
}

/// Every class's probability for `img`, by class id.
fn probabilities(e: &Engine, img: &RgbImage) -> Vec<f64> {
    let c = e.classify(img, e.num_classes()).unwrap();
    let mut p = vec![0f64; e.num_classes()];
    for r in c.ranked {
        p[r.class_id] = r.confidence as f64;
    }
    p
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn photo(name: &str) -> RgbImage {
    let bytes = std::fs::read(pipeline().join("photos").join(name)).unwrap();
    ji::decode::decode_image(&bytes, &Default::default()).unwrap()
}

/// The `w x h` region of `img` at (`x`, `y`), optionally mirrored.
fn region(img: &RgbImage, (x, y, w, h): (u32, u32, u32, u32), flip: Option<&str>) -> RgbImage {
    let mut out = RgbImage::new(w, h);
    for oy in 0..h {
        for ox in 0..w {
            let (sx, sy) = match flip {
                Some("hflip") => (w - 1 - ox, oy),
                Some("vflip") => (ox, h - 1 - oy),
                _ => (ox, oy),
            };
            let px = img.pixel(x + sx, y + sy);
            let at = ((oy * w + ox) * 3) as usize;
            out.data[at..at + 3].copy_from_slice(&px);
        }
    }
    out
}

#[test]
fn each_view_is_the_flipped_tensor_and_the_result_is_their_mean() {
    // A 224x224 image with a 224x224 stretch and crop is not resized, so the tensor of the
    // mirrored image is the mirrored tensor: TTA must give the mean of the two plain results.
    let (model, classes) = resnet();
    let base = json!({"model_path": model, "class_names_path": classes, "device": "cpu",
                      "resize_size": 224, "crop_size": 224, "optimize": false});
    let img = region(&photo("chelsea.png"), (60, 20, 224, 224), None);
    let plain = engine("plain", base.clone());
    let p = probabilities(&plain, &img);
    let mirrored = |v| {
        probabilities(
            &plain,
            &region(&photo("chelsea.png"), (60, 20, 224, 224), Some(v)),
        )
    };
    let (ph, pv) = (mirrored("hflip"), mirrored("vflip"));
    assert!(
        max_diff(&p, &ph) > 1e-3,
        "the mirrored image must score differently"
    );
    for (views, want) in [
        (
            json!(["hflip"]),
            (0..p.len())
                .map(|i| (p[i] + ph[i]) / 2.0)
                .collect::<Vec<_>>(),
        ),
        (
            json!(["vflip"]),
            (0..p.len()).map(|i| (p[i] + pv[i]) / 2.0).collect(),
        ),
        (
            json!(["hflip", "vflip"]),
            (0..p.len()).map(|i| (p[i] + ph[i] + pv[i]) / 3.0).collect(),
        ),
    ] {
        let mut cfg = base.clone();
        cfg["tta"] = views.clone();
        let e = engine("views", cfg);
        assert_eq!(e.config().tta.len(), views.as_array().unwrap().len());
        let got = probabilities(&e, &img);
        let d = max_diff(&got, &want);
        assert!(d <= 1e-6, "{views}: off by {d}");
        assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    }
    // No views: exactly the plain model's probabilities.
    let mut cfg = base.clone();
    cfg["tta"] = json!([]);
    assert_eq!(probabilities(&engine("none", cfg), &img), p);
}

#[test]
fn an_ensemble_is_the_weighted_mean_of_its_members() {
    let (model, classes) = resnet();
    let b = softmax_resnet();
    let a_keys = json!({"resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224});
    let single_a = {
        let mut c = a_keys.clone();
        c["model_path"] = json!(model);
        c["class_names_path"] = json!(classes);
        c["device"] = json!("cpu");
        c["optimize"] = json!(false);
        engine("a", c)
    };
    // B alone: its metadata names the classes and the preprocessing.
    let single_b = engine(
        "b",
        json!({"model_path": b, "device": "cpu", "optimize": false}),
    );
    let mut member_a = a_keys.clone();
    member_a["model_path"] = json!(model);
    member_a["weight"] = json!(3);
    let both = engine(
        "ab",
        json!({"models": [member_a, {"model_path": b}], "class_names_path": classes,
               "device": "cpu", "optimize": false}),
    );
    assert_eq!(both.config().ensemble.len(), 2);
    let b_cfg = &both.config().ensemble[1].config;
    assert_eq!(
        (
            b_cfg.preprocess.crop_size.unwrap().height,
            b_cfg.preprocess.crop_size.unwrap().width
        ),
        (224, 288),
        "member B keeps its own metadata"
    );
    for name in ["coffee.jpg", "rocket.jpg"] {
        let img = photo(name);
        let (pa, pb) = (
            probabilities(&single_a, &img),
            probabilities(&single_b, &img),
        );
        let want: Vec<f64> = pa
            .iter()
            .zip(&pb)
            .map(|(a, b)| 0.75 * a + 0.25 * b)
            .collect();
        let got = probabilities(&both, &img);
        let d = max_diff(&got, &want);
        assert!(d <= 1e-6, "{name}: off by {d}");
        assert!(max_diff(&pa, &pb) > 1e-3, "the members must differ");
    }
    // Model info lists both, with their shares, sizes and output kinds.
    let cfg = write_config(
        "info",
        json!({"models": [{"model_path": model, "resize_mode": "shorter_side",
                           "resize_size": 256, "crop_size": 224, "weight": 3},
                          {"model_path": b}],
               "class_names_path": classes, "device": "cpu", "optimize": false,
               "tta": ["hflip"]}),
    );
    let h = evsdk_open(&cfg);
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { ji::ffi::evsdk::evsdk_model_info(h, &mut out) }, 0);
    let info = take_json(out);
    unsafe { ji::ffi::evsdk::evsdk_release(h) };
    assert_eq!(info["tta"], json!(["hflip"]));
    assert_eq!(info["warmed_batch_sizes"], json!([2]));
    let models = info["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["weight"], 0.75);
    assert_eq!(models[1]["weight"], 0.25);
    assert_eq!(models[0]["input_size"], json!([224, 224]));
    assert_eq!(models[1]["input_size"], json!([224, 288]));
    assert_eq!(models[0]["model_output"], "logits");
    assert_eq!(models[1]["model_output"], "probabilities");
    assert_eq!(models[1]["optimization"]["path"], "plain");
}

#[test]
fn the_partial_decode_covers_every_member() {
    // Two members that each read a part of the 1080p JPEG (different scales, different
    // crops): the engine decodes the part either reads, and the result equals the full
    // decode's, bit for bit.
    let (model, classes) = resnet();
    let members = json!([
        {"model_path": model, "resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224},
        {"model_path": model, "resize_mode": "shorter_side", "resize_size": 600, "crop_size": 160,
         "weight": 2},
    ]);
    let cfg = write_config(
        "window",
        json!({"models": members, "class_names_path": classes, "device": "cpu",
               "tta": ["hflip"]}),
    );
    let e = Engine::from_config_path(Some(&cfg)).unwrap();
    let path = pipeline().join("photos/astronaut_1080p.jpg");
    let bytes = std::fs::read(&path).unwrap();
    let img = e.decode(&bytes).unwrap();
    let windows: Vec<_> = e
        .config()
        .ensemble
        .iter()
        .map(|m| {
            ji::preprocess::source_window(img.width, img.height, &m.config.preprocess).unwrap()
        })
        .collect();
    assert_ne!(windows[0], windows[1], "the members read different parts");
    let args = r#"{"topk": 5, "confidence_decimals": null}"#;
    let full = e.run_json(&img, Some(args)).unwrap().json;
    let windowed = e
        .run_encoded_json(&bytes, Some(&path), Some(args))
        .unwrap()
        .json;
    assert_eq!(windowed, full);
}

#[test]
fn members_must_agree_on_their_classes_and_keys() {
    let b = softmax_resnet();
    let d = ensemble().join("model");
    let err =
        |name: &str, cfg: Value| match Engine::from_config_path(Some(&write_config(name, cfg))) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        };
    let e = err(
        "names",
        json!({"models": [{"model_path": b}, {"model_path": d.join("tiny_other_names.pt")}],
               "device": "cpu"}),
    );
    assert!(
        e.contains("must classify into the same classes")
            && e.contains("class 0 is \"类别_000\" against \"other_000\""),
        "{e}"
    );
    let e = err(
        "count",
        json!({"models": [{"model_path": b}, {"model_path": d.join("tiny_10.pt")}],
               "device": "cpu"}),
    );
    assert!(e.contains("146 classes against 10"), "{e}");
    // A member's own key against its metadata: the one-model rule, named by member.
    let e = err(
        "conflict",
        json!({"models": [{"model_path": b, "crop_size": 224}], "device": "cpu"}),
    );
    assert!(
        e.contains("\"models\"[0]") && e.contains("\"crop_size\" is 224 in the config"),
        "{e}"
    );
    // ... which the member's own override settles.
    let ok = Engine::from_config_path(Some(&write_config(
        "override",
        json!({"models": [{"model_path": b, "crop_size": 224, "override_model_metadata": true}],
               "device": "cpu", "optimize": false}),
    )))
    .unwrap();
    assert_eq!(ok.config().preprocess.crop_size.unwrap().width, 224);
    let e = err(
        "perkey",
        json!({"models": [{"model_path": b, "device": "cpu"}]}),
    );
    assert!(e.contains("\"device\" cannot be set per model"), "{e}");
    let e = err(
        "both",
        json!({"model_path": b, "models": [{"model_path": b}]}),
    );
    assert!(e.contains("either \"model_path\""), "{e}");
}

/// A BGR frame of an RGB image.
fn bgr(img: &RgbImage) -> Vec<u8> {
    let mut v = img.data.clone();
    for px in v.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
    v
}

fn frame_info(data: &[u8], img: &RgbImage) -> JiImageInfo {
    JiImageInfo {
        nWidth: img.width,
        nHeight: img.height,
        nWidthStride: 0,
        nHeightStride: img.height,
        nFrameRate: 0,
        dwTimeStamp: 0,
        pData: data.as_ptr() as *mut c_void,
        nDataLen: data.len() as u32,
        nFormat: JI_IMAGE_TYPE_BGR,
        nDataType: JI_UNSIGNED_CHAR,
        nFrameNo: 0,
        byRes: [0; 4],
    }
}

fn calc_image(p: &Pred, frames: &[JiImageInfo], args: &CStr) -> Value {
    let mut ev = JiEvent {
        code: 99,
        json: ptr::null(),
    };
    let mut outs: *mut JiImageInfo = ptr::null_mut();
    let mut n = 0u32;
    let rc = unsafe {
        ji_calc_image(
            p.ptr(),
            frames.as_ptr(),
            frames.len() as u32,
            args.as_ptr(),
            &mut outs,
            &mut n,
            &mut ev,
        )
    };
    assert_eq!(rc, 0, "{}", last_error());
    serde_json::from_str(unsafe { CStr::from_ptr(ev.json) }.to_str().unwrap()).unwrap()
}

/// Confidences of `a` and `b` (two results' top-5) differ by at most `tol`, with the same
/// classes.
fn assert_close(a: &Value, b: &Value, tol: f64, what: &str) {
    let top = |v: &Value| -> Vec<(u64, f64)> {
        v["model_data"]["topk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["class_id"].as_u64().unwrap(),
                    t["confidence"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (ta, tb) = (top(a), top(b));
    assert_eq!(
        ta.iter().map(|t| t.0).collect::<Vec<_>>(),
        tb.iter().map(|t| t.0).collect::<Vec<_>>(),
        "{what}"
    );
    for (x, y) in ta.iter().zip(&tb) {
        assert!((x.1 - y.1).abs() <= tol, "{what}: {} vs {}", x.1, y.1);
    }
}

static ASYNC_RESULTS: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(output: *mut JiData, user: *mut c_void) {
    let json = CStr::from_ptr((*output).event.json)
        .to_string_lossy()
        .into_owned();
    ASYNC_RESULTS.lock().unwrap().push((user as usize, json));
    ji::ffi::ji_async::ji_free_async_result(output);
}

#[test]
fn sync_batch_and_async_calls_give_the_one_image_results() {
    // An ensemble with TTA on the CPU fast path: one-frame calls, several frames in one
    // ji_calc_image, and the asynchronous mode batching up to 3 frames.
    let (model, classes) = resnet();
    let cfg = write_config(
        "paths",
        json!({"models": [
                   {"model_path": model, "resize_mode": "shorter_side", "resize_size": 256,
                    "crop_size": 224},
                   {"model_path": softmax_resnet(), "weight": 0.5}],
               "class_names_path": classes, "device": "cpu", "tta": ["hflip"],
               "async_max_batch": 3}),
    );
    let p = Pred::with_config(&cfg);
    let images: Vec<RgbImage> = [
        "chelsea.png",
        "coffee.jpg",
        "rocket.jpg",
        "astronaut_1080p.jpg",
    ]
    .iter()
    .map(|n| photo(n))
    .collect();
    let data: Vec<Vec<u8>> = images.iter().map(bgr).collect();
    let infos: Vec<JiImageInfo> = data
        .iter()
        .zip(&images)
        .map(|(d, i)| frame_info(d, i))
        .collect();
    let args = CString::new(r#"{"topk": 5, "confidence_decimals": null}"#).unwrap();
    let singles: Vec<Value> = infos
        .iter()
        .map(|f| calc_image(&p, std::slice::from_ref(f), &args))
        .collect();
    // 4 frames: a batch size nobody prepared runs one image's views at a time, through the
    // graphs a one-frame call runs: the same bytes.
    let four = calc_image(&p, &infos, &args);
    assert_eq!(four["frames"].as_array().unwrap(), &singles);
    // 3 frames: the async batch size's own graph, equal within float rounding.
    let three = calc_image(&p, &infos[..3], &args);
    for (i, f) in three["frames"].as_array().unwrap().iter().enumerate() {
        assert_close(f, &singles[i], 1e-5, &format!("batch of 3, frame {i}"));
    }
    // The asynchronous mode, cross-call batching included.
    ASYNC_RESULTS.lock().unwrap().clear();
    assert_eq!(unsafe { ji_set_callback(p.ptr(), Some(collect)) }, 0);
    for round in 0..2 {
        for (i, f) in infos.iter().enumerate() {
            let tag = round * 10 + i;
            let rc =
                unsafe { ji_calc_image_asyn(p.ptr(), f, 1, args.as_ptr(), tag as *mut c_void) };
            assert_eq!(rc, 0, "{}", last_error());
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while ASYNC_RESULTS.lock().unwrap().len() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "async results missing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(p);
    for (tag, text) in ASYNC_RESULTS.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_close(
            &v,
            &singles[tag % 10],
            1e-5,
            &format!("async request {tag}"),
        );
    }
}

/// Runs tools/reference_predict.py on `dir` with `config`; returns its JSON.
fn reference(config: &Path, dir: &Path) -> Value {
    let out = config.with_file_name("reference.json");
    let run = Command::new(python())
        .arg(root().join("tools/reference_predict.py"))
        .arg("--config")
        .arg(config)
        .arg(dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "reference_predict: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

#[test]
fn the_python_pipeline_agrees_on_real_photos() {
    let (model, classes) = resnet();
    let photos = pipeline().join("photos");
    let configs = [
        (
            "tta",
            json!({"model_path": model, "class_names_path": classes, "device": "cpu",
                   "resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224,
                   "tta": ["hflip", "vflip"]}),
        ),
        (
            "ensemble",
            json!({"models": [
                       {"model_path": model, "resize_mode": "shorter_side", "resize_size": 256,
                        "crop_size": 224, "weight": 2},
                       {"model_path": softmax_resnet()}],
                   "class_names_path": classes, "device": "cpu", "tta": ["hflip"]}),
        ),
    ];
    for (name, config) in configs {
        let cfg = write_config(name, config);
        let r = reference(&cfg, &photos);
        assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{name}");
        let images = r["images"].as_array().unwrap();
        assert_eq!(images.len(), 4, "{name}");
        // Through the C API, image by image: the same top-5, confidences within tolerance.
        let h = evsdk_open(&cfg);
        let args = CString::new(r#"{"topk": 5, "confidence_decimals": null}"#).unwrap();
        for im in images {
            let path = cstring(&photos.join(im["path"].as_str().unwrap()));
            let mut out = ptr::null_mut();
            assert_eq!(
                unsafe {
                    ji::ffi::evsdk::evsdk_process_file(h, path.as_ptr(), args.as_ptr(), &mut out)
                },
                0,
                "{}",
                last_error()
            );
            let ours = take_json(out);
            let theirs = json!({"model_data": {"topk": im["topk"]}});
            assert_close(&ours, &theirs, TOLERANCE, &format!("{name}/{}", im["path"]));
        }
        unsafe { ji::ffi::evsdk::evsdk_release(h) };
        // The harness's --compare, as a contestant runs it.
        let reference = cfg.with_file_name("reference.json");
        let report = cfg.with_file_name("report.json");
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("--config")
            .arg(&cfg)
            .arg("--compare")
            .arg(&reference)
            .arg("--report")
            .arg(&report)
            .arg(&photos)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "harness: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let c = &rep["compare"];
        assert_eq!(c["matched"], 4, "{name}: {c}");
        assert_eq!(c["top1_agreement"], 1.0, "{name}: {c}");
        let d = c["max_top1_confidence_diff"].as_f64().unwrap();
        assert!(d <= TOLERANCE, "{name}: {d}");
        std::fs::remove_dir_all(cfg.parent().unwrap()).unwrap();
    }
}

#[test]
fn tta_and_models_parse_and_reject() {
    let base = Path::new("/cfg");
    let c = Config::parse(
        r#"{"model_path": "m.pt", "class_names_path": "c.txt", "tta": ["vflip", "hflip"]}"#,
        base,
    )
    .unwrap();
    assert_eq!(
        c.tta,
        [ji::config::TtaView::VFlip, ji::config::TtaView::HFlip]
    );
    assert!(c.ensemble.is_empty());
    assert_eq!(c.models().len(), 1);
    for (text, needle) in [
        (
            r#""tta": "hflip""#,
            "\"tta\": expected a list of extra views",
        ),
        (r#""tta": ["hflip", "hflip"]"#, "lists \"hflip\" twice"),
        (r#""tta": ["rotate"]"#, "\"tta\": expected"),
    ] {
        let e = Config::parse(
            &format!(r#"{{"model_path": "m.pt", "class_names_path": "c.txt", {text}}}"#),
            base,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    let c = Config::parse(
        r#"{"models": [{"model_path": "a.pt", "weight": 3, "resize_size": 256},
                       {"model_path": "/x/b.pt", "_note": "b"}],
            "class_names_path": "c.txt", "resize_size": 288, "crop_size": 200}"#,
        base,
    )
    .unwrap();
    let m = c.models();
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].0, m[1].0), (3.0, 1.0));
    assert_eq!(m[0].1.model_path, Path::new("/cfg/a.pt"));
    assert_eq!(m[1].1.model_path, Path::new("/x/b.pt"));
    // Each member: its own keys over the top level's.
    assert_eq!(m[0].1.preprocess.resize_size.height, 256);
    assert_eq!(m[1].1.preprocess.resize_size.height, 288);
    assert_eq!(m[0].1.preprocess.crop_size.unwrap().height, 200);
    assert_eq!(
        c.model_path,
        Path::new("/cfg/a.pt"),
        "the top level is the first member"
    );
    for (text, needle) in [
        (r#""models": []"#, "\"models\": expected a non-empty list"),
        (r#""models": [3]"#, "\"models\"[0]: expected an object"),
        (
            r#""models": [{"weight": 1}]"#,
            "\"models\"[0] has no \"model_path\"",
        ),
        (
            r#""models": [{"model_path": "a", "weight": 0}]"#,
            "\"models\"[0]: \"weight\": expected a number > 0",
        ),
        (
            r#""models": [{"model_path": "a", "thresh": 0.5}]"#,
            "\"thresh\" cannot be set per model",
        ),
        (
            r#""models": [{"model_path": "a"}, {"model_path": "b", "exif_transpose": true}]"#,
            "the image is decoded once",
        ),
        (
            r#""models": [{"model_path": "a", "resize_mode": "zoom"}]"#,
            "\"models\"[0]: \"resize_mode\"",
        ),
    ] {
        let e = Config::parse(&format!(r#"{{"class_names_path": "c.txt", {text}}}"#), base)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn make_install_installs_every_member() {
    // tools/install.py (what `make install CONFIG=...` runs) with an ensemble config whose
    // members lie beside it: two files of the same name in two folders, one of them used
    // twice.
    let src = temp_dir("tta", "install-src");
    let core = fixture("model");
    for (from, to) in [("conv.pt", "a/model.pt"), ("colour.pt", "b/model.pt")] {
        std::fs::create_dir_all(src.join(to).parent().unwrap()).unwrap();
        std::fs::copy(core.join(from), src.join(to)).unwrap();
    }
    std::fs::copy(core.join("class.txt"), src.join("class.txt")).unwrap();
    let config = json!({
        "models": [{"model_path": "a/model.pt", "weight": 2},
                   {"model_path": "b/model.pt", "resize_mode": "stretch", "resize_size": 32,
                    "crop_size": 32},
                   {"model_path": "a/model.pt", "crop_size": 160}],
        "class_names_path": "class.txt", "device": "cpu", "tta": ["hflip"],
        "resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224});
    std::fs::write(src.join("ens.json"), config.to_string()).unwrap();
    let tree = temp_dir("tta", "install-tree");
    let run = |extra: &[&str]| {
        Command::new(python())
            .arg(root().join("tools/install.py"))
            .args([
                "--prefix",
                tree.to_str().unwrap(),
                "--libtorch",
                "none",
                "--config",
            ])
            .arg(src.join("ens.json"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed: Value = serde_json::from_str(
        &std::fs::read_to_string(tree.join("config/algo_config.json")).unwrap(),
    )
    .unwrap();
    let paths: Vec<&str> = installed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "../model/model.pt",
            "../model/1_model.pt",
            "../model/model.pt"
        ]
    );
    assert_eq!(installed["class_names_path"], "../model/class.txt");
    let mut files: Vec<String> = std::fs::read_dir(tree.join("model"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["1_model.pt", "class.txt", "model.pt"]);
    // The installed config gives what the source config gives.
    let before = Engine::from_config_path(Some(&src.join("ens.json"))).unwrap();
    let after = Engine::from_config_path(Some(&tree.join("config/algo_config.json"))).unwrap();
    let args = Some(r#"{"topk": 3, "confidence_decimals": null}"#);
    for name in ["red.jpg", "green.png", "blue.bmp"] {
        let bytes = std::fs::read(fixture("images").join(name)).unwrap();
        assert_eq!(
            before.run_encoded_json(&bytes, None, args).unwrap().json,
            after.run_encoded_json(&bytes, None, args).unwrap().json,
            "{name}"
        );
    }
    // MODEL= names one model: refused for an ensemble config.
    let out = run(&["--model", src.join("a/model.pt").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leave out --model"));
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::remove_dir_all(&tree).unwrap();
}
