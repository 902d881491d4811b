//! libtorch's CUDA backend, loaded at run time.
//!
//! `libji.so` links only libtorch's CPU libraries, so it loads on a machine that has no CUDA
//! libraries at all (the `cpu` install profile). The CUDA backend (`libtorch_cuda.so` and the
//! CUDA runtime libraries it needs) is `dlopen`ed the first time a predictor asks for
//! `"device": "auto"` or `"cuda[:N]"`; its static initialisers register the CUDA kernels and
//! hooks with libtorch.
//!
//! libtorch caches its CUDA hooks on first use: a CUDA query made *before* the backend is
//! loaded disables CUDA for the rest of the process. So nothing in this crate may ask libtorch
//! about CUDA (`tch::Cuda::*`, `Device::cuda_if_available`) except through this module, which
//! loads the backend first.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// The library that brings libtorch's CUDA backend. It is found like any `dlopen`ed library of
/// `libji.so`: `LD_LIBRARY_PATH`, then `libji.so`'s own RUNPATH (`$ORIGIN`, i.e. beside it in an
/// installed tree; the build's torch/lib in a development build), then the system's paths.
pub const TORCH_CUDA_LIB: &str = "libtorch_cuda.so";

/// Overrides [`TORCH_CUDA_LIB`] (a file name or a path), for a torch installation elsewhere.
pub const TORCH_CUDA_LIB_ENV: &str = "JI_TORCH_CUDA_LIB";

static STATE: OnceLock<Result<(), String>> = OnceLock::new();

fn library_name() -> String {
    std::env::var(TORCH_CUDA_LIB_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| TORCH_CUDA_LIB.to_owned())
}

/// Loads the CUDA backend once per process. `Err` holds the loader's message, naming the
/// library (e.g. `libtorch_cuda.so: cannot open shared object file: No such file or directory`,
/// or the CUDA runtime library that it could not find in turn).
pub fn load() -> Result<(), &'static str> {
    STATE
        .get_or_init(|| {
            let name = library_name();
            let c_name = CString::new(name.clone())
                .map_err(|_| format!("{TORCH_CUDA_LIB_ENV} contains a NUL byte"))?;
            // SAFETY: c_name is a valid C string. RTLD_GLOBAL makes its symbols available to
            // the CUDA libraries libtorch itself dlopens later; RTLD_NODELETE because libtorch
            // keeps pointers into it (registered kernels and hooks) for the process's life.
            let handle = unsafe {
                libc::dlopen(
                    c_name.as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NODELETE,
                )
            };
            if handle.is_null() {
                // SAFETY: dlerror returns NULL or a valid C string owned by libc.
                let err = unsafe { libc::dlerror() };
                let msg = if err.is_null() {
                    "unknown dlopen error".to_owned()
                } else {
                    // SAFETY: non-NULL, NUL-terminated, read before any other dl* call.
                    unsafe { CStr::from_ptr(err) }
                        .to_string_lossy()
                        .into_owned()
                };
                // glibc's message starts with the library that failed, which may be a CUDA
                // runtime library libtorch_cuda.so needs rather than libtorch_cuda.so itself.
                return Err(if msg.contains(&name) {
                    msg
                } else {
                    format!("{name}: {msg}")
                });
            }
            Ok(())
        })
        .as_ref()
        .map(|_| ())
        .map_err(String::as_str)
}

/// The load's outcome if it was attempted: `None` when no predictor has asked for CUDA yet.
pub fn status() -> Option<Result<(), &'static str>> {
    STATE
        .get()
        .map(|r| r.as_ref().map(|_| ()).map_err(String::as_str))
}

extern "C" {
    // src/cuda.cpp: CUDART_VERSION of the CUDA hooks in force, -1 for the CPU-only stub.
    fn ji_cuda_runtime_version() -> std::ffi::c_long;
}

/// The CUDA runtime version libtorch's CUDA backend was built with (e.g. 13000), when that
/// backend is loaded and its hooks are the ones libtorch uses. `None` before a load attempt,
/// after a failed one, or if libtorch had already fixed its CPU-only hooks (a bug here).
pub fn runtime_version() -> Option<i64> {
    if !matches!(status(), Some(Ok(()))) {
        return None;
    }
    // SAFETY: a C function without arguments that catches every C++ exception.
    let v = unsafe { ji_cuda_runtime_version() };
    (v > 0).then_some(v as i64)
}

/// CUDA devices libtorch sees; 0 (without asking libtorch) when the backend is not loaded.
pub fn device_count() -> usize {
    match status() {
        Some(Ok(())) => tch::Cuda::device_count().max(0) as usize,
        _ => 0,
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), with "..." when cut.
pub(crate) fn shorten(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end]).into()
}

/// For `ji_get_version` and reports: whether CUDA was requested, loaded, and what libtorch sees.
pub fn describe() -> serde_json::Value {
    match status() {
        None => {
            serde_json::json!({"backend": "not loaded (no predictor asked for CUDA)", "devices": 0})
        }
        Some(Ok(())) => serde_json::json!({
            "backend": "loaded",
            "runtime": runtime_version().map(|v| format!("{}.{}", v / 1000, v % 1000 / 10)),
            "devices": device_count(),
        }),
        // Bounded: ji_get_version's buffer holds 512 bytes in all.
        Some(Err(e)) => serde_json::json!({
            "backend": format!("unavailable: {}", shorten(e, 240)),
            "devices": 0,
        }),
    }
}
