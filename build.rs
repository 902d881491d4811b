//! Build script: generates `include/ji.h` with cbindgen and emits the libtorch link flags that
//! tch's own build script cannot pass on to us (rpath to the build's libtorch and $ORIGIN).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/optimize.cpp");
    println!("cargo:rerun-if-changed=src/cuda.cpp");

    // First: src/ffi/alloc.cpp includes the header.
    generate_header();
    compile_alloc_shim();

    // torch-sys (links = "tch") exports its lib dir to dependents as DEP_TCH_LIBTORCH_LIB.
    if let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| PathBuf::from(&lib));
        // Our binaries and libji.so find libtorch without LD_LIBRARY_PATH; $ORIGIN lets a
        // deployment put libtorch's .so files beside libji.so (/usr/local/ev_sdk/lib).
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
        compile_optimizer(&lib);
        // libtorch_cuda.so is deliberately not linked: libji.so must load where only
        // libtorch's CPU libraries exist. src/cuda.rs dlopens it when a predictor asks for
        // CUDA. --as-needed (rustc's default) keeps libtorch.so, whose NEEDED list names
        // libtorch_cuda.so, out of libji.so's NEEDED entries; tests/install.rs checks that.
    }

    // dlclose() must never unmap libji.so: libtorch's and our threads keep thread-local
    // destructors pointing into it, and a host that unloads the library (tests, hot reload)
    // would crash at the next thread exit. The judge never unloads it anyway.
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,nodelete");
}

/// src/ffi/alloc.cpp: the C++ `new` / `new []` allocations the asynchronous callback receives
/// (the platform's test program frees them with `delete` / `delete []`).
fn compile_alloc_shim() {
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++11")
        .warnings(true)
        .include("include")
        .file("src/ffi/alloc.cpp")
        .compile("ji_alloc");
}

/// src/optimize.cpp: torch::jit::optimize_for_inference / freeze, which tch does not expose.
fn compile_optimizer(lib: &std::path::Path) {
    let torch = lib.parent().expect("libtorch lib dir has a parent");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .file("src/optimize.cpp")
        .file("src/cuda.cpp")
        .compile("ji_optimize");
}

fn generate_header() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = crate_dir.join("include").join("ji.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    // A failure fails the build: with a warning only, the old header stayed in place and the
    // header check (`git diff` of include/ji.h) passed on a header that no longer matched.
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate include/ji.h: {e}"));
    let mut text = Vec::new();
    bindings.write(&mut text);
    let text =
        parenthesise_negative_macros(&String::from_utf8(text).expect("cbindgen writes UTF-8"));
    // Written only when it changes, so an unchanged header keeps its timestamp.
    if std::fs::read_to_string(&out).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&out, text).expect("include/ji.h is writable");
    }
}

/// `#define JISDK_RET_FAILED -1` becomes `#define JISDK_RET_FAILED (-1)`, as the platform's
/// header writes it: unparenthesised, `-JISDK_RET_FAILED` would read `--1`.
fn parenthesise_negative_macros(header: &str) -> String {
    let mut out = String::with_capacity(header.len() + 256);
    for line in header.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["#define", name, value] if value.starts_with('-') && value.parse::<i64>().is_ok() => {
                out.push_str(&format!("#define {name} ({value})"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
