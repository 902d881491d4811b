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
//!
//! Whether predictors use CUDA is decided once per process ([`devices`]). When CUDA cannot be
//! used, the reason is the first of: libtorch's CUDA backend could not be loaded; no NVIDIA
//! driver; a driver older than the backend's CUDA runtime needs; no device visible. The
//! driver's side is asked directly ([`driver`]), without libtorch.

pub mod driver;

use std::ffi::{CStr, CString};
use std::sync::{Once, OnceLock};
use tch::Device;

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
                return Err(dl_error(&name));
            }
            Ok(())
        })
        .as_ref()
        .map(|_| ())
        .map_err(String::as_str)
}

/// The message of the `dlopen` of `name` that just failed, naming the library.
fn dl_error(name: &str) -> String {
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
    // glibc's message starts with the library that failed, which may be one the library
    // needs (a CUDA runtime library libtorch_cuda.so needs) rather than the library itself.
    if msg.contains(name) {
        msg
    } else {
        format!("{name}: {msg}")
    }
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
    // src/cuda.cpp: the CUDA caching allocator, through c10's device-generic interface.
    fn ji_cuda_empty_cache() -> std::ffi::c_int;
    fn ji_cuda_memory(index: std::ffi::c_int, out: *mut i64) -> std::ffi::c_int;
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

/// Returns the CUDA caching allocator's free blocks to the driver (`torch.cuda.empty_cache()`),
/// once no CUDA model is left (`crate::model`). Does nothing unless the backend is loaded and
/// sees a device. Whether it worked.
pub fn empty_cache() -> bool {
    if !matches!(status(), Some(Ok(()))) || device_count() == 0 {
        return false;
    }
    // SAFETY: no arguments; the C++ side catches every exception.
    unsafe { ji_cuda_empty_cache() == 0 }
}

/// GPU memory of one device, in bytes ([`memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuMemory {
    /// Free and total on the device, as the driver counts them (every process and context).
    pub free: u64,
    pub total: u64,
    /// Held by tensors through libtorch's caching allocator in this process.
    pub allocated: u64,
    /// Reserved from the driver by the caching allocator (tensors and cached free blocks).
    pub reserved: u64,
}

impl GpuMemory {
    /// Used on the device (total - free), in MiB.
    pub fn used_mib(&self) -> f64 {
        (self.total.saturating_sub(self.free)) as f64 / (1u64 << 20) as f64
    }
}

/// The memory of CUDA device `index` (for the soak and diagnostics): `None` unless a predictor
/// already loaded the CUDA backend and it sees that device (libtorch is never asked about
/// CUDA before that load).
pub fn memory(index: usize) -> Option<GpuMemory> {
    if !matches!(status(), Some(Ok(()))) || index >= device_count() {
        return None;
    }
    let mut out = [0i64; 4];
    // SAFETY: writes four int64s; the C++ side catches every exception.
    let rc = unsafe { ji_cuda_memory(index as std::ffi::c_int, out.as_mut_ptr()) };
    (rc == 0).then(|| GpuMemory {
        free: out[0].max(0) as u64,
        total: out[1].max(0) as u64,
        allocated: out[2].max(0) as u64,
        reserved: out[3].max(0) as u64,
    })
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

/// Cuts the `"reason"` of a [`describe`] value by at least `by` bytes of its JSON, so that
/// `ji_get_version` fits its buffer beside a long `algo_version`. (Whole on stderr and in
/// `evsdk_model_info`.)
pub fn shorten_reason(described: &mut serde_json::Value, by: usize) {
    if let Some(r) = described["reason"].as_str() {
        // Every byte cut is at least one byte of JSON; "..." is counted in `keep`.
        let keep = r.len().saturating_sub(by).max(3);
        let cut = shorten(r, keep).into_owned();
        described["reason"] = cut.into();
    }
}

/// "13.0" for a CUDA version number (1000 * major + 10 * minor).
fn version_text(v: i64) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

/// The oldest NVIDIA driver release that runs a CUDA major version's runtime (NVIDIA's CUDA
/// compatibility table), where known.
fn driver_release_for(cuda_major: i64) -> Option<u32> {
    match cuda_major {
        11 => Some(450),
        12 => Some(525),
        13 => Some(580),
        _ => None,
    }
}

/// `CUDA_VISIBLE_DEVICES` when it is set, for a reason that says "no device": it may be why.
fn visible_devices_note() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => format!(" (CUDA_VISIBLE_DEVICES={:?})", shorten(&v, 40)),
        Err(_) => String::new(),
    }
}

/// The first reason that applies, from what is known: `backend` is the backend load's outcome
/// (`None`: not attempted, so neither the runtime nor libtorch's devices are known yet),
/// `driver` the probe's, `runtime` the backend's CUDA runtime version, `libtorch_devices`
/// what libtorch sees. `None` when nothing known stands against CUDA.
fn first_reason(
    backend: Option<Result<(), &str>>,
    driver: Result<&driver::Driver, &str>,
    runtime: Option<i64>,
    libtorch_devices: usize,
) -> Option<String> {
    if let Some(Err(e)) = backend {
        return Some(format!("libtorch's CUDA backend could not be loaded: {e}"));
    }
    let d = match driver {
        Err(e) => return Some(format!("no NVIDIA driver: {e}")),
        Ok(d) => d,
    };
    let driver_text = d.version.map_or("version unknown".to_owned(), version_text);
    if let (Some(v), Some(rt)) = (d.version, runtime) {
        // Within a major version, CUDA's minor-version compatibility lets an older driver run
        // a newer runtime; across major versions it does not.
        if v / 1000 < rt / 1000 {
            let release = driver_release_for(rt / 1000)
                .map_or(String::new(), |r| format!(" (NVIDIA driver {r} or newer)"));
            return Some(format!(
                "NVIDIA driver too old: it supports CUDA {}, libtorch's CUDA {} runtime needs \
                 {}.0 or newer{release}",
                driver_text,
                version_text(rt),
                rt / 1000
            ));
        }
    }
    if let Some(e) = &d.init_error {
        return Some(format!("NVIDIA driver not usable: cuInit failed with {e}"));
    }
    if d.devices == 0 {
        return Some(format!(
            "no CUDA device visible: the NVIDIA driver (CUDA {driver_text}) reports none{}",
            visible_devices_note()
        ));
    }
    match backend {
        Some(Ok(())) if libtorch_devices == 0 => Some(format!(
            "no CUDA device visible to libtorch, though the NVIDIA driver (CUDA {driver_text}) \
             reports {}{}",
            d.devices,
            visible_devices_note()
        )),
        _ => None,
    }
}

static VERDICT: OnceLock<Result<usize, String>> = OnceLock::new();

/// Whether predictors can use CUDA, decided once per process by the first predictor that asks
/// (`"auto"` or `"cuda[:N]"`), which loads the backend: `Ok` with the number of devices
/// libtorch sees (at least 1), or `Err` with the first reason that applies (module comment).
pub fn devices() -> Result<usize, &'static str> {
    VERDICT
        .get_or_init(|| {
            let backend = load();
            let seen = device_count();
            if seen > 0 {
                return Ok(seen);
            }
            Err(
                first_reason(Some(backend), driver::probe(), runtime_version(), seen)
                    .unwrap_or_else(|| "no CUDA device visible to libtorch".to_owned()),
            )
        })
        .as_ref()
        .map(|n| *n)
        .map_err(String::as_str)
}

static CPU_FALLBACK_SAID: Once = Once::new();

/// The device for `"device": "auto"`: CUDA device 0 when [`devices`] finds one, otherwise the
/// CPU, said on stderr with the reason once per process (the reason cannot change within a
/// process, and a judge's log should show it once, not once per predictor).
pub fn auto_device() -> Device {
    match devices() {
        Ok(_) => Device::Cuda(0),
        Err(reason) => {
            CPU_FALLBACK_SAID.call_once(|| {
                eprintln!("libji: \"device\": \"auto\" runs on the CPU: {reason}");
            });
            Device::Cpu
        }
    }
}

/// Bound on the reason in [`describe`]: `ji_get_version`'s buffer holds 512 bytes in all.
const DESCRIBED_REASON_MAX: usize = 200;

/// For `ji_get_version` and reports: what the driver says, whether the backend is loaded,
/// what libtorch sees, and why CUDA cannot be used as far as known (`null` when nothing stands
/// against it). Before any predictor asked for CUDA only the driver is asked: libtorch's
/// backend is not loaded for this.
pub fn describe() -> serde_json::Value {
    let driver = driver::probe();
    let reason = first_reason(status(), driver, runtime_version(), device_count());
    serde_json::json!({
        "driver": driver.ok().and_then(|d| d.version).map(version_text),
        "driver_devices": driver.map_or(0, |d| d.devices),
        "backend": match status() {
            None => "not loaded",
            Some(Ok(())) => "loaded",
            Some(Err(_)) => "not found",
        },
        "runtime": runtime_version().map(version_text),
        "devices": device_count(),
        "reason": reason.as_deref().map(|r| shorten(r, DESCRIBED_REASON_MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::driver::Driver;
    use super::first_reason;

    const GOOD: Driver = Driver {
        version: Some(13000),
        init_error: None,
        devices: 1,
    };

    fn driver(version: i64, init_error: Option<&str>, devices: usize) -> Driver {
        Driver {
            version: Some(version),
            init_error: init_error.map(str::to_owned),
            devices,
        }
    }

    #[test]
    fn reasons_come_in_order_backend_driver_version_devices() {
        let old = driver(12080, Some("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"), 0);
        let r = first_reason(
            Some(Err("libtorch_cuda.so: gone")),
            Err("libcuda.so.1: gone"),
            None,
            0,
        );
        assert_eq!(
            r.as_deref(),
            Some("libtorch's CUDA backend could not be loaded: libtorch_cuda.so: gone")
        );
        let r = first_reason(Some(Ok(())), Err("libcuda.so.1: gone"), Some(13000), 0);
        assert_eq!(r.as_deref(), Some("no NVIDIA driver: libcuda.so.1: gone"));
        let r = first_reason(Some(Ok(())), Ok(&old), Some(13000), 0).unwrap();
        assert_eq!(
            r,
            "NVIDIA driver too old: it supports CUDA 12.8, libtorch's CUDA 13.0 runtime needs \
             13.0 or newer (NVIDIA driver 580 or newer)"
        );
        let broken = driver(13000, Some("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"), 0);
        let r = first_reason(Some(Ok(())), Ok(&broken), Some(13000), 0).unwrap();
        assert_eq!(
            r,
            "NVIDIA driver not usable: cuInit failed with CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"
        );
        let none = driver(13000, None, 0);
        let r = first_reason(Some(Ok(())), Ok(&none), Some(13000), 0).unwrap();
        assert!(
            r.starts_with("no CUDA device visible: the NVIDIA driver (CUDA 13.0) reports none"),
            "{r}"
        );
        let r = first_reason(Some(Ok(())), Ok(&GOOD), Some(13000), 0).unwrap();
        assert!(
            r.starts_with(
                "no CUDA device visible to libtorch, though the NVIDIA driver (CUDA 13.0) reports 1"
            ),
            "{r}"
        );
        assert_eq!(first_reason(Some(Ok(())), Ok(&GOOD), Some(13000), 1), None);
    }

    #[test]
    fn a_newer_minor_runtime_runs_on_an_older_minor_driver() {
        // CUDA's minor-version compatibility: 13.2's runtime on a 13.0 driver is not "too old".
        let r = first_reason(Some(Ok(())), Ok(&GOOD), Some(13020), 1);
        assert_eq!(r, None);
        let r = first_reason(Some(Ok(())), Ok(&driver(12090, None, 1)), Some(13020), 0).unwrap();
        assert!(
            r.starts_with("NVIDIA driver too old: it supports CUDA 12.9"),
            "{r}"
        );
    }

    #[test]
    fn before_the_backend_is_loaded_only_the_driver_is_judged() {
        assert_eq!(first_reason(None, Ok(&GOOD), None, 0), None);
        let r = first_reason(None, Ok(&driver(13000, None, 0)), None, 0).unwrap();
        assert!(r.starts_with("no CUDA device visible:"), "{r}");
        let r = first_reason(None, Err("libcuda.so.1: gone"), None, 0).unwrap();
        assert!(r.starts_with("no NVIDIA driver:"), "{r}");
    }
}
