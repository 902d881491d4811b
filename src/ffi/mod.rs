//! The C boundary. Every exported function runs inside [`guard`], which turns errors into
//! status codes and panics into `EVSDK_ERR_PANIC`, recording a message for `evsdk_last_error`.
//! Nothing unwinds into C.

pub mod evsdk;
pub mod ji;
pub mod ji_async;

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error.
pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error message (valid until the next failure on this thread).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Runs `f`, catching panics; an error is recorded as the last error and returned as `Err`.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Error::Panic(panic_message(p))),
    };
    if let Err(e) = &result {
        set_last_error(&e.to_string());
    }
    result
}

/// `catch` for functions returning a native status code.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> c_int {
    match catch(f) {
        Ok(()) => evsdk::EVSDK_OK,
        Err(e) => e.code(),
    }
}

/// Borrows an optional C string as UTF-8 (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and NUL-terminated (caller contract).
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(Some)
        .map_err(|_| Error::InvalidArgument(format!("{what} is not valid UTF-8")))
}

/// Borrows a required C path string.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn required_path<'a>(
    p: *const c_char,
    what: &str,
) -> Result<&'a std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and NUL-terminated (caller contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} is empty")));
    }
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// Serialises a JSON value to a C string (serde_json escapes control characters, so no NUL).
pub(crate) fn json_cstring(v: &serde_json::Value) -> CString {
    CString::new(serde_json::to_string(v).expect("JSON values always serialise"))
        .expect("serialised JSON has no NUL byte")
}
