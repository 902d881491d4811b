//! The built libji.so, loaded with dlopen like the judge does; only its exported C functions
//! are called. Both the native `evsdk_*` API and the platform's `ji_*` API are wrapped.
//!
//! Symbols are resolved once, when a predictor is created, so a timed call is the C call and
//! nothing else. Each call returns the wall time spent inside the C function.

use libloading::{Library, Symbol};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type EvsdkInit = unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> c_int;
type EvsdkProcessFile =
    unsafe extern "C" fn(*const c_void, *const c_char, *const c_char, *mut *mut c_char) -> c_int;
type EvsdkProcessBgr = unsafe extern "C" fn(
    *const c_void,
    *const u8,
    u32,
    u32,
    usize,
    u32,
    *const c_char,
    *mut *mut c_char,
) -> c_int;
type EvsdkRelease = unsafe extern "C" fn(*mut c_void);
type EvsdkFreeString = unsafe extern "C" fn(*mut c_char);
type EvsdkLastError = unsafe extern "C" fn() -> *const c_char;
type EvsdkVersion = unsafe extern "C" fn() -> *const c_char;

type JiInit = unsafe extern "C" fn(c_int, *mut *mut c_char) -> c_int;
type JiCreatePredictor = unsafe extern "C" fn(c_int) -> *mut c_void;
type JiDestroyPredictor = unsafe extern "C" fn(*mut c_void);
type JiCalcFile = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *mut JiEvent,
) -> c_int;
type JiCalcFrame = unsafe extern "C" fn(
    *mut c_void,
    *const JI_CV_FRAME,
    *const c_char,
    *mut JI_CV_FRAME,
    *mut JI_EVENT,
) -> c_int;
type JiCalcImage = unsafe extern "C" fn(
    *mut c_void,
    *const JiImageInfo,
    c_uint,
    *const c_char,
    *mut *mut JiImageInfo,
    *mut c_uint,
    *mut JiEvent,
) -> c_int;
type JiGetVersion = unsafe extern "C" fn(*mut c_char) -> c_int;

// The ABI's types and constants come from the library crate itself (what cbindgen turns into
// include/ji.h); only the functions are resolved from the loaded libji.so.
use ji::ffi::ji::{JiEvent, JiImageInfo, JI_CV_8UC3, JI_CV_FRAME, JI_EVENT};

/// Which C API the harness drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// The platform's ji_* ABI (what the judge calls).
    Ji,
    /// The native evsdk_* API.
    Evsdk,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Ji => "ji",
            Api::Evsdk => "evsdk",
        }
    }
}

pub struct Lib {
    /// Never closed: dlclose()ing a libtorch-linked library while its thread-specific data
    /// destructors may still run (libtorch's pool threads exiting at process end) crashes
    /// the process in `__nptl_deallocate_tsd`. The judge does not unload it either.
    lib: std::mem::ManuallyDrop<Library>,
    pub path: PathBuf,
}

/// One outcome of classifying one image (or one batch): the JSON text, or the code and message.
pub type CallResult = Result<String, (i32, String)>;

/// A packed BGR image to hand to `ji_calc_image`.
#[derive(Clone)]
pub struct BgrFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Lib {
    pub fn open(path: &Path) -> Result<Lib, String> {
        // SAFETY: loading our own library runs no initialisers with preconditions.
        let lib = unsafe { Library::new(path) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        Ok(Lib {
            lib: std::mem::ManuallyDrop::new(lib),
            path: path.to_path_buf(),
        })
    }

    fn sym<T>(&self, name: &[u8]) -> Result<Symbol<'_, T>, String> {
        // SAFETY: the types above match include/ji.h.
        unsafe { self.lib.get(name) }.map_err(|e| {
            format!(
                "{} lacks {}: {e}",
                self.path.display(),
                String::from_utf8_lossy(name)
            )
        })
    }

    /// A copy of a function pointer; valid while `self` (the loaded library) lives.
    fn func<T: Copy>(&self, name: &[u8]) -> Result<T, String> {
        self.sym::<T>(name).map(|s| *s)
    }

    pub fn last_error(&self) -> String {
        match self.sym::<EvsdkLastError>(b"evsdk_last_error") {
            // SAFETY: returns a valid NUL-terminated string owned by the library.
            Ok(f) => unsafe { cstr_lossy(f()) },
            Err(e) => e,
        }
    }

    /// `ji_init(0, NULL)`: the platform calls it once before creating predictors.
    pub fn ji_init(&self) -> Result<(), String> {
        let f = self.func::<JiInit>(b"ji_init")?;
        // SAFETY: the library accepts any arguments, NULL included.
        let rc = unsafe { f(0, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(format!("ji_init failed ({rc})"));
        }
        Ok(())
    }

    /// The version as the chosen API reports it: `ji_get_version`'s JSON, or `evsdk_version`.
    pub fn version(&self, api: Api) -> Result<String, String> {
        match api {
            Api::Ji => {
                let f = self.func::<JiGetVersion>(b"ji_get_version")?;
                let mut buf = vec![0 as c_char; 512];
                // SAFETY: a 512-byte writable buffer, as the ABI requires.
                let rc = unsafe { f(buf.as_mut_ptr()) };
                if rc != 0 {
                    return Err(format!("ji_get_version failed ({rc})"));
                }
                // The library NUL-terminates within 512 bytes; make sure anyway.
                buf[511] = 0;
                // SAFETY: NUL-terminated buffer we own.
                Ok(unsafe { cstr_lossy(buf.as_ptr()) })
            }
            Api::Evsdk => {
                let f = self.func::<EvsdkVersion>(b"evsdk_version")?;
                // SAFETY: a static NUL-terminated string.
                Ok(unsafe { cstr_lossy(f()) })
            }
        }
    }
}

/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn c_string(s: &str, what: &str) -> Result<CString, (i32, String)> {
    CString::new(s).map_err(|_| (-1, format!("{what} contains a NUL byte")))
}

fn path_cstring(p: &Path) -> Result<CString, (i32, String)> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| (-1, "path contains a NUL byte".into()))
}

/// A predictor (a handle of either API), usable from the thread that owns it.
pub enum Predictor<'a> {
    Evsdk(EvsdkPredictor<'a>),
    Ji(JiPredictor<'a>),
}

impl<'a> Predictor<'a> {
    pub fn new(lib: &'a Lib, api: Api, config: Option<&Path>) -> Result<Self, String> {
        Ok(match api {
            Api::Evsdk => Predictor::Evsdk(EvsdkPredictor::new(lib, config)?),
            Api::Ji => Predictor::Ji(JiPredictor::new(lib)?),
        })
    }

    /// Classifies one image file; the duration is the time spent in the C call.
    pub fn process_file(&self, path: &Path, args: Option<&str>) -> (CallResult, Duration) {
        match self {
            Predictor::Evsdk(p) => p.process_file(path, args),
            Predictor::Ji(p) => p.calc_file(path, args),
        }
    }

    /// Classifies one decoded frame: `ji_calc_frame` (what the platform's 3.x test tool calls
    /// with each `cv::imread` result) or `evsdk_process_bgr`.
    pub fn process_frame(&self, frame: &BgrFrame, args: Option<&str>) -> (CallResult, Duration) {
        match self {
            Predictor::Evsdk(p) => p.process_bgr(frame, args),
            Predictor::Ji(p) => p.calc_frame(frame, args),
        }
    }

    /// The C function a call of each kind goes through, for the report.
    pub fn call_name(api: Api, frames: bool, batch: bool) -> &'static str {
        match (api, frames, batch) {
            (Api::Ji, _, true) => "ji_calc_image",
            (Api::Ji, true, false) => "ji_calc_frame",
            (Api::Ji, false, false) => "ji_calc_file",
            (Api::Evsdk, true, _) => "evsdk_process_bgr",
            (Api::Evsdk, false, _) => "evsdk_process_file",
        }
    }

    /// Classifies decoded frames in one call (ji API only).
    pub fn process_frames(
        &self,
        frames: &[BgrFrame],
        args: Option<&str>,
    ) -> (CallResult, Duration) {
        match self {
            Predictor::Evsdk(_) => (
                Err((-1, "batches need the ji API (--api ji)".into())),
                Duration::ZERO,
            ),
            Predictor::Ji(p) => p.calc_image(frames, args),
        }
    }
}

/// A predictor created through the native API.
pub struct EvsdkPredictor<'a> {
    lib: &'a Lib,
    handle: *mut c_void,
    process_file: EvsdkProcessFile,
    process_bgr: EvsdkProcessBgr,
    free_string: EvsdkFreeString,
    release: EvsdkRelease,
}

// The native API documents handles as usable from any thread.
unsafe impl Send for EvsdkPredictor<'_> {}
unsafe impl Sync for EvsdkPredictor<'_> {}

impl<'a> EvsdkPredictor<'a> {
    pub fn new(lib: &'a Lib, config: Option<&Path>) -> Result<Self, String> {
        let init = lib.func::<EvsdkInit>(b"evsdk_init")?;
        let process_file = lib.func::<EvsdkProcessFile>(b"evsdk_process_file")?;
        let process_bgr = lib.func::<EvsdkProcessBgr>(b"evsdk_process_bgr")?;
        let free_string = lib.func::<EvsdkFreeString>(b"evsdk_free_string")?;
        let release = lib.func::<EvsdkRelease>(b"evsdk_release")?;
        let path = match config {
            Some(p) => Some(path_cstring(p).map_err(|(_, m)| m)?),
            None => None,
        };
        let mut handle = std::ptr::null_mut();
        // SAFETY: valid C string or NULL, valid out pointer.
        let rc = unsafe {
            init(
                path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                &mut handle,
            )
        };
        if rc != 0 || handle.is_null() {
            return Err(format!("evsdk_init failed ({rc}): {}", lib.last_error()));
        }
        Ok(EvsdkPredictor {
            lib,
            handle,
            process_file,
            process_bgr,
            free_string,
            release,
        })
    }

    pub fn process_file(&self, path: &Path, args: Option<&str>) -> (CallResult, Duration) {
        let prepared = path_cstring(path).and_then(|p| {
            let a = args.map(|a| c_string(a, "args")).transpose()?;
            Ok((p, a))
        });
        let (p, a) = match prepared {
            Ok(v) => v,
            Err(e) => return (Err(e), Duration::ZERO),
        };
        let mut out = std::ptr::null_mut();
        let start = Instant::now();
        // SAFETY: live handle, valid strings, valid out pointer.
        let rc = unsafe {
            (self.process_file)(
                self.handle,
                p.as_ptr(),
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                &mut out,
            )
        };
        let elapsed = start.elapsed();
        (self.take(rc, out), elapsed)
    }

    pub fn process_bgr(&self, frame: &BgrFrame, args: Option<&str>) -> (CallResult, Duration) {
        let a = match args.map(|a| c_string(a, "args")).transpose() {
            Ok(a) => a,
            Err(e) => return (Err(e), Duration::ZERO),
        };
        let mut out = std::ptr::null_mut();
        let start = Instant::now();
        // SAFETY: live handle; `frame.data` holds `width * height * 3` packed bytes (stride 0:
        // packed), only read; valid args string or NULL; valid out pointer.
        let rc = unsafe {
            (self.process_bgr)(
                self.handle,
                frame.data.as_ptr(),
                frame.width,
                frame.height,
                0,
                3,
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                &mut out,
            )
        };
        let elapsed = start.elapsed();
        (self.take(rc, out), elapsed)
    }

    /// The result of a call: the JSON (copied, then freed with evsdk_free_string) or the
    /// code and the library's last error.
    fn take(&self, rc: c_int, out: *mut c_char) -> CallResult {
        if rc != 0 {
            return Err((rc, self.lib.last_error()));
        }
        if out.is_null() {
            return Err((rc, "success but no JSON returned".into()));
        }
        // SAFETY: out is a library-owned string we must free with evsdk_free_string.
        let s = unsafe { cstr_lossy(out) };
        unsafe { (self.free_string)(out) };
        Ok(s)
    }
}

impl Drop for EvsdkPredictor<'_> {
    fn drop(&mut self) {
        // SAFETY: handle from evsdk_init, released once.
        unsafe { (self.release)(self.handle) };
    }
}

/// A predictor created through the platform's ji_* ABI. `event.json` belongs to the predictor
/// and is valid until the next call on it from the same thread: it is copied at once.
pub struct JiPredictor<'a> {
    lib: &'a Lib,
    handle: *mut c_void,
    calc_file: JiCalcFile,
    calc_frame: JiCalcFrame,
    calc_image: JiCalcImage,
    destroy: JiDestroyPredictor,
}

// A predictor may move to another thread; it is used by one thread at a time (not Sync).
unsafe impl Send for JiPredictor<'_> {}

impl<'a> JiPredictor<'a> {
    /// `ji_create_predictor(JISDK_PREDICTOR_DEFAULT)`: the config comes from `$EV_SDK_CONFIG`.
    pub fn new(lib: &'a Lib) -> Result<Self, String> {
        let create = lib.func::<JiCreatePredictor>(b"ji_create_predictor")?;
        let calc_file = lib.func::<JiCalcFile>(b"ji_calc_file")?;
        let calc_frame = lib.func::<JiCalcFrame>(b"ji_calc_frame")?;
        let calc_image = lib.func::<JiCalcImage>(b"ji_calc_image")?;
        let destroy = lib.func::<JiDestroyPredictor>(b"ji_destroy_predictor")?;
        // SAFETY: any predictor type is accepted.
        let handle = unsafe { create(0) };
        if handle.is_null() {
            // ji_create_predictor has already printed the reason to stderr (the platform's
            // judge has no other way to learn it): say it once.
            return Err("ji_create_predictor returned NULL (the library's reason is above)".into());
        }
        Ok(JiPredictor {
            lib,
            handle,
            calc_file,
            calc_frame,
            calc_image,
            destroy,
        })
    }

    /// Turns a return code and the event's JSON into a result, copying the predictor-owned
    /// JSON.
    fn outcome(&self, rc: c_int, event_json: *const c_char) -> CallResult {
        // SAFETY: the event's json is NULL or valid until our next call on this predictor.
        let json = unsafe { cstr_lossy(event_json) };
        if rc == 0 {
            if json.is_empty() {
                return Err((rc, "success but event.json is empty".into()));
            }
            return Ok(json);
        }
        let message = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                let msg = e.get("message")?.as_str()?.to_owned();
                Some(match e.get("kind").and_then(|k| k.as_str()) {
                    Some(kind) => format!("[{kind}] {msg}"),
                    None => msg,
                })
            })
            .unwrap_or_else(|| {
                let last = self.lib.last_error();
                if json.is_empty() {
                    last
                } else {
                    json
                }
            });
        Err((rc, message))
    }

    pub fn calc_file(&self, path: &Path, args: Option<&str>) -> (CallResult, Duration) {
        let prepared = path_cstring(path).and_then(|p| {
            let a = args.map(|a| c_string(a, "args")).transpose()?;
            Ok((p, a))
        });
        let (p, a) = match prepared {
            Ok(v) => v,
            Err(e) => return (Err(e), Duration::ZERO),
        };
        let mut event = JiEvent {
            code: 0,
            json: std::ptr::null(),
        };
        let start = Instant::now();
        // SAFETY: live predictor, valid strings, NULL outFile, valid event.
        let rc = unsafe {
            (self.calc_file)(
                self.handle,
                p.as_ptr(),
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                std::ptr::null(),
                &mut event,
            )
        };
        let elapsed = start.elapsed();
        (self.outcome(rc, event.json), elapsed)
    }

    /// `ji_calc_frame` on a packed BGR frame (`CV_8UC3`, step = 3 * width), NULL out frame.
    pub fn calc_frame(&self, frame: &BgrFrame, args: Option<&str>) -> (CallResult, Duration) {
        let a = match args.map(|a| c_string(a, "args")).transpose() {
            Ok(a) => a,
            Err(e) => return (Err(e), Duration::ZERO),
        };
        let (Ok(rows), Ok(cols), Ok(step)) = (
            c_int::try_from(frame.height),
            c_int::try_from(frame.width),
            c_int::try_from(frame.width as u64 * 3),
        ) else {
            return (
                Err((-1, "frame too large for a JI_CV_FRAME".into())),
                Duration::ZERO,
            );
        };
        let input = JI_CV_FRAME {
            rows,
            cols,
            r#type: JI_CV_8UC3,
            data: frame.data.as_ptr() as *mut c_void,
            step,
        };
        let mut event = JI_EVENT {
            code: 0,
            json: std::ptr::null(),
        };
        let start = Instant::now();
        // SAFETY: live predictor; `input` describes the packed BGR buffer `frame.data`
        // (`rows * step` bytes), which outlives the call and which the library only reads;
        // valid args or NULL; NULL out frame; valid event.
        let rc = unsafe {
            (self.calc_frame)(
                self.handle,
                &input,
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                std::ptr::null_mut(),
                &mut event,
            )
        };
        let elapsed = start.elapsed();
        (self.outcome(rc, event.json), elapsed)
    }

    pub fn calc_image(&self, frames: &[BgrFrame], args: Option<&str>) -> (CallResult, Duration) {
        let a = match args.map(|a| c_string(a, "args")).transpose() {
            Ok(a) => a,
            Err(e) => return (Err(e), Duration::ZERO),
        };
        let infos: Vec<JiImageInfo> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| JiImageInfo {
                nFrameNo: i as c_uint,
                ..JiImageInfo::packed_bgr(&f.data, f.width, f.height)
            })
            .collect();
        let mut event = JiEvent {
            code: 0,
            json: std::ptr::null(),
        };
        let start = Instant::now();
        // SAFETY: `infos` describe packed BGR buffers that outlive the call (the library only
        // reads them); NULL out frames; valid event.
        let rc = unsafe {
            (self.calc_image)(
                self.handle,
                infos.as_ptr(),
                infos.len() as c_uint,
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut event,
            )
        };
        let elapsed = start.elapsed();
        (self.outcome(rc, event.json), elapsed)
    }
}

impl Drop for JiPredictor<'_> {
    fn drop(&mut self) {
        // SAFETY: handle from ji_create_predictor, destroyed once, no call in flight.
        unsafe { (self.destroy)(self.handle) };
    }
}
