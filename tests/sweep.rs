//! `harness --sweep`: every combination of test-time settings on the colour fixtures' labelled
//! folder, a row each, the best row's config written by `--sweep-out`, failures as rows.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_combination_is_a_row_and_the_best_config_loads() {
    let dir = temp_dir("sweep", "rows");
    let cfg = fixture("colour.json");
    let val = fixture("val");
    let best = dir.join("best.json");
    let report = dir.join("sweep.json");
    let out = harness(&[
        "--config",
        cfg.to_str().unwrap(),
        val.to_str().unwrap(),
        "--sweep",
        "tta=none,hflip+vflip",
        "--sweep",
        "resize_mode=stretch,shorter_side",
        "--sweep",
        "resize_size=32,40x48",
        "--sweep-out",
        best.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("\"override_model_metadata\": true"),
        "the run says the derived configs override the metadata: {log}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "2 x 2 x 2 combinations");
    assert_eq!(
        r["keys"],
        serde_json::json!(["tta", "resize_mode", "resize_size"])
    );
    // shorter_side with a [h, w] size is a config error: that row failed, the others ran.
    for row in rows {
        let v = &row["values"];
        if v["resize_mode"] == "shorter_side" && v["resize_size"] == "40x48" {
            let f = row["failure"].as_str().unwrap();
            assert!(f.contains("resize_size"), "{f}");
            assert!(row["top1"].is_null());
        } else {
            assert_eq!(row["top1"], 1.0, "{row}");
            assert_eq!(row["top5"], 1.0, "{row}");
            assert_eq!(row["macro_f1"], 1.0, "{row}");
            assert!(row["mean_latency_ms"].as_f64().unwrap() > 0.0);
            assert_eq!(row["config"]["override_model_metadata"], true);
        }
    }
    // The table: a header, 8 rows, the best marked.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("top-1") && lines[0].contains("mean ms/call"),
        "{stdout}"
    );
    assert_eq!(
        lines[1..9].iter().filter(|l| l.starts_with("* ")).count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        lines[1..9].iter().filter(|l| l.contains("failed:")).count(),
        2
    );
    // The best row: top-1 1.0, and no row with top-1 1.0 is faster.
    let b = r["best"].as_u64().unwrap() as usize;
    let ms = |i: usize| rows[i]["mean_latency_ms"].as_f64().unwrap_or(f64::INFINITY);
    assert!((0..rows.len()).all(|i| ms(i) >= ms(b)));
    // Its config is complete and loads as it is, from anywhere.
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&best).unwrap()).unwrap();
    assert!(written["_sweep"]
        .as_str()
        .unwrap()
        .contains("top-1 100.00%"));
    let loaded = ji::config::Config::load(&best).unwrap();
    let v = &rows[b]["values"];
    assert_eq!(loaded.tta.is_empty(), v["tta"] == "none");
    assert_eq!(
        written["resize_size"], rows[b]["config"]["resize_size"],
        "{written}"
    );
    assert!(loaded.model_path.is_absolute());
    let engine = ji::Engine::new(loaded).unwrap();
    assert_eq!(engine.num_classes(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sweeps_are_refused_before_running() {
    let cfg = fixture("colour.json");
    let val = fixture("val");
    for (args, needle) in [
        (vec!["--sweep", "mean=0.5"], "cannot sweep \"mean\""),
        (vec!["--sweep", "tta=mirror"], "not a tta value"),
        (
            vec!["--sweep", "tta=none", "--sweep", "tta=hflip"],
            "names \"tta\" twice",
        ),
        (vec!["--sweep", "crop_size=0"], "not a size"),
        (vec!["--sweep-out", "x.json"], "--sweep"),
        (
            vec!["--sweep", "tta=none", "--compare", "r.json"],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["--config", cfg.to_str().unwrap(), val.to_str().unwrap()];
        all.extend(args.iter().copied());
        let out = harness(&all);
        let log = text(&out);
        assert!(!out.status.success(), "{args:?} ran: {log}");
        assert!(log.contains(needle), "{args:?}: {log}");
    }
}
