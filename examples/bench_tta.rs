//! The whole-call CPU cost of test-time augmentation and of a two-model ensemble against the
//! same config with one view of one model. Numbers go into BENCHMARKS.md ("TTA and
//! ensembles"); `make bench-tta` runs it on the demo.
//!
//! Usage: bench_tta CONFIG IMAGE... [--rounds R] [--second-model PATH]
//!
//! Variants, each an engine of its own made from CONFIG:
//!   single       CONFIG as it is, without "tta";
//!   hflip        "tta": ["hflip"];
//!   hflip+vflip  "tta": ["hflip", "vflip"];
//!   ensemble2    "models": [CONFIG's model, PATH] (default: CONFIG's model again, which costs
//!                what a second model of the same architecture costs), no "tta".
//! A call is what `evsdk_process_image` / `ji_calc_buffer` run: the encoded image in memory,
//! decoded (only where the preprocessing reads), preprocessed, through the model(s), ranked,
//! rendered as JSON. Each round runs every image once through every variant, call by call in
//! rotating order (so load from other processes falls on every variant alike), after one
//! untimed pass. Prints the median ms per call of each variant and round, then per variant
//! the median over rounds and the median of its ratio to `single` within a round (the goal
//! for hflip: under 1.7x).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    let mut images = Vec::new();
    let mut rounds = 5usize;
    let mut second: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--second-model" => second = Some(args.next().expect("--second-model PATH").into()),
            _ if config.is_none() => config = Some(PathBuf::from(a)),
            _ => images.push(PathBuf::from(a)),
        }
    }
    let (Some(config), false) = (config, images.is_empty()) else {
        eprintln!("usage: bench_tta CONFIG IMAGE... [--rounds R] [--second-model PATH]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&config).expect("read CONFIG");
    let mut base: Value = serde_json::from_str(&text).expect("CONFIG is JSON");
    let dir = config.parent().unwrap_or(Path::new("."));
    for key in ["model_path", "class_names_path"] {
        if let Some(p) = base[key].as_str() {
            let p = std::fs::canonicalize(dir.join(p)).expect("a file CONFIG names");
            base[key] = json!(p.display().to_string());
        }
    }
    base.as_object_mut()
        .expect("CONFIG is an object")
        .remove("tta");
    let model = base["model_path"].clone();
    let second = second.map_or(model.clone(), |p| json!(p.display().to_string()));
    let tmp = std::env::temp_dir().join(format!("ji-bench-tta-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp folder");
    let variant = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut c = base.clone();
        change(&mut c);
        let path = tmp.join(format!("{name}.json"));
        std::fs::write(&path, c.to_string()).expect("write config");
        let e = ji::Engine::from_config_path(Some(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
        (name.to_owned(), e)
    };
    let engines = [
        variant("single", &|_| {}),
        variant("hflip", &|c| c["tta"] = json!(["hflip"])),
        variant("hflip+vflip", &|c| c["tta"] = json!(["hflip", "vflip"])),
        variant("ensemble2", &|c| {
            let o = c.as_object_mut().expect("object");
            o.remove("model_path");
            o.insert(
                "models".into(),
                json!([{"model_path": model}, {"model_path": second}]),
            );
        }),
    ];
    let _ = std::fs::remove_dir_all(&tmp);
    let bytes: Vec<Vec<u8>> = images
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    let call = |e: &ji::Engine, b: &[u8]| {
        let t = Instant::now();
        e.run_encoded_json(b, None, None).expect("call");
        t.elapsed().as_secs_f64() * 1e3
    };
    for (_, e) in &engines {
        for b in &bytes {
            call(e, b);
        }
    }
    println!(
        "{} images, {rounds} rounds, device {}, optimization {}",
        bytes.len(),
        engines[0].1.device_name(),
        engines[0].1.optimization().path
    );
    // Per variant, the median ms per call of each round.
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
    let mut turn = 0usize;
    for _ in 0..rounds {
        let mut calls: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
        for b in &bytes {
            for k in 0..engines.len() {
                let v = (turn + k) % engines.len();
                calls[v].push(call(&engines[v].1, b));
            }
            turn += 1;
        }
        for (v, c) in calls.iter_mut().enumerate() {
            per_round[v].push(median(c));
        }
    }
    println!(
        "{:<12} {:>10} {:>14}   per round (median ms per call)",
        "variant", "median ms", "x single"
    );
    for (v, (name, _)) in engines.iter().enumerate() {
        let mut m = per_round[v].clone();
        let mut ratio: Vec<f64> = (0..rounds)
            .map(|r| per_round[v][r] / per_round[0][r])
            .collect();
        println!(
            "{name:<12} {:>10.2} {:>13.2}x   {}",
            median(&mut m),
            median(&mut ratio),
            per_round[v]
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
