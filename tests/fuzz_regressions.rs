//! Replays saved fuzz crashes (tests/fuzz_regressions/) and runs a short, fixed-seed fuzz of
//! the decode + preprocess path through examples/fuzz_decode.rs (built by `cargo test`).
//! Longer runs: `make fuzz`.

mod common;

use std::path::PathBuf;

fn fuzzer() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/fuzz_decode
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/fuzz_decode");
    assert!(
        path.exists(),
        "{} is missing (cargo test builds examples)",
        path.display()
    );
    path
}

#[test]
fn saved_crashes_and_a_short_fuzz_run_do_not_panic() {
    let images = common::fixtures().join("images");
    let regressions = common::root().join("tests/fuzz_regressions");
    let out = std::process::Command::new(fuzzer())
        .args(["3000", "42"])
        .arg(&images)
        .arg(&regressions)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("3000 executions") && text.contains("0 crashes"),
        "{text}"
    );
}
