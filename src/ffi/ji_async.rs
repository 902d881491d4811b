//! The ev_sdk 4.x asynchronous mode behind `ji_set_callback` / `ji_calc_image_asyn`: a bounded
//! queue per predictor and `async_workers` worker threads ("lanes") that take requests in
//! submission order, run them concurrently, and answer them in submission order. Each lane
//! runs the same batch-1 graph with the same intra-op thread count as a synchronous call, so
//! its results are bit-identical to `ji_calc_image`'s; with `async_max_batch` > 1 a lane runs
//! the frames of several waiting requests as one forward pass (faster on some models, equal
//! only within float rounding: libtorch's CPU kernels sum in another order per batch size).
//!
//! What the callback receives is allocated by `alloc.cpp` with C++ `new` (the `JiData`) and
//! `new unsigned char[]` (the out-frame pixels), because the platform's test program frees it
//! with `delete` and `delete []`. Both are allocated when the request is accepted, so an
//! accepted request always gets its callback. Callbacks are called through a C++ trampoline
//! (`alloc.cpp`) that catches any C++ exception escaping them.

use super::ji::{
    event_code, image_frame, ji_code, predictor, JiCallBack, JiData, JiEvent, JiImageInfo,
    JISDK_CODE_FAILED, JISDK_RET_FAILED, JISDK_RET_OVERMAXQPS, JISDK_RET_SUCCEED, JI_MAX_IN_COUNT,
};
use super::{catch, json_cstring, opt_str, set_last_error};
use crate::config::{AsyncConfig, RunOptions};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::RawFrame;
use crate::image::RgbImage;
use crate::output::{self, Rendered};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

extern "C" {
    // src/ffi/alloc.cpp
    fn ji_rs_jidata_new() -> *mut JiData;
    fn ji_rs_jidata_delete(p: *mut JiData);
    fn ji_rs_bytes_new(n: usize) -> *mut u8;
    fn ji_rs_bytes_delete(p: *mut u8);
    // Calls `cb(data, user_data)`, catching any C++ exception (reported on stderr): 0, or -1
    // when one was caught.
    fn ji_rs_call_callback(cb: Callback, data: *mut JiData, user_data: *mut c_void) -> c_int;
}

/// A `JiData` from C++ `new`, allocated when a request is accepted: freed here unless handed to
/// the request's callback.
struct CppData(NonNull<JiData>);

impl CppData {
    fn new() -> Result<CppData> {
        // SAFETY: the shim returns NULL or a value-initialised (all zero) JiData from `new`.
        NonNull::new(unsafe { ji_rs_jidata_new() })
            .map(CppData)
            .ok_or_else(|| Error::Inference("out of memory allocating a JiData".into()))
    }

    /// Gives the JiData away (to be freed with `delete`).
    fn into_raw(self) -> *mut JiData {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for CppData {
    fn drop(&mut self) {
        // SAFETY: from ji_rs_jidata_new, not given away.
        unsafe { ji_rs_jidata_delete(self.0.as_ptr()) }
    }
}

/// Pixels in a C++ `new unsigned char[]` buffer: freed here unless handed to a callback.
struct CppBytes {
    ptr: *mut u8,
    len: usize,
}

impl CppBytes {
    /// A packed copy of `frame`'s rows.
    fn packed_copy(frame: &RawFrame) -> Result<CppBytes> {
        let row = frame.width as usize * frame.channels as usize;
        let len = row * frame.height as usize;
        // SAFETY: the shim returns NULL or a buffer of `len.max(1)` bytes.
        let ptr = unsafe { ji_rs_bytes_new(len.max(1)) };
        if ptr.is_null() {
            return Err(Error::Inference(format!(
                "out of memory copying a {}x{} frame",
                frame.width, frame.height
            )));
        }
        let out = CppBytes { ptr, len };
        // SAFETY: `ptr` holds `len` bytes; `frame` was validated, so every row is in bounds.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        for (y, d) in dst.chunks_exact_mut(row).enumerate() {
            d.copy_from_slice(&frame.pixels[y * frame.stride..y * frame.stride + row]);
        }
        Ok(out)
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` holds `len` initialised bytes (see `packed_copy`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Gives the buffer away (to be freed with `delete []`).
    fn into_raw(self) -> *mut u8 {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }
}

impl Drop for CppBytes {
    fn drop(&mut self) {
        // SAFETY: from ji_rs_bytes_new, not given away.
        unsafe { ji_rs_bytes_delete(self.ptr) }
    }
}

/// One input frame, copied at submission.
struct Frame {
    pixels: CppBytes,
    width: u32,
    height: u32,
    /// The caller's description (`pData` cleared), the template of the out frame.
    info: JiImageInfo,
}

type Callback = unsafe extern "C" fn(*mut JiData, *mut c_void);

struct Request {
    frames: Vec<Frame>,
    /// Why the request fails without running (a frame over `max_image_pixels`: its frames
    /// were not copied); answered through the callback like any other result.
    refused: Option<Error>,
    opts: RunOptions,
    callback: Callback,
    user_data: *mut c_void,
    /// What the callback will receive, allocated at submission.
    data: CppData,
}

// SAFETY: the pixel buffers and the JiData are owned by the request; `user_data` and the
// callback are the caller's, who agreed to get them back on a library thread (the async
// contract).
unsafe impl Send for Request {}

struct State {
    queue: VecDeque<Request>,
    callback: JiCallBack,
    /// Set by `shutdown`: the workers drain the queue and exit; submissions fail.
    stop: bool,
    workers: Vec<JoinHandle<()>>,
    worker_ids: Vec<ThreadId>,
    /// Batches taken from the queue so far: the next batch's turn number.
    taken: u64,
    /// The turn number of the batch whose callbacks come next (callbacks are answered in
    /// the order their batches were taken, which is submission order).
    answering: u64,
}

struct Shared {
    engine: Arc<Engine>,
    settings: AsyncConfig,
    state: Mutex<State>,
    /// Signalled when a request arrives or `stop` is set.
    work: Condvar,
    /// Signalled when a worker takes requests from the queue.
    space: Condvar,
    /// Signalled when a batch's callbacks are done (the next batch's turn).
    turn: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn on_worker_thread(&self) -> bool {
        self.worker_ids.contains(&std::thread::current().id())
    }
}

/// A predictor's asynchronous queue and its worker thread.
pub(crate) struct AsyncQueue {
    shared: Arc<Shared>,
}

impl AsyncQueue {
    pub(crate) fn new(engine: Arc<Engine>) -> AsyncQueue {
        let settings = engine.config().asynchronous;
        AsyncQueue {
            shared: Arc::new(Shared {
                engine,
                settings,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    callback: None,
                    stop: false,
                    workers: Vec::new(),
                    worker_ids: Vec::new(),
                    taken: 0,
                    answering: 0,
                }),
                work: Condvar::new(),
                space: Condvar::new(),
                turn: Condvar::new(),
            }),
        }
    }

    /// True on one of this queue's worker threads (that is, inside one of its callbacks).
    pub(crate) fn on_worker_thread(&self) -> bool {
        self.shared.lock().on_worker_thread()
    }

    /// Answers every queued request, then stops the workers. Idempotent.
    pub(crate) fn shutdown(&self) {
        let workers = {
            let mut st = self.shared.lock();
            st.stop = true;
            std::mem::take(&mut st.workers)
        };
        self.shared.work.notify_all();
        self.shared.space.notify_all();
        for w in workers {
            // A worker catches panics around each batch, callbacks cannot unwind into it and
            // its turn is passed on even if one did, so it always exits normally.
            let _ = w.join();
        }
    }

    fn set_callback(&self, callback: JiCallBack) -> Result<()> {
        let mut st = self.shared.lock();
        if st.stop {
            return Err(Error::InvalidArgument(
                "the predictor is being destroyed".into(),
            ));
        }
        st.callback = callback;
        if callback.is_some() && st.workers.is_empty() {
            for lane in 0..self.shared.settings.workers.max(1) {
                let shared = Arc::clone(&self.shared);
                let handle = std::thread::Builder::new()
                    .name(format!("ji-async-{lane}"))
                    .spawn(move || {
                        // The lane's first forward pays for per-thread setup (on a GPU, its
                        // cuDNN / cuBLAS handles) here rather than on a judged request.
                        if let Err(e) = catch(|| shared.engine.warm_thread()) {
                            eprintln!("libji: async lane {lane}: warm-up failed: {e}");
                        }
                        worker(&shared)
                    });
                match handle {
                    Ok(h) => {
                        st.worker_ids.push(h.thread().id());
                        st.workers.push(h);
                    }
                    // The lanes already running serve the queue; none at all is an error.
                    Err(e) if st.workers.is_empty() => {
                        return Err(Error::Inference(format!(
                            "cannot start the async worker: {e}"
                        )))
                    }
                    Err(e) => {
                        eprintln!("libji: async lane {lane} not started ({e}); {lane} serve");
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for AsyncQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `ji_set_callback`.
///
/// # Safety
/// `p` is NULL or a live predictor.
pub(super) unsafe fn set_callback(p: *mut c_void, callback: JiCallBack) -> Result<()> {
    let pred = predictor(p)?;
    let _inside = pred.calls.enter();
    pred.asyn.set_callback(callback)
}

/// `ji_calc_image_asyn`.
///
/// # Safety
/// As `ji_calc_image_asyn`.
pub(super) unsafe fn submit(
    p: *mut c_void,
    frames: *const JiImageInfo,
    count: c_uint,
    args: *const c_char,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: submit's contract is enqueue's.
    match catch(|| unsafe { enqueue(p, frames, count, args, user_data) }) {
        Ok(rc) => rc,
        Err(e) => ji_code(&e),
    }
}

unsafe fn enqueue(
    p: *mut c_void,
    frames: *const JiImageInfo,
    count: c_uint,
    args: *const c_char,
    user_data: *mut c_void,
) -> Result<c_int> {
    let pred = predictor(p)?;
    // ji_destroy_predictor waits for this call to leave before it frees anything.
    let _inside = pred.calls.enter();
    let q = &pred.asyn;
    if frames.is_null() || count == 0 {
        return Err(Error::InvalidArgument(
            "pInFrames is NULL or nInCount is 0".into(),
        ));
    }
    let Some(callback) = q.shared.lock().callback else {
        set_last_error("ji_calc_image_asyn: no callback is set (call ji_set_callback first)");
        return Ok(JISDK_RET_FAILED);
    };
    let opts = q
        .shared
        .engine
        .run_defaults()
        // SAFETY: `args` is NULL or NUL-terminated (caller contract).
        .with_args(unsafe { opt_str(args, "args") }?)?;
    if count > JI_MAX_IN_COUNT {
        return Err(Error::InvalidArgument(format!(
            "nInCount {count} is more than the {JI_MAX_IN_COUNT} frames one call accepts"
        )));
    }
    // SAFETY: `frames` points to `count` readable infos (caller contract).
    let infos = unsafe { std::slice::from_raw_parts(frames, count as usize) };
    // Only the buffer's geometry against nDataLen is checked here (nothing beyond it is
    // read); an image over max_image_pixels is answered through the callback, as the README
    // documents for the asynchronous mode, and its request's frames are never copied.
    let mut views = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        // SAFETY: `pData` holds what `nDataLen` describes (caller contract).
        let frame = unsafe { image_frame(info, None) }.map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("frame {i}: {m}")),
            other => other,
        })?;
        views.push(frame);
    }
    let limit = q.shared.engine.max_image_pixels();
    let refused = views
        .iter()
        .find_map(|f| RawFrame::check_pixel_limit(f.width, f.height, limit).err());
    let mut copies = Vec::with_capacity(infos.len());
    if refused.is_none() {
        for (info, frame) in infos.iter().zip(&views) {
            // SAFETY: a plain-data copy of a valid reference (JiImageInfo is Copy-like C data).
            let mut template = unsafe { std::ptr::read(info) };
            template.pData = std::ptr::null_mut();
            copies.push(Frame {
                pixels: CppBytes::packed_copy(frame)?,
                width: frame.width,
                height: frame.height,
                info: template,
            });
        }
    }
    let request = Request {
        frames: copies,
        refused,
        opts,
        callback,
        user_data,
        // Allocated now: once the request is accepted nothing can keep its callback away.
        data: CppData::new()?,
    };
    let shared = &q.shared;
    let mut st = shared.lock();
    loop {
        if st.stop {
            set_last_error("ji_calc_image_asyn: the predictor is being destroyed");
            return Ok(JISDK_RET_FAILED);
        }
        if st.queue.len() < shared.settings.queue as usize {
            break;
        }
        if st.on_worker_thread() {
            set_last_error(
                "ji_calc_image_asyn: the queue is full and this is the predictor's own callback",
            );
            return Ok(JISDK_RET_OVERMAXQPS);
        }
        st = shared.space.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    st.queue.push_back(request);
    drop(st);
    shared.work.notify_one();
    Ok(JISDK_RET_SUCCEED)
}

/// A worker (lane): takes a batch of requests in queue order, runs it while other lanes run
/// theirs, then waits for its turn to call the callbacks, so they come in submission order and
/// never two at a time. Runs until stopped and drained.
fn worker(shared: &Shared) {
    let max_batch = shared.settings.max_batch.max(1) as usize;
    let max_wait = Duration::from_millis(shared.settings.max_wait_ms as u64);
    loop {
        let (turn, batch) = {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.stop {
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.queue.is_empty() {
                return; // stopped and drained
            }
            if !max_wait.is_zero() {
                let deadline = Instant::now() + max_wait;
                while !st.stop && frames_in(&st.queue) < max_batch {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = shared
                        .work
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if st.queue.is_empty() {
                    continue; // another lane took them while this one waited
                }
            }
            let mut batch = vec![st.queue.pop_front().expect("queue is not empty")];
            let mut frames = batch[0].frames.len();
            while let Some(next) = st.queue.front() {
                if frames + next.frames.len() > max_batch {
                    break;
                }
                frames += next.frames.len();
                batch.extend(st.queue.pop_front());
            }
            st.taken += 1;
            (st.taken - 1, batch)
        };
        shared.space.notify_all();
        let results = catch(|| Ok(run_batch(&shared.engine, &batch))).unwrap_or_else(|e| {
            let msg = e.to_string();
            batch
                .iter()
                .map(|_| Err(Error::Panic(msg.clone())))
                .collect()
        });
        let mut st = shared.lock();
        while st.answering != turn {
            st = shared.turn.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        drop(st);
        // Passes the turn on when the callbacks are done (even if one unwound).
        let _next = NextTurn(shared);
        for (request, result) in batch.into_iter().zip(results) {
            deliver(request, result, shared.settings.out_frame);
        }
    }
}

struct NextTurn<'a>(&'a Shared);

impl Drop for NextTurn<'_> {
    fn drop(&mut self) {
        self.0.lock().answering += 1;
        self.0.turn.notify_all();
    }
}

fn frames_in(queue: &VecDeque<Request>) -> usize {
    queue.iter().map(|r| r.frames.len()).sum()
}

/// Runs the requests' frames as one forward pass; one result JSON (or error) per request.
/// When the pass fails and there was more than one request, each is rerun alone, so a request
/// gets what it would have got on its own.
fn run_batch(engine: &Engine, batch: &[Request]) -> Vec<Result<Rendered>> {
    let mut results: Vec<Option<Result<Rendered>>> = batch.iter().map(|_| None).collect();
    let mut ok: Vec<(usize, Vec<RgbImage>)> = Vec::with_capacity(batch.len());
    for (i, request) in batch.iter().enumerate() {
        match to_rgb(engine, request) {
            Ok(images) => ok.push((i, images)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    if !ok.is_empty() {
        let refs: Vec<&RgbImage> = ok.iter().flat_map(|(_, imgs)| imgs.iter()).collect();
        let k = ok
            .iter()
            .map(|(i, _)| batch[*i].opts.topk)
            .max()
            .unwrap_or(1);
        match engine.classify_batch(&refs, k.max(1)) {
            Ok(cls) => {
                let mut cls = cls.into_iter();
                for (i, imgs) in &ok {
                    let opts = &batch[*i].opts;
                    let values = cls
                        .by_ref()
                        .take(imgs.len())
                        .map(|c| engine.render(&c, opts));
                    results[*i] = Some(Ok(Rendered::combine(values.collect())));
                }
            }
            Err(e) if ok.len() == 1 => results[ok[0].0] = Some(Err(e)),
            Err(_) => {
                for (i, imgs) in &ok {
                    let opts = &batch[*i].opts;
                    let refs: Vec<&RgbImage> = imgs.iter().collect();
                    results[*i] = Some(engine.classify_batch(&refs, opts.topk.max(1)).map(|cls| {
                        Rendered::combine(cls.iter().map(|c| engine.render(c, opts)).collect())
                    }));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every request has a result"))
        .collect()
}

fn to_rgb(engine: &Engine, request: &Request) -> Result<Vec<RgbImage>> {
    if let Some(e) = &request.refused {
        return Err(e.clone());
    }
    request
        .frames
        .iter()
        .map(|f| {
            engine.frame_to_rgb(&RawFrame {
                pixels: f.pixels.as_slice(),
                width: f.width,
                height: f.height,
                stride: f.width as usize * 3,
                channels: 3,
            })
        })
        .collect()
}

/// Builds the request's `JiData` and calls its callback, which takes ownership of it.
fn deliver(request: Request, result: Result<Rendered>, out_frame: bool) {
    let Request {
        mut frames,
        callback,
        user_data,
        data,
        ..
    } = request;
    let (code, json) = match &result {
        Ok(r) => (event_code(r), json_cstring(&r.json)),
        Err(e) => (
            JISDK_CODE_FAILED,
            json_cstring(&output::error_json(e, ji_code(e))),
        ),
    };
    let data = data.into_raw();
    // SAFETY: `data` is a live, exclusively owned JiData (value-initialised at submission).
    let out = unsafe { &mut *data };
    out.event = JiEvent {
        code,
        json: json.as_ptr(),
    };
    if out_frame && result.is_ok() && frames.len() == 1 {
        let f = frames.pop().expect("one frame");
        let len = f.pixels.len;
        out.outPic = JiImageInfo {
            nWidthStride: f.width,
            nHeightStride: f.height,
            nDataLen: len as c_uint,
            pData: f.pixels.into_raw() as *mut c_void,
            ..f.info
        };
    }
    drop(frames);
    // SAFETY: the caller's callback, given the JiData it now owns and its own user data,
    // through the trampoline that stops C++ exceptions before they reach Rust frames.
    unsafe { ji_rs_call_callback(callback, data, user_data) };
    drop(json); // valid until the callback has returned
}

/// Frees what a callback received, for C callers (C has no `delete`): the out-frame pixels
/// (`delete []`) and the `JiData` (`delete`). NULL is accepted. C++ callers may equally
/// `delete [] (unsigned char *)output->outPic.pData; delete output;`.
///
/// # Safety
/// `output` is NULL or a `JiData` a callback received, not freed before.
#[no_mangle]
pub unsafe extern "C" fn ji_free_async_result(output: *mut JiData) {
    if output.is_null() {
        return;
    }
    // SAFETY: `output` is a live JiData from a callback, freed once (caller contract); its
    // pixels came from `new unsigned char[]` and it from `new`, which these two delete.
    unsafe {
        let pixels = (*output).outPic.pData as *mut u8;
        if !pixels.is_null() {
            ji_rs_bytes_delete(pixels);
        }
        ji_rs_jidata_delete(output);
    }
}
