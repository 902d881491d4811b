//! The model's forward pass alone, on a ready input tensor: libji's CPU fast path (the
//! default) against the plain TorchScript model, round by round (used by tools/bench_inference.py; numbers go into
//! BENCHMARKS.md).
//!
//! Usage: bench_forward MODEL.pt [--size H W] [--batch N] [--rounds R] [--calls C]
//!                                [--precision fp32|bf16] [--threads T] [--consecutive]
//!                                [--huge-pages on|off]
//! By default the variants take turns call by call (each call then follows another model's,
//! as in a pipeline that does other work between forwards); with `--consecutive` each variant
//! makes its C calls in a row (the steady state of one model called back to back), the
//! variants still taking turns round by round. Prints one JSON object: median of the round
//! medians in ms per call for each variant (and the best round's median: on a shared machine,
//! the closest to an idle one), and the fast path's report.

use ji::config::Precision;
use ji::model::Model;
use std::path::PathBuf;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .expect("usage: bench_forward MODEL.pt [options]"),
    );
    let (mut h, mut w, mut batch, mut rounds, mut calls) =
        (224u32, 224u32, 1usize, 5usize, 10usize);
    let mut precision = Precision::Fp32;
    let mut threads = 0i32;
    let mut consecutive = false;
    let mut huge_pages = false;
    while let Some(a) = args.next() {
        let mut num = || {
            args.next()
                .expect("a value")
                .parse::<usize>()
                .expect("a number")
        };
        match a.as_str() {
            "--size" => {
                h = num() as u32;
                w = num() as u32;
            }
            "--batch" => batch = num(),
            "--rounds" => rounds = num(),
            "--calls" => calls = num(),
            "--threads" => threads = num() as i32,
            "--consecutive" => consecutive = true,
            // As an engine's `"huge_pages"` (opt-in): the heap in huge pages after load.
            "--huge-pages" => huge_pages = args.next().as_deref() == Some("on"),
            "--precision" => {
                precision = match args.next().as_deref() {
                    Some("bf16") => Precision::Bf16,
                    _ => Precision::Fp32,
                }
            }
            other => panic!("unknown option {other}"),
        }
    }
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    let t = Instant::now();
    let fast = Model::load(&model, tch::Device::Cpu, precision, (h, w), true, false).unwrap();
    let load_fast_s = t.elapsed().as_secs_f64();
    let plain = Model::load(
        &model,
        tch::Device::Cpu,
        Precision::Fp32,
        (h, w),
        false,
        false,
    )
    .unwrap();
    // As an engine does at init: batch N gets its own fused graph, warmed up.
    for m in [&fast, &plain] {
        m.prepare_batch(batch, 3).unwrap();
    }
    if huge_pages {
        let _ = ji::hugepages::advise_heap();
    }
    let mut input: Vec<f32> = (0..batch * 3 * h as usize * w as usize)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let variants: [(&str, &Model); 2] = [("fast", &fast), ("plain", &plain)];
    let mut run = |&(_, m): &(&str, &Model)| {
        let t = Instant::now();
        m.forward(&mut input, batch, h, w).unwrap();
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..3 {
        for v in &variants {
            run(v);
        }
    }
    let n = variants.len();
    let mut round_medians = vec![Vec::new(); n];
    for r in 0..rounds {
        let mut times = vec![Vec::new(); n];
        if consecutive {
            for k in 0..n {
                let v = (r + k) % n;
                for _ in 0..calls {
                    times[v].push(run(&variants[v]));
                }
            }
        } else {
            for i in 0..calls {
                for k in 0..n {
                    let v = (r + i + k) % n;
                    times[v].push(run(&variants[v]));
                }
            }
        }
        for (v, t) in times.iter_mut().enumerate() {
            round_medians[v].push(median(t));
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut out = serde_json::json!({
        "model": model.display().to_string(),
        "batch": batch,
        "threads": tch::get_num_threads(),
        "consecutive": consecutive,
        "huge_pages": huge_pages,
        "fast_load_s": load_fast_s,
        "optimization": fast.optimization().to_json(),
    });
    for (v, (name, _)) in variants.iter().enumerate() {
        out[format!("{name}_ms")] = median(&mut round_medians[v].clone()).into();
        out[format!("{name}_ms_best_round")] = best(&round_medians[v]).into();
    }
    println!("{out}");
}
