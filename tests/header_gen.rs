//! include/ji.h generation (build_support/header.rs, which build.rs runs): the committed
//! header is what cbindgen makes of src/ffi, and a cbindgen failure fails the build instead
//! of leaving the old header in place, where the header check would have passed on it.

mod common;

#[path = "../build_support/header.rs"]
mod header;

use common::*;
use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let generated = header::generate(&root()).expect("cbindgen runs on this crate");
    let committed = std::fs::read_to_string(root().join("include/ji.h")).unwrap();
    assert!(generated.contains("#define JISDK_RET_FAILED (-1)"));
    assert!(
        generated == committed,
        "include/ji.h is stale: run cargo build"
    );
}

/// A one-file crate in `dir` with `lib_rs` as its source, our cbindgen.toml and an old header.
fn tiny_crate(dir: &Path, lib_rs: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("include")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\npath = \"src/lib.rs\"\n",
    )
    .unwrap();
    std::fs::copy(root().join("cbindgen.toml"), dir.join("cbindgen.toml")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib_rs).unwrap();
    std::fs::write(dir.join("include/ji.h"), "/* the old header */\n").unwrap();
}

#[test]
fn a_cbindgen_failure_fails_the_build() {
    // The same crate parses when its source is valid: the failure below is cbindgen's.
    let good = temp_dir("header_gen", "good");
    tiny_crate(
        &good,
        "#[no_mangle]\npub extern \"C\" fn ji_tiny(x: i32) -> i32 { x }\n",
    );
    header::write_header(&good);
    let text = std::fs::read_to_string(good.join("include/ji.h")).unwrap();
    assert!(text.contains("ji_tiny"), "{text}");

    let bad = temp_dir("header_gen", "bad");
    tiny_crate(
        &bad,
        "#[no_mangle]\npub extern \"C\" fn ji_tiny(x: i32 -> i32 { x }\n",
    );
    let err = header::generate(&bad).expect_err("a source cbindgen cannot parse");
    assert!(!err.is_empty());
    let panic = std::panic::catch_unwind(|| header::write_header(&bad))
        .expect_err("build.rs must fail, not warn");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("cbindgen could not generate include/ji.h"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(bad.join("include/ji.h")).unwrap(),
        "/* the old header */\n",
        "nothing half-written"
    );
}
