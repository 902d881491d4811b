//! include/ji.h from src/ffi with cbindgen. Shared by build.rs (which writes the header and
//! fails the build when cbindgen fails) and tests/header_gen.rs (which proves both).

use std::path::Path;

/// The header cbindgen generates for the crate in `crate_dir` (with its `cbindgen.toml`),
/// with the negative macros parenthesised; Err when cbindgen fails.
pub fn generate(crate_dir: &Path) -> Result<String, String> {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .map_err(|e| format!("cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    bindings.write(&mut text);
    let text = String::from_utf8(text).map_err(|_| "cbindgen wrote invalid UTF-8".to_string())?;
    Ok(parenthesise_negative_macros(&text))
}

/// Writes `include/ji.h` of the crate in `crate_dir` when it changed (so an unchanged header
/// keeps its timestamp). Panics, failing the build, when cbindgen fails: with a warning only,
/// the old header stayed in place and the header check (`git diff` of include/ji.h) passed on
/// a header that no longer matched the code.
pub fn write_header(crate_dir: &Path) {
    let out = crate_dir.join("include").join("ji.h");
    let text = generate(crate_dir)
        .unwrap_or_else(|e| panic!("cbindgen could not generate include/ji.h: {e}"));
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
