//! The ev_sdk 4.x asynchronous mode (`ji_set_callback`, `ji_calc_image_asyn`) through the
//! exported functions. Every predictor here reads `small_limit.json` (the colour model, with
//! `max_image_pixels` 10,000, so a large frame fails inside the worker and its error must come
//! through the callback). Default async settings: queue 32, 2 lanes, no cross-call batching;
//! one test runs batches of up to 4 frames.

mod common;

use common::*;
use ji::ffi::ji::*;
use ji::ffi::ji_async::ji_free_async_result;
use serde_json::Value;
use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A predictor of small_limit.json (the defaults: 2 lanes, no cross-call batching).
fn pred() -> Pred {
    Pred::with_config(&fixture("small_limit.json"))
}

/// A BGR frame of `w` x `h` pixels, colour varying with position (so crops and resizes
/// matter), with `pad` bytes of padding per row.
fn frame(w: u32, h: u32, seed: u32, pad: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let s = seed.wrapping_mul(2654435761);
            v.push(((s >> 8) as u8).wrapping_add((x * 3) as u8));
            v.push(((s >> 16) as u8).wrapping_add((y * 5) as u8));
            v.push(((s >> 24) as u8).wrapping_add((x + y) as u8));
        }
        v.extend(std::iter::repeat_n(0xAB, pad as usize));
    }
    v
}

fn info(data: &[u8], w: u32, h: u32, pad: u32) -> JiImageInfo {
    JiImageInfo {
        nWidth: w,
        nHeight: h,
        nWidthStride: w + pad / 3,
        nHeightStride: h,
        nFrameRate: 25,
        dwTimeStamp: 1234,
        pData: data.as_ptr() as *mut c_void,
        nDataLen: data.len() as u32,
        nFormat: JI_IMAGE_TYPE_BGR,
        nDataType: JI_UNSIGNED_CHAR,
        nFrameNo: 7,
        byRes: [0; 4],
    }
}

/// What one callback received.
#[derive(Debug)]
struct Got {
    tag: usize,
    code: i32,
    json: String,
    /// (width, height, stride, data length, frame number, pixels) of `outPic`, if any.
    pic: Option<(u32, u32, u32, u32, u32, Vec<u8>)>,
    thread: std::thread::ThreadId,
}

type Hook = Box<dyn FnMut(&Got) + Send>;

/// Collects callbacks; `hook` runs inside the callback (re-entry tests).
#[derive(Default)]
struct Collector {
    got: Mutex<Vec<Got>>,
    cv: Condvar,
    pred: AtomicPtr<c_void>,
    hook: Mutex<Option<Hook>>,
    /// Callbacks running now, and how often one started while another ran.
    running: AtomicUsize,
    overlaps: AtomicUsize,
}

impl Collector {
    fn wait_for(&self, n: usize) -> std::sync::MutexGuard<'_, Vec<Got>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut got = self.got.lock().unwrap();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "only {} of {n} callbacks came", got.len());
            got = self.cv.wait_timeout(got, left).unwrap().0;
        }
        got
    }
}

struct Ticket {
    collector: Arc<Collector>,
    tag: usize,
}

fn ticket(c: &Arc<Collector>, tag: usize) -> *mut c_void {
    Box::into_raw(Box::new(Ticket {
        collector: Arc::clone(c),
        tag,
    })) as *mut c_void
}

unsafe extern "C" fn on_result(output: *mut JiData, user: *mut c_void) {
    let t = Box::from_raw(user as *mut Ticket);
    if t.collector.running.fetch_add(1, Ordering::SeqCst) > 0 {
        t.collector.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    // Long enough for another lane's callback to overlap, were they not serialised.
    std::thread::sleep(Duration::from_micros(300));
    let out = &*output;
    let json = CStr::from_ptr(out.event.json).to_str().unwrap().to_owned();
    let p = &out.outPic;
    let pic = (!p.pData.is_null()).then(|| {
        let px = std::slice::from_raw_parts(p.pData as *const u8, p.nDataLen as usize).to_vec();
        (
            p.nWidth,
            p.nHeight,
            p.nWidthStride,
            p.nDataLen,
            p.nFrameNo,
            px,
        )
    });
    let got = Got {
        tag: t.tag,
        code: out.event.code,
        json,
        pic,
        thread: std::thread::current().id(),
    };
    ji_free_async_result(output);
    if let Some(hook) = t.collector.hook.lock().unwrap().as_mut() {
        hook(&got);
    }
    t.collector.running.fetch_sub(1, Ordering::SeqCst);
    t.collector.got.lock().unwrap().push(got);
    t.collector.cv.notify_all();
}

fn sync_json(p: &Pred, infos: &[JiImageInfo], args: *const std::ffi::c_char) -> (i32, i32, String) {
    let mut ev = JiEvent {
        code: 99,
        json: ptr::null(),
    };
    let rc = unsafe {
        ji_calc_image(
            p.0,
            infos.as_ptr(),
            infos.len() as u32,
            args,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut ev,
        )
    };
    let json = unsafe { CStr::from_ptr(ev.json) }
        .to_str()
        .unwrap()
        .to_owned();
    (rc, ev.code, json)
}

#[test]
fn async_results_equal_the_synchronous_path_for_every_frame_in_order() {
    // No cross-call batching (the default): every JSON byte for byte.
    check_against_sync(&pred(), Match::Bytes);
}

#[test]
fn batched_async_results_equal_the_synchronous_path_within_rounding() {
    // Batches of up to 4 frames: libtorch's kernels sum in another order for another batch
    // size, so a confidence may move in its last printed digit (3 decimals) or by float
    // rounding (unrounded), never more; everything else is identical.
    let path = config_copy(
        &fixture("small_limit.json"),
        "ji_async",
        "batched",
        &[
            ("async_max_batch", Value::from(4)),
            ("async_workers", Value::from(1)),
        ],
    );
    check_against_sync(&Pred::with_config(&path), Match::Rounding(1.0001e-3));
}

enum Match {
    Bytes,
    /// Same JSON but for numbers, which may differ by this much.
    Rounding(f64),
}

/// Equal JSON values, numbers within `tol`.
fn close(a: &Value, b: &Value, tol: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= tol
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y, tol))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| close(v, w, tol)))
        }
        _ => a == b,
    }
}

/// 60 requests of every kind through `p`'s async mode, each compared with the synchronous call.
fn check_against_sync(p: &Pred, want: Match) {
    let c = Arc::new(Collector::default());
    assert_eq!(unsafe { ji_set_callback(p.0, Some(on_result)) }, 0);
    let args_variants = [
        CString::new("").unwrap(),
        CString::new(r#"{"topk": 3}"#).unwrap(),
        CString::new(r#"{"confidence_decimals": null, "thresh": 0.6}"#).unwrap(),
    ];
    // 60 requests: sizes from 1x1 up, some over max_image_pixels (errors), some padded, every
    // sixth one with three frames; queued faster than the worker answers, so batched.
    struct Req {
        frames: Vec<(Vec<u8>, u32, u32, u32)>,
        args: usize,
    }
    let reqs: Vec<Req> = (0..60u32)
        .map(|i| {
            let n = if i % 6 == 5 { 3 } else { 1 };
            let frames = (0..n)
                .map(|j| {
                    let (w, h) = if i % 11 == 4 {
                        (120, 90) // 10,800 px > 10,000: image_too_large
                    } else {
                        (1 + (i * 7 + j * 13) % 70, 1 + (i * 5 + j * 3) % 50)
                    };
                    let pad = if i % 4 == 1 { 6 } else { 0 };
                    (frame(w, h, i * 10 + j, pad), w, h, pad)
                })
                .collect();
            Req {
                frames,
                args: (i % 3) as usize,
            }
        })
        .collect();
    for (tag, r) in reqs.iter().enumerate() {
        let infos: Vec<JiImageInfo> = r
            .frames
            .iter()
            .map(|(d, w, h, pad)| info(d, *w, *h, *pad))
            .collect();
        let rc = unsafe {
            ji_calc_image_asyn(
                p.0,
                infos.as_ptr(),
                infos.len() as u32,
                args_variants[r.args].as_ptr(),
                ticket(&c, tag),
            )
        };
        assert_eq!(rc, 0, "request {tag}: {}", last_error());
    }
    let got = c.wait_for(reqs.len());
    let tags: Vec<usize> = got.iter().map(|g| g.tag).collect();
    assert_eq!(
        tags,
        (0..reqs.len()).collect::<Vec<_>>(),
        "submission order"
    );
    assert_eq!(
        c.overlaps.load(Ordering::SeqCst),
        0,
        "callbacks one at a time"
    );
    let mut errors = 0;
    for (g, r) in got.iter().zip(&reqs) {
        assert_ne!(g.thread, std::thread::current().id(), "a library thread");
        let infos: Vec<JiImageInfo> = r
            .frames
            .iter()
            .map(|(d, w, h, pad)| info(d, *w, *h, *pad))
            .collect();
        let (rc, code, json) = sync_json(p, &infos, args_variants[r.args].as_ptr());
        assert_eq!(g.code, code, "request {}", g.tag);
        match want {
            Match::Bytes => assert_eq!(g.json, json, "request {}", g.tag),
            Match::Rounding(tol) => {
                let (a, b): (Value, Value) = (
                    serde_json::from_str(&g.json).unwrap(),
                    serde_json::from_str(&json).unwrap(),
                );
                assert!(close(&a, &b, tol), "request {}: {a} vs {b}", g.tag);
            }
        }
        if rc != 0 {
            errors += 1;
            assert_eq!(g.code, JISDK_CODE_FAILED);
            let v: Value = serde_json::from_str(&g.json).unwrap();
            assert_eq!(v["error"]["kind"], "image_too_large", "{}", g.json);
            assert!(g.pic.is_none(), "no out frame for a failed request");
        } else if r.frames.len() == 1 {
            let (data, w, h, pad) = &r.frames[0];
            let (pw, ph, stride, len, frame_no, px) = g.pic.as_ref().expect("an out frame");
            assert_eq!(
                (*pw, *ph, *stride, *len, *frame_no),
                (*w, *h, *w, w * h * 3, 7)
            );
            let packed: Vec<u8> = data
                .chunks((w * 3 + pad) as usize)
                .flat_map(|row| row[..(w * 3) as usize].to_vec())
                .collect();
            assert_eq!(px, &packed, "outPic is an unmodified packed copy");
        } else {
            assert!(g.pic.is_none(), "several frames: no single out frame");
            let v: Value = serde_json::from_str(&g.json).unwrap();
            assert_eq!(v["frames"].as_array().unwrap().len(), 3);
        }
    }
    assert!(errors >= 5, "the large frames failed through the callback");
}

#[test]
fn invalid_requests_fail_at_once_without_a_callback() {
    let p = pred();
    let c = Arc::new(Collector::default());
    let data = frame(8, 8, 1, 0);
    let good = info(&data, 8, 8, 0);
    let call = |pred: *mut c_void, infos: *const JiImageInfo, n: u32, args: &str| {
        let args = CString::new(args).unwrap();
        let t = ticket(&c, 0);
        let rc = unsafe { ji_calc_image_asyn(pred, infos, n, args.as_ptr(), t) };
        if rc != 0 {
            drop(unsafe { Box::from_raw(t as *mut Ticket) });
        }
        rc
    };
    // No callback yet.
    assert_eq!(call(p.0, &good, 1, ""), JISDK_RET_FAILED);
    assert!(last_error().contains("ji_set_callback"), "{}", last_error());
    assert_eq!(
        unsafe { ji_set_callback(ptr::null_mut(), Some(on_result)) },
        JISDK_RET_INVALIDPARAMS
    );
    assert_eq!(unsafe { ji_set_callback(p.0, Some(on_result)) }, 0);
    assert_eq!(call(ptr::null_mut(), &good, 1, ""), JISDK_RET_INVALIDPARAMS);
    assert_eq!(call(p.0, ptr::null(), 1, ""), JISDK_RET_INVALIDPARAMS);
    assert_eq!(call(p.0, &good, 0, ""), JISDK_RET_INVALIDPARAMS);
    assert_eq!(call(p.0, &good, 1, "{oops"), JISDK_RET_INVALIDPARAMS);
    let mut yuv = info(&data, 8, 8, 0);
    yuv.nFormat = JI_IMAGE_TYPE_YUV420;
    assert_eq!(call(p.0, &yuv, 1, ""), JISDK_RET_INVALIDPARAMS);
    let mut null_px = info(&data, 8, 8, 0);
    null_px.pData = ptr::null_mut();
    assert_eq!(call(p.0, &null_px, 1, ""), JISDK_RET_INVALIDPARAMS);
    let mut narrow = info(&data, 8, 8, 0);
    narrow.nWidthStride = 4;
    assert_eq!(call(p.0, &narrow, 1, ""), JISDK_RET_INVALIDPARAMS);
    // A good one after all that is answered, alone.
    assert_eq!(call(p.0, &good, 1, r#"{"topk": 2}"#), 0);
    let got = c.wait_for(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].json.contains("\"topk\""), "{}", got[0].json);
    drop(got);
    // NULL callback turns the mode off again.
    assert_eq!(unsafe { ji_set_callback(p.0, None) }, 0);
    assert_eq!(call(p.0, &good, 1, ""), JISDK_RET_FAILED);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        c.got.lock().unwrap().len(),
        1,
        "no callback for a refused request"
    );
}

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn slow_counting(output: *mut JiData, user: *mut c_void) {
    std::thread::sleep(Duration::from_millis(2));
    ji_free_async_result(output);
    let n = user as usize;
    // Callbacks come in submission order: the n-th callback carries tag n.
    let before = SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    assert_eq!(before, n);
}

#[test]
fn destroy_answers_every_queued_request_and_none_after() {
    let p = pred();
    assert_eq!(unsafe { ji_set_callback(p.0, Some(slow_counting)) }, 0);
    let data = frame(40, 30, 3, 0);
    let inf = info(&data, 40, 30, 0);
    for i in 0..30usize {
        let rc = unsafe { ji_calc_image_asyn(p.0, &inf, 1, ptr::null(), i as *mut c_void) };
        assert_eq!(rc, 0);
    }
    let answered_before = SLOW_CALLS.load(Ordering::SeqCst);
    drop(p); // ji_destroy_predictor with requests in flight
    assert!(
        answered_before < 30,
        "the test must destroy with requests queued"
    );
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 30);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        SLOW_CALLS.load(Ordering::SeqCst),
        30,
        "no callback after destroy"
    );
}

/// While the gate is closed the callback blocks, so the worker takes nothing from the queue.
static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static GATED_CALLS: AtomicUsize = AtomicUsize::new(0);
static REENTRY_RC: AtomicI32 = AtomicI32::new(1);
static GATED_PRED: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

unsafe extern "C" fn gated(output: *mut JiData, _user: *mut c_void) {
    ji_free_async_result(output);
    let mut open = GATE.0.lock().unwrap();
    while !*open {
        open = GATE.1.wait(open).unwrap();
    }
    drop(open);
    if GATED_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The queue is full and a submitter is waiting: from the worker, -99 instead of waiting
        // for itself.
        let data = frame(4, 4, 1, 0);
        let inf = info(&data, 4, 4, 0);
        let pred = GATED_PRED.load(Ordering::SeqCst);
        REENTRY_RC.store(
            ji_calc_image_asyn(pred, &inf, 1, ptr::null(), ptr::null_mut()),
            Ordering::SeqCst,
        );
    }
}

#[test]
fn a_full_queue_makes_the_caller_wait() {
    let p = pred();
    GATED_PRED.store(p.0, Ordering::SeqCst);
    assert_eq!(unsafe { ji_set_callback(p.0, Some(gated)) }, 0);
    let returned = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (returned, done) = (Arc::clone(&returned), Arc::clone(&done));
        let pred = Pred(p.0);
        std::thread::spawn(move || {
            let data = frame(20, 20, 9, 0);
            let inf = info(&data, 20, 20, 0);
            for _ in 0..100 {
                let rc =
                    unsafe { ji_calc_image_asyn(pred.0, &inf, 1, ptr::null(), ptr::null_mut()) };
                assert_eq!(rc, 0);
                returned.fetch_add(1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
            std::mem::forget(pred); // not ours to destroy
        })
    };
    // Wait until the submitter stalls: the 2 lanes hold one request each, the queue
    // holds 32, then the next call must wait.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = returned.load(Ordering::SeqCst);
        if (now == last && now >= 32) || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "100 calls returned with the worker stuck"
    );
    assert!((32..=34).contains(&last), "{last} calls returned");
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    submitter.join().unwrap();
    drop(p);
    assert_eq!(GATED_CALLS.load(Ordering::SeqCst), 100);
    assert_eq!(REENTRY_RC.load(Ordering::SeqCst), JISDK_RET_OVERMAXQPS);
}

#[test]
fn callbacks_may_call_back_into_the_predictor_and_threads_share_it() {
    let p = pred();
    let c = Arc::new(Collector::default());
    c.pred.store(p.0, Ordering::SeqCst);
    // Inside each callback: a synchronous call on the same predictor, whose JSON must equal the
    // asynchronous one for the same frame, and (once) a new asynchronous request.
    let resubmitted = Arc::new(AtomicBool::new(false));
    {
        let c2 = Arc::downgrade(&c);
        let resubmitted = Arc::clone(&resubmitted);
        *c.hook.lock().unwrap() = Some(Box::new(move |g: &Got| {
            let c = c2.upgrade().unwrap();
            let pred = Pred(c.pred.load(Ordering::SeqCst));
            let seed = (g.tag % 1000) as u32;
            let data = frame(10 + seed % 30, 12, seed, 0);
            let inf = [info(&data, 10 + seed % 30, 12, 0)];
            let (rc, code, json) = sync_json(&pred, &inf, ptr::null());
            assert_eq!((rc, code, json.as_str()), (0, g.code, g.json.as_str()));
            if !resubmitted.load(Ordering::SeqCst) {
                // Tag 1,000,000: seed 0, the frame the hook rebuilds for it. While the four
                // threads keep the queue full this is -99 (the worker must not wait for
                // itself); a later callback tries again.
                let data = frame(10, 12, 0, 0);
                let inf = info(&data, 10, 12, 0);
                let t = ticket(&c, 1_000_000);
                let rc = unsafe { ji_calc_image_asyn(pred.0, &inf, 1, ptr::null(), t) };
                if rc == 0 {
                    resubmitted.store(true, Ordering::SeqCst);
                } else {
                    assert_eq!(rc, JISDK_RET_OVERMAXQPS);
                    drop(unsafe { Box::from_raw(t as *mut Ticket) });
                }
            }
            std::mem::forget(pred);
        }));
    }
    assert_eq!(unsafe { ji_set_callback(p.0, Some(on_result)) }, 0);
    // Four threads submit 25 requests each to the one predictor.
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (c, pred) = (Arc::clone(&c), Pred(p.0));
            s.spawn(move || {
                for i in 0..25usize {
                    let tag = t * 100 + i;
                    let seed = tag as u32;
                    let data = frame(10 + seed % 30, 12, seed, 0);
                    let inf = info(&data, 10 + seed % 30, 12, 0);
                    let rc = unsafe {
                        ji_calc_image_asyn(pred.0, &inf, 1, ptr::null(), ticket(&c, tag))
                    };
                    assert_eq!(rc, 0);
                }
                std::mem::forget(pred);
            });
        }
    });
    let got = c.wait_for(101);
    // Each thread's requests come back in that thread's order.
    for t in 0..4 {
        let tags: Vec<usize> = got
            .iter()
            .map(|g| g.tag)
            .filter(|tag| tag / 100 == t)
            .collect();
        assert_eq!(tags, (t * 100..t * 100 + 25).collect::<Vec<_>>());
    }
    assert!(got.iter().any(|g| g.tag == 1_000_000));
    drop(got);
    *c.hook.lock().unwrap() = None;
}

/// 16 one-frame requests through `p`'s async mode, unrounded confidences; returns how many
/// JSON answers differ from the synchronous call's and the largest difference of a number.
fn lite0_differences(p: &Pred) -> (usize, f64) {
    let c = Arc::new(Collector::default());
    assert_eq!(unsafe { ji_set_callback(p.0, Some(on_result)) }, 0);
    let args = CString::new(r#"{"confidence_decimals": null, "topk": 5}"#).unwrap();
    let frames: Vec<Vec<u8>> = (0..16).map(|i| frame(160, 120, i * 37 + 5, 0)).collect();
    for (tag, f) in frames.iter().enumerate() {
        let inf = info(f, 160, 120, 0);
        let rc = unsafe { ji_calc_image_asyn(p.0, &inf, 1, args.as_ptr(), ticket(&c, tag)) };
        assert_eq!(rc, 0, "{}", last_error());
    }
    let got = c.wait_for(frames.len());
    let (mut differing, mut max) = (0, 0f64);
    for (g, f) in got.iter().zip(&frames) {
        let (rc, _, json) = sync_json(p, &[info(f, 160, 120, 0)], args.as_ptr());
        assert_eq!(rc, 0);
        if g.json != json {
            differing += 1;
            let (a, b): (Value, Value) = (
                serde_json::from_str(&g.json).unwrap(),
                serde_json::from_str(&json).unwrap(),
            );
            let mut tol = 0.0;
            while !close(&a, &b, tol) {
                tol = if tol == 0.0 { 1e-9 } else { tol * 2.0 };
                assert!(tol < 1.0, "{a} vs {b}");
            }
            max = max.max(tol);
        }
    }
    (differing, max)
}

#[test]
fn lite0_lanes_are_byte_identical_to_sync_and_batches_within_rounding() {
    // The default: 2 lanes, each running the batch-1 graph with the synchronous call's thread
    // count, so the float sums are the same.
    let p = Pred::with_config(&demo_config("ji_async", "lanes", &[]));
    assert_eq!(lite0_differences(&p), (0, 0.0), "lanes: byte for byte");
    drop(p);
    // Batches of 4: another fused graph, which sums in another order.
    let p = Pred::with_config(&demo_config(
        "ji_async",
        "batched",
        &[
            ("async_max_batch", Value::from(4)),
            ("async_workers", Value::from(1)),
        ],
    ));
    let (differing, max) = lite0_differences(&p);
    eprintln!("batches of 4: {differing} of 16 answers differ, numbers by up to {max:.1e}");
    assert!(
        max <= 1e-5,
        "batched: confidences within float rounding, got {max:.1e}"
    );
}
