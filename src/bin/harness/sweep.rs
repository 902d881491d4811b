//! `--sweep KEY=V1,V2,...`: every combination of test-time settings on the validation folder,
//! one row each (top-1, top-5, macro F1, mean latency per call), and with `--sweep-out` a
//! complete config for the best row (top-1, ties to the faster).
//!
//! Each combination runs in a child process: this harness again, with the run's own options, a
//! derived config (the base config with the combination's values) and a JSON report. Memory
//! stays that of one run however many combinations there are (a predictor's model, libtorch's
//! caches and the CPU fast path's prepared graphs all go with the child).

use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The keys a sweep may vary.
pub const KEYS: &[&str] = &["tta", "resize_size", "crop_size", "resize_mode"];
/// Swept keys that a model's metadata may also set: a derived config that sets one must let
/// its value win (`"override_model_metadata": true`).
const PREPROCESSING_KEYS: &[&str] = &["resize_size", "crop_size", "resize_mode"];

/// One swept key and its values, as written and as config values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<(String, Value)>,
}

/// `KEY=V1,V2,...` with the values in config form: `tta` takes `none`, `hflip`, `vflip` and
/// `hflip+vflip`; `resize_size` and `crop_size` an integer or `HxW` (height first, as the
/// config's `[h, w]`), `crop_size` also `none`; `resize_mode` a mode name.
pub fn parse_axis(spec: &str) -> Result<Axis, String> {
    let (key, list) = spec.split_once('=').ok_or_else(|| {
        format!(
            "--sweep {spec}: expected KEY=V1,V2,... (KEY: {})",
            KEYS.join(", ")
        )
    })?;
    let key = key.trim();
    if !KEYS.contains(&key) {
        return Err(format!(
            "--sweep {spec}: cannot sweep \"{key}\" (one of: {})",
            KEYS.join(", ")
        ));
    }
    let mut values = Vec::new();
    for raw in list.split(',').map(str::trim) {
        if raw.is_empty() {
            return Err(format!("--sweep {spec}: an empty value"));
        }
        let value = config_value(key, raw).map_err(|e| format!("--sweep {spec}: {e}"))?;
        if values.iter().any(|(_, v)| *v == value) {
            return Err(format!("--sweep {spec}: \"{raw}\" is listed twice"));
        }
        values.push((raw.to_owned(), value));
    }
    Ok(Axis {
        key: key.to_owned(),
        values,
    })
}

fn config_value(key: &str, raw: &str) -> Result<Value, String> {
    let size = |s: &str| -> Result<Value, String> {
        let n = |t: &str| {
            t.parse::<u32>()
                .ok()
                .filter(|n| (1..=65_535).contains(n))
                .ok_or_else(|| format!("\"{s}\" is not a size (an integer or HxW, height first)"))
        };
        match s.split_once('x') {
            Some((h, w)) => Ok(json!([n(h)?, n(w)?])),
            None => Ok(json!(n(s)?)),
        }
    };
    match key {
        "tta" if raw == "none" => Ok(json!([])),
        "tta" => {
            let views: Vec<&str> = raw.split('+').collect();
            if views.iter().all(|v| matches!(*v, "hflip" | "vflip")) {
                Ok(json!(views))
            } else {
                Err(format!(
                    "\"{raw}\" is not a tta value (none, hflip, vflip, hflip+vflip)"
                ))
            }
        }
        "crop_size" if raw == "none" => Ok(Value::Null),
        "resize_size" | "crop_size" => size(raw),
        "resize_mode" => match raw {
            "stretch" | "shorter_side" | "letterbox" | "pad_square" => Ok(json!(raw)),
            _ => Err(format!(
                "\"{raw}\" is not a resize_mode (stretch, shorter_side, letterbox, pad_square)"
            )),
        },
        _ => Err(format!("cannot sweep \"{key}\"")),
    }
}

/// Every combination, the first axis varying slowest.
pub fn combinations(axes: &[Axis]) -> Vec<Vec<(String, Value)>> {
    let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                axis.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    out
}

/// The base config (read from `path`) with its model and class-file paths made absolute, so
/// a derived config loads from anywhere.
fn base_config(path: &Path) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let Value::Object(mut obj) = v else {
        return Err(format!("{}: not a JSON object", path.display()));
    };
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let absolute = |v: &mut Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            let p = base.join(s);
            let p = std::fs::canonicalize(&p).unwrap_or(p);
            *v = Value::String(p.display().to_string());
        }
    };
    for key in ["model_path", "class_names_path"] {
        if let Some(v) = obj.get_mut(key) {
            absolute(v);
        }
    }
    if let Some(Value::Array(members)) = obj.get_mut("models") {
        for m in members {
            if let Some(v) = m.get_mut("model_path") {
                absolute(v);
            }
        }
    }
    Ok(obj)
}

/// The config of one combination: the base with the combination's values set (at the top
/// level: for `"models"`, every member's default) and, when it sets preprocessing, the
/// metadata override.
fn derived(base: &Map<String, Value>, combo: &[(String, Value)], keys: &[String]) -> Value {
    let mut obj = base.clone();
    for (key, (_, value)) in keys.iter().zip(combo) {
        obj.insert(key.clone(), value.clone());
    }
    if keys
        .iter()
        .any(|k| PREPROCESSING_KEYS.contains(&k.as_str()))
    {
        obj.insert("override_model_metadata".into(), Value::Bool(true));
    }
    Value::Object(obj)
}

/// The arguments of the run to pass on to each child: all of them but the sweep's own, the
/// config or model (the child gets its derived config) and the outputs of a single run.
pub fn child_args(argv: &[OsString]) -> Vec<OsString> {
    const WITH_VALUE: &[&str] = &[
        "--sweep",
        "--sweep-out",
        "--config",
        "--model",
        "--report",
        "--html",
        "--predictions",
        "--confusion",
        "--compare",
    ];
    const FLAGS: &[&str] = &["--print-json", "--verbose", "-v"];
    let mut out = Vec::new();
    let mut args = argv.iter();
    while let Some(a) = args.next() {
        let s = a.to_string_lossy();
        if WITH_VALUE.contains(&s.as_ref()) {
            args.next();
            continue;
        }
        let with_equals = WITH_VALUE
            .iter()
            .any(|f| s.starts_with(f) && s[f.len()..].starts_with('='));
        if with_equals || FLAGS.contains(&s.as_ref()) {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// One combination's outcome.
#[derive(Clone, Debug)]
pub struct Row {
    pub values: Vec<String>,
    pub config: Value,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub macro_f1: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Images that failed in the run.
    pub image_errors: u64,
    /// Why the combination gave no result (the child's last line of stderr).
    pub failure: Option<String>,
}

impl Row {
    fn to_json(&self, keys: &[String]) -> Value {
        let values: Map<String, Value> = keys
            .iter()
            .zip(&self.values)
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "values": values, "top1": self.top1, "top5": self.top5, "macro_f1": self.macro_f1,
            "mean_latency_ms": self.mean_ms, "image_errors": self.image_errors,
            "failure": self.failure, "config": self.config,
        })
    }
}

/// The best row: the highest top-1, ties to the lower mean latency; rows without a top-1 never.
pub fn best(rows: &[Row]) -> Option<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.top1.is_some())
        .min_by(|(_, a), (_, b)| {
            let (ta, tb) = (a.top1.unwrap_or(0.0), b.top1.unwrap_or(0.0));
            tb.total_cmp(&ta).then(
                a.mean_ms
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.mean_ms.unwrap_or(f64::INFINITY)),
            )
        })
        .map(|(i, _)| i)
}

/// What the sweep needs from the command line.
pub struct Sweep<'a> {
    pub specs: &'a [String],
    pub out: Option<&'a Path>,
    pub report: Option<&'a Path>,
    pub config: &'a Path,
    pub val_dir: &'a Path,
}

/// Removes the sweep's temporary folder (derived configs, child reports) when done.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(s: &Sweep, stopped: &dyn Fn() -> bool) -> Result<ExitCode, String> {
    let axes = s
        .specs
        .iter()
        .map(|spec| parse_axis(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(format!(
                "--sweep names \"{k}\" twice: list all its values in one --sweep {k}=V1,V2,..."
            ));
        }
    }
    let base = base_config(s.config)?;
    let combos = combinations(&axes);
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the harness itself: {e}"))?;
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let passed_on = child_args(&argv);
    let tmp =
        TempDir(std::env::temp_dir().join(format!("ji-harness-sweep-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).map_err(|e| format!("{}: {e}", tmp.0.display()))?;
    let overrides = keys
        .iter()
        .any(|k| PREPROCESSING_KEYS.contains(&k.as_str()));
    eprintln!(
        "sweep: {} combination(s) of {} on {}, each in its own process{}",
        combos.len(),
        keys.join(", "),
        s.val_dir.display(),
        if overrides {
            "; the derived configs set \"override_model_metadata\": true, so the swept \
             preprocessing wins over the model's metadata"
        } else {
            ""
        }
    );
    let mut rows = Vec::with_capacity(combos.len());
    for (i, combo) in combos.iter().enumerate() {
        if stopped() {
            break;
        }
        let config = derived(&base, combo, &keys);
        let cfg_path = tmp.0.join(format!("config-{i}.json"));
        let report_path = tmp.0.join(format!("report-{i}.json"));
        std::fs::write(
            &cfg_path,
            serde_json::to_string_pretty(&config).unwrap_or_default(),
        )
        .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let label: Vec<String> = keys
            .iter()
            .zip(combo)
            .map(|(k, (raw, _))| format!("{k}={raw}"))
            .collect();
        eprintln!("sweep {}/{}: {}", i + 1, combos.len(), label.join(" "));
        let out = Command::new(&exe)
            .args(&passed_on)
            .arg("--config")
            .arg(&cfg_path)
            .arg("--report")
            .arg(&report_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let report: Option<Value> = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let f = |v: &Value| v.as_f64();
        let mut row = Row {
            values: combo.iter().map(|(raw, _)| raw.clone()).collect(),
            config,
            top1: None,
            top5: None,
            macro_f1: None,
            mean_ms: None,
            image_errors: 0,
            failure: None,
        };
        match report {
            Some(r) => {
                row.top1 = f(&r["accuracy"]["top1"]);
                row.top5 = f(&r["accuracy"]["topk"]);
                row.macro_f1 = f(&r["macro"]["f1"]);
                row.mean_ms = f(&r["latency_ms"]["mean"]);
                row.image_errors = r["images"]["errors"].as_u64().unwrap_or(0);
                if row.top1.is_none() {
                    row.failure = Some("no labelled image ran".into());
                }
            }
            None => row.failure = Some(failure(&out, &cfg_path)),
        }
        rows.push(row);
    }
    print_table(&keys, &rows);
    let best = best(&rows);
    if let Some(p) = s.report {
        let j = json!({
            "base_config": s.config.display().to_string(),
            "val_dir": s.val_dir.display().to_string(),
            "keys": keys,
            "override_model_metadata": overrides,
            "rows": rows.iter().map(|r| r.to_json(&keys)).collect::<Vec<_>>(),
            "best": best,
            "interrupted": stopped(),
        });
        let text = serde_json::to_string_pretty(&j).unwrap_or_default() + "\n";
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if stopped() {
        eprintln!("harness: interrupted: the table covers the combinations run before Ctrl-C");
        return Ok(ExitCode::from(130));
    }
    let Some(b) = best else {
        return Err("no combination gave a result (see the table)".into());
    };
    if let Some(p) = s.out {
        let r = &rows[b];
        let mut cfg = r.config.clone();
        let pct = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{:.2}%", x * 100.0));
        cfg["_sweep"] = Value::String(format!(
            "the best of {} combinations on {}: {}: top-1 {}, top-5 {}, macro F1 {}, mean {} ms \
             per call",
            rows.len(),
            s.val_dir.display(),
            keys.iter()
                .zip(&r.values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            pct(r.top1),
            pct(r.top5),
            r.macro_f1.map_or("n/a".into(), |x| format!("{x:.4}")),
            r.mean_ms.map_or("n/a".into(), |x| format!("{x:.2}")),
        ));
        let text = serde_json::to_string_pretty(&cfg).unwrap_or_default() + "\n";
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("harness: wrote the best row's config to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a child gave no report, from its stderr: its last line, and the library's reason when
/// that line points to it ("the library's reason is above"); the derived config's temporary
/// path (gone after the sweep) is named as such.
fn failure(out: &std::process::Output, config: &Path) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut msg = match lines.as_slice() {
        [] => "no report".to_owned(),
        [.., before, last] if last.contains("above") => (*before).to_owned(),
        [.., last] => (*last).to_owned(),
    };
    msg = msg.replace(&config.display().to_string(), "the combination's config");
    format!(
        "{} (exit status {})",
        msg.trim_start_matches("harness: "),
        out.status.code().map_or("none".into(), |c| c.to_string())
    )
}

fn print_table(keys: &[String], rows: &[Row]) {
    let best = best(rows);
    let widths: Vec<usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            rows.iter()
                .map(|r| r.values[i].len())
                .chain([k.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut head = String::from("  ");
    for (k, w) in keys.iter().zip(&widths) {
        head.push_str(&format!("{k:<w$}  "));
    }
    head.push_str("   top-1    top-5  macro F1  mean ms/call");
    println!("{head}");
    let pct = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.2}%", x * 100.0));
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::from(if Some(i) == best { "* " } else { "  " });
        for (v, w) in r.values.iter().zip(&widths) {
            line.push_str(&format!("{v:<w$}  "));
        }
        match &r.failure {
            Some(f) if r.top1.is_none() => line.push_str(&format!("failed: {f}")),
            _ => {
                line.push_str(&format!(
                    "{:>8} {:>8}  {:>8}  {:>12}",
                    pct(r.top1),
                    pct(r.top5),
                    r.macro_f1.map_or("-".into(), |x| format!("{x:.4}")),
                    r.mean_ms.map_or("-".into(), |x| format!("{x:.2}")),
                ));
                if r.image_errors > 0 {
                    line.push_str(&format!("  ({} images failed)", r.image_errors));
                }
            }
        }
        println!("{line}");
    }
    if best.is_some() {
        println!("* best: the highest top-1, ties to the faster");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_into_config_values() {
        let a = parse_axis("tta=none,hflip,hflip+vflip").unwrap();
        assert_eq!(
            a.values.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            [json!([]), json!(["hflip"]), json!(["hflip", "vflip"])]
        );
        let a = parse_axis("crop_size=224,none,200x300").unwrap();
        assert_eq!(
            a.values.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            [json!(224), Value::Null, json!([200, 300])]
        );
        for bad in [
            "tta=mirror",
            "mean=0.5",
            "resize_size=0",
            "resize_size=",
            "resize_mode=crop",
            "tta=none,none",
            "tta",
        ] {
            assert!(parse_axis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combinations_vary_the_last_axis_fastest() {
        let axes = [
            parse_axis("tta=none,hflip").unwrap(),
            parse_axis("resize_size=224,256,288").unwrap(),
        ];
        let c = combinations(&axes);
        assert_eq!(c.len(), 6);
        let raw = |i: usize| c[i].iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>();
        assert_eq!(raw(0), ["none", "224"]);
        assert_eq!(raw(1), ["none", "256"]);
        assert_eq!(raw(5), ["hflip", "288"]);
    }

    #[test]
    fn children_get_the_run_options_but_not_the_sweep_or_outputs() {
        let argv: Vec<OsString> = [
            "--sweep",
            "tta=none,hflip",
            "--sweep-out=best.json",
            "--config",
            "c.json",
            "--lib",
            "x.so",
            "--print-json",
            "--report",
            "r.json",
            "-v",
            "--batch",
            "2",
            "val",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let kept: Vec<String> = child_args(&argv)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(kept, ["--lib", "x.so", "--batch", "2", "val"]);
    }

    #[test]
    fn the_best_row_has_the_highest_top1_then_the_lowest_latency() {
        let row = |top1: Option<f64>, ms: f64| Row {
            values: Vec::new(),
            config: Value::Null,
            top1,
            top5: None,
            macro_f1: None,
            mean_ms: Some(ms),
            image_errors: 0,
            failure: None,
        };
        let rows = [
            row(Some(0.5), 1.0),
            row(Some(0.8), 9.0),
            row(None, 0.1),
            row(Some(0.8), 7.0),
        ];
        assert_eq!(best(&rows), Some(3));
        assert_eq!(best(&rows[2..3]), None);
    }
}
