//! `"keep_cpus_awake"`: a CPU engine that keeps the CPUs awake starts idle-priority poller
//! threads, which spin while its calls run and sleep between them, are shared by the process's
//! engines and end with the last of them; `false` starts none. Its own binary: it counts the
//! process's threads, so no other test may create engines meanwhile.

mod common;

use common::*;
use ji::awake::thread_state;
use ji::ffi::evsdk::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The process's poller threads (named `ji-awake-N`).
fn pollers() -> Vec<libc::pid_t> {
    let mut tids: Vec<libc::pid_t> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.starts_with("ji-awake-")
                .then(|| e.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect();
    tids.sort();
    tids
}

fn open(name: &str, awake: bool) -> *mut EvsdkHandle {
    let extra = [
        ("device", "cpu".into()),
        ("num_threads", 2.into()),
        ("keep_cpus_awake", awake.into()),
    ];
    evsdk_open(&config_copy(
        &fixture("colour.json"),
        "keep_cpus_awake",
        name,
        &extra,
    ))
}

/// `"keep_cpus_awake"` of `evsdk_model_info`.
fn reports_awake(h: *mut EvsdkHandle) -> bool {
    let mut out = std::ptr::null_mut();
    assert_eq!(unsafe { evsdk_model_info(h, &mut out) }, EVSDK_OK);
    take_json(out)["keep_cpus_awake"].as_bool().unwrap()
}

fn classify(h: *mut EvsdkHandle, img: &[u8]) {
    let mut out = std::ptr::null_mut();
    let rc = unsafe { evsdk_process_image(h, img.as_ptr(), img.len(), std::ptr::null(), &mut out) };
    assert_eq!(rc, 0, "{}", last_error());
    assert_eq!(take_json(out)["model_data"]["class_id"], 0);
}

/// Waits up to 5 s until every thread in `tids` sleeps.
fn all_asleep(tids: &[libc::pid_t]) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if tids
            .iter()
            .all(|&t| thread_state(t).is_some_and(|s| s.0 == 'S'))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn cpu_engines_keep_the_cpus_awake_only_while_calls_run_and_only_when_asked() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let img = std::fs::read(fixture("images/red.jpg")).unwrap();

    let off = open("off", false);
    assert!(
        pollers().is_empty(),
        "\"keep_cpus_awake\": false started pollers"
    );
    assert!(!reports_awake(off));
    classify(off, &img);

    let a = open("on_a", true);
    let tids = pollers();
    if cpus < 2 {
        // One CPU: one intra-op thread at most, nothing to wake.
        assert!(tids.is_empty());
        assert!(!reports_awake(a));
        unsafe { evsdk_release(a) };
        unsafe { evsdk_release(off) };
        return;
    }
    assert_eq!(tids.len(), 2, "one poller per intra-op thread");
    assert!(reports_awake(a));
    for &t in &tids {
        assert_eq!(
            thread_state(t).map(|s| s.1),
            Some(libc::SCHED_IDLE),
            "pollers must run at idle priority"
        );
    }
    assert!(all_asleep(&tids), "pollers must sleep between calls");

    // While calls run back to back, the pollers are seen running or runnable.
    let calling = AtomicBool::new(true);
    let seen_running = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut seen = 0;
            while calling.load(Ordering::Relaxed) {
                seen += tids
                    .iter()
                    .filter(|&&t| thread_state(t).is_some_and(|s| s.0 == 'R'))
                    .count();
                std::thread::sleep(Duration::from_micros(200));
            }
            seen
        });
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(500) {
            classify(a, &img);
        }
        calling.store(false, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    assert!(seen_running > 0, "no poller ran while calls ran");
    assert!(
        all_asleep(&tids),
        "pollers must sleep again after the calls"
    );

    // A second engine shares them; they end with the last engine that uses them.
    let b = open("on_b", true);
    assert_eq!(pollers(), tids);
    classify(b, &img);
    unsafe { evsdk_release(a) };
    assert_eq!(pollers(), tids);
    unsafe { evsdk_release(b) };
    // Joined; a joined thread's /proc entry can outlive the join by a moment.
    let t = Instant::now();
    while !pollers().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(pollers().is_empty(), "pollers outlived the engines");
    classify(off, &img);
    unsafe { evsdk_release(off) };
}
