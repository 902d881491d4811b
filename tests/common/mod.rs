//! Shared test setup: generated fixtures (made by tools/make_fixtures.py with the project's
//! .venv, once, on first use) and small helpers around the C API.
#![allow(dead_code)]

mod process;
#[allow(unused_imports)] // not every test binary measures memory
pub use process::rss_mb;

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

/// A generated fixture folder: `tests/fixtures/generated/<name>`, made by `tools/<script>`
/// with the project's .venv on first use when `marker` is missing inside it.
pub fn generated(name: &str, script: &str, marker: &str) -> PathBuf {
    let dir = root().join("tests/fixtures/generated").join(name);
    if !dir.join(marker).exists() {
        let status = std::process::Command::new(python())
            .arg(root().join("tools").join(script))
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| panic!("run tools/{script}: {e}"));
        assert!(status.success(), "tools/{script} failed");
    }
    assert!(
        dir.join(marker).exists(),
        "tools/{script} did not create {marker}"
    );
    dir
}

/// The core fixture folder (models, configs, images, a labelled val folder).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| generated("core", "make_fixtures.py", "version-2"))
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

/// `evsdk_init` on the config file `config`, which must succeed (the library's last error
/// otherwise); release the handle with `evsdk_release`.
pub fn evsdk_open(config: &Path) -> *mut ji::ffi::evsdk::EvsdkHandle {
    use ji::ffi::evsdk::{evsdk_init, EVSDK_OK};
    let c = cstring(config);
    let mut h = std::ptr::null_mut();
    assert_eq!(
        unsafe { evsdk_init(c.as_ptr(), &mut h) },
        EVSDK_OK,
        "{}",
        last_error()
    );
    h
}

/// Takes ownership of a JSON string from the library, parses it, frees it.
pub fn take_json(p: *mut std::os::raw::c_char) -> serde_json::Value {
    assert!(!p.is_null());
    let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    unsafe { ji::ffi::evsdk::evsdk_free_string(p) };
    assert!(!text.contains("\\u"), "JSON must be raw UTF-8: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A fresh, empty temporary folder for one test: `ji-<suite>-<pid>-<name>` in the temp dir.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ji-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies the folder tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

static CONFIG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A ji_* predictor (`ji_init` + `ji_create_predictor`), destroyed on drop.
pub struct Pred(pub *mut std::ffi::c_void);
// SAFETY: the ji_* API may be called on one predictor from any thread.
unsafe impl Send for Pred {}
unsafe impl Sync for Pred {}

impl Pred {
    /// The predictor (a method, so closures capture the whole `Pred`, which is Sync).
    pub fn ptr(&self) -> *mut std::ffi::c_void {
        self.0
    }

    /// A predictor of the config file `config`. `ji_create_predictor` reads the config named
    /// by `EV_SDK_CONFIG`, so predictors are made one at a time under a lock, each after
    /// setting the variable: tests of one binary may use different configs.
    pub fn with_config(config: &Path) -> Pred {
        use ji::ffi::ji::*;
        let _one_at_a_time = CONFIG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("EV_SDK_CONFIG", config);
        assert_eq!(
            unsafe { ji_init(0, std::ptr::null_mut()) },
            JISDK_RET_SUCCEED
        );
        let p = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
        assert!(!p.is_null(), "{}", last_error());
        Pred(p)
    }
}

impl Drop for Pred {
    fn drop(&mut self) {
        // SAFETY: a live predictor from ji_create_predictor, destroyed once.
        unsafe { ji::ffi::ji::ji_destroy_predictor(self.0) };
    }
}

/// A copy of the config file `src` in a fresh temp folder (`suite`, `name`), its model and
/// class-name paths made absolute (against `src`'s folder, as the library resolves them) and
/// the `extra` keys set; returns the copy's path.
pub fn config_copy(
    src: &Path,
    suite: &str,
    name: &str,
    extra: &[(&str, serde_json::Value)],
) -> PathBuf {
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    let base = src.parent().unwrap();
    for key in ["model_path", "class_names_path"] {
        let abs = base.join(cfg[key].as_str().unwrap());
        cfg[key] = abs.to_str().unwrap().into();
    }
    for (k, v) in extra {
        cfg[*k] = v.clone();
    }
    let path = temp_dir(suite, name).join("algo_config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// The demo's config (EfficientNet-Lite0 on the CPU fast path) copied by [`config_copy`],
/// with `"device": "cpu"` and `extra`.
pub fn demo_config(suite: &str, name: &str, extra: &[(&str, serde_json::Value)]) -> PathBuf {
    let demo = generated("demo", "make_demo.py", "model/model.pt");
    let mut keys = vec![("device", "cpu".into())];
    keys.extend(extra.iter().cloned());
    config_copy(&demo.join("config/algo_config.json"), suite, name, &keys)
}

/// Whether this machine has an NVIDIA GPU that CUDA programs may use: the kernel driver lists
/// a GPU and `CUDA_VISIBLE_DEVICES` does not hide them all. Tests that depend on it assert the
/// GPU path there and the CPU fallback elsewhere. (Known without asking libtorch or libji.)
pub fn gpu_host() -> bool {
    let listed = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    let hidden = std::env::var("CUDA_VISIBLE_DEVICES")
        .map(|v| v.trim().is_empty() || v.trim().starts_with('-'))
        .unwrap_or(false);
    listed && !hidden
}
