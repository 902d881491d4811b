//! Shared test setup: generated fixtures (made by tools/make_fixtures.py with the project's
//! .venv, once, on first use) and small helpers around the C API.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash tools/setup.sh` first",
        p.display()
    );
    p
}

/// The core fixture folder (models, configs, images, a labelled val folder).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("tests/fixtures/generated/core");
        if !dir.join("colour.json").exists() {
            let status = std::process::Command::new(python())
                .arg(root().join("tools/make_fixtures.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_fixtures.py");
            assert!(status.success(), "tools/make_fixtures.py failed");
        }
        assert!(
            dir.join("colour.json").exists(),
            "fixtures were not generated"
        );
        dir
    })
}

pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

pub fn cstring(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

pub fn last_error() -> String {
    unsafe { CStr::from_ptr(ji::ffi::evsdk::evsdk_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes ownership of a JSON string from the library, parses it, frees it.
pub fn take_json(p: *mut std::os::raw::c_char) -> serde_json::Value {
    assert!(!p.is_null());
    let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    unsafe { ji::ffi::evsdk::evsdk_free_string(p) };
    assert!(!text.contains("\\u"), "JSON must be raw UTF-8: {text}");
    serde_json::from_str(&text).unwrap()
}
