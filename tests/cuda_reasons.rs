//! Why `"device": "auto"` runs on the CPU, one reason per child process (the backend load, the
//! driver probe and libtorch's device count are each decided once per process). A stub
//! `libcuda.so.1` built here (tests/fixtures/libcuda_stub.c, selected with `JI_LIBCUDA`) plays
//! each driver. Each child goes through the C API: `ji_get_version` before any predictor, two
//! `"auto"` predictors through `ji_*` and one handle through `evsdk_*` (result JSON, model
//! info), `"cuda"` through `evsdk_init`, `ji_get_version` again; the parent checks that report
//! and that the child's stderr says the reason exactly once.
//!
//! The stub explains; libtorch decides, through the real driver: on a GPU host "auto" runs on
//! cuda:0 whatever the stub says (and says nothing), except where libtorch cannot use the GPU
//! either (no backend, `CUDA_VISIBLE_DEVICES=""`).

mod common;

use common::*;
use ji::ffi::evsdk::*;
use ji::ffi::ji::*;
use serde_json::{json, Value};
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const LINE: &str = "libji: \"device\": \"auto\" runs on the CPU: ";

/// The stub driver library, compiled once per test process (no soname: see the C file).
fn stub() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let lib = dir.join("libcuda_stub.so");
        let tmp = dir.join(format!("libcuda_stub.{}.so", std::process::id()));
        let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args([
                "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&tmp)
            .arg(root().join("tests/fixtures/libcuda_stub.c"))
            .output()
            .expect("run cc");
        assert!(
            out.status.success(),
            "cc libcuda_stub.c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Atomic: another test process may be loading the previous copy.
        std::fs::rename(&tmp, &lib).unwrap();
        lib
    })
}

/// One case: the child's environment and what it must report where libtorch has no GPU.
struct Case {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    /// The reason starts with this (on a host without a GPU, or always if `always_cpu`).
    reason: String,
    /// libtorch cannot use a GPU either, so "auto" runs on the CPU on a GPU host too.
    always_cpu: bool,
    /// Keys set in the child's configs besides "device".
    extra: Vec<(&'static str, Value)>,
}

fn with_stub(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("JI_LIBCUDA", stub().to_str().unwrap().to_owned())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// Runs the child with `case.env` and returns its report and stderr.
fn run_child(case: &Case) -> (Value, String) {
    let auto = config_copy(
        &fixture("colour.json"),
        "cuda_reasons",
        &format!("{}_auto", case.name),
        &[&[("device", "auto".into())], &case.extra[..]].concat(),
    );
    let cuda = config_copy(
        &fixture("colour.json"),
        "cuda_reasons",
        &format!("{}_cuda", case.name),
        &[&[("device", "cuda".into())], &case.extra[..]].concat(),
    );
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_report",
        "--nocapture",
        "--include-ignored",
    ])
    .env("JI_CHILD", "1")
    .env("EV_SDK_CONFIG", &auto)
    .env("JI_CHILD_CUDA_CONFIG", &cuda);
    for var in [
        "JI_LIBCUDA",
        "JI_TORCH_CUDA_LIB",
        "JI_STUB_CUINIT",
        "JI_STUB_DRIVER_VERSION",
        "JI_STUB_DEVICES",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    for cfg in [&auto, &cuda] {
        let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{}: child failed\n{stdout}\n{stderr}",
        case.name
    );
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD_REPORT "))
        .unwrap_or_else(|| panic!("{}: no report\n{stdout}", case.name));
    (serde_json::from_str(report).unwrap(), stderr)
}

/// Runs `case` and checks the child's report ([`check_report`]).
fn check(case: Case) {
    if std::env::var("JI_CHILD").is_ok() {
        return;
    }
    let (r, stderr) = run_child(&case);
    check_report(&case, &r, &stderr);
}

/// The CPU fallback with its reason everywhere it is said, or the GPU path on a GPU host.
/// `{runtime}` and `{major}` in the expected reason stand for the CUDA runtime libtorch's
/// backend reports once loaded ("13.0" and "13" with the pinned torch 2.11.0 wheel).
fn check_report(case: &Case, r: &Value, stderr: &str) {
    let name = case.name;
    let before = &r["before"]["cuda"];
    assert_eq!(before["backend"], "not loaded", "{name}: {r:#}");
    assert_eq!(r["after"]["cuda"]["devices"], r["info_devices"], "{name}");
    if gpu_host() && !case.always_cpu {
        assert_eq!(
            r["result"]["model_data"]["device"], "cuda:0",
            "{name}: {r:#}"
        );
        assert_eq!(r["info"]["device"], "cuda:0", "{name}");
        assert_eq!(r["info"]["cpu_fallback"], Value::Null, "{name}");
        assert_eq!(r["cuda"]["rc"], EVSDK_OK, "{name}: {r:#}");
        assert_eq!(r["after"]["cuda"]["reason"], Value::Null, "{name}");
        assert_eq!(r["after"]["cuda_available"], true, "{name}");
        assert!(!stderr.contains(LINE), "{name}: {stderr}");
        return;
    }
    let reason = r["info"]["cpu_fallback"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no cpu_fallback in model info: {r:#}"));
    let runtime = r["after"]["cuda"]["runtime"].as_str().unwrap_or("none");
    let expected = case
        .reason
        .replace("{runtime}", runtime)
        .replace("{major}", runtime.split('.').next().unwrap());
    assert!(
        reason.starts_with(&expected),
        "{name}: reason {reason:?} does not start with {expected:?}"
    );
    assert_eq!(r["result"]["model_data"]["device"], "cpu", "{name}");
    assert_eq!(r["info"]["device"], "cpu", "{name}");
    // Three "auto" creates, one line.
    assert_eq!(stderr.matches(LINE).count(), 1, "{name}: {stderr}");
    assert!(
        stderr.contains(&format!("{LINE}{reason}\n")),
        "{name}: {stderr}"
    );
    // "cuda" fails with the same reason.
    assert_eq!(r["cuda"]["rc"], EVSDK_ERR_CONFIG, "{name}: {r:#}");
    let error = r["cuda"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "\"device\" asks for cuda:0 but CUDA cannot be used: {reason}"
        )),
        "{name}: {error}"
    );
    // ji_get_version after the creates: the same reason, bounded for its 512-byte buffer.
    let after = &r["after"]["cuda"];
    let said = after["reason"].as_str().unwrap();
    assert!(said.len() <= 200, "{name}: {said}");
    if reason.len() <= 200 && case.extra.is_empty() {
        assert_eq!(said, reason, "{name}");
    } else {
        assert!(
            said.ends_with("...") && reason.starts_with(&said[..said.len() - 3]),
            "{name}: {said}"
        );
    }
    assert_eq!(r["after"]["cuda_available"], false, "{name}");
    if let Some((_, v)) = case.extra.iter().find(|(k, _)| *k == "algo_version") {
        assert_eq!(
            r["after"]["algo_version"], *v,
            "{name}: algo_version is never cut"
        );
    }
}

#[test]
fn backend_library_not_found() {
    check(Case {
        name: "backend",
        env: {
            let mut env = with_stub(&[]);
            env.push(("JI_TORCH_CUDA_LIB", "/nonexistent/libtorch_cuda.so".into()));
            env
        },
        reason: "libtorch's CUDA backend could not be loaded: /nonexistent/libtorch_cuda.so: \
                 cannot open shared object file"
            .into(),
        always_cpu: true,
        extra: vec![],
    });
}

#[test]
fn a_long_algo_version_cuts_the_reason_not_the_version_call() {
    // ji_get_version's 512 bytes: the config's algo_version is never cut, the reason gives way.
    let algo_version = "v".repeat(250);
    check(Case {
        name: "long_algo_version",
        env: {
            let mut env = with_stub(&[]);
            env.push((
                "JI_TORCH_CUDA_LIB",
                format!("/{}/libtorch_cuda.so", "x".repeat(150)),
            ));
            env
        },
        reason: "libtorch's CUDA backend could not be loaded: /xxx".into(),
        always_cpu: true,
        extra: vec![("algo_version", algo_version.into())],
    });
}

#[test]
fn no_nvidia_driver() {
    check(Case {
        name: "no_driver",
        env: vec![("JI_LIBCUDA", "/nonexistent/libcuda.so.1".into())],
        reason: "no NVIDIA driver: /nonexistent/libcuda.so.1: cannot open shared object file"
            .into(),
        always_cpu: false,
        extra: vec![],
    });
}

#[test]
fn driver_older_than_the_runtime_needs() {
    check(Case {
        name: "old_driver",
        env: with_stub(&[("JI_STUB_DRIVER_VERSION", "12080")]),
        reason: "NVIDIA driver too old: it supports CUDA 12.8, libtorch's CUDA {runtime} \
                 runtime needs {major}.0 or newer"
            .into(),
        always_cpu: false,
        extra: vec![],
    });
}

#[test]
fn driver_that_cannot_initialise() {
    check(Case {
        name: "init_fails",
        env: with_stub(&[("JI_STUB_CUINIT", "803")]),
        reason: "NVIDIA driver not usable: cuInit failed with \
                 CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"
            .into(),
        always_cpu: false,
        extra: vec![],
    });
}

#[test]
fn no_device_visible() {
    // CUDA_VISIBLE_DEVICES="" hides a real GPU from libtorch too: the CPU on any host.
    check(Case {
        name: "no_device",
        env: with_stub(&[("JI_STUB_DEVICES", "0"), ("CUDA_VISIBLE_DEVICES", "")]),
        reason: "no CUDA device visible: the NVIDIA driver (CUDA 13.0) reports none \
                 (CUDA_VISIBLE_DEVICES=\"\")"
            .into(),
        always_cpu: true,
        extra: vec![],
    });
}

#[test]
fn no_device_when_cuinit_finds_none() {
    check(Case {
        name: "cuinit_no_device",
        env: with_stub(&[("JI_STUB_CUINIT", "100")]),
        reason: "no CUDA device visible: the NVIDIA driver (CUDA 13.0) reports none".into(),
        always_cpu: false,
        extra: vec![],
    });
}

#[test]
fn driver_sees_a_device_that_libtorch_does_not() {
    // The stub reports one device; libtorch's runtime finds no real driver behind it.
    check(Case {
        name: "libtorch_sees_none",
        env: with_stub(&[]),
        reason: "no CUDA device visible to libtorch, though the NVIDIA driver (CUDA 13.0) \
                 reports 1"
            .into(),
        always_cpu: false,
        extra: vec![],
    });
}

#[test]
fn version_before_any_create_says_what_the_machine_has_and_does_not_load_the_backend() {
    if std::env::var("JI_CHILD").is_ok() {
        return;
    }
    // The driver the stub plays, asked before any predictor; the backend stays unloaded until
    // the first "auto" create, which then loads it (not "not loaded", not the CPU-only hooks).
    let case = Case {
        name: "early_version",
        env: with_stub(&[
            ("JI_STUB_DRIVER_VERSION", "13010"),
            ("JI_STUB_DEVICES", "3"),
        ]),
        reason: String::new(),
        always_cpu: false,
        extra: vec![],
    };
    let (r, _) = run_child(&case);
    let before = &r["before"]["cuda"];
    assert_eq!(before["driver"], "13.1", "{r:#}");
    assert_eq!(before["driver_devices"], 3);
    assert_eq!(before["backend"], "not loaded");
    assert_eq!(before["runtime"], Value::Null);
    assert_eq!(
        before["reason"],
        Value::Null,
        "nothing known stands against CUDA yet"
    );
    let after = &r["after"]["cuda"];
    assert_eq!(after["backend"], "loaded", "{r:#}");
    assert!(
        after["runtime"].is_string(),
        "libtorch_cuda.so's hooks are in force: {r:#}"
    );
    assert_eq!(after["driver"], "13.1");

    // This machine's own driver (no stub): no driver, a GPU host's driver otherwise.
    let case = Case {
        name: "machine",
        env: vec![],
        reason: "no NVIDIA driver: libcuda.so.1: cannot open shared object file".into(),
        always_cpu: false,
        extra: vec![],
    };
    let (r, stderr) = run_child(&case);
    let (before, after) = (&r["before"]["cuda"], &r["after"]["cuda"]);
    assert_eq!(before["backend"], "not loaded", "{r:#}");
    assert_eq!(after["backend"], "loaded", "{r:#}");
    assert!(after["runtime"].is_string(), "{r:#}");
    if gpu_host() {
        assert!(before["driver"].is_string(), "{r:#}");
        assert!(before["driver_devices"].as_u64().unwrap() >= 1, "{r:#}");
        assert_eq!(before["reason"], Value::Null, "{r:#}");
        assert!(after["devices"].as_u64().unwrap() >= 1, "{r:#}");
    } else if !Path::new("/proc/driver/nvidia").exists() {
        // No kernel driver at all (this project's build machine).
        assert_eq!(before["driver"], Value::Null, "{r:#}");
        assert!(
            before["reason"].as_str().unwrap().starts_with(&case.reason),
            "{r:#}"
        );
        assert_eq!(after["reason"], before["reason"], "{r:#}");
    }
    check_report(&case, &r, &stderr);
}

fn version() -> Value {
    let mut buf = [0 as c_char; MAX_VERSION_LENGTH];
    assert_eq!(
        unsafe { ji_get_version(buf.as_mut_ptr()) },
        JISDK_RET_SUCCEED,
        "{}",
        last_error()
    );
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    serde_json::from_str(text).unwrap()
}

#[test]
#[ignore = "run by the tests above, each in a child process"]
fn child_report() {
    assert!(std::env::var("JI_CHILD").is_ok());
    let before = version();
    let auto = PathBuf::from(std::env::var("EV_SDK_CONFIG").unwrap());
    let p1 = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
    assert!(!p1.is_null(), "{}", last_error());
    let p2 = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
    assert!(!p2.is_null(), "{}", last_error());
    let h = evsdk_open(&auto);
    let img = std::fs::read(fixture("images/blue.png")).unwrap();
    let mut out: *mut c_char = std::ptr::null_mut();
    let (result, info) = unsafe {
        assert_eq!(
            evsdk_process_image(h, img.as_ptr(), img.len(), std::ptr::null(), &mut out),
            EVSDK_OK,
            "{}",
            last_error()
        );
        let result = take_json(out);
        assert_eq!(evsdk_model_info(h, &mut out), EVSDK_OK);
        (result, take_json(out))
    };
    unsafe {
        evsdk_release(h);
        ji_destroy_predictor(p1);
        ji_destroy_predictor(p2);
    }
    let cuda_cfg = cstring(Path::new(&std::env::var("JI_CHILD_CUDA_CONFIG").unwrap()));
    let mut hc: *mut EvsdkHandle = std::ptr::null_mut();
    let rc = unsafe { evsdk_init(cuda_cfg.as_ptr(), &mut hc) };
    let cuda =
        json!({"rc": rc, "error": if rc == EVSDK_OK { String::new() } else { last_error() }});
    if rc == EVSDK_OK {
        unsafe { evsdk_release(hc) };
    }
    let after = version();
    let info_devices = ji::cuda::devices().unwrap_or(0);
    println!(
        "CHILD_REPORT {}",
        json!({"before": before, "result": result, "info": info, "cuda": cuda, "after": after,
               "info_devices": info_devices})
    );
}
