//! Decode + preprocess benchmark, single thread, used by tools/bench_preprocess.py (which runs
//! PIL + torchvision on the same files in the same run). Prints one JSON line per file.
//!
//! Decodes as the engine's encoded-image path does (`decode_image_window`: a JPEG only where
//! the preprocessing reads, into a reused buffer), and also times the full decode into the
//! same buffer (`decode_full_ms`, the path before windowed decoding) for comparison.
//!
//! cargo run --release --example bench_preprocess -- CONFIG ITERATIONS FILE...

use ji::config::Config;
use ji::decode::{decode_image_reusing, decode_image_window, DecodeOptions};
use ji::preprocess::{source_window, Preprocessor};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_preprocess CONFIG ITERATIONS FILE...");
        std::process::exit(2);
    }
    let cfg = Config::load(args[1].as_ref()).unwrap_or_else(|e| panic!("{e}"));
    let iterations: usize = args[2].parse().expect("ITERATIONS");
    let opts = DecodeOptions {
        exif_transpose: cfg.preprocess.exif_transpose,
        max_pixels: cfg.preprocess.max_image_pixels,
    };
    let mut pre = Preprocessor::new();
    let mut tensor = Vec::new();
    let mut reuse = Vec::new();
    let window = |w, h| source_window(w, h, &cfg.preprocess);
    for file in &args[3..] {
        let bytes = std::fs::read(file).unwrap();
        let (mut full, mut decode, mut prep, mut total) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut info = String::new();
        // The two decodes in separate loops, each followed by the preprocessing as in a
        // call (interleaved, or without the preprocessing between decodes, the cache state
        // differs and so do the times).
        for i in 0..iterations + 2 {
            let t = Instant::now();
            let img = decode_image_reusing(&bytes, &opts, std::mem::take(&mut reuse)).unwrap();
            let full_ms = t.elapsed().as_secs_f64() * 1e3;
            tensor.clear();
            pre.append_tensor(&img, &cfg.preprocess, &mut tensor)
                .unwrap();
            reuse = img.data;
            if i >= 2 {
                full.push(full_ms);
            }
        }
        for i in 0..iterations + 2 {
            let t0 = Instant::now();
            let (img, region) =
                decode_image_window(&bytes, &opts, std::mem::take(&mut reuse), &window).unwrap();
            let t1 = Instant::now();
            tensor.clear();
            pre.append_tensor(&img, &cfg.preprocess, &mut tensor)
                .unwrap();
            let t2 = Instant::now();
            info = format!(
                "\"size\": \"{}x{}\", \"decoded\": {}",
                img.width,
                img.height,
                match region {
                    Some(r) => format!("\"{}x{} at ({}, {})\"", r.width, r.height, r.x, r.y),
                    None => "\"all\"".into(),
                }
            );
            reuse = img.data;
            if i >= 2 {
                decode.push((t1 - t0).as_secs_f64() * 1e3);
                prep.push((t2 - t1).as_secs_f64() * 1e3);
                total.push((t2 - t0).as_secs_f64() * 1e3);
            }
        }
        println!(
            "{{\"file\": {:?}, {info}, \"decode_full_ms\": {:.3}, \"decode_ms\": {:.3}, \"preprocess_ms\": {:.3}, \"total_ms\": {:.3}, \"checksum\": {}}}",
            file,
            median(full),
            median(decode),
            median(prep),
            median(total),
            tensor.iter().map(|v| *v as f64).sum::<f64>()
        );
    }
}
