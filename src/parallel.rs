//! Splitting one call's CPU work (decoding, resizing) over libtorch's intra-op threads.
//!
//! A synchronous call decodes and preprocesses on the caller's thread while libtorch's other
//! intra-op (OpenMP) threads wait for the forward pass; with the default wait policy they spin
//! on the other cores meanwhile. Work handed to them through `at::parallel_for` runs on those
//! threads (src/optimize.cpp, `ji_parallel_for`), so it needs no thread of its own, does not
//! compete with them for a core, and follows the `num_threads` setting: with one thread, or
//! inside another parallel region, the parts run in turn on the caller's thread.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Mutex;

extern "C" {
    fn ji_parallel_for(n: i64, cb: extern "C" fn(*mut c_void, i64), ctx: *mut c_void);
}

/// How many threads [`for_each`] can spread work over (libtorch's intra-op thread count).
pub fn threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

struct Ctx<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

extern "C" fn call(ctx: *mut c_void, i: i64) {
    // SAFETY: `ctx` is the `Ctx` that `for_each` passed in, alive until ji_parallel_for
    // returns (which waits for every thread), and only read here (the Mutex serialises the
    // writes).
    let ctx = unsafe { &*(ctx as *const Ctx) };
    // A panic must not unwind into C++: it is kept and resumed on the caller's thread.
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| (ctx.f)(i as usize))) {
        let mut slot = ctx.panic.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(p);
    }
}

/// Runs `f(0)`, ..., `f(n - 1)`, spread over libtorch's intra-op threads (the caller's thread
/// takes part), and returns when all have run; in turn on the caller's thread when there is
/// one thread or the caller is already inside a parallel region (a part of an outer
/// `for_each`, such as one chunk of a batch). A panic in `f` is resumed here, after all ran.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    if n == 0 {
        return;
    }
    let ctx = Ctx {
        f: &f,
        panic: Mutex::new(None),
    };
    // SAFETY: `call` matches the callback type and never unwinds; `ctx` outlives the call.
    unsafe { ji_parallel_for(n as i64, call, &ctx as *const Ctx as *mut c_void) };
    if let Some(p) = ctx.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once() {
        let hits: Vec<AtomicUsize> = (0..7).map(|_| AtomicUsize::new(0)).collect();
        for_each(hits.len(), |i| {
            hits[i].fetch_add(1, Ordering::SeqCst);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::SeqCst) == 1));
        for_each(0, |_| unreachable!());
        // Nested: each inner loop runs in order on its outer part's thread.
        let on = std::sync::Mutex::new(Vec::new());
        for_each(2, |outer| {
            for_each(3, |i| {
                on.lock()
                    .unwrap()
                    .push((outer, i, std::thread::current().id()))
            })
        });
        let on = on.into_inner().unwrap();
        assert_eq!(on.len(), 6);
        for outer in 0..2 {
            let part: Vec<_> = on.iter().filter(|p| p.0 == outer).collect();
            assert_eq!(part.iter().map(|p| p.1).collect::<Vec<_>>(), [0, 1, 2]);
            assert!(part.iter().all(|p| p.2 == part[0].2));
        }
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = catch_unwind(|| for_each(2, |i| assert!(i == 0, "part {i} failed")));
        let msg = r.unwrap_err();
        let msg = msg
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(msg.contains("part 1 failed"), "{msg}");
    }
}
