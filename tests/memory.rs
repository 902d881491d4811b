//! Memory that must stay bounded (issue 12): per-thread outputs under thread churn, and the
//! engine's buffer pool after a huge image. One test in its own binary, so no other test
//! changes the process's resident memory while it measures.

mod common;

use common::*;
use ji::ffi::evsdk::*;
use ji::ffi::ji::*;
use std::ptr;

fn thread_churn_frees_each_threads_outputs() {
    let p = Pred::with_config(&fixture("colour.json"));
    // 640x480: each thread's out frame is 0.9 MB; 2,000 leaked slots would be 1.8 GB.
    let (w, h) = (640u32, 480u32);
    let frame = vec![90u8; w as usize * h as usize * 3];
    let one_call = || {
        let info = JiImageInfo::packed_bgr(&frame, w, h);
        let mut ev = JiEvent {
            code: 99,
            json: ptr::null(),
        };
        let mut outs: *mut JiImageInfo = ptr::null_mut();
        let mut n = 0u32;
        let rc =
            unsafe { ji_calc_image(p.ptr(), &info, 1, ptr::null(), &mut outs, &mut n, &mut ev) };
        assert_eq!((rc, n), (0, 1), "{}", last_error());
        // The out frame is this thread's until its next call or its end.
        let copy = unsafe { std::slice::from_raw_parts((*outs).pData as *const u8, frame.len()) };
        assert!(copy.iter().all(|&b| b == 90));
    };
    let spawn_one = || std::thread::scope(|s| s.spawn(one_call).join().unwrap());
    for _ in 0..100 {
        spawn_one();
    }
    let before = rss_mb();
    for _ in 0..2000 {
        spawn_one();
    }
    let after = rss_mb();
    eprintln!("thread churn: RSS {before:.1} MB after 100 threads, {after:.1} MB after 2,100");
    assert!(
        after - before < 100.0,
        "2,000 short-lived threads grew resident memory by {:.0} MB",
        after - before
    );
    drop(p); // destroys the predictor
}

fn one_huge_image_does_not_stay_pooled() {
    let h = evsdk_open(&fixture("colour.json"));
    let run = |bytes: &[u8]| {
        let mut out = ptr::null_mut();
        let rc =
            unsafe { evsdk_process_image(h, bytes.as_ptr(), bytes.len(), ptr::null(), &mut out) };
        assert_eq!(rc, EVSDK_OK, "{}", last_error());
        take_json(out)
    };
    let small = std::fs::read(fixture("images/red.jpg")).unwrap();
    run(&small);
    // A 8000x8000 JPEG: 192 MB of decoded pixels.
    let (w, hh) = (8000usize, 8000usize);
    let huge = {
        let pixels = vec![200u8; w * hh * 3];
        let img = turbojpeg::Image {
            pixels: &pixels[..],
            width: w,
            pitch: w * 3,
            height: hh,
            format: turbojpeg::PixelFormat::RGB,
        };
        turbojpeg::compress(img, 50, turbojpeg::Subsamp::Sub2x2)
            .unwrap()
            .to_vec()
    };
    let before = rss_mb();
    run(&huge);
    run(&small);
    let after = rss_mb();
    eprintln!("pool: RSS {before:.1} MB before an 8000x8000 JPEG, {after:.1} MB after it");
    assert!(
        after - before < 64.0,
        "one 64-megapixel image left {:.0} MB resident",
        after - before
    );
    unsafe { evsdk_release(h) };
}

/// libtorch never frees a frozen module's constants (pytorch/pytorch#96726): each predictor
/// that prepared the CPU fast path anew leaked it. The prepared model is shared instead.
fn create_destroy_cycles_of_the_fast_path_do_not_grow() {
    let cfg = demo_config("memory", "fast_cycles", &[]);
    let cycle = || {
        let h = evsdk_open(&cfg);
        let mut info = ptr::null_mut();
        assert_eq!(unsafe { evsdk_model_info(h, &mut info) }, EVSDK_OK);
        let info = take_json(info);
        assert_eq!(info["optimization"]["path"], "cpu_fused", "{info}");
        unsafe { evsdk_release(h) };
    };
    cycle();
    cycle();
    let before = rss_mb();
    for _ in 0..12 {
        cycle();
    }
    let after = rss_mb();
    eprintln!(
        "fast path: RSS {before:.1} MB after 2 create/destroy cycles, {after:.1} MB after 10"
    );
    assert!(
        after - before < 40.0,
        "12 create/destroy cycles of EfficientNet-Lite0's fast path grew resident memory by {:.0} MB",
        after - before
    );
}

#[test]
fn memory_stays_bounded() {
    thread_churn_frees_each_threads_outputs();
    one_huge_image_does_not_stay_pooled();
    create_destroy_cycles_of_the_fast_path_do_not_grow();
}
