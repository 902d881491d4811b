//! The NVIDIA driver, asked directly: its user-space library `libcuda.so.1` is `dlopen`ed
//! (no link-time dependency) and asked `cuInit`, `cuDriverGetVersion` and `cuDeviceGetCount`.
//!
//! This explains; it does not decide. libtorch's CUDA runtime loads the driver library on its
//! own and decides which devices exist; this probe only says why that may have found none
//! (no driver, an old driver, no device). It never touches libtorch, so it may run before
//! libtorch's CUDA backend is loaded without fixing libtorch's CPU-only hooks (`super`).
//!
//! `cuInit` initialises the driver for the process, as any CUDA predictor does: a process that
//! forks should make its CUDA calls (this probe included) in the child, as with any CUDA
//! program.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::sync::OnceLock;

/// The NVIDIA driver's user-space library, as the CUDA runtime itself loads it.
pub const LIBCUDA: &str = "libcuda.so.1";

/// Overrides [`LIBCUDA`] (a file name or a path): for tests (a stub driver) and unusual
/// installs. Read once, at the first probe.
pub const LIBCUDA_ENV: &str = "JI_LIBCUDA";

/// `CUDA_ERROR_NO_DEVICE`: `cuInit`'s answer on a machine with a driver but no visible device.
const CUDA_ERROR_NO_DEVICE: c_int = 100;

/// What the driver said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// `cuDriverGetVersion`: the newest CUDA version the driver supports, 1000 * major +
    /// 10 * minor (13000 = "13.0"); `None` when the call failed.
    pub version: Option<i64>,
    /// `cuInit`'s failure, named (`"CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"`), unless the
    /// failure was "no device" (which is `devices == 0`).
    pub init_error: Option<String>,
    /// `cuDeviceGetCount`: the devices the driver shows this process (`CUDA_VISIBLE_DEVICES`
    /// applies); 0 when `cuInit` failed.
    pub devices: usize,
}

static PROBE: OnceLock<Result<Driver, String>> = OnceLock::new();

/// Asks the driver once per process. `Err`: there is no usable driver library, with the
/// loader's message (`libcuda.so.1: cannot open shared object file: ...`) or the entry point
/// it lacks.
pub fn probe() -> Result<&'static Driver, &'static str> {
    PROBE
        .get_or_init(|| {
            let name = std::env::var(LIBCUDA_ENV)
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| LIBCUDA.to_owned());
            probe_library(&name)
        })
        .as_ref()
        .map_err(String::as_str)
}

type CuInit = unsafe extern "C" fn(c_uint) -> c_int;
type CuGetInt = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuGetErrorName = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;

fn probe_library(name: &str) -> Result<Driver, String> {
    let c_name = CString::new(name).map_err(|_| format!("{LIBCUDA_ENV} contains a NUL byte"))?;
    // SAFETY: c_name is a valid C string. RTLD_LOCAL: the CUDA runtime finds the same library
    // by its own dlopen. RTLD_NODELETE: the driver starts threads at cuInit and must never be
    // unloaded under them.
    let handle = unsafe {
        libc::dlopen(
            c_name.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
        )
    };
    if handle.is_null() {
        return Err(super::dl_error(name));
    }
    let symbol = |s: &CStr| {
        // SAFETY: handle is a live dlopen handle; s is NUL-terminated.
        let p = unsafe { libc::dlsym(handle, s.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    let required =
        |s: &CStr| symbol(s).ok_or_else(|| format!("{name} has no {}", s.to_string_lossy()));
    // SAFETY: the driver API's signatures (cuda.h): CUresult is an int-sized enum, and these
    // are plain C functions.
    let (cu_init, cu_driver_get_version, cu_device_get_count, cu_get_error_name) = unsafe {
        (
            std::mem::transmute::<*mut libc::c_void, CuInit>(required(c"cuInit")?),
            std::mem::transmute::<*mut libc::c_void, CuGetInt>(required(c"cuDriverGetVersion")?),
            std::mem::transmute::<*mut libc::c_void, CuGetInt>(required(c"cuDeviceGetCount")?),
            symbol(c"cuGetErrorName")
                .map(|p| std::mem::transmute::<*mut libc::c_void, CuGetErrorName>(p)),
        )
    };
    let mut version: c_int = 0;
    let mut count: c_int = 0;
    // SAFETY: the driver's entry points, called with valid out-pointers.
    let (init, version_ok, count_ok) = unsafe {
        let init = cu_init(0);
        let version_ok = cu_driver_get_version(&mut version) == 0;
        let count_ok = init == 0 && cu_device_get_count(&mut count) == 0;
        (init, version_ok, count_ok)
    };
    let init_error = (init != 0 && init != CUDA_ERROR_NO_DEVICE).then(|| {
        let mut s: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorName writes a static string (or leaves NULL) for a code.
        let named = cu_get_error_name.is_some_and(|f| unsafe { f(init, &mut s) } == 0);
        if named && !s.is_null() {
            // SAFETY: non-NULL, a static NUL-terminated string owned by the driver.
            let n = unsafe { CStr::from_ptr(s) }.to_string_lossy();
            format!("{n} ({init})")
        } else {
            format!("error {init}")
        }
    });
    Ok(Driver {
        version: (version_ok && version > 0).then_some(version as i64),
        init_error,
        devices: if count_ok { count.max(0) as usize } else { 0 },
    })
}
