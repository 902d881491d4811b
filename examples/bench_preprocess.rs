//! Decode + preprocess benchmark, single thread, used by tools/bench_preprocess.py (which runs
//! PIL + torchvision on the same files in the same run). Prints one JSON line per file.
//!
//! cargo run --release --example bench_preprocess -- CONFIG ITERATIONS FILE...

use ji::config::Config;
use ji::decode::{decode_image, DecodeOptions};
use ji::preprocess::Preprocessor;
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
    for file in &args[3..] {
        let bytes = std::fs::read(file).unwrap();
        let (mut decode, mut prep, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..iterations + 2 {
            let t0 = Instant::now();
            let img = decode_image(&bytes, &opts).unwrap();
            let t1 = Instant::now();
            tensor.clear();
            pre.append_tensor(&img, &cfg.preprocess, &mut tensor)
                .unwrap();
            let t2 = Instant::now();
            if i >= 2 {
                decode.push((t1 - t0).as_secs_f64() * 1e3);
                prep.push((t2 - t1).as_secs_f64() * 1e3);
                total.push((t2 - t0).as_secs_f64() * 1e3);
            }
        }
        println!(
            "{{\"file\": {:?}, \"decode_ms\": {:.3}, \"preprocess_ms\": {:.3}, \"total_ms\": {:.3}, \"checksum\": {}}}",
            file,
            median(decode),
            median(prep),
            median(total),
            tensor.iter().map(|v| *v as f64).sum::<f64>()
        );
    }
}
