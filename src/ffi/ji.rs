//! The ev_sdk platform ABI (3.x `ji_calc_frame` & co., 4.x `ji_calc_image`) over the same
//! engine as `evsdk_*`. Types and constants carry the platform header's names so code written
//! for the platform's `ji.h` compiles against ours.
//!
//! Ownership: `event->json`, `outFrame->data` and `*pOutFrames` are owned by the predictor and
//! stay valid until the next call on that predictor from the same thread or its destruction;
//! after the thread ends, until `JI_RETIRED_RESULTS` more threads' results have been retired
//! after them (see `OutputSlots`).
//! The asynchronous mode (`ji_set_callback`, `ji_calc_image_asyn`) lives in `ji_async.rs`.

#![allow(non_camel_case_types, non_snake_case)]

use super::ji_async::AsyncQueue;
use super::{catch, json_cstring, opt_str, required_path, set_last_error};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ffi::evsdk::raw_frame;
use crate::frame::RawFrame;
use crate::image::RgbImage;
use crate::output::{self, Rendered};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CString};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::ThreadId;

/// Return codes (ev_sdk 3.x `#define`s, 4.x `JiErrorCode`).
pub type JiErrorCode = c_int;
pub const JISDK_RET_SUCCEED: JiErrorCode = 0;
pub const JISDK_RET_FAILED: JiErrorCode = -1;
pub const JISDK_RET_UNUSED: JiErrorCode = -2;
pub const JISDK_RET_INVALIDPARAMS: JiErrorCode = -3;
pub const JISDK_RET_OFFLINE: JiErrorCode = -9;
pub const JISDK_RET_OVERMAXQPS: JiErrorCode = -99;
pub const JISDK_RET_UNAUTHORIZED: JiErrorCode = -999;

/// Event codes (`JI_EVENT.code` / `JiEvent.code`). (sic: the platform spells it "Tye".)
pub type JiEventTye = c_int;
pub const JISDK_CODE_ALARM: JiEventTye = 0;
pub const JISDK_CODE_NORMAL: JiEventTye = 1;
pub const JISDK_CODE_FAILED: JiEventTye = -1;

/// Predictor types for `ji_create_predictor` (all behave the same here).
pub type JiPredictorType = c_int;
pub const JISDK_PREDICTOR_DEFAULT: JiPredictorType = 0;
pub const JISDK_PREDICTOR_SEQUENTIAL: JiPredictorType = 1;
pub const JISDK_PREDICTOR_NONSEQUENTIAL: JiPredictorType = 2;

/// `JiImageInfo.nFormat`: only BGR is supported. (sic: 442.)
pub type JiImageFormat = c_int;
pub const JI_IMAGE_TYPE_BGR: JiImageFormat = 0;
pub const JI_IMAGE_TYPE_YUV420: JiImageFormat = 1;
pub const JI_IMAGE_TYPE_YUV442: JiImageFormat = 2;

/// `JiImageInfo.nDataType`.
pub type JiDataType = c_int;
pub const JI_UINT32_T: JiDataType = 0;
pub const JI_SIGNED_CHAR: JiDataType = 1;
pub const JI_UNSIGNED_CHAR: JiDataType = 2;
pub const JI_UNSIGNED_SHORT: JiDataType = 3;
pub const JI_INT64_T: JiDataType = 4;
pub const JI_UINT64: JiDataType = 5;

/// OpenCV `cv::Mat` type codes accepted in `JI_CV_FRAME.type`.
pub const JI_CV_8UC1: c_int = 0;
pub const JI_CV_8UC3: c_int = 16;
pub const JI_CV_8UC4: c_int = 24;

/// ev_sdk 3.x frame: the fields of a `cv::Mat`. `step` is the row pitch in bytes.
#[repr(C)]
pub struct JI_CV_FRAME {
    pub rows: c_int,
    pub cols: c_int,
    pub r#type: c_int,
    pub data: *mut c_void,
    pub step: c_int,
}

/// ev_sdk 3.x event.
#[repr(C)]
pub struct JI_EVENT {
    pub code: c_int,
    pub json: *const c_char,
}

/// ev_sdk 4.x image. As input to `ji_calc_image`: 8-bit BGR (`nFormat` = `JI_IMAGE_TYPE_BGR`,
/// `nDataType` = `JI_UNSIGNED_CHAR`); `nDataLen` bounds what is read, and `nWidthStride`'s
/// unit (pixels or bytes) follows the rule stated on `ji_calc_image`. `nHeightStride`,
/// `nFrameRate`, `dwTimeStamp` and `nFrameNo` are not used.
#[repr(C)]
pub struct JiImageInfo {
    pub nWidth: c_uint,
    pub nHeight: c_uint,
    pub nWidthStride: c_uint,
    pub nHeightStride: c_uint,
    pub nFrameRate: c_uint,
    pub dwTimeStamp: c_ulong,
    pub pData: *mut c_void,
    pub nDataLen: c_uint,
    pub nFormat: JiImageFormat,
    pub nDataType: JiDataType,
    pub nFrameNo: c_uint,
    pub byRes: [u8; 4],
}

impl JiImageInfo {
    /// For Rust callers (the harness, tests, examples): a packed BGR frame of `width` x
    /// `height` pixels over `data` (`nWidthStride` = `width`, `nDataLen` = `data.len()` bytes,
    /// the rest zero). The frame borrows `data`'s memory: keep `data` alive while it is used.
    pub fn packed_bgr(data: &[u8], width: u32, height: u32) -> JiImageInfo {
        JiImageInfo {
            nWidth: width,
            nHeight: height,
            nWidthStride: width,
            nHeightStride: height,
            nFrameRate: 0,
            dwTimeStamp: 0,
            pData: data.as_ptr() as *mut c_void,
            nDataLen: c_uint::try_from(data.len()).unwrap_or(c_uint::MAX),
            nFormat: JI_IMAGE_TYPE_BGR,
            nDataType: JI_UNSIGNED_CHAR,
            nFrameNo: 0,
            byRes: [0; 4],
        }
    }
}

/// ev_sdk 4.x event.
#[repr(C)]
pub struct JiEvent {
    pub code: JiEventTye,
    pub json: *const c_char,
}

/// ev_sdk 4.x: one asynchronous result, as the platform's `ji_types.h` declares it.
#[repr(C)]
pub struct JiData {
    pub outPic: JiImageInfo,
    pub event: JiEvent,
}

/// ev_sdk 4.x asynchronous callback, the platform's signature: called once per
/// `ji_calc_image_asyn` request, from a thread of the library; `output` belongs to the callback
/// (free it with C++ `delete`, and `output->outPic.pData` with `delete []`).
pub type JiCallBack = Option<unsafe extern "C" fn(output: *mut JiData, userData: *mut c_void)>;

/// Size of the `ji_get_version` buffer (the platform's `MAX_VERSION_LENGTH`).
pub const MAX_VERSION_LENGTH: usize = 512;

/// What a predictor hands back to one thread: valid until that thread's next call.
#[derive(Default)]
struct ThreadOutputs {
    json: CString,
    frame: Vec<u8>,
    frames: Vec<Vec<u8>>,
    infos: Vec<JiImageInfo>,
}

// SAFETY: the only non-Send parts are the raw pointers in `infos`, which point into the heap
// buffers of `frames` in the same value (they move with it, untouched) and are only
// dereferenced by the C caller on the thread that owns the slot. Nothing in it is tied to a
// thread, so the slots may sit in a Mutex shared by all threads (which makes Predictor Sync).
unsafe impl Send for ThreadOutputs {}

/// How many ended threads' results a predictor keeps (the oldest is freed first): a result
/// read after its thread was joined stays valid until this many more threads' results have
/// been retired after it.
pub const JI_RETIRED_RESULTS: usize = 64;

/// A predictor's per-thread outputs. Thread ids are never reused, so a live slot must not
/// outlive its thread: each thread that gets a slot registers it in its `HELD_SLOTS`, whose
/// destructor retires the slot when the thread ends. A retired slot stays readable (a host may
/// read a result after joining the thread that asked for it) until `JI_RETIRED_RESULTS`
/// newer ones have been retired. Memory is thus bounded by the live threads that called the
/// predictor plus `JI_RETIRED_RESULTS`; `ji_destroy_predictor` frees every slot at once.
#[derive(Default)]
struct OutputSlots(Mutex<Slots>);

#[derive(Default)]
struct Slots {
    live: HashMap<ThreadId, Box<ThreadOutputs>>,
    /// Ended threads' outputs, oldest first.
    retired: std::collections::VecDeque<Box<ThreadOutputs>>,
}

impl Slots {
    /// The thread's slot moves to the retired list; the oldest beyond the bound is freed.
    fn retire(&mut self, thread: ThreadId) {
        if let Some(slot) = self.live.remove(&thread) {
            self.retired.push_back(slot);
            while self.retired.len() > JI_RETIRED_RESULTS {
                self.retired.pop_front();
            }
        }
    }
}

/// The slots this thread holds in predictors (weak: a destroyed predictor's slots are gone).
struct HeldSlots {
    thread: ThreadId,
    slots: Vec<Weak<OutputSlots>>,
}

impl Drop for HeldSlots {
    fn drop(&mut self) {
        for slots in self.slots.drain(..) {
            if let Some(slots) = slots.upgrade() {
                let mut slots = slots.0.lock().unwrap_or_else(|e| e.into_inner());
                slots.retire(self.thread);
            }
        }
    }
}

thread_local! {
    static HELD_SLOTS: RefCell<HeldSlots> = RefCell::new(HeldSlots {
        thread: std::thread::current().id(),
        slots: Vec::new(),
    });
}

/// What a `void *predictor` points to. The judge calls one predictor from several threads at
/// once, so it is `Send + Sync` (asserted below): the engine is, and the per-thread outputs are
/// behind a mutex, each thread only ever touching its own slot. C gets a `Box::into_raw`
/// pointer and only `ji_destroy_predictor` turns it back into the box.
pub(super) struct Predictor {
    pub(super) engine: Arc<Engine>,
    outputs: Arc<OutputSlots>,
    /// The asynchronous mode's queue and worker (started by `ji_set_callback`).
    pub(super) asyn: AsyncQueue,
    /// Threads inside a call on this predictor: `ji_destroy_predictor` waits for them.
    pub(super) calls: CallGate,
}

/// Counts the threads inside a call on a predictor, so that `ji_destroy_predictor` frees it
/// only after every call that was already running when it began has returned (a submission
/// blocked on a full queue is woken by the destroy and returns -1).
#[derive(Default)]
pub(super) struct CallGate {
    inside: Mutex<usize>,
    idle: Condvar,
}

/// One thread inside a call; leaves on drop.
pub(super) struct Inside<'a>(&'a CallGate);

impl CallGate {
    pub(super) fn enter(&self) -> Inside<'_> {
        *self.inside.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Inside(self)
    }

    /// Returns once no thread is inside a call.
    fn wait_idle(&self) {
        let mut inside = self.inside.lock().unwrap_or_else(|e| e.into_inner());
        while *inside > 0 {
            inside = self.idle.wait(inside).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let mut inside = self.0.inside.lock().unwrap_or_else(|e| e.into_inner());
        *inside -= 1;
        if *inside == 0 {
            self.0.idle.notify_all();
        }
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Predictor>();
};

impl Predictor {
    /// Runs `f` with this thread's output slot (boxed, so pointers into it survive rehashing).
    fn with_outputs<T>(&self, f: impl FnOnce(&mut ThreadOutputs) -> T) -> T {
        let thread = std::thread::current().id();
        let mut slots = self.outputs.0.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match slots.live.entry(thread) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                // This thread's first slot here: register it so the thread's end frees it.
                // (Not possible while the thread's locals are being destroyed; the slot then
                // lives until ji_destroy_predictor.)
                let _ = HELD_SLOTS.try_with(|held| {
                    let mut held = held.borrow_mut();
                    held.slots.retain(|w| w.strong_count() > 0);
                    held.slots.push(Arc::downgrade(&self.outputs));
                });
                e.insert(Box::default())
            }
        };
        f(slot)
    }

    /// Stores `json` for this thread and returns the pointer handed to C.
    fn store_json(&self, v: &Value) -> *const c_char {
        let c = json_cstring(v);
        self.with_outputs(|o| {
            o.json = c;
            o.json.as_ptr()
        })
    }
}

pub(super) fn predictor<'a>(p: *mut c_void) -> Result<&'a Predictor> {
    // SAFETY: NULL or a live pointer from ji_create_predictor (documented contract).
    unsafe { (p as *const Predictor).as_ref() }
        .ok_or_else(|| Error::InvalidArgument("predictor is NULL".into()))
}

pub(super) fn ji_code(e: &Error) -> c_int {
    match e {
        Error::InvalidArgument(_) => JISDK_RET_INVALIDPARAMS,
        _ => JISDK_RET_FAILED,
    }
}

/// The event for a successful result: alarm when the result raised it.
pub(super) fn event_code(r: &Rendered) -> c_int {
    if r.alert {
        JISDK_CODE_ALARM
    } else {
        JISDK_CODE_NORMAL
    }
}

/// Runs one ji_* call: fills the event (result or error JSON) and maps errors to ji codes.
fn run_call(
    p: *mut c_void,
    event: Option<(&mut c_int, &mut *const c_char)>,
    f: impl FnOnce(&Predictor) -> Result<Rendered>,
) -> c_int {
    let pred = predictor(p).ok();
    // ji_destroy_predictor waits for this call to leave before it frees anything.
    let _inside = pred.map(|p| p.calls.enter());
    let result = catch(|| f(predictor(p)?));
    let (rc, code, value) = match result {
        Ok(r) => (JISDK_RET_SUCCEED, event_code(&r), r.json),
        Err(e) => (
            ji_code(&e),
            JISDK_CODE_FAILED,
            output::error_json(&e, ji_code(&e)),
        ),
    };
    if let Some((ev_code, ev_json)) = event {
        *ev_code = code;
        *ev_json = match pred {
            Some(pred) => pred.store_json(&value),
            // No predictor to own a string: a static one says why.
            None => NULL_PREDICTOR_JSON.as_ptr() as *const c_char,
        };
    }
    rc
}

const NULL_PREDICTOR_JSON: &str = concat!(
    r#"{"algorithm_data":{"is_alert":false,"target_info":null},"model_data":null,"#,
    r#""error":{"code":-3,"kind":"invalid_argument","message":"predictor is NULL"}}"#,
    "\0"
);

/// Global initialisation. `argv` (license text on the platform) is ignored; always returns 0.
///
/// # Safety
/// Any arguments are accepted, including NULL.
#[no_mangle]
pub unsafe extern "C" fn ji_init(argc: c_int, argv: *mut *mut c_char) -> c_int {
    let _ = (argc, argv);
    JISDK_RET_SUCCEED
}

/// Global teardown: does nothing, and predictors still alive stay valid. (What the library
/// keeps for the process's life: the prepared CPU fast-path model of each distinct model file,
/// and the prepared CUDA model (plain or frozen, fp16-checked) of each distinct file, device,
/// precision and input size, its weights on the GPU, all reused by later predictors; and
/// libtorch's CUDA backend once a predictor loaded it.)
#[no_mangle]
pub extern "C" fn ji_reinit() {}

/// Creates a predictor from `$EV_SDK_CONFIG`, else `/usr/local/ev_sdk/config/algo_config.json`.
/// Returns NULL on failure; the reason is printed to stderr and available from
/// `evsdk_last_error()`. Release with `ji_destroy_predictor`. `pdtype` is accepted and ignored.
/// `"device": "auto"` without a usable GPU runs on the CPU and prints why to stderr, once per
/// process (`ji_get_version`'s `cuda.reason` has it too); `"precision": "fp16"` then runs in
/// fp32, with a note. On a GPU, fp16 is checked against fp32 on probe images before the
/// predictor is returned and falls back to fp32, saying why, when they disagree
/// (`evsdk_model_info`'s `"precision_fallback"`).
///
/// Threads: the predictor may be used from any thread, and from several threads at once
/// (calls run in parallel); one predictor per thread works too. Each thread's results
/// (`event->json`, out frames) are its own. They belong to the predictor, not to the thread:
/// when a thread ends, its last results stay valid (a host may join a worker thread and then
/// read what it got) until `JI_RETIRED_RESULTS` (64) more ended threads' results have been
/// retired after them, the oldest freed first; so memory stays bounded however many threads
/// come and go.
///
/// A guest in the host's process: with a default config, creating and using a predictor
/// changes nothing process-wide and starts no thread of its own (the asynchronous mode's
/// `async_workers` lanes start with `ji_set_callback`). What is process-wide by nature, and
/// only when asked: `"num_threads"` sets libtorch's single intra-op thread count for the whole
/// process (the last predictor created wins); a predictor on CUDA switches on cuDNN's
/// benchmark mode for the process, and when the last CUDA predictor is destroyed the CUDA
/// caching allocator's free blocks go back to the driver (`torch.cuda.empty_cache()`, which
/// also releases what a host using libtorch on the GPU itself had cached);
/// `"huge_pages": true` advises the process heap into transparent huge pages.
/// `evsdk_model_info` reports them under `"process_wide"`.
#[no_mangle]
pub extern "C" fn ji_create_predictor(pdtype: JiPredictorType) -> *mut c_void {
    let _ = pdtype;
    match catch(|| Engine::from_config_path(None)) {
        Ok(engine) => {
            let engine = Arc::new(engine);
            Box::into_raw(Box::new(Predictor {
                asyn: AsyncQueue::new(Arc::clone(&engine)),
                engine,
                outputs: Arc::default(),
                calls: CallGate::default(),
            })) as *mut c_void
        }
        Err(e) => {
            eprintln!("ji_create_predictor: {e}");
            std::ptr::null_mut()
        }
    }
}

/// Destroys a predictor and everything it handed out. NULL is accepted. Never twice.
///
/// Calls already inside the library on this predictor when this begins are waited for: a
/// running call finishes and returns its result; a `ji_calc_image_asyn` waiting for queue
/// space returns -1 (no callback). Asynchronous requests already accepted are finished first:
/// each gets its callback before this returns, none comes after. A call that *starts* after
/// this has begun uses a destroyed predictor: that is the caller's error (undefined), as on
/// the platform. Called from inside one of this predictor's own callbacks it cannot wait for
/// itself: it destroys nothing and says so on stderr and in `evsdk_last_error()`.
///
/// Destroying the last predictor (or handle) on CUDA returns the GPU memory libtorch's
/// caching allocator holds free to the driver; the model itself stays prepared on the GPU for
/// the next predictor of the same file (loading it anew at every create would cost its
/// kernels again and leak host and GPU memory in libtorch).
///
/// # Safety
/// `predictor` is NULL or a live pointer from `ji_create_predictor`.
#[no_mangle]
pub unsafe extern "C" fn ji_destroy_predictor(predictor: *mut c_void) {
    let _ = catch(|| {
        // SAFETY: NULL or a live pointer from ji_create_predictor (caller contract).
        if let Some(pred) = unsafe { (predictor as *const Predictor).as_ref() } {
            if pred.asyn.on_worker_thread() {
                let msg = "ji_destroy_predictor: called from the predictor's own callback; \
                           the predictor is not destroyed (call it from another thread)";
                eprintln!("{msg}");
                set_last_error(msg);
                return Ok(());
            }
            // Drain while the predictor is whole: callbacks may still call into it. Then wait
            // for the calls already inside (submitters woken by the shutdown return -1).
            pred.asyn.shutdown();
            pred.calls.wait_idle();
            // SAFETY: a live pointer from ji_create_predictor, destroyed once (caller contract).
            drop(unsafe { Box::from_raw(predictor as *mut Predictor) });
        }
        Ok(())
    });
}

/// Classifies a raw frame: `type` 16 = CV_8UC3 (BGR), 24 = CV_8UC4 (BGRA), 0 = CV_8UC1 (gray);
/// `step` is the row pitch in bytes (0 = packed). `event` (may be NULL) receives the code
/// (0 alarm, 1 normal, -1 failed) and the JSON (the result, or an error object).
/// Returns 0, -3 for bad parameters, -1 for other failures.
///
/// `outFrame` (may be NULL) receives an unmodified packed copy of the input. On failure it is
/// set to an empty frame (`data` NULL, sizes 0), as `ji_calc_image` clears its outputs, unless
/// it is the same struct as `inFrame` (inputs are never modified).
///
/// Ownership: `event->json` and `outFrame->data` belong to the predictor: do not free them.
/// They stay valid until the next `ji_*` call on the same predictor from the same thread,
/// or `ji_destroy_predictor`; if the thread ends first, until `JI_RETIRED_RESULTS` (64)
/// more threads' results have been retired after them (a result may be read after joining
/// the thread that asked for it).
///
/// Threads: a predictor may be called from several threads at once; each thread has its own
/// `event->json` and out frames, so a call on another thread never invalidates yours.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `inFrame` NULL or valid with `data` spanning
/// `step * (rows - 1) + cols * channels` bytes; `args` NULL or NUL-terminated; `outFrame` and
/// `event` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_frame(
    predictor: *mut c_void,
    inFrame: *const JI_CV_FRAME,
    args: *const c_char,
    outFrame: *mut JI_CV_FRAME,
    event: *mut JI_EVENT,
) -> c_int {
    // SAFETY: `event` is NULL or writable (caller contract).
    let ev = unsafe { event.as_mut() }.map(|e| (&mut e.code, &mut e.json));
    let rc = run_call(predictor, ev, |pred| {
        // SAFETY: `inFrame` is NULL or valid (caller contract). Copied out, so writing
        // `outFrame` below cannot alias a live borrow even when both point to one struct.
        let f = unsafe { inFrame.as_ref() }
            .map(|f| JI_CV_FRAME { ..*f })
            .ok_or_else(|| Error::InvalidArgument("inFrame is NULL".into()))?;
        let channels = match f.r#type {
            JI_CV_8UC3 => 3,
            JI_CV_8UC4 => 4,
            JI_CV_8UC1 => 1,
            t => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported frame type {t} (16 = CV_8UC3, 24 = CV_8UC4, 0 = CV_8UC1)"
                )))
            }
        };
        if f.rows <= 0 || f.cols <= 0 || f.step < 0 {
            return Err(Error::InvalidArgument(format!(
                "frame size {}x{} with step {} is invalid",
                f.cols, f.rows, f.step
            )));
        }
        // SAFETY: `args` is NULL or NUL-terminated (caller contract).
        let args = unsafe { opt_str(args, "args") }?;
        // SAFETY: `data` spans the geometry (caller contract); raw_frame checks the geometry
        // against max_image_pixels before it makes the view.
        let frame = unsafe {
            raw_frame(
                f.data as *const u8,
                f.cols as u32,
                f.rows as u32,
                f.step as usize,
                channels,
                pred.engine.max_image_pixels(),
            )
        }?;
        let v = pred.engine.run_frame_json(&frame, args)?;
        // SAFETY: `outFrame` is NULL or writable (caller contract).
        if let Some(out) = unsafe { outFrame.as_mut() } {
            let row = f.cols as usize * channels as usize;
            let data = pred.with_outputs(|o| {
                frame.packed_copy_into(&mut o.frame);
                o.frame.as_mut_ptr()
            });
            *out = JI_CV_FRAME {
                rows: f.rows,
                cols: f.cols,
                r#type: f.r#type,
                data: data as *mut c_void,
                step: row as c_int,
            };
        }
        Ok(v)
    });
    if rc != JISDK_RET_SUCCEED && !outFrame.is_null() && !std::ptr::eq(outFrame, inFrame) {
        // SAFETY: non-NULL and writable (caller contract), and not the input.
        unsafe {
            *outFrame = JI_CV_FRAME {
                rows: 0,
                cols: 0,
                r#type: 0,
                data: std::ptr::null_mut(),
                step: 0,
            }
        };
    }
    rc
}

/// Classifies an encoded image (JPEG, PNG, BMP, ...) held in memory. `outFile` (may be NULL)
/// receives the input image unchanged (classification draws nothing). Event and return codes
/// as `ji_calc_frame`; a NULL `buffer` or a `length` of 0 or less is -3.
///
/// Ownership: `event->json` belongs to the predictor: do not free it. It stays valid until the
/// next `ji_*` call on the same predictor from the same thread, or `ji_destroy_predictor`; if
/// the thread ends first, until `JI_RETIRED_RESULTS` (64) more threads' results have been
/// retired after it.
///
/// Threads: a predictor may be called from several threads at once; each thread has its own
/// `event->json`.
///
/// # Safety
/// `buffer` points to `length` readable bytes; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_buffer(
    predictor: *mut c_void,
    buffer: *const c_void,
    length: c_int,
    args: *const c_char,
    outFile: *const c_char,
    event: *mut JI_EVENT,
) -> c_int {
    // SAFETY: `event` is NULL or writable (caller contract).
    let ev = unsafe { event.as_mut() }.map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        if buffer.is_null() {
            return Err(Error::InvalidArgument("buffer is NULL".into()));
        }
        if length <= 0 {
            return Err(Error::InvalidArgument(format!(
                "length {length} is not a positive byte count"
            )));
        }
        // SAFETY: NULL or NUL-terminated (caller contract).
        let args = unsafe { opt_str(args, "args") }?;
        // SAFETY: non-NULL, `length` (> 0) readable bytes (caller contract).
        let bytes = unsafe { std::slice::from_raw_parts(buffer as *const u8, length as usize) };
        let v = pred.engine.run_encoded_json(bytes, None, args)?;
        // SAFETY: NULL or NUL-terminated (caller contract).
        unsafe { write_out_file(outFile, bytes) }?;
        Ok(v)
    })
}

/// Classifies an image file. `outFile` (may be NULL) receives a copy of the input file.
/// Event and return codes as `ji_calc_frame`; an unreadable file is -1.
///
/// Ownership: `event->json` belongs to the predictor: do not free it. It stays valid until the
/// next `ji_*` call on the same predictor from the same thread, or `ji_destroy_predictor`; if
/// the thread ends first, until `JI_RETIRED_RESULTS` (64) more threads' results have been
/// retired after it.
///
/// Threads: a predictor may be called from several threads at once; each thread has its own
/// `event->json`.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_file(
    predictor: *mut c_void,
    inFile: *const c_char,
    args: *const c_char,
    outFile: *const c_char,
    event: *mut JI_EVENT,
) -> c_int {
    // SAFETY: `event` is NULL or writable (caller contract).
    let ev = unsafe { event.as_mut() }.map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        // SAFETY: the strings are NULL or NUL-terminated (caller contract).
        let path = unsafe { required_path(inFile, "inFile") }?;
        // SAFETY: as above.
        let args = unsafe { opt_str(args, "args") }?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let v = pred.engine.run_encoded_json(&bytes, Some(path), args)?;
        // SAFETY: as above.
        unsafe { write_out_file(outFile, &bytes) }?;
        Ok(v)
    })
}

/// Writes `bytes` to `out_file` unless it is NULL or empty.
///
/// # Safety
/// `out_file` is NULL or NUL-terminated.
unsafe fn write_out_file(out_file: *const c_char, bytes: &[u8]) -> Result<()> {
    // SAFETY: NULL or NUL-terminated, so its first byte is readable when non-NULL.
    if out_file.is_null() || unsafe { *out_file } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let path = unsafe { required_path(out_file, "outFile") }?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Video analysis is not implemented: returns `JISDK_RET_UNUSED` (-2).
///
/// # Safety
/// Any arguments are accepted.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_video_file(
    predictor: *mut c_void,
    inFile: *const c_char,
    args: *const c_char,
    outFile: *const c_char,
    jsonFile: *const c_char,
) -> c_int {
    let _ = (predictor, inFile, args, outFile, jsonFile);
    set_last_error("ji_calc_video_file is not implemented");
    JISDK_RET_UNUSED
}

/// The most frames one `ji_calc_image` call accepts (more is -3): a batch is held in memory
/// whole and runs as one forward pass.
pub const JI_MAX_IN_COUNT: c_uint = 32;

/// Checks a 4.x input frame and makes the view of its pixels that the rule on
/// `ji_calc_image` allows: never more than `nDataLen` says the buffer holds. `max_pixels`:
/// the image-size limit, checked before anything is sized from the geometry; None when the
/// caller applies it later (the asynchronous mode reports it through the callback).
///
/// # Safety
/// `info.pData` is NULL or points to a buffer of the size `nDataLen` describes.
pub(super) unsafe fn image_frame<'a>(
    info: &JiImageInfo,
    max_pixels: Option<u64>,
) -> Result<RawFrame<'a>> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if info.nFormat != JI_IMAGE_TYPE_BGR {
        return bad(format!(
            "nFormat {} is not supported (only JI_IMAGE_TYPE_BGR = 0)",
            info.nFormat
        ));
    }
    if info.nDataType != JI_UNSIGNED_CHAR {
        return bad(format!(
            "nDataType {} is not supported (only JI_UNSIGNED_CHAR = 2: 8-bit BGR)",
            info.nDataType
        ));
    }
    if info.pData.is_null() {
        return bad("pData is NULL".into());
    }
    let (w, h) = (info.nWidth, info.nHeight);
    // Size (and pixel limit) first, with a packed row: nothing below is sized from an absurd
    // geometry.
    if let Some(limit) = max_pixels {
        RawFrame::check_pixel_limit(w, h, limit)?;
    }
    RawFrame::check_shape(w, h, w as usize * 3, 3)?;
    let row = w as u64 * 3;
    let stride = info.nWidthStride as u64;
    let len = info.nDataLen as u64;
    if len == 0 {
        return bad(
            "nDataLen is 0: give the buffer's size in bytes (or nWidth*nHeight, its pixel count)"
                .into(),
        );
    }
    // The bytes a row pitch spans, and whether nDataLen vouches for them: nDataLen in bytes,
    // or the pixel count nWidth*nHeight (cv::Mat::total(), as the platform's test tool fills
    // it) of a packed buffer of 3 bytes per pixel.
    let span = |pitch: u64| pitch.saturating_mul(h as u64 - 1).saturating_add(row);
    let covered = |need: u64| len >= need || (len == w as u64 * h as u64 && 3 * len >= need);
    let pitch = if stride == 0 || h == 1 {
        row // packed, or a single row: the pitch reads nothing
    } else if stride < w as u64 {
        return bad(format!(
            "nWidthStride {stride} is smaller than nWidth {w} (neither pixels nor bytes)"
        ));
    } else if stride < row {
        stride * 3 // too small to be bytes: pixels
    } else {
        match (covered(span(stride * 3)), covered(span(stride))) {
            (true, false) => stride * 3,
            (false, true) => stride,
            (true, true) => {
                return bad(format!(
                    "nWidthStride {stride} may be pixels or bytes (it is at least 3 * nWidth = \
                     {row}) and nDataLen {len} fits both readings: refused rather than guessed; \
                     pass the stride in bytes (cv::Mat::step) with nDataLen the buffer's size, \
                     or pack the rows (nWidthStride = nWidth)"
                ))
            }
            (false, false) => stride, // reported below as a short buffer
        }
    };
    let need = span(pitch);
    if !covered(need) {
        return bad(format!(
            "frame buffer too small: {w}x{h} with a row pitch of {pitch} bytes spans {need} \
             bytes, but nDataLen {len} (bytes, or a pixel count of 3 bytes each when it equals \
             nWidth*nHeight) does not cover them"
        ));
    }
    let need = usize::try_from(need)
        .map_err(|_| Error::InvalidArgument("frame geometry overflows".into()))?;
    let frame = RawFrame {
        // SAFETY: `pData` points to the buffer nDataLen describes (caller contract), and the
        // `need` bytes lie within what nDataLen vouches for (checked above).
        pixels: unsafe { std::slice::from_raw_parts(info.pData as *const u8, need) },
        width: w,
        height: h,
        stride: pitch as usize,
        channels: 3,
    };
    frame.validate_shape()?;
    Ok(frame)
}

/// ev_sdk 4.x: classifies `nInCount` (1 to `JI_MAX_IN_COUNT`) BGR frames. One frame gives
/// that frame's result JSON; several run as one batch through the model and give
/// `{"algorithm_data": {"is_alert": any, "target_info": [per frame]}, "model_data":
/// {"frames": n}, "frames": [per-frame results in order]}`. Returns 0, -3 (bad parameters)
/// or -1.
///
/// Input frames: `nFormat` must be `JI_IMAGE_TYPE_BGR` and `nDataType` `JI_UNSIGNED_CHAR`;
/// `nHeightStride` is not used. Nothing beyond what `nDataLen` allows is ever read:
/// `nDataLen` is the buffer's size in bytes, or, as the platform's test tool fills it, the
/// pixel count `nWidth * nHeight` of a packed buffer of 3 bytes per pixel. The platform uses
/// both units for `nWidthStride` (its test tool pixels, its sample code `cv::Mat::step`
/// bytes), so: 0 means packed rows; a value below `3 * nWidth` can only be pixels; a value of
/// at least `3 * nWidth` is read in the unit that `nDataLen` can cover, and when `nDataLen`
/// covers both readings the frame is refused (-3, with the reason in the event JSON and
/// `evsdk_last_error()`) rather than guessed. A stride below `nWidth`, or a buffer too small
/// for the frame, is -3.
///
/// `pOutFrames`/`nOutCount` (may be NULL) receive unmodified packed copies of the inputs
/// (`nWidthStride` = `nWidth` pixels, `nDataLen` in bytes); on failure they are set to NULL
/// and 0.
///
/// Ownership: `event->json`, `*pOutFrames` and every out frame's `pData` belong to the
/// predictor: do not free them. They stay valid until the next `ji_*` call on the same
/// predictor from the same thread, or `ji_destroy_predictor`; if the thread ends first, until
/// `JI_RETIRED_RESULTS` (64) more threads' results have been retired after them.
///
/// Threads: a predictor may be called from several threads at once; each thread has its own
/// results, so a call on another thread never invalidates yours.
///
/// # Safety
/// `pInFrames` points to `nInCount` readable `JiImageInfo`s whose `pData` holds at least the
/// bytes their `nDataLen` describes; `args` NULL or NUL-terminated; the out pointers NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_image(
    predictor: *mut c_void,
    pInFrames: *const JiImageInfo,
    nInCount: c_uint,
    args: *const c_char,
    pOutFrames: *mut *mut JiImageInfo,
    nOutCount: *mut c_uint,
    event: *mut JiEvent,
) -> JiErrorCode {
    // Nothing from an earlier call, nor garbage, is left for the caller to read on failure.
    // SAFETY: the out pointers are NULL or writable (caller contract).
    if let Some(p) = unsafe { pOutFrames.as_mut() } {
        *p = std::ptr::null_mut();
    }
    // SAFETY: as above.
    if let Some(c) = unsafe { nOutCount.as_mut() } {
        *c = 0;
    }
    // SAFETY: `event` is NULL or writable (caller contract).
    let ev = unsafe { event.as_mut() }.map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        if pInFrames.is_null() || nInCount == 0 {
            return Err(Error::InvalidArgument(
                "pInFrames is NULL or nInCount is 0".into(),
            ));
        }
        if nInCount > JI_MAX_IN_COUNT {
            return Err(Error::InvalidArgument(format!(
                "nInCount {nInCount} is more than the {JI_MAX_IN_COUNT} frames one call accepts"
            )));
        }
        // SAFETY: `args` is NULL or NUL-terminated (caller contract).
        let args = unsafe { opt_str(args, "args") }?;
        // SAFETY: `pInFrames` points to `nInCount` readable infos (caller contract).
        let infos = unsafe { std::slice::from_raw_parts(pInFrames, nInCount as usize) };
        let max_pixels = pred.engine.max_image_pixels();
        let mut frames = Vec::with_capacity(infos.len());
        for (i, info) in infos.iter().enumerate() {
            // SAFETY: `pData` holds what `nDataLen` describes (caller contract).
            let frame = unsafe { image_frame(info, Some(max_pixels)) }.map_err(|e| match e {
                Error::InvalidArgument(m) => Error::InvalidArgument(format!("frame {i}: {m}")),
                other => other,
            })?;
            frames.push(frame);
        }
        let v = if let [frame] = frames.as_slice() {
            pred.engine.run_frame_json(frame, args)?
        } else {
            let mut images: Vec<RgbImage> = Vec::with_capacity(frames.len());
            for frame in &frames {
                images.push(pred.engine.frame_to_rgb(frame)?);
            }
            let refs: Vec<&RgbImage> = images.iter().collect();
            Rendered::combine(pred.engine.run_batch_json(&refs, args)?)
        };
        if !pOutFrames.is_null() {
            let (ptr, n) = pred.with_outputs(|o| {
                o.frames.resize_with(frames.len(), Vec::new);
                for (frame, copy) in frames.iter().zip(o.frames.iter_mut()) {
                    frame.packed_copy_into(copy);
                }
                o.infos = infos
                    .iter()
                    .zip(o.frames.iter_mut())
                    .map(|(info, data)| JiImageInfo {
                        nWidthStride: info.nWidth,
                        nHeightStride: info.nHeight,
                        pData: data.as_mut_ptr() as *mut c_void,
                        nDataLen: data.len() as c_uint,
                        ..*info
                    })
                    .collect();
                (o.infos.as_mut_ptr(), o.infos.len())
            });
            // SAFETY: checked non-NULL above; writable (caller contract).
            unsafe { *pOutFrames = ptr };
            // SAFETY: NULL or writable (caller contract).
            if let Some(c) = unsafe { nOutCount.as_mut() } {
                *c = n as c_uint;
            }
        }
        Ok(v)
    })
}

/// Changes the predictor's defaults for later calls: a JSON object with `thresh`, `topk`,
/// `confidence_decimals` (other keys ignored; keys not given keep their values). Returns 0,
/// or -3 for invalid JSON / values.
///
/// Threads: safe to call while other threads run calls on the predictor (they use the values
/// they started with); concurrent updates are applied one after another, none is lost.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `args` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ji_update_config(predictor: *mut c_void, args: *const c_char) -> c_int {
    run_call(predictor, None, |pred| {
        // SAFETY: NULL or NUL-terminated (caller contract).
        let args = unsafe { opt_str(args, "args") }?;
        pred.engine.update_config(args)?;
        Ok(Rendered::default()) // no event: nothing is rendered
    })
}

/// Writes `{"sdk_version": .., "algo_version": .., "cuda_available": .., "cuda": {"driver": ..,
/// "driver_devices": .., "backend": .., "runtime": .., "devices": .., "reason": ..}}`
/// (NUL-terminated, at most `MAX_VERSION_LENGTH` = 512 bytes with the NUL) into the caller's
/// buffer. `algo_version` comes from the config (`$EV_SDK_CONFIG` or the platform path); when
/// the config cannot be loaded it is "unknown" and `"config_error"` says why (at most 160
/// bytes). `cuda` says what the NVIDIA driver reports (asked through `libcuda.so.1`,
/// also before any predictor exists; this initialises the driver, as a CUDA predictor does),
/// whether libtorch's CUDA backend is loaded (by the first `"auto"` or `"cuda"` predictor),
/// the devices libtorch sees, and why CUDA cannot be used as far as known (at most 200 bytes,
/// cut further when a long `algo_version` needs the room; `null` when nothing stands against
/// it). Returns 0; -3 for NULL; -1, with an empty string written, when the JSON would not fit
/// (a very long `algo_version`): it is never cut short.
///
/// # Safety
/// `pVersion` is NULL or points to at least `MAX_VERSION_LENGTH` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ji_get_version(pVersion: *mut c_char) -> c_int {
    if pVersion.is_null() {
        set_last_error("ji_get_version: pVersion is NULL");
        return JISDK_RET_INVALIDPARAMS;
    }
    let text = catch(|| {
        let config = crate::config::Config::load(&crate::config::Config::default_path());
        let mut v = json!({
            "sdk_version": crate::SDK_VERSION,
            "algo_version": config.as_ref().map_or("unknown", |c| c.algo_version.as_str()),
            "cuda_available": crate::cuda::device_count() > 0,
            "cuda": crate::cuda::describe(),
        });
        if let Err(e) = &config {
            // Why algo_version is unknown; bounded (the buffer holds 512 bytes in all).
            v["config_error"] = crate::cuda::shorten(&e.to_string(), 160).into();
        }
        let mut text = v.to_string();
        if text.len() >= MAX_VERSION_LENGTH {
            // The CUDA reason gives way to algo_version (stderr and evsdk_model_info have it).
            crate::cuda::shorten_reason(&mut v["cuda"], text.len() + 1 - MAX_VERSION_LENGTH);
            text = v.to_string();
        }
        Ok(text)
    })
    .unwrap_or_else(|e| {
        json!({"sdk_version": crate::SDK_VERSION, "error": e.to_string()}).to_string()
    });
    let bytes = text.as_bytes();
    if bytes.len() >= MAX_VERSION_LENGTH {
        // SAFETY: pVersion points to MAX_VERSION_LENGTH writable bytes (caller contract).
        unsafe { *pVersion = 0 };
        set_last_error(&format!(
            "ji_get_version: the version JSON is {} bytes, more than the {} the buffer holds \
             with its NUL (shorten algo_version)",
            bytes.len(),
            MAX_VERSION_LENGTH - 1
        ));
        return JISDK_RET_FAILED;
    }
    // SAFETY: bytes.len() + 1 <= MAX_VERSION_LENGTH writable bytes (caller contract).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), pVersion as *mut u8, bytes.len());
        *pVersion.add(bytes.len()) = 0;
    }
    JISDK_RET_SUCCEED
}

/// ev_sdk 4.x asynchronous mode: sets the callback that answers this predictor's later
/// `ji_calc_image_asyn` requests (each request keeps the callback set when it was submitted;
/// NULL turns the mode off for later requests) and starts the predictor's `async_workers`
/// worker threads. Returns 0, or -3 for a NULL predictor.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `callback` NULL or a function that may be called
/// from another thread.
#[no_mangle]
pub unsafe extern "C" fn ji_set_callback(
    predictor: *mut c_void,
    callback: JiCallBack,
) -> JiErrorCode {
    // SAFETY: `predictor` is NULL or live (caller contract), as set_callback requires.
    match catch(|| unsafe { super::ji_async::set_callback(predictor, callback) }) {
        Ok(()) => JISDK_RET_SUCCEED,
        Err(e) => ji_code(&e),
    }
}

/// ev_sdk 4.x asynchronous `ji_calc_image`: queues `nInCount` BGR frames and returns at once.
///
/// **Returns** 0 when the request is queued: its callback then comes exactly once (what it
/// receives is allocated before this returns, so nothing can drop it later). Otherwise no
/// callback comes: -3 for what `ji_calc_image` reports as -3 (NULL predictor or frames,
/// `nInCount` 0, unsupported format, bad geometry, invalid `args`); -1 when no callback is set
/// (`ji_set_callback`), when the predictor is being destroyed, or out of memory; -99
/// (`JISDK_RET_OVERMAXQPS`) when called from inside one of this predictor's callbacks while
/// its queue is full (waiting there would wait for itself).
///
/// **Queue**: at most `async_queue` requests (config) wait; a call that finds the queue full
/// waits until a worker takes requests from it. The frames are copied before the call
/// returns: the caller's memory may be reused at once (a request with a frame over
/// `max_image_pixels` is not copied: its callback reports the error). `args` apply as at
/// submission time.
///
/// **Callback** `cb(output, pUserData)`: from one of the predictor's worker threads, one
/// callback at a time, in submission order, with `pUserData` unchanged. `output->event` is what `ji_calc_image` would give
/// (code 0 alarm, 1 normal, -1 failed; `json` the result or the error JSON, for example an
/// image over `max_image_pixels` or a failing model); `output->event.json` stays valid until
/// the callback returns (copy it to keep it). `output->outPic`: for a successful one-frame
/// request (and `async_out_frame`, on by default) an unmodified packed copy of the input frame
/// (`nWidthStride` = `nWidth`, `nDataLen` in bytes), otherwise all zero with `pData` NULL.
///
/// **Ownership**: `output` comes from C++ `new` and `output->outPic.pData` from
/// `new unsigned char[]`; both belong to the callback: `delete [] (unsigned char
/// *)output->outPic.pData; delete output;` (as the platform's test program does). C callers
/// may instead pass them to `ji_free_async_result` (not to `free`).
///
/// **Lanes and batching**: `async_workers` threads (default 2) run requests concurrently,
/// each as a synchronous call would (the same graph, the same libtorch thread count), so the
/// results are byte for byte those of `ji_calc_image`. With `async_max_batch` > 1 (default 1)
/// a worker runs up to that many frames of waiting requests as one forward pass (waiting up
/// to `async_max_wait_ms` for them; a batch that fails is rerun request by request): the
/// classes are the same, but libtorch sums in another order for another batch size, so a
/// confidence may differ by float rounding (about 1e-6) and hence in its last printed digit.
///
/// **Threads**: any thread may submit. A callback may call this library, including
/// `ji_calc_image` and `ji_calc_image_asyn` on the same predictor, but not
/// `ji_destroy_predictor` on it. `ji_destroy_predictor` answers every accepted request before
/// it returns, and a submission already waiting for queue space when it begins returns -1;
/// no callback comes after. Submitting after `ji_destroy_predictor` has begun is the caller's
/// error (see there).
///
/// **Exceptions**: a C++ exception that escapes the callback is caught by the library and
/// reported on stderr; the following requests go on. (Catch your own: whatever the callback
/// had not freed when it threw is lost.)
///
/// # Safety
/// As `ji_calc_image`; `pUserData` is passed back untouched and never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_image_asyn(
    predictor: *mut c_void,
    pInFrames: *const JiImageInfo,
    nInCount: c_uint,
    args: *const c_char,
    pUserData: *mut c_void,
) -> JiErrorCode {
    // SAFETY: the caller's contract for this function is submit's.
    unsafe { super::ji_async::submit(predictor, pInFrames, nInCount, args, pUserData) }
}

// The 4.x header also declares a face-library API for face-recognition tasks. A classifier has
// no face library, but a program built against that header may link or look up these names,
// so they exist and say "not implemented".

/// Face library (4.x, face-recognition tasks only): not implemented, returns
/// `JISDK_RET_UNUSED` (-2).
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_create_face_db(
    predictor: *mut c_void,
    faceDBName: *const c_char,
    faceDBId: c_int,
    faceDBDes: *const c_char,
) -> JiErrorCode {
    let _ = (predictor, faceDBName, faceDBId, faceDBDes);
    JISDK_RET_UNUSED
}

/// Face library: not implemented, returns `JISDK_RET_UNUSED` (-2).
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_delete_face_db(predictor: *mut c_void, faceDBId: c_int) -> JiErrorCode {
    let _ = (predictor, faceDBId);
    JISDK_RET_UNUSED
}

/// Face library: not implemented, returns `JISDK_RET_UNUSED` (-2); `info` is left untouched.
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_get_face_db_info(
    predictor: *mut c_void,
    faceDBId: c_int,
    info: *mut c_char,
) -> JiErrorCode {
    let _ = (predictor, faceDBId, info);
    JISDK_RET_UNUSED
}

/// Face library: not implemented, returns `JISDK_RET_UNUSED` (-2); `imagePath` is left untouched.
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_face_add(
    predictor: *mut c_void,
    faceDBId: c_int,
    faceName: *const c_char,
    faceId: c_int,
    data: *const c_char,
    dataType: c_int,
    imagePath: *mut c_char,
) -> JiErrorCode {
    let _ = (
        predictor, faceDBId, faceName, faceId, data, dataType, imagePath,
    );
    JISDK_RET_UNUSED
}

/// Face library: not implemented, returns `JISDK_RET_UNUSED` (-2); `imagePath` is left untouched.
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_face_update(
    predictor: *mut c_void,
    faceDBId: c_int,
    faceName: *const c_char,
    faceId: c_int,
    data: *const c_char,
    dataType: c_int,
    imagePath: *mut c_char,
) -> JiErrorCode {
    let _ = (
        predictor, faceDBId, faceName, faceId, data, dataType, imagePath,
    );
    JISDK_RET_UNUSED
}

/// Face library: not implemented, returns `JISDK_RET_UNUSED` (-2).
///
/// # Safety
/// Any arguments are accepted; none is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ji_face_delete(
    predictor: *mut c_void,
    faceDBId: c_int,
    faceId: c_int,
) -> JiErrorCode {
    let _ = (predictor, faceDBId, faceId);
    JISDK_RET_UNUSED
}
