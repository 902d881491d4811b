//! The first judged call runs a warmed graph: `"warmup"` forward passes for every batch size a
//! predictor can know at init (1, the async batch size) before create returns, one pass per
//! batch size on each async lane's thread when `ji_set_callback` starts it, and no judged call
//! ever builds (and warms) a fused copy for a new batch size. Counted through the library's
//! per-batch-size forward counter (`ji::model::forward_passes`), which is process-wide: one
//! test function in its own binary, so nothing else runs forwards meanwhile.

mod common;

use common::*;
use ji::image::RgbImage;
use ji::model::forward_passes;
use serde_json::json;

/// Forward passes of batch sizes 1, 3 and 4 so far.
fn counts() -> [u64; 3] {
    [forward_passes(1), forward_passes(3), forward_passes(4)]
}

fn delta(before: [u64; 3]) -> [u64; 3] {
    let now = counts();
    [now[0] - before[0], now[1] - before[1], now[2] - before[2]]
}

fn solid(rgb: [u8; 3]) -> RgbImage {
    RgbImage {
        width: 40,
        height: 30,
        data: rgb.repeat(40 * 30),
    }
}

#[test]
fn each_known_batch_size_is_warmed_at_init_and_calls_never_build_one() {
    let images = [
        solid([200, 20, 20]),
        solid([20, 200, 20]),
        solid([20, 20, 200]),
    ];
    let refs: Vec<&RgbImage> = images.iter().collect();
    let warm = |name: &str, src: &str, extra: &[(&str, serde_json::Value)]| {
        let mut keys = vec![
            ("device", json!("cpu")),
            ("warmup", json!(5)),
            ("async_max_batch", json!(4)),
        ];
        keys.extend(extra.iter().cloned());
        config_copy(&fixture(src), "warmup", name, &keys)
    };

    // The plain model: exactly `warmup` passes per batch size (the load probe is the first).
    let before = counts();
    let plain = ji::Engine::from_config_path(Some(&warm(
        "plain",
        "conv.json",
        &[("optimize", json!(false))],
    )))
    .unwrap();
    assert_eq!(plain.optimization().path, "plain");
    assert_eq!(
        delta(before),
        [5, 0, 5],
        "plain: 5 passes at batch 1 and at batch 4"
    );
    // A batch of 3 frames on the plain model runs as one batch of 3.
    let before = counts();
    plain.classify_batch(&refs, 1).unwrap();
    assert_eq!(delta(before), [0, 1, 0]);

    // The CPU fast path: batch 1 gets its fusion and check passes (after the plain model's two
    // probes, which run the plain module), topped up to `warmup`; batch 4 gets its own fused
    // copy, warmed to `warmup` passes. Nothing else runs.
    let before = counts();
    let fast = ji::Engine::from_config_path(Some(&warm("fast", "conv.json", &[]))).unwrap();
    assert_eq!(fast.optimization().path, "cpu_fused");
    let d = delta(before);
    assert_eq!(
        d,
        [2 + 5, 0, 5],
        "fast: 2 plain probes + 5 passes at batch 1, 5 at batch 4"
    );
    // A batch of 3 frames runs image by image through the warmed batch-1 graph: no fused copy
    // is built for batch 3 inside the call.
    let before = counts();
    let batched = fast.classify_batch(&refs, 1).unwrap();
    assert_eq!(
        delta(before),
        [3, 0, 0],
        "3 frames: 3 batch-1 passes, no batch-3 graph"
    );
    for (img, b) in images.iter().zip(&batched) {
        assert_eq!(
            fast.classify(img, 1).unwrap().ranked[0].class_id,
            b.ranked[0].class_id
        );
    }
    // A batch of 4 runs its own warmed graph.
    let four: Vec<&RgbImage> = images.iter().chain(&images[..1]).collect();
    let before = counts();
    fast.classify_batch(&four, 1).unwrap();
    assert_eq!(delta(before), [0, 0, 1]);

    // A second predictor of the same model reuses the prepared, already warm graphs.
    let before = counts();
    let again = ji::Engine::from_config_path(Some(&warm("again", "conv.json", &[]))).unwrap();
    assert_eq!(again.optimization().path, "cpu_fused");
    assert_eq!(delta(before), [0, 0, 0], "nothing to prepare or warm again");
    drop((plain, fast, again));

    // Async lanes: ji_set_callback starts them, and each lane runs one pass of every warmed
    // batch size on its own thread before it takes requests.
    let config = warm("lanes", "conv.json", &[("async_workers", json!(3))]);
    let pred = Pred::with_config(&config);
    let before = counts();
    unsafe extern "C" fn ignore(output: *mut ji::ffi::ji::JiData, _: *mut std::ffi::c_void) {
        unsafe { ji::ffi::ji_async::ji_free_async_result(output) };
    }
    assert_eq!(
        unsafe { ji::ffi::ji::ji_set_callback(pred.ptr(), Some(ignore)) },
        0
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while delta(before) != [3, 0, 3] && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        delta(before),
        [3, 0, 3],
        "3 lanes: one pass each of batch 1 and 4"
    );
    drop(pred);
}
