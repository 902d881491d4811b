//! Throughput of the 4.x asynchronous mode against synchronous one-image calls, through the
//! exported `ji_*` functions (what the judge calls). Numbers go into BENCHMARKS.md.
//!
//! Usage: bench_async CONFIG [--images N] [--rounds R] [--in-flight W] [--modes 1x1,2x1,1x4]
//!                          [--wait-ms 0] [--size WxH]
//!
//! Each round measures, one after the other (interleaved, so load from other processes on the
//! machine spreads over every mode alike):
//!   sync        N calls of `ji_calc_image` with one frame each, one thread;
//!   async lLbB  N one-frame `ji_calc_image_asyn` requests with at most W in flight (the
//!               submitting thread waits for a callback when W are outstanding), the config's
//!               `async_workers` set to L and `async_max_batch` to B (mode `LxB`; B = 1: no
//!               cross-call batching).
//! The order of the modes rotates from round to round. Frames are W x H BGR gradients (default
//! 640x480), made once. Prints per mode and round images/s of wall time and images per
//! CPU-second of this process (user + system, all its threads), then the median per mode and
//! the median over rounds of its ratio to sync in the same round (on a machine shared with
//! other work the load changes from round to round; within a round much less). Also counts
//! the async results that differ from the synchronous result for the same frame: none may
//! without batching (the exit status says so); with batching they may in a rounded digit.

use ji::ffi::ji::*;
use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

struct Pending {
    done: Mutex<(usize, Vec<(usize, String)>)>,
    cv: Condvar,
}

static PENDING: Pending = Pending {
    done: Mutex::new((0, Vec::new())),
    cv: Condvar::new(),
};

unsafe extern "C" fn on_result(output: *mut JiData, user: *mut c_void) {
    let json = CStr::from_ptr((*output).event.json)
        .to_string_lossy()
        .into_owned();
    ji::ffi::ji_async::ji_free_async_result(output);
    let mut d = PENDING.done.lock().unwrap();
    d.0 += 1;
    d.1.push((user as usize, json));
    PENDING.cv.notify_all();
}

fn frame(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            v.push(((x * 255 / w) as u8).wrapping_add(seed as u8 * 37));
            v.push(((y * 255 / h) as u8).wrapping_add(seed as u8 * 91));
            v.push((((x + y) * 128 / (w + h)) as u8).wrapping_add(seed as u8 * 13));
        }
    }
    v
}

/// One synchronous one-frame `ji_calc_image` call; returns the event JSON (owned by `pred`).
fn calc_sync(pred: *mut c_void, frame: &[u8], w: u32, h: u32) -> *const std::ffi::c_char {
    let inf = info(frame, w, h);
    let mut ev = JiEvent {
        code: 0,
        json: ptr::null(),
    };
    let rc = unsafe {
        ji_calc_image(
            pred,
            &inf,
            1,
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut ev,
        )
    };
    assert_eq!(rc, 0);
    ev.json
}

fn info(data: &[u8], w: u32, h: u32) -> JiImageInfo {
    JiImageInfo::packed_bgr(data, w, h)
}

fn create(config: &std::path::Path) -> *mut c_void {
    std::env::set_var("EV_SDK_CONFIG", config);
    let p = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
    assert!(!p.is_null(), "ji_create_predictor failed");
    p
}

/// User + system CPU seconds of this process so far (every thread).
fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut config = None;
    let (mut n, mut rounds, mut window, mut wait_ms) = (32usize, 3usize, 16usize, 0u32);
    let mut modes_arg = vec![(1u32, 1u32), (2, 1)];
    let (mut w, mut h) = (640u32, 480u32);
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--images" => n = v.parse().unwrap(),
            "--rounds" => rounds = v.parse().unwrap(),
            "--in-flight" => window = v.parse().unwrap(),
            "--wait-ms" => wait_ms = v.parse().unwrap(),
            "--modes" => {
                modes_arg = v
                    .split(',')
                    .map(|m| {
                        let (l, b) = m.split_once('x').expect("a mode is LANESxBATCH");
                        (l.parse().unwrap(), b.parse().unwrap())
                    })
                    .collect()
            }
            "--size" => {
                let (a, b) = v.split_once('x').unwrap();
                (w, h) = (a.parse().unwrap(), b.parse().unwrap());
            }
            other => {
                config = Some(std::path::PathBuf::from(other));
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let config = config.expect("usage: bench_async CONFIG [options]");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("bench_async_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_dir = config.parent().unwrap().canonicalize().unwrap();
    // Configs per mode; relative paths made absolute against the original's folder.
    let variant = |lanes: u32, batch: u32| {
        let mut c = base.clone();
        for key in ["model_path", "class_names_path"] {
            let p = std::path::Path::new(c[key].as_str().unwrap()).to_path_buf();
            if p.is_relative() {
                c[key] = serde_json::json!(cfg_dir.join(p));
            }
        }
        c["async_workers"] = serde_json::json!(lanes);
        c["async_max_batch"] = serde_json::json!(batch);
        c["async_max_wait_ms"] = serde_json::json!(wait_ms);
        c["async_queue"] = serde_json::json!(window.max(1));
        let path = dir.join(format!("l{lanes}b{batch}.json"));
        std::fs::write(&path, c.to_string()).unwrap();
        path
    };
    let frames: Vec<Vec<u8>> = (0..8).map(|s| frame(w, h, s)).collect();
    let sync_pred = create(&variant(1, 1));
    let async_preds: Vec<((u32, u32), *mut c_void)> = modes_arg
        .iter()
        .map(|&(l, b)| {
            let p = create(&variant(l, b));
            assert_eq!(unsafe { ji_set_callback(p, Some(on_result)) }, 0);
            ((l, b), p)
        })
        .collect();
    // Reference results (and warm-up: each batch shape the async runs may meet is not known in
    // advance, so the first round is also reported separately and the median taken).
    let reference: Vec<String> = frames
        .iter()
        .map(|f| {
            unsafe { CStr::from_ptr(calc_sync(sync_pred, f, w, h)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    println!(
        "bench_async: {} images of {w}x{h} per mode and round, {rounds} rounds, in flight {window}, async_max_wait_ms {wait_ms}, config {}",
        n,
        config.display()
    );
    let modes: Vec<Option<((u32, u32), *mut c_void)>> = std::iter::once(None)
        .chain(async_preds.iter().map(|&(m, p)| Some((m, p))))
        .collect();
    let name = |m: &Option<((u32, u32), *mut c_void)>| match m {
        None => "sync".to_string(),
        Some(((l, b), _)) => format!("async l{l}b{b}"),
    };
    // Per mode: (images/s wall, images per CPU-second) of each counted round.
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); modes.len()];
    // Per mode: async results that differ from the synchronous one for the same frame.
    let mut mismatches = vec![0usize; modes.len()];
    for round in 0..=rounds {
        // Round 0 warms every predictor up and is not counted.
        let mut line = format!("round {round}:");
        for j in 0..modes.len() {
            let j = (j + round) % modes.len();
            let (t, cpu) = (Instant::now(), cpu_seconds());
            match modes[j] {
                None => {
                    for k in 0..n {
                        calc_sync(sync_pred, &frames[k % frames.len()], w, h);
                    }
                }
                Some((_, p)) => {
                    {
                        let mut d = PENDING.done.lock().unwrap();
                        d.0 = 0;
                        d.1.clear();
                    }
                    for k in 0..n {
                        // Wait while `window` requests are outstanding.
                        let mut d = PENDING.done.lock().unwrap();
                        while k - d.0 >= window {
                            d = PENDING.cv.wait(d).unwrap();
                        }
                        drop(d);
                        let f = &frames[k % frames.len()];
                        let inf = info(f, w, h);
                        let rc = unsafe {
                            ji_calc_image_asyn(p, &inf, 1, ptr::null(), k as *mut c_void)
                        };
                        assert_eq!(rc, 0);
                    }
                    let mut d = PENDING.done.lock().unwrap();
                    while d.0 < n {
                        d = PENDING.cv.wait(d).unwrap();
                    }
                    for (k, json) in &d.1 {
                        if *json != reference[k % frames.len()] {
                            mismatches[j] += 1;
                        }
                    }
                }
            }
            let ips = n as f64 / t.elapsed().as_secs_f64();
            let per_cpu = n as f64 / (cpu_seconds() - cpu);
            line += &format!(" {} {ips:.2} ({per_cpu:.2}/cpu-s)", name(&modes[j]));
            if round > 0 {
                results[j].push((ips, per_cpu));
            }
        }
        println!(
            "{line}{}",
            if round == 0 {
                " (warm-up, not counted)"
            } else {
                ""
            }
        );
    }
    let med = |j: usize, f: fn(&(f64, f64)) -> f64| {
        median(&mut results[j].iter().map(f).collect::<Vec<_>>())
    };
    // Ratios are taken within each round (the same few seconds of machine load), then the
    // median over rounds.
    let paired = |j: usize, f: fn(&(f64, f64)) -> f64| {
        median(
            &mut results[j]
                .iter()
                .zip(&results[0])
                .map(|(r, s)| f(r) / f(s))
                .collect::<Vec<_>>(),
        )
    };
    for (j, m) in modes.iter().enumerate() {
        let (wall, cpu) = (med(j, |r| r.0), med(j, |r| r.1));
        println!(
            "median {}: {wall:.2} images/s ({:.2}x sync in the same round), {cpu:.2} images per CPU-second ({:.2}x)",
            name(m),
            paired(j, |r| r.0),
            paired(j, |r| r.1)
        );
    }
    for (j, m) in modes.iter().enumerate().skip(1) {
        println!(
            "{}: {} async results different from the synchronous ones",
            name(m),
            mismatches[j]
        );
    }
    // Without batching the results must be byte-identical.
    let unbatched_mismatches: usize = modes
        .iter()
        .zip(&mismatches)
        .filter(|(m, _)| matches!(m, Some(((_, 1), _))))
        .map(|(_, n)| n)
        .sum();
    unsafe {
        ji_destroy_predictor(sync_pred);
        for (_, p) in async_preds {
            ji_destroy_predictor(p);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(if unbatched_mismatches == 0 { 0 } else { 1 });
}
