//! The ev_sdk platform ABI (3.x `ji_calc_frame` & co., 4.x `ji_calc_image`) over the same
//! engine as `evsdk_*`. Types and constants carry the platform header's names so code written
//! for the platform's `ji.h` compiles against ours.
//!
//! Ownership: `event->json`, `outFrame->data` and `*pOutFrames` are owned by the predictor and
//! stay valid until the next call on that predictor from the same thread (or its destruction).
//! The asynchronous mode (`ji_set_callback`, `ji_calc_image_asyn`) lives in `ji_async.rs`.

#![allow(non_camel_case_types, non_snake_case)]

use super::ji_async::AsyncQueue;
use super::{catch, json_cstring, opt_str, required_path, set_last_error};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ffi::evsdk::raw_frame;
use crate::frame::RawFrame;
use crate::image::RgbImage;
use crate::output;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CString};
use std::sync::{Arc, Mutex};
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

/// ev_sdk 4.x image. `nWidthStride` is in pixels; `nDataLen` is not relied on.
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

pub(super) struct Predictor {
    pub(super) engine: Arc<Engine>,
    outputs: Mutex<HashMap<ThreadId, Box<ThreadOutputs>>>,
    /// The asynchronous mode's queue and worker (started by `ji_set_callback`).
    pub(super) asyn: AsyncQueue,
}

impl Predictor {
    /// Runs `f` with this thread's output slot (boxed, so pointers into it survive rehashing).
    fn with_outputs<T>(&self, f: impl FnOnce(&mut ThreadOutputs) -> T) -> T {
        let mut map = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(std::thread::current().id()).or_default())
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

/// The event for a successful result: alarm when `is_alert`.
pub(super) fn event_code(v: &Value) -> c_int {
    if v["algorithm_data"]["is_alert"] == Value::Bool(true) {
        JISDK_CODE_ALARM
    } else {
        JISDK_CODE_NORMAL
    }
}

/// Runs one ji_* call: fills the event (result or error JSON) and maps errors to ji codes.
fn run_call(
    p: *mut c_void,
    event: Option<(&mut c_int, &mut *const c_char)>,
    f: impl FnOnce(&Predictor) -> Result<Value>,
) -> c_int {
    let result = catch(|| f(predictor(p)?));
    let (rc, code, value) = match result {
        Ok(v) => (JISDK_RET_SUCCEED, event_code(&v), v),
        Err(e) => (
            ji_code(&e),
            JISDK_CODE_FAILED,
            output::error_json(&e, ji_code(&e)),
        ),
    };
    if let Some((ev_code, ev_json)) = event {
        *ev_code = code;
        *ev_json = match predictor(p) {
            Ok(pred) => pred.store_json(&value),
            // No predictor to own a string: a static one says why.
            Err(_) => NULL_PREDICTOR_JSON.as_ptr() as *const c_char,
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

/// Global teardown. Predictors still alive stay valid; this library keeps no global state.
#[no_mangle]
pub extern "C" fn ji_reinit() {}

/// Creates a predictor from `$EV_SDK_CONFIG`, else `/usr/local/ev_sdk/config/algo_config.json`.
/// Returns NULL on failure; the reason is printed to stderr and available from
/// `evsdk_last_error()`. Release with `ji_destroy_predictor`. `pdtype` is accepted and ignored.
#[no_mangle]
pub extern "C" fn ji_create_predictor(pdtype: JiPredictorType) -> *mut c_void {
    let _ = pdtype;
    match catch(|| Engine::from_config_path(None)) {
        Ok(engine) => {
            let engine = Arc::new(engine);
            Box::into_raw(Box::new(Predictor {
                asyn: AsyncQueue::new(Arc::clone(&engine)),
                engine,
                outputs: Mutex::new(HashMap::new()),
            })) as *mut c_void
        }
        Err(e) => {
            eprintln!("ji_create_predictor: {e}");
            std::ptr::null_mut()
        }
    }
}

/// Destroys a predictor and everything it handed out. NULL is accepted. Never twice, and not
/// while another thread is still inside a call on it. Asynchronous requests still queued are
/// finished first: each gets its callback before this returns, none comes after. Called from
/// inside one of this predictor's own callbacks it cannot wait for itself: it destroys nothing
/// and says so on stderr and in `evsdk_last_error()`.
///
/// # Safety
/// `predictor` is NULL or a live pointer from `ji_create_predictor`.
#[no_mangle]
pub unsafe extern "C" fn ji_destroy_predictor(predictor: *mut c_void) {
    let _ = catch(|| {
        if let Some(pred) = (predictor as *const Predictor).as_ref() {
            if pred.asyn.on_worker_thread() {
                let msg = "ji_destroy_predictor: called from the predictor's own callback; \
                           the predictor is not destroyed (call it from another thread)";
                eprintln!("{msg}");
                set_last_error(msg);
                return Ok(());
            }
            // Drain while the predictor is whole: callbacks may still call into it.
            pred.asyn.shutdown();
            drop(Box::from_raw(predictor as *mut Predictor));
        }
        Ok(())
    });
}

/// Classifies a raw frame: `type` 16 = CV_8UC3 (BGR), 24 = CV_8UC4 (BGRA), 0 = CV_8UC1 (gray);
/// `step` is the row pitch in bytes (0 = packed). `outFrame` (may be NULL) receives an
/// unmodified packed copy of the input, owned by the predictor. `event` (may be NULL) receives
/// the code (0 alarm, 1 normal, -1 failed) and the JSON (result, or an error object).
/// Returns 0, -3 for bad parameters, -1 for other failures.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `inFrame` NULL or valid with `data` spanning
/// `step * (rows - 1) + cols * channels` bytes; `args` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ji_calc_frame(
    predictor: *mut c_void,
    inFrame: *const JI_CV_FRAME,
    args: *const c_char,
    outFrame: *mut JI_CV_FRAME,
    event: *mut JI_EVENT,
) -> c_int {
    let ev = event.as_mut().map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        let f = inFrame
            .as_ref()
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
        let args = opt_str(args, "args")?;
        let frame = raw_frame(
            f.data as *const u8,
            f.cols as u32,
            f.rows as u32,
            f.step as usize,
            channels,
        )?;
        let img = pred.engine.frame_to_rgb(&frame)?;
        let v = pred.engine.run_json(&img, args)?;
        if let Some(out) = outFrame.as_mut() {
            let row = f.cols as usize * channels as usize;
            let copy = frame.packed_copy();
            let data = pred.with_outputs(|o| {
                o.frame = copy;
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
    })
}

/// Classifies an encoded image (JPEG, PNG, BMP, ...) held in memory. `outFile` (may be NULL)
/// receives the input image unchanged (classification draws nothing). Event and return codes
/// as `ji_calc_frame`; a negative `length` is -3.
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
    let ev = event.as_mut().map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        if buffer.is_null() {
            return Err(Error::InvalidArgument("buffer is NULL".into()));
        }
        if length < 0 {
            return Err(Error::InvalidArgument(format!(
                "length {length} is negative"
            )));
        }
        let args = opt_str(args, "args")?;
        let bytes = std::slice::from_raw_parts(buffer as *const u8, length as usize);
        let v = pred.engine.run_encoded_json(bytes, None, args)?;
        write_out_file(outFile, bytes)?;
        Ok(v)
    })
}

/// Classifies an image file. `outFile` (may be NULL) receives a copy of the input file.
/// Event and return codes as `ji_calc_frame`; an unreadable file is -1.
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
    let ev = event.as_mut().map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        let path = required_path(inFile, "inFile")?;
        let args = opt_str(args, "args")?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let v = pred.engine.run_encoded_json(&bytes, Some(path), args)?;
        write_out_file(outFile, &bytes)?;
        Ok(v)
    })
}

unsafe fn write_out_file(out_file: *const c_char, bytes: &[u8]) -> Result<()> {
    if out_file.is_null() || *out_file == 0 {
        return Ok(());
    }
    let path = required_path(out_file, "outFile")?;
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

/// ev_sdk 4.x: classifies `nInCount` BGR frames (`nWidthStride` in pixels; 0 = `nWidth`).
/// One frame gives that frame's result JSON; several run as one batch through the model and
/// give `{"algorithm_data": {"is_alert": any, "target_info": [per frame]}, "model_data":
/// {"frames": n}, "frames": [per-frame results in order]}`. `pOutFrames`/`nOutCount` (may be
/// NULL) receive predictor-owned unmodified copies of the inputs; on failure they are set to
/// NULL and 0. Returns 0, -3 or -1.
///
/// # Safety
/// `pInFrames` points to `nInCount` valid images whose `pData` spans
/// `nWidthStride * 3 * (nHeight - 1) + nWidth * 3` bytes.
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
    if let Some(p) = pOutFrames.as_mut() {
        *p = std::ptr::null_mut();
    }
    if let Some(c) = nOutCount.as_mut() {
        *c = 0;
    }
    let ev = event.as_mut().map(|e| (&mut e.code, &mut e.json));
    run_call(predictor, ev, |pred| {
        if pInFrames.is_null() || nInCount == 0 {
            return Err(Error::InvalidArgument(
                "pInFrames is NULL or nInCount is 0".into(),
            ));
        }
        let args = opt_str(args, "args")?;
        let infos = std::slice::from_raw_parts(pInFrames, nInCount as usize);
        let mut images: Vec<RgbImage> = Vec::with_capacity(infos.len());
        let mut copies = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            let frame = image_frame(i, info)?;
            images.push(pred.engine.frame_to_rgb(&frame).map_err(|e| match e {
                Error::InvalidArgument(m) => Error::InvalidArgument(format!("frame {i}: {m}")),
                other => other,
            })?);
            if !pOutFrames.is_null() {
                copies.push(frame.packed_copy());
            }
        }
        let refs: Vec<&RgbImage> = images.iter().collect();
        let v = combine_results(pred.engine.run_batch_json(&refs, args)?);
        if !pOutFrames.is_null() {
            let (ptr, n) = pred.with_outputs(|o| {
                o.frames = copies;
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
            *pOutFrames = ptr;
            if let Some(c) = nOutCount.as_mut() {
                *c = n as c_uint;
            }
        }
        Ok(v)
    })
}

/// Checks one 4.x input frame and views its pixels (`i` names the frame in errors).
///
/// # Safety
/// `info.pData` is NULL or spans the bytes the geometry describes.
pub(super) unsafe fn image_frame<'a>(i: usize, info: &JiImageInfo) -> Result<RawFrame<'a>> {
    if info.nFormat != JI_IMAGE_TYPE_BGR {
        return Err(Error::InvalidArgument(format!(
            "frame {i}: nFormat {} is not supported (only JI_IMAGE_TYPE_BGR = 0)",
            info.nFormat
        )));
    }
    let stride_px = if info.nWidthStride == 0 {
        info.nWidth
    } else {
        info.nWidthStride
    };
    raw_frame(
        info.pData as *const u8,
        info.nWidth,
        info.nHeight,
        stride_px as usize * 3,
        3,
    )
    .map_err(|e| Error::InvalidArgument(format!("frame {i}: {}", strip(&e))))
}

/// The event JSON of a 4.x call: one frame's result as it is, several combined in order.
pub(super) fn combine_results(mut results: Vec<Value>) -> Value {
    if results.len() == 1 {
        return results.remove(0);
    }
    let alert = results.iter().any(|r| event_code(r) == JISDK_CODE_ALARM);
    let targets: Vec<Value> = results
        .iter()
        .map(|r| r["algorithm_data"]["target_info"].clone())
        .collect();
    json!({
        "algorithm_data": {"is_alert": alert, "target_info": targets},
        "model_data": {"frames": results.len()},
        "frames": results,
    })
}

fn strip(e: &Error) -> String {
    match e {
        Error::InvalidArgument(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Changes the predictor's defaults for later calls: a JSON object with `thresh`, `topk`,
/// `confidence_decimals` (other keys ignored). Returns 0, or -3 for invalid JSON / values.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `args` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ji_update_config(predictor: *mut c_void, args: *const c_char) -> c_int {
    run_call(predictor, None, |pred| {
        let args = opt_str(args, "args")?;
        pred.engine.update_config(args)?;
        Ok(Value::Null)
    })
}

/// Writes `{"sdk_version": .., "algo_version": .., "cuda_available": ..}` (NUL-terminated,
/// at most `MAX_VERSION_LENGTH` = 512 bytes with the NUL) into the caller's buffer. `algo_version` comes from the
/// config (`$EV_SDK_CONFIG` or the platform path) when it is readable. Returns 0, or -3 for NULL.
///
/// # Safety
/// `pVersion` is NULL or points to at least 512 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ji_get_version(pVersion: *mut c_char) -> c_int {
    if pVersion.is_null() {
        set_last_error("ji_get_version: pVersion is NULL");
        return JISDK_RET_INVALIDPARAMS;
    }
    let text = catch(|| {
        let config = crate::config::Config::load(&crate::config::Config::default_path()).ok();
        let v = json!({
            "sdk_version": crate::SDK_VERSION,
            "algo_version": config.as_ref().map_or("unknown", |c| c.algo_version.as_str()),
            "cuda_available": tch::Cuda::is_available(),
        });
        Ok(v.to_string())
    })
    .unwrap_or_else(|e| {
        json!({"sdk_version": crate::SDK_VERSION, "error": e.to_string()}).to_string()
    });
    let bytes = text.as_bytes();
    let n = bytes.len().min(MAX_VERSION_LENGTH - 1);
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), pVersion as *mut u8, n);
    *pVersion.add(n) = 0;
    JISDK_RET_SUCCEED
}

/// ev_sdk 4.x asynchronous mode: sets the callback that answers this predictor's later
/// `ji_calc_image_asyn` requests (each request keeps the callback set when it was submitted;
/// NULL turns the mode off for later requests) and starts the predictor's worker thread.
/// Returns 0, or -3 for a NULL predictor.
///
/// # Safety
/// `predictor` from `ji_create_predictor`; `callback` NULL or a function that may be called
/// from another thread.
#[no_mangle]
pub unsafe extern "C" fn ji_set_callback(
    predictor: *mut c_void,
    callback: JiCallBack,
) -> JiErrorCode {
    match catch(|| super::ji_async::set_callback(predictor, callback)) {
        Ok(()) => JISDK_RET_SUCCEED,
        Err(e) => ji_code(&e),
    }
}

/// ev_sdk 4.x asynchronous `ji_calc_image`: queues `nInCount` BGR frames and returns at once.
///
/// **Returns** 0 when the request is queued: its callback then comes exactly once. Otherwise
/// no callback comes: -3 for what `ji_calc_image` reports as -3 (NULL predictor or frames,
/// `nInCount` 0, unsupported format, bad geometry, invalid `args`); -1 when no callback is set
/// (`ji_set_callback`), when the predictor is being destroyed, or out of memory; -99
/// (`JISDK_RET_OVERMAXQPS`) when called from inside one of this predictor's callbacks while
/// its queue is full (waiting there would wait for itself).
///
/// **Queue**: at most `async_queue` requests (config) wait; a call that finds the queue full
/// waits until the worker takes requests from it. The frames are copied before the call
/// returns: the caller's memory may be reused at once. `args` apply as at submission time.
///
/// **Callback** `cb(output, pUserData)`: from the predictor's worker thread, in submission
/// order, with `pUserData` unchanged. `output->event` is what `ji_calc_image` would give
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
/// **Batching**: the worker runs up to `async_max_batch` frames of waiting requests as one
/// forward pass (waiting up to `async_max_wait_ms` for them); results are the same as one
/// request at a time (a batch that fails is rerun request by request).
///
/// **Threads**: any thread may submit. A callback may call this library, including
/// `ji_calc_image` and `ji_calc_image_asyn` on the same predictor, but not
/// `ji_destroy_predictor` on it. `ji_destroy_predictor` answers every queued request before it
/// returns (submissions made meanwhile get -1); no callback comes after.
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
    super::ji_async::submit(predictor, pInFrames, nInCount, args, pUserData)
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
