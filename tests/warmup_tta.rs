//! With `"tta"` one image is a forward batch of 1 + its views: that batch size, and the async
//! batch's images times their views, are the ones warmed at init, and no judged call builds a
//! graph (tests/warmup.rs without TTA). An ensemble's members each run the call's batch.
//! Counted through the library's process-wide per-batch-size forward counter: one test
//! function in its own binary, so nothing else runs forwards meanwhile.

mod common;

use common::*;
use ji::image::RgbImage;
use ji::model::forward_passes;
use serde_json::json;

const SIZES: [usize; 4] = [1, 2, 6, 8];

/// Forward passes of batch sizes 1, 2, 6 and 8 so far.
fn counts() -> [u64; 4] {
    SIZES.map(forward_passes)
}

fn delta(before: [u64; 4]) -> [u64; 4] {
    let now = counts();
    [0, 1, 2, 3].map(|i| now[i] - before[i])
}

fn solid(rgb: [u8; 3]) -> RgbImage {
    RgbImage {
        width: 40,
        height: 30,
        data: rgb.repeat(40 * 30),
    }
}

#[test]
fn one_image_and_its_views_are_the_warmed_batch() {
    let images = [
        solid([200, 20, 20]),
        solid([20, 200, 20]),
        solid([20, 20, 200]),
        solid([90, 90, 90]),
    ];
    let three: Vec<&RgbImage> = images[..3].iter().collect();
    let four: Vec<&RgbImage> = images.iter().collect();
    let config = |name: &str, extra: &[(&str, serde_json::Value)]| {
        let mut keys = vec![
            ("device", json!("cpu")),
            ("warmup", json!(5)),
            ("async_max_batch", json!(4)),
            ("tta", json!(["hflip"])),
        ];
        keys.extend(extra.iter().cloned());
        config_copy(&fixture("conv.json"), "warmup_tta", name, &keys)
    };

    // The plain model: its load probe at batch 1, then `warmup` passes at 2 (one image and
    // its view) and 8 (the async batch of 4 images, each with its view).
    let before = counts();
    let plain = ji::Engine::from_config_path(Some(&config("plain", &[("optimize", json!(false))])))
        .unwrap();
    assert_eq!(ji::Engine::batch_sizes(plain.config()), [2, 8]);
    assert_eq!(delta(before), [1, 5, 0, 5]);
    let before = counts();
    plain.classify(&images[0], 1).unwrap();
    assert_eq!(delta(before), [0, 1, 0, 0], "one image: one pass of 2");
    let before = counts();
    plain.classify_batch(&three, 1).unwrap();
    assert_eq!(
        delta(before),
        [0, 0, 1, 0],
        "plain runs a batch of 3 images as it is"
    );

    // The CPU fast path: batch 1 gets the plain model's two probes and its fusion and check
    // passes (it is not topped up: no call runs it), 2 and 8 get their fused copies, warmed
    // to `warmup` passes.
    let before = counts();
    let fast = ji::Engine::from_config_path(Some(&config("fast", &[]))).unwrap();
    assert_eq!(fast.optimization().path, "cpu_fused");
    assert_eq!(delta(before), [2 + 4, 5, 0, 5]);
    let before = counts();
    fast.classify(&images[0], 1).unwrap();
    assert_eq!(delta(before), [0, 1, 0, 0]);
    // 3 images (6 tensors): no graph is built for 6; each image runs with its view through
    // the warmed graph of 2, as a one-image call does.
    let before = counts();
    let batched = fast.classify_batch(&three, 1).unwrap();
    assert_eq!(delta(before), [0, 3, 0, 0]);
    for (img, b) in images.iter().zip(&batched) {
        assert_eq!(fast.classify(img, 1).unwrap(), *b);
    }
    let before = counts();
    fast.classify_batch(&four, 1).unwrap();
    assert_eq!(
        delta(before),
        [0, 0, 0, 1],
        "4 images: the async batch's graph"
    );

    // An ensemble: the first member (the same file and input size as above) reuses the
    // prepared graphs; the second (another input size) is prepared as a model of its own.
    // A call runs each member once.
    let before = counts();
    let members = json!([
        {"model_path": fixture("model/conv.pt")},
        {"model_path": fixture("model/conv.pt"), "crop_size": 160},
    ]);
    let path = config("ensemble", &[("models", members)]);
    let mut text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    text.as_object_mut().unwrap().remove("model_path");
    std::fs::write(&path, text.to_string()).unwrap();
    let both = ji::Engine::from_config_path(Some(&path)).unwrap();
    assert_eq!(both.config().ensemble.len(), 2);
    assert_eq!(delta(before), [2 + 4, 5, 0, 5]);
    let before = counts();
    both.classify(&images[0], 1).unwrap();
    assert_eq!(delta(before), [0, 2, 0, 0], "one pass of 2 per member");
    drop((plain, fast, both));

    // Async lanes warm every known batch size on their own thread.
    let pred = Pred::with_config(&config("lanes", &[("async_workers", json!(3))]));
    let before = counts();
    unsafe extern "C" fn ignore(output: *mut ji::ffi::ji::JiData, _: *mut std::ffi::c_void) {
        unsafe { ji::ffi::ji_async::ji_free_async_result(output) };
    }
    assert_eq!(
        unsafe { ji::ffi::ji::ji_set_callback(pred.ptr(), Some(ignore)) },
        0
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while delta(before) != [0, 3, 0, 3] && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        delta(before),
        [0, 3, 0, 3],
        "3 lanes: one pass each of 2 and 8"
    );
    drop(pred);
}
