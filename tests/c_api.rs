//! The native C API, called through its exported `extern "C"` functions as C would.

mod common;

use common::*;
use ji::ffi::evsdk::*;
use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr;

struct Handle(*mut EvsdkHandle);

impl Handle {
    fn open(config: &str) -> Handle {
        let path = cstring(&fixture(config));
        let mut h = ptr::null_mut();
        let rc = unsafe { evsdk_init(path.as_ptr(), &mut h) };
        assert_eq!(rc, EVSDK_OK, "init {config}: {}", last_error());
        assert!(!h.is_null());
        Handle(h)
    }

    fn image(&self, bytes: &[u8], args: Option<&str>) -> Result<serde_json::Value, (i32, String)> {
        let args = args.map(|a| CString::new(a).unwrap());
        let mut out: *mut c_char = ptr::null_mut();
        let rc = unsafe {
            evsdk_process_image(
                self.0,
                bytes.as_ptr(),
                bytes.len(),
                args.as_ref().map_or(ptr::null(), |a| a.as_ptr()),
                &mut out,
            )
        };
        if rc == EVSDK_OK {
            Ok(take_json(out))
        } else {
            assert!(out.is_null(), "out_json must be untouched on failure");
            Err((rc, last_error()))
        }
    }

    fn file(&self, rel: &str) -> Result<serde_json::Value, (i32, String)> {
        let path = cstring(&fixture(rel));
        let mut out: *mut c_char = ptr::null_mut();
        let rc = unsafe { evsdk_process_file(self.0, path.as_ptr(), ptr::null(), &mut out) };
        if rc == EVSDK_OK {
            Ok(take_json(out))
        } else {
            Err((rc, last_error()))
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe { evsdk_release(self.0) };
    }
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

fn class_of(v: &serde_json::Value) -> &str {
    v["class"].as_str().unwrap()
}

#[test]
fn classifies_encoded_images_with_chinese_names_from_python_dict() {
    let h = Handle::open("colour.json");
    for (file, want, id) in [
        ("images/red.jpg", "有害垃圾_杀虫剂", 0),
        ("images/green.png", "可回收物_塑料瓶", 1),
        ("images/blue.bmp", "厨余垃圾_果皮", 2),
    ] {
        let v = h.image(&read(file), None).unwrap();
        assert_eq!(class_of(&v), want, "{file}: {v}");
        assert_eq!(v["model_data"]["class_id"], id);
        assert_eq!(v["algorithm_data"]["target_info"]["class"], want);
        assert_eq!(v["algorithm_data"]["is_alert"], true);
        assert_eq!(v["model_data"]["device"], "cpu");
        let c = v["confidence"].as_f64().unwrap();
        assert!(c > 0.9 && c <= 1.0, "{file}: confidence {c}");
        // Three decimals, as the protocol says.
        assert_eq!((c * 1000.0).round() / 1000.0, c);
    }
}

#[test]
fn process_file_and_its_errors() {
    let h = Handle::open("colour.json");
    assert_eq!(
        class_of(&h.file("images/green.jpg").unwrap()),
        "可回收物_塑料瓶"
    );
    let (rc, msg) = h.file("images/missing.jpg").unwrap_err();
    assert_eq!(rc, EVSDK_ERR_IO);
    assert!(msg.contains("missing.jpg"), "{msg}");
    let (rc, msg) = h.file("images/not_an_image.jpg").unwrap_err();
    assert_eq!(rc, EVSDK_ERR_DECODE);
    assert!(msg.contains("not_an_image.jpg"), "{msg}");
    let (rc, _) = h.file("images/truncated.jpg").unwrap_err();
    assert_eq!(rc, EVSDK_ERR_DECODE);
    // The handle still works after failures.
    assert_eq!(
        class_of(&h.file("images/blue.png").unwrap()),
        "厨余垃圾_果皮"
    );
}

#[test]
fn raw_bgr_with_padded_stride() {
    let h = Handle::open("colour.json");
    let (w, hgt, stride) = (64u32, 48u32, 64 * 3 + 4);
    for (file, want) in [
        ("images/red.bgr", 0),
        ("images/green.bgr", 1),
        ("images/blue.bgr", 2),
    ] {
        let px = read(file);
        assert_eq!(px.len(), stride * hgt as usize);
        let mut out: *mut c_char = ptr::null_mut();
        let rc = unsafe {
            evsdk_process_bgr(h.0, px.as_ptr(), w, hgt, stride, 3, ptr::null(), &mut out)
        };
        assert_eq!(rc, EVSDK_OK, "{}", last_error());
        let v = take_json(out);
        assert_eq!(v["model_data"]["class_id"], want, "{file}");
    }
    // Gray and BGRA frames, tightly packed (stride 0).
    let gray = vec![128u8; 16 * 16];
    let mut out: *mut c_char = ptr::null_mut();
    let rc = unsafe { evsdk_process_bgr(h.0, gray.as_ptr(), 16, 16, 0, 1, ptr::null(), &mut out) };
    assert_eq!(rc, EVSDK_OK, "{}", last_error());
    take_json(out);
    let bgra: Vec<u8> = (0..16 * 16).flat_map(|_| [200u8, 10, 10, 255]).collect();
    let mut out: *mut c_char = ptr::null_mut();
    let rc = unsafe { evsdk_process_bgr(h.0, bgra.as_ptr(), 16, 16, 0, 4, ptr::null(), &mut out) };
    assert_eq!(rc, EVSDK_OK, "{}", last_error());
    assert_eq!(take_json(out)["model_data"]["class_id"], 2, "BGRA blue");
    // Bad geometry.
    for (w, hh, stride, ch) in [(0, 16, 0, 3), (16, 16, 10, 3), (16, 16, 0, 2)] {
        let mut out: *mut c_char = ptr::null_mut();
        let rc = unsafe {
            evsdk_process_bgr(h.0, bgra.as_ptr(), w, hh, stride, ch, ptr::null(), &mut out)
        };
        assert_eq!(
            rc, EVSDK_ERR_INVALID_ARGUMENT,
            "{w}x{hh} stride {stride} ch {ch}"
        );
        assert!(out.is_null());
    }
}

/// `evsdk_calc_frame` writes exactly what `ji_calc_frame` puts in `event->json` for the same
/// frame: the result on success, the ji_* error object (with the ji_* code) on failure.
#[test]
fn calc_frame_json_equals_ji_calc_frame_event_json() {
    use ji::ffi::ji::{ji_calc_frame, JI_CV_FRAME, JI_EVENT};
    use std::ffi::{c_void, CStr};
    let cfg = config_copy(
        &fixture("colour.json"),
        "c_api",
        "calc_frame",
        &[("max_image_pixels", 1000.into())],
    );
    let h = Handle::open(cfg.to_str().unwrap());
    let p = Pred::with_config(&cfg);
    let red = read("images/red.bgr");
    let gray = vec![128u8; 16 * 16];
    let bgra: Vec<u8> = (0..16 * 16).flat_map(|_| [200u8, 10, 10, 7]).collect();
    let big = vec![0u8; 40 * 40 * 3];
    // (label, pixels, width, height, stride bytes, channels, args)
    let cases = [
        ("padded BGR", &red, 20, 20, 64 * 3 + 4, 3, None),
        ("topk", &red, 20, 20, 64 * 3 + 4, 3, Some(r#"{"topk": 3}"#)),
        ("gray", &gray, 16, 16, 16, 1, None),
        ("BGRA", &bgra, 16, 16, 64, 4, Some(r#"{"thresh": 0.99}"#)),
        ("invalid args", &gray, 16, 16, 16, 1, Some("{nope")),
        ("args not an object", &gray, 16, 16, 16, 1, Some("[1]")),
        ("over max_image_pixels", &big, 40, 40, 120, 3, None),
        ("stride below a row", &gray, 16, 8, 8, 1, None),
    ];
    for (label, px, w, hh, stride, ch, args) in cases {
        let args_c = args.map(|a| CString::new(a).unwrap());
        let args_p = args_c.as_ref().map_or(ptr::null(), |a| a.as_ptr());
        let mut out: *mut c_char = ptr::null_mut();
        let rc = unsafe { evsdk_calc_frame(h.0, px.as_ptr(), w, hh, stride, ch, args_p, &mut out) };
        assert!(!out.is_null(), "{label}: out_json is always written");
        let ours = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        unsafe { evsdk_free_string(out) };
        let frame = JI_CV_FRAME {
            rows: hh as i32,
            cols: w as i32,
            r#type: [0, 0, 0, 16, 24][ch as usize],
            data: px.as_ptr() as *mut c_void,
            step: stride as i32,
        };
        let mut ev = JI_EVENT {
            code: 99,
            json: ptr::null(),
        };
        let ji_rc = unsafe { ji_calc_frame(p.ptr(), &frame, args_p, ptr::null_mut(), &mut ev) };
        let theirs = unsafe { CStr::from_ptr(ev.json) }.to_str().unwrap();
        assert_eq!(ours, theirs, "{label}");
        // The return code is evsdk_process_bgr's; the JSON's error code is ji_calc_frame's.
        let mut out2: *mut c_char = ptr::null_mut();
        let rc_bgr =
            unsafe { evsdk_process_bgr(h.0, px.as_ptr(), w, hh, stride, ch, args_p, &mut out2) };
        assert_eq!(rc, rc_bgr, "{label}");
        if rc == EVSDK_OK {
            assert_eq!(ji_rc, 0, "{label}");
            assert_eq!(take_json(out2).to_string(), ours, "{label}");
        } else {
            let v: serde_json::Value = serde_json::from_str(&ours).unwrap();
            assert_eq!(v["error"]["code"], ji_rc, "{label}: {ours}");
            assert_eq!(v["error"]["message"], last_error(), "{label}");
        }
    }
    // NULL handle and pixels: the error JSON, never a crash; a NULL out_json: the code alone.
    let mut out: *mut c_char = ptr::null_mut();
    let rc = unsafe {
        evsdk_calc_frame(
            ptr::null(),
            gray.as_ptr(),
            4,
            4,
            0,
            1,
            ptr::null(),
            &mut out,
        )
    };
    assert_eq!(rc, EVSDK_ERR_INVALID_ARGUMENT);
    let v = take_json(out);
    assert_eq!(v["error"]["code"], -3, "{v}");
    assert_eq!(v["error"]["kind"], "invalid_argument", "{v}");
    assert_eq!(v["algorithm_data"]["is_alert"], false, "{v}");
    let mut out: *mut c_char = ptr::null_mut();
    let rc = unsafe { evsdk_calc_frame(h.0, ptr::null(), 4, 4, 0, 1, ptr::null(), &mut out) };
    assert_eq!(rc, EVSDK_ERR_INVALID_ARGUMENT);
    assert_eq!(
        take_json(out)["error"]["message"],
        "invalid argument: pixel data is NULL"
    );
    let rc =
        unsafe { evsdk_calc_frame(h.0, gray.as_ptr(), 4, 4, 0, 1, ptr::null(), ptr::null_mut()) };
    assert_eq!(rc, EVSDK_ERR_INVALID_ARGUMENT, "a NULL out_json");
}

#[test]
fn args_override_per_call() {
    let h = Handle::open("colour.json");
    let img = read("images/red.jpg");
    let v = h
        .image(
            &img,
            Some(r#"{"topk": 3, "confidence_decimals": 5, "roi": ["POLYGON((0 0,1 0,1 1))"]}"#),
        )
        .unwrap();
    let topk = v["model_data"]["topk"].as_array().unwrap();
    assert_eq!(topk.len(), 3);
    assert_eq!(topk[0]["class_id"], 0);
    let sum: f64 = topk.iter().map(|t| t["confidence"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4, "softmax sums to 1: {sum}");
    let v = h.image(&img, Some(r#"{"thresh": 1.01}"#)).unwrap();
    assert_eq!(v["algorithm_data"]["is_alert"], false);
    assert!(v["algorithm_data"]["target_info"].is_null());
    assert_eq!(
        class_of(&v),
        "有害垃圾_杀虫剂",
        "model_data still reports the top class"
    );
    let (rc, msg) = h.image(&img, Some("{not json")).unwrap_err();
    assert_eq!(rc, EVSDK_ERR_INVALID_ARGUMENT);
    assert!(msg.contains("args"), "{msg}");
    let (rc, _) = h.image(&img, Some("[1, 2]")).unwrap_err();
    assert_eq!(rc, EVSDK_ERR_INVALID_ARGUMENT);
    // A long args string is fine.
    let long = format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20));
    assert!(h.image(&img, Some(&long)).is_ok());
    // The defaults are back for the next call.
    assert!(h.image(&img, Some("")).unwrap()["model_data"]
        .get("topk")
        .is_none());
}

#[test]
fn model_variants_probabilities_tuple_dict_letterbox_shorter_side() {
    let img = read("images/blue.jpg");
    for cfg in ["prob.json", "tuple.json", "dict.json", "letterbox.json"] {
        let h = Handle::open(cfg);
        let v = h.image(&img, None).unwrap();
        assert_eq!(v["model_data"]["class_id"], 2, "{cfg}: {v}");
    }
    // A real CNN with shorter-side resize + 224 centre crop runs and returns a valid class.
    let h = Handle::open("conv.json");
    let v = h.image(&read("images/red.png"), None).unwrap();
    assert!(v["model_data"]["class_id"].as_u64().unwrap() < 3);
}

#[test]
fn config_errors_have_codes_and_messages() {
    let cases = [
        (
            "missing_config.json",
            EVSDK_ERR_CONFIG,
            "missing_config.json",
        ),
        ("empty.json", EVSDK_ERR_CONFIG, "invalid JSON"),
        ("invalid.json", EVSDK_ERR_CONFIG, "invalid JSON"),
        ("unknown_key.json", EVSDK_ERR_CONFIG, "resize_mod"),
        ("wrong_type.json", EVSDK_ERR_CONFIG, "topk"),
        ("class_dup.json", EVSDK_ERR_CONFIG, "used twice"),
        ("class_gap.json", EVSDK_ERR_CONFIG, "out of range"),
        ("missing_model.json", EVSDK_ERR_MODEL_LOAD, "nope.pt"),
        ("not_a_model.json", EVSDK_ERR_MODEL_LOAD, "not_a_model.pt"),
        ("wide.json", EVSDK_ERR_MODEL_LOAD, "5 scores"),
        ("throw.json", EVSDK_ERR_MODEL_LOAD, "always fails"),
    ];
    for (cfg, code, needle) in cases {
        let path = cstring(&fixture(cfg));
        let mut h: *mut EvsdkHandle = ptr::null_mut();
        let rc = unsafe { evsdk_init(path.as_ptr(), &mut h) };
        let msg = last_error();
        assert_eq!(rc, code, "{cfg}: {msg}");
        assert!(h.is_null(), "{cfg}: out_handle must stay untouched");
        assert!(
            msg.contains(needle),
            "{cfg}: message {msg:?} lacks {needle:?}"
        );
    }
    // Through ji::cuda, never tch::Cuda directly: a CUDA query before libtorch_cuda.so is
    // loaded would disable CUDA for the whole process (src/cuda.rs).
    if ji::cuda::load().is_err() || ji::cuda::device_count() == 0 {
        let path = cstring(&fixture("cuda.json"));
        let mut h: *mut EvsdkHandle = ptr::null_mut();
        assert_eq!(
            unsafe { evsdk_init(path.as_ptr(), &mut h) },
            EVSDK_ERR_CONFIG
        );
        assert!(last_error().contains("CUDA"), "{}", last_error());
    }
}

#[test]
fn null_arguments_are_rejected_not_crashed() {
    let h = Handle::open("colour.json");
    let img = read("images/red.jpg");
    let mut out: *mut c_char = ptr::null_mut();
    unsafe {
        assert_eq!(
            evsdk_init(ptr::null(), ptr::null_mut()),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            evsdk_process_image(ptr::null(), img.as_ptr(), img.len(), ptr::null(), &mut out),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("handle"));
        assert_eq!(
            evsdk_process_image(h.0, ptr::null(), 10, ptr::null(), &mut out),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            evsdk_process_image(h.0, img.as_ptr(), img.len(), ptr::null(), ptr::null_mut()),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            evsdk_process_image(h.0, img.as_ptr(), 0, ptr::null(), &mut out),
            EVSDK_ERR_DECODE
        );
        assert_eq!(
            evsdk_process_file(h.0, ptr::null(), ptr::null(), &mut out),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            evsdk_process_bgr(h.0, ptr::null(), 4, 4, 0, 3, ptr::null(), &mut out),
            EVSDK_ERR_INVALID_ARGUMENT
        );
        assert!(out.is_null());
        evsdk_release(ptr::null_mut());
        evsdk_free_string(ptr::null_mut());
        let v = std::ffi::CStr::from_ptr(evsdk_version()).to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn config_from_environment_when_path_is_null() {
    // Only this test touches EV_SDK_CONFIG in this binary.
    std::env::set_var("EV_SDK_CONFIG", fixture("prob.json"));
    let mut h: *mut EvsdkHandle = ptr::null_mut();
    let rc = unsafe { evsdk_init(ptr::null(), &mut h) };
    std::env::remove_var("EV_SDK_CONFIG");
    assert_eq!(rc, EVSDK_OK, "{}", last_error());
    let h = Handle(h);
    assert_eq!(
        h.image(&read("images/green.jpg"), None).unwrap()["model_data"]["class_id"],
        1
    );
}

#[test]
fn two_handles_and_threads_share_nothing_wrong() {
    let a = Handle::open("colour.json");
    let b = Handle::open("letterbox.json");
    let red = read("images/red.jpg");
    let blue = read("images/blue.png");
    assert_eq!(a.image(&red, None).unwrap()["model_data"]["class_id"], 0);
    assert_eq!(b.image(&blue, None).unwrap()["model_data"]["class_id"], 2);
    drop(b);
    assert_eq!(a.image(&blue, None).unwrap()["model_data"]["class_id"], 2);
    // One handle used from several threads at once (the API documents handles as shareable).
    struct Shared(Handle);
    unsafe impl Send for Shared {}
    unsafe impl Sync for Shared {}
    let shared = std::sync::Arc::new(Shared(a));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = shared.clone();
            let img = if i % 2 == 0 {
                red.clone()
            } else {
                blue.clone()
            };
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        s.0.image(&img, None).unwrap()["model_data"]["class_id"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let want = if i % 2 == 0 { 0 } else { 2 };
        assert!(t.join().unwrap().iter().all(|&c| c == want));
    }
}

#[test]
fn a_batch_gives_exactly_the_single_image_results_in_order() {
    // Batches are preprocessed on several threads: order and values must not change.
    let engine = ji::Engine::from_config_path(Some(&fixture("conv.json"))).unwrap();
    let images: Vec<ji::image::RgbImage> = [
        "red.jpg",
        "green.png",
        "blue.bmp",
        "one_by_500.jpg",
        "animated.gif",
    ]
    .iter()
    .map(|f| engine.decode(&read(&format!("images/{f}"))).unwrap())
    .collect();
    let args = Some(r#"{"topk": 3, "confidence_decimals": null}"#);
    let refs: Vec<&ji::image::RgbImage> = images.iter().collect();
    let batch: Vec<serde_json::Value> = engine
        .run_batch_json(&refs, args)
        .unwrap()
        .into_iter()
        .map(|r| r.json)
        .collect();
    assert_eq!(batch.len(), images.len());
    for (img, b) in images.iter().zip(&batch) {
        // The same classes in the same order; confidences equal up to float rounding (libtorch
        // may pick other kernels for another batch size).
        let single = engine.run_json(img, args).unwrap().json;
        let s = single["model_data"]["topk"].as_array().unwrap();
        let b = b["model_data"]["topk"].as_array().unwrap();
        assert_eq!(s.len(), b.len());
        for (s, b) in s.iter().zip(b) {
            assert_eq!(s["class_id"], b["class_id"]);
            let (s, b) = (
                s["confidence"].as_f64().unwrap(),
                b["confidence"].as_f64().unwrap(),
            );
            assert!((s - b).abs() < 1e-5, "{s} vs {b}");
        }
    }
}

/// The top-3 of `other` has the classes of `conv.json`'s, confidences within `tol`.
fn assert_same_top3_as_conv(other: &str, tol: f64) {
    let plain = ji::Engine::from_config_path(Some(&fixture("conv.json"))).unwrap();
    let other = ji::Engine::from_config_path(Some(&fixture(other)))
        .unwrap_or_else(|e| panic!("{other}: {e}"));
    let args = Some(r#"{"topk": 3, "confidence_decimals": null}"#);
    for f in ["red.jpg", "green.png", "blue.bmp", "one_by_500.jpg"] {
        let img = plain.decode(&read(&format!("images/{f}"))).unwrap();
        let (a, b) = (
            plain.run_json(&img, args).unwrap().json,
            other.run_json(&img, args).unwrap().json,
        );
        let (a, b) = (
            a["model_data"]["topk"].as_array().unwrap(),
            b["model_data"]["topk"].as_array().unwrap(),
        );
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x["class_id"], y["class_id"], "{f}");
            let (x, y) = (
                x["confidence"].as_f64().unwrap(),
                y["confidence"].as_f64().unwrap(),
            );
            assert!((x - y).abs() < tol, "{f}: {x} vs {y}");
        }
    }
}

#[test]
fn models_saved_in_fp16_or_fp64_run_on_fp32_input() {
    // Weights rounded to fp16 move the scores a little; fp64 -> fp32 hardly at all.
    assert_same_top3_as_conv("conv_half.json", 2e-2);
    assert_same_top3_as_conv("conv_half_optimized.json", 2e-2);
    assert_same_top3_as_conv("conv_double.json", 1e-5);
}

#[test]
fn optimize_true_keeps_the_predictions() {
    let fast = ji::Engine::from_config_path(Some(&fixture("conv_optimized.json"))).unwrap();
    // "optimize": true asks for the CPU fast path (and freezing on CUDA).
    assert!(fast.config().optimize && fast.config().cuda_freeze);
    assert_eq!(fast.optimization().path, "cpu_fused");
    assert_same_top3_as_conv("conv_optimized.json", 1e-4);
    // A file that is not TorchScript still fails with the usual message.
    let dir = std::env::temp_dir().join(format!("ji-opt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.json");
    let bad_model = fixture("model/not_a_model.pt");
    let classes = fixture("model/class.txt");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"model_path": {:?}, "class_names_path": {:?}, "device": "cpu", "optimize": true}}"#,
            bad_model, classes
        ),
    )
    .unwrap();
    let err = ji::Engine::from_config_path(Some(&cfg))
        .err()
        .expect("a bad model must fail");
    std::fs::remove_dir_all(&dir).ok();
    assert!(matches!(err, ji::Error::ModelLoad(_)), "{err}");
    assert!(
        err.to_string().contains("not a loadable TorchScript model"),
        "{err}"
    );
}
