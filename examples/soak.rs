//! Load and leak check through the ji_* ABI (the judge's calls), in one process:
//!   1. create/destroy cycles: resident memory growth after warm-up, and on a GPU the device's
//!      memory in use and libtorch's caching allocator's (`ji::cuda::memory`);
//!   2. 8 threads x N calls with their own predictors, and 8 threads sharing one: no error,
//!      results identical to the single-thread results;
//!   3. many calls on one predictor: resident memory growth;
//!   4. thread churn: short-lived threads, each making one ji_calc_image call with an out
//!      frame of a 1920x1080 image on a shared predictor: resident memory growth.
//!
//! Prints a report; the numbers go into BENCHMARKS.md (never asserted in tests). A count of 0
//! skips its part.
//!
//! cargo run --release --example soak -- CONFIG IMAGE... [--cycles 1000] [--warm-cycles N]
//!     [--calls 100000] [--thread-calls 500] [--churn-threads 2000] [--max-gpu-growth-mib M]
//!
//! `--warm-cycles` (default a tenth of the cycles): growth is measured from the end of that
//! many cycles to the end of all. `--max-gpu-growth-mib`: exit with status 3 when the GPU
//! memory in use (or reserved by the caching allocator) grew by more than M MiB over the
//! cycles (tools/gpu_check.sh's soak: no growth over 200 cycles after the first 10).

use ji::ffi::ji::*;
use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::time::Instant;

#[path = "../tests/common/process.rs"]
mod process;
use process::rss_mb;

struct Pred(*mut c_void);
unsafe impl Send for Pred {}
unsafe impl Sync for Pred {}

impl Pred {
    fn new() -> Pred {
        let p = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
        assert!(!p.is_null(), "ji_create_predictor failed (see stderr)");
        Pred(p)
    }
    /// One ji_calc_file call; returns the event JSON (copied) or the error.
    fn calc(&self, path: &CString) -> Result<String, String> {
        let mut ev = JI_EVENT {
            code: 0,
            json: ptr::null(),
        };
        let rc = unsafe { ji_calc_file(self.0, path.as_ptr(), ptr::null(), ptr::null(), &mut ev) };
        let json = unsafe { CStr::from_ptr(ev.json) }
            .to_string_lossy()
            .into_owned();
        if rc == 0 {
            Ok(json)
        } else {
            Err(format!("rc {rc}: {json}"))
        }
    }
}

impl Drop for Pred {
    fn drop(&mut self) {
        unsafe { ji_destroy_predictor(self.0) };
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let positional: Vec<&String> = {
        let mut v = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
            } else if a.starts_with("--") {
                skip = true;
            } else {
                v.push(a);
            }
        }
        v
    };
    if positional.len() < 2 {
        eprintln!("usage: soak CONFIG IMAGE... [--cycles N] [--calls N] [--thread-calls N]");
        std::process::exit(2);
    }
    std::env::set_var("EV_SDK_CONFIG", positional[0]);
    let images: Vec<CString> = positional[1..]
        .iter()
        .map(|p| CString::new(p.as_str()).unwrap())
        .collect();
    let cycles = arg(&args, "--cycles", 1000);
    let warm_cycles = arg(&args, "--warm-cycles", (cycles / 10).max(1)).clamp(1, cycles.max(1));
    let max_gpu_growth = args
        .iter()
        .position(|a| a == "--max-gpu-growth-mib")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse::<f64>().expect("--max-gpu-growth-mib: a number"));
    let calls = arg(&args, "--calls", 100_000);
    let thread_calls = arg(&args, "--thread-calls", 500);
    unsafe { ji_init(0, ptr::null_mut()) };

    // Reference results, single thread.
    let reference: Vec<String> = {
        let p = Pred::new();
        images
            .iter()
            .map(|i| p.calc(i).expect("reference call"))
            .collect()
    };

    // 1. create/destroy cycles.
    let warm = warm_cycles;
    let t0 = Instant::now();
    let mut rss_warm = 0.0;
    let mut gpu_warm = None;
    for i in 0..cycles {
        let p = Pred::new();
        assert_eq!(
            p.calc(&images[i % images.len()]).unwrap(),
            reference[i % images.len()]
        );
        drop(p);
        if i + 1 == warm {
            rss_warm = rss_mb();
            gpu_warm = ji::cuda::memory(0);
        }
    }
    let mut gpu_failed = false;
    if cycles > 0 {
        let rss_end = rss_mb();
        println!(
            "create/destroy: {cycles} cycles in {:.1} s; RSS after {warm} warm-up cycles {rss_warm:.1} MB, at the end {rss_end:.1} MB: growth {:+.2} MB",
            t0.elapsed().as_secs_f64(),
            rss_end - rss_warm
        );
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        match (gpu_warm, ji::cuda::memory(0)) {
            (Some(a), Some(b)) => {
                let used = b.used_mib() - a.used_mib();
                let reserved = mib(b.reserved) - mib(a.reserved);
                println!(
                    "create/destroy GPU memory (cuda:0) after {warm} cycles: device used {:.0} MiB, allocator reserved {:.1} MiB, allocated {:.1} MiB; after {cycles}: {:.0} / {:.1} / {:.1} MiB: growth used {used:+.0} MiB, reserved {reserved:+.1} MiB",
                    a.used_mib(),
                    mib(a.reserved),
                    mib(a.allocated),
                    b.used_mib(),
                    mib(b.reserved),
                    mib(b.allocated)
                );
                if let Some(limit) = max_gpu_growth {
                    gpu_failed = used > limit || reserved > limit;
                    println!(
                        "GPU memory growth {} (limit {limit} MiB)",
                        if gpu_failed { "FAIL" } else { "PASS" }
                    );
                }
            }
            _ => println!("create/destroy GPU memory: no CUDA device in use"),
        }
    }

    // 2. threads.
    for shared in [false, true].into_iter().filter(|_| thread_calls > 0) {
        let shared_pred = shared.then(Pred::new);
        let t0 = Instant::now();
        let errors: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (images, reference, shared_pred) = (&images, &reference, &shared_pred);
                    s.spawn(move || {
                        let own = if shared_pred.is_none() {
                            Some(Pred::new())
                        } else {
                            None
                        };
                        let p = own.as_ref().or(shared_pred.as_ref()).unwrap();
                        let mut errors = 0;
                        for i in 0..thread_calls {
                            let k = (t + i) % images.len();
                            match p.calc(&images[k]) {
                                Ok(j) if j == reference[k] => {}
                                Ok(j) => {
                                    errors += 1;
                                    eprintln!("thread {t}: result differs: {j}");
                                }
                                Err(e) => {
                                    errors += 1;
                                    eprintln!("thread {t}: {e}");
                                }
                            }
                        }
                        errors
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        println!(
            "8 threads x {thread_calls} calls, {}: {errors} errors or differing results, {:.1} s",
            if shared {
                "one shared predictor"
            } else {
                "one predictor each"
            },
            t0.elapsed().as_secs_f64()
        );
    }

    // 3. many calls on one predictor.
    if calls > 0 {
        let p = Pred::new();
        let warm = (calls / 20).max(1);
        let t0 = Instant::now();
        let mut rss_warm = 0.0;
        let mut errors = 0;
        for i in 0..calls {
            if p.calc(&images[i % images.len()]).is_err() {
                errors += 1;
            }
            if i + 1 == warm {
                rss_warm = rss_mb();
            }
        }
        let rss_end = rss_mb();
        println!(
        "one predictor: {calls} calls in {:.1} s, {errors} errors; RSS after {warm} calls {rss_warm:.1} MB, at the end {rss_end:.1} MB: growth {:+.2} MB",
        t0.elapsed().as_secs_f64(),
        rss_end - rss_warm
    );
    }

    // 4. thread churn: each short-lived thread leaves its out frame (6 MB) and JSON in the
    // predictor until it ends.
    let churn = arg(&args, "--churn-threads", 2000);
    if churn == 0 {
        std::process::exit(if gpu_failed { 3 } else { 0 });
    }
    let p = Pred::new();
    let (w, h) = (1920u32, 1080u32);
    let frame = vec![128u8; w as usize * h as usize * 3];
    let one_call = |p: &Pred| {
        let info = JiImageInfo::packed_bgr(&frame, w, h);
        let mut ev = JiEvent {
            code: 0,
            json: ptr::null(),
        };
        let mut outs: *mut JiImageInfo = ptr::null_mut();
        let mut n = 0u32;
        let rc = unsafe { ji_calc_image(p.0, &info, 1, ptr::null(), &mut outs, &mut n, &mut ev) };
        rc == 0 && n == 1
    };
    let warm = (churn / 20).max(1);
    let t0 = Instant::now();
    let mut rss_warm = 0.0;
    let mut errors = 0;
    for i in 0..churn {
        let ok = std::thread::scope(|s| s.spawn(|| one_call(&p)).join().unwrap());
        if !ok {
            errors += 1;
        }
        if i + 1 == warm {
            rss_warm = rss_mb();
        }
    }
    let rss_end = rss_mb();
    println!(
        "thread churn: {churn} threads x 1 ji_calc_image with a 1920x1080 out frame in {:.1} s, {errors} errors; RSS after {warm} threads {rss_warm:.1} MB, at the end {rss_end:.1} MB: growth {:+.2} MB",
        t0.elapsed().as_secs_f64(),
        rss_end - rss_warm
    );
    if gpu_failed {
        std::process::exit(3);
    }
}
