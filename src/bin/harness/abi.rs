//! The built libji.so, loaded with dlopen like the judge does; only its exported C functions
//! are called. Both the native `evsdk_*` API and the platform's `ji_*` API are wrapped.

use libloading::{Library, Symbol};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

type EvsdkInit = unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> c_int;
type EvsdkProcessFile =
    unsafe extern "C" fn(*const c_void, *const c_char, *const c_char, *mut *mut c_char) -> c_int;
type EvsdkRelease = unsafe extern "C" fn(*mut c_void);
type EvsdkFreeString = unsafe extern "C" fn(*mut c_char);
type EvsdkLastError = unsafe extern "C" fn() -> *const c_char;

pub struct Lib {
    lib: Library,
    pub path: PathBuf,
}

/// One outcome of classifying one image: the JSON text, or the code and message.
pub type CallResult = Result<String, (i32, String)>;

impl Lib {
    pub fn open(path: &Path) -> Result<Lib, String> {
        // SAFETY: loading our own library runs no initialisers with preconditions.
        let lib = unsafe { Library::new(path) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        Ok(Lib {
            lib,
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

    fn last_error(&self) -> String {
        match self.sym::<EvsdkLastError>(b"evsdk_last_error") {
            // SAFETY: returns a valid NUL-terminated string owned by the library.
            Ok(f) => unsafe { CStr::from_ptr(f()) }
                .to_string_lossy()
                .into_owned(),
            Err(e) => e,
        }
    }
}

/// A predictor created through the native API.
pub struct EvsdkPredictor<'a> {
    lib: &'a Lib,
    handle: *mut c_void,
}

// The native API documents handles as usable from any thread.
unsafe impl Send for EvsdkPredictor<'_> {}
unsafe impl Sync for EvsdkPredictor<'_> {}

impl<'a> EvsdkPredictor<'a> {
    pub fn new(lib: &'a Lib, config: Option<&Path>) -> Result<Self, String> {
        let init = lib.sym::<EvsdkInit>(b"evsdk_init")?;
        let path = config.map(|p| CString::new(p.to_string_lossy().as_bytes()).unwrap());
        let mut handle = std::ptr::null_mut();
        // SAFETY: valid C string or NULL, valid out pointer.
        let rc = unsafe {
            init(
                path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                &mut handle,
            )
        };
        if rc != 0 {
            return Err(format!("evsdk_init failed ({rc}): {}", lib.last_error()));
        }
        Ok(EvsdkPredictor { lib, handle })
    }

    pub fn process_file(&self, path: &Path, args: Option<&str>) -> CallResult {
        let f = self
            .lib
            .sym::<EvsdkProcessFile>(b"evsdk_process_file")
            .map_err(|e| (-1, e))?;
        let free = self
            .lib
            .sym::<EvsdkFreeString>(b"evsdk_free_string")
            .map_err(|e| (-1, e))?;
        let p = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| (-1, e.to_string()))?;
        let a = args.map(|a| CString::new(a).unwrap());
        let mut out = std::ptr::null_mut();
        // SAFETY: live handle, valid strings, valid out pointer.
        let rc = unsafe {
            f(
                self.handle,
                p.as_ptr(),
                a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                &mut out,
            )
        };
        if rc != 0 {
            return Err((rc, self.lib.last_error()));
        }
        // SAFETY: out is a library-owned string we must free with evsdk_free_string.
        let s = unsafe { CStr::from_ptr(out) }
            .to_string_lossy()
            .into_owned();
        unsafe { free(out) };
        Ok(s)
    }
}

impl Drop for EvsdkPredictor<'_> {
    fn drop(&mut self) {
        if let Ok(release) = self.lib.sym::<EvsdkRelease>(b"evsdk_release") {
            // SAFETY: handle from evsdk_init, released once.
            unsafe { release(self.handle) };
        }
    }
}
