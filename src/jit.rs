//! A TorchScript module behind our own handle: a `torch::jit::Module*` made and freed by
//! src/jit.cpp, run by our own forward shim. Plain, frozen and fused modules are all this one
//! type, so nothing depends on the private layout of tch's `CModule`; tensors cross through
//! tch's public `Tensor::as_ptr` / `Tensor::from_ptr`.

use crate::config::Precision;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use tch::{Device, Tensor};

extern "C" {
    // src/jit.cpp. Module-returning functions give a new `torch::jit::Module*`, or NULL with
    // `err` set (NUL-terminated, at most `err_len` bytes).
    fn ji_module_load(
        path: *const c_char,
        device: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn ji_module_to(
        module: *mut c_void,
        device: c_int,
        precision: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn ji_module_clone(module: *const c_void, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn ji_module_forward(
        module: *const c_void,
        input: *const c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn ji_module_forward_staged(
        module: *const c_void,
        input: *const f32,
        batch: i64,
        h: i64,
        w: i64,
        device: c_int,
        half: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn ji_module_free(module: *mut c_void);
}

/// Room for libtorch's messages (they are summarised before anyone reads them).
const ERR_LEN: usize = 4096;

/// Calls a C++ function that writes an error message on failure; returns its result and the
/// message.
fn with_err<T>(call: impl FnOnce(*mut c_char, usize) -> T) -> (T, String) {
    let mut err = vec![0 as c_char; ERR_LEN];
    let out = call(err.as_mut_ptr(), err.len());
    // SAFETY: the C++ side NUL-terminates what it writes (or leaves the zeros).
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    (out, msg)
}

/// -1 for the CPU, n for cuda:n (the C++ side's device numbering).
fn device_index(device: Device) -> c_int {
    match device {
        Device::Cuda(n) => n as c_int,
        _ => -1,
    }
}

/// The C++ side's precision numbering (src/jit.cpp, `scalar_type_of`).
fn precision_index(p: Precision) -> c_int {
    match p {
        Precision::Fp32 => 0,
        Precision::Fp16 => 1,
        Precision::Bf16 => 2,
    }
}

pub(crate) fn c_path(path: &Path) -> std::result::Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))
}

/// An owned `torch::jit::Module`.
pub struct JitModule(NonNull<c_void>);

// SAFETY: the module is owned and only freed in Drop. libtorch's `Module::forward` may run on
// several threads at once (the TorchScript interpreter keeps per-call state on the stack, the
// graph executor locks its own caches); it is what tch declares for its CModule too. Methods
// that change the module (`to`) take `&mut self`.
unsafe impl Send for JitModule {}
unsafe impl Sync for JitModule {}

impl JitModule {
    /// Takes ownership of a module from a C++ function of this crate that returns a new
    /// `torch::jit::Module*` or NULL with a message.
    pub(crate) fn from_new(
        call: impl FnOnce(*mut c_char, usize) -> *mut c_void,
    ) -> std::result::Result<JitModule, String> {
        let (ptr, msg) = with_err(call);
        NonNull::new(ptr)
            .map(JitModule)
            .ok_or_else(|| crate::model::summarize_torch_error(&msg))
    }

    /// `torch::jit::load(path, device)`, in eval mode.
    pub fn load(path: &Path, device: Device) -> std::result::Result<JitModule, String> {
        let c = c_path(path)?;
        // SAFETY: a valid C string; the C++ side catches every exception.
        JitModule::from_new(|err, len| unsafe {
            ji_module_load(c.as_ptr(), device_index(device), err, len)
        })
    }

    /// Moves the floating-point weights to `device` in `precision`.
    pub fn to(&mut self, device: Device, precision: Precision) -> std::result::Result<(), String> {
        // SAFETY: a live module, exclusively borrowed; the C++ side catches every exception.
        let (rc, msg) = with_err(|err, len| unsafe {
            ji_module_to(
                self.0.as_ptr(),
                device_index(device),
                precision_index(precision),
                err,
                len,
            )
        });
        if rc == 0 {
            Ok(())
        } else {
            Err(crate::model::summarize_torch_error(&msg))
        }
    }

    /// A copy with its own methods (hence its own graph executor and optimised graphs).
    pub fn clone_module(&self) -> std::result::Result<JitModule, String> {
        // SAFETY: a live module; the C++ side serialises clones and catches every exception.
        JitModule::from_new(|err, len| unsafe { ji_module_clone(self.0.as_ptr(), err, len) })
    }

    /// `forward(input)` without autograd: the logits tensor of what the model returns (the
    /// tensor itself, a tuple's or list's first item, a dict's "logits" or only entry).
    pub fn forward(&self, input: &Tensor) -> std::result::Result<Tensor, String> {
        // SAFETY: a live module and a live tensor (borrowed for the call); the C++ side
        // catches every exception and returns NULL or a new at::Tensor*.
        let (out, msg) = with_err(|err, len| unsafe {
            ji_module_forward(self.0.as_ptr(), input.as_ptr() as *const c_void, err, len)
        });
        if out.is_null() {
            return Err(crate::model::summarize_torch_error(&msg));
        }
        // SAFETY: a new at::Tensor* that nothing else owns: tch's Tensor deletes it on drop.
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }
}

impl JitModule {
    /// `forward` on `batch` CHW float32 images laid end to end in `input` (`[batch, 3, h, w]`,
    /// checked by the caller), run so that threads do not serialise on a GPU: the calling
    /// thread's own stream from libtorch's pool, the input staged in a pinned buffer and
    /// uploaded without blocking (then converted to fp16 on the device when `half`), the logits
    /// copied back without blocking, one synchronisation at the end (src/jit.cpp). On the CPU
    /// the same steps without pinning or streams. Returns the logits as a contiguous CPU float
    /// tensor.
    pub fn forward_staged(
        &self,
        input: &[f32],
        [batch, h, w]: [i64; 3],
        device: Device,
        half: bool,
    ) -> std::result::Result<Tensor, String> {
        if input.len() as i64 != batch * 3 * h * w {
            return Err(format!(
                "input holds {} values, [{batch}, 3, {h}, {w}] needs {}",
                input.len(),
                batch * 3 * h * w
            ));
        }
        // SAFETY: a live module; `input` holds batch*3*h*w floats (checked above), which the
        // C++ side copies before it returns; it catches every exception and returns NULL or a
        // new at::Tensor*.
        let (out, msg) = with_err(|err, len| unsafe {
            ji_module_forward_staged(
                self.0.as_ptr(),
                input.as_ptr(),
                batch,
                h,
                w,
                device_index(device),
                half as c_int,
                err,
                len,
            )
        });
        if out.is_null() {
            return Err(crate::model::summarize_torch_error(&msg));
        }
        // SAFETY: a new at::Tensor* that nothing else owns: tch's Tensor deletes it on drop.
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }
}

impl Drop for JitModule {
    fn drop(&mut self) {
        // SAFETY: owned, from `new torch::jit::Module`, freed once.
        unsafe { ji_module_free(self.0.as_ptr()) }
    }
}
