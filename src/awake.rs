//! Keeping the CPUs awake while a call runs (`"keep_cpus_awake"`; on the CPU, default on
//! when `OMP_WAIT_POLICY=PASSIVE`).
//!
//! libtorch's intra-op threads are OpenMP's. Between two parallel regions of a forward pass
//! (a Lite0 forward runs about 55) a worker waits; with `OMP_WAIT_POLICY=PASSIVE` it sleeps
//! at once, and its CPU, with nothing else to run, goes idle. In a virtual machine whose
//! guest does not poll before halting (`haltpoll`'s `guest_halt_poll_ns` = 0, as on the
//! 2-vCPU VM in BENCHMARKS.md), an idle vCPU is halted, and waking the worker on it for the
//! next region means the hypervisor must schedule that vCPU again: a median 76 µs per region
//! measured there, which took the Lite0 forward from 5.6 to 9.5 ms. With halt polling on
//! (root only, the whole machine), the same forward took 5.6 ms under `PASSIVE`.
//!
//! A library cannot change the wait policy (libgomp reads it when it loads) nor the guest's
//! idle driver, but it can keep the CPUs from going idle while a call runs: one poller thread
//! per intra-op thread, at `SCHED_IDLE` priority, spins while any call is in progress and
//! sleeps otherwise. A CPU that runs only a `SCHED_IDLE` thread counts as idle for the
//! scheduler's wake-up placement, and any other thread that wakes on it preempts the poller
//! at once; but the vCPU itself stays running, so the wake-up costs an interrupt, not a halt
//! exit. The pollers take only CPU time that would otherwise be idle, and only while a call
//! runs: between calls they sleep, as `PASSIVE` asks. Measured there under `PASSIVE`: the
//! forward 9.6–10.0 → 8.0–8.4 ms back to back, whole calls 8–22% faster (README, "Speed").
//!
//! With the default wait policy the workers spin between regions themselves, and the pollers
//! only compete with them: calls after 30 ms pauses took 12.7 ms against 8.6 without them. So
//! the default (`"keep_cpus_awake"` absent or `null`) turns them on only under `PASSIVE`,
//! and not where a CPU quota (`docker --cpus`) would charge their spinning to the process.
//!
//! The pollers are shared by every engine of the process and stop when the last engine that
//! uses them is released.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

/// The shared state of the pollers.
///
/// A call never waits for a poller: no lock is shared with them (a poller preempted while
/// holding one, at idle priority on a busy machine, could stall the call for as long as it
/// is not scheduled). The pollers sleep on a futex on `state` and the first call wakes them.
struct Shared {
    /// Calls in progress (the low bits), and [`STOP`].
    state: AtomicU32,
}

/// Set in `state` when the pollers must end.
const STOP: u32 = 1 << 31;

/// Poller threads that keep the CPUs busy (at idle priority) while a call holds them.
pub struct Pollers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The pollers' kernel thread ids.
    tids: Vec<libc::pid_t>,
    /// The process that started them: a child forked from it has none of its threads.
    pid: libc::pid_t,
}

/// While alive, the pollers spin; see [`Pollers::hold`].
pub struct Hold<'a> {
    shared: &'a Shared,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.shared.state.fetch_sub(1, Ordering::Release);
    }
}

static SHARED: Mutex<Weak<Pollers>> = Mutex::new(Weak::new());

impl Pollers {
    /// Starts `n` pollers at `SCHED_IDLE` priority. Fails where a thread cannot be started or
    /// the scheduler refuses the policy (not Linux, or a seccomp filter).
    pub fn start(n: usize) -> std::io::Result<Pollers> {
        let shared = Arc::new(Shared {
            state: AtomicU32::new(0),
        });
        let mut pollers = Pollers {
            shared,
            threads: Vec::with_capacity(n),
            tids: Vec::with_capacity(n),
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
        };
        for i in 0..n {
            let shared = Arc::clone(&pollers.shared);
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::Builder::new()
                .name(format!("ji-awake-{i}"))
                .stack_size(64 << 10)
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let r = set_idle_policy().map(|()| unsafe { libc::gettid() });
                    let ok = r.is_ok();
                    let _ = tx.send(r);
                    if ok {
                        poll(&shared);
                    }
                })?;
            pollers.threads.push(t);
            // Dropping `pollers` on an error stops and joins the ones started.
            let tid = rx
                .recv()
                .map_err(|_| std::io::Error::other("a poller thread ended at once"))??;
            pollers.tids.push(tid);
        }
        Ok(pollers)
    }

    /// The process's pollers, started with `n` threads if no engine holds them now.
    pub fn shared(n: usize) -> std::io::Result<Arc<Pollers>> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.upgrade() {
            return Ok(p);
        }
        let p = Arc::new(Pollers::start(n)?);
        *slot = Arc::downgrade(&p);
        Ok(p)
    }

    /// The pollers a CPU engine holds for its `"keep_cpus_awake"` setting (`None`: as
    /// [`default_on`] says): one per intra-op thread, at most one per CPU this process may
    /// use. None when off, or with one thread, where no worker ever waits to be woken.
    pub fn for_setting(setting: Option<bool>) -> std::io::Result<Option<Arc<Pollers>>> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = (tch::get_num_threads().max(1) as usize).min(cpus);
        if n <= 1 || !setting.unwrap_or_else(default_on) {
            return Ok(None);
        }
        Pollers::shared(n).map(Some)
    }

    /// Keeps the pollers spinning until the returned value is dropped.
    pub fn hold(&self) -> Hold<'_> {
        let s = &*self.shared;
        if s.state.fetch_add(1, Ordering::AcqRel) == 0 {
            wake_all(&s.state);
        }
        Hold { shared: s }
    }

    /// The pollers' kernel thread ids (`/proc/self/task/<tid>`).
    pub fn tids(&self) -> &[libc::pid_t] {
        &self.tids
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        self.shared.state.fetch_or(STOP, Ordering::AcqRel);
        wake_all(&self.shared.state);
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::getpid() } != self.pid {
            // In a forked child the threads do not exist; their handles are left alone rather
            // than joined.
            self.threads.clear();
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Whether libgomp was told to sleep at once when it waits (`OMP_WAIT_POLICY=PASSIVE`, any
/// case, as libgomp reads it).
pub fn passive_wait_policy() -> bool {
    is_passive(std::env::var("OMP_WAIT_POLICY").ok().as_deref())
}

fn is_passive(policy: Option<&str>) -> bool {
    policy.is_some_and(|v| v.trim().eq_ignore_ascii_case("passive"))
}

/// Whether a CPU quota (cgroup `cpu.max`, or `cpu.cfs_quota_us` in cgroup v1) gives this
/// process fewer CPUs than its affinity mask lets it run on, as `docker --cpus` does. There a
/// CPU's idle time is not free: the pollers' spinning would be charged to the quota that the
/// process's real work needs, so the default leaves them off.
pub fn cpu_quota_limits() -> bool {
    let Some(affinity) = affinity_cpus() else {
        return false;
    };
    // std counts the affinity mask and the cgroup quota, whichever is smaller.
    quota_limits(
        affinity,
        std::thread::available_parallelism().ok().map(|n| n.get()),
    )
}

/// The number of CPUs in the calling thread's affinity mask.
fn affinity_cpus() -> Option<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the size passed is the set's.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(libc::CPU_COUNT(&set) as usize)
    }
}

fn quota_limits(affinity_cpus: usize, available: Option<usize>) -> bool {
    available.is_some_and(|a| a < affinity_cpus)
}

/// `"keep_cpus_awake"` absent or `null`: on under `OMP_WAIT_POLICY=PASSIVE`, unless a CPU
/// quota charges idle-time spinning to the process.
pub fn default_on() -> bool {
    passive_wait_policy() && !cpu_quota_limits()
}

fn set_idle_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Spins between two `sched_yield`s of a poller (about 85 µs on the 2-vCPU VM, 10 ns a
/// spin). A thread that wakes on a poller's CPU preempts it at once, but one that was
/// preempted there (at the scheduler's tick, the poller's small fair share of the CPU) would
/// wait for the poller's whole time slice, up to a tick (4 ms at 250 Hz); the yield bounds
/// that wait. Yielding on every spin lost the whole gain (the forward 9.6 ms, as without
/// pollers); every 50–200 µs changed nothing measurable (BENCHMARKS.md).
const YIELD_EVERY: u32 = 8192;

fn poll(s: &Shared) {
    loop {
        let mut state = s.state.load(Ordering::Acquire);
        let mut spins = 0u32;
        while state != 0 && state & STOP == 0 {
            std::hint::spin_loop();
            spins += 1;
            if spins == YIELD_EVERY {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
                spins = 0;
            }
            state = s.state.load(Ordering::Acquire);
        }
        if state & STOP != 0 {
            return;
        }
        // Sleeps unless a call began since the load (the kernel compares atomically); returns
        // on a wake-up or spuriously, and the loop re-checks.
        futex(&s.state, libc::FUTEX_WAIT, 0);
    }
}

/// `futex(2)` on `word`, private to the process: `FUTEX_WAIT` sleeps while `word` is `val`,
/// `FUTEX_WAKE` wakes up to `val` waiters. No timeout.
fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; a null timeout
    // waits without one (FUTEX_WAKE ignores it).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// `FUTEX_WAKE` for every thread waiting on `word`.
fn wake_all(word: &AtomicU32) {
    futex(word, libc::FUTEX_WAKE, i32::MAX as u32);
}

/// A thread's state letter and scheduling policy, from `/proc/self/task/<tid>/stat`.
pub fn thread_state(tid: libc::pid_t) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 is the state; field 41 the policy (fields counted from 1, the pid).
    let state = fields.first()?.chars().next()?;
    let policy = fields.get(41 - 3)?.parse().ok()?;
    Some((state, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Waits up to 5 s for every poller to be in `state` (`R` running or runnable, `S`
    /// sleeping); returns the last states seen.
    fn wait_for(p: &Pollers, state: char) -> Vec<char> {
        let t = Instant::now();
        loop {
            let seen: Vec<char> = p
                .tids()
                .iter()
                .map(|&t| thread_state(t).map_or('?', |s| s.0))
                .collect();
            if seen.iter().all(|&s| s == state) || t.elapsed() > Duration::from_secs(5) {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether thread `tid` is gone within 5 s (a joined thread's `/proc` entry can outlive
    /// the join by a moment: the kernel wakes the joiner before the thread has fully exited).
    fn gone(tid: libc::pid_t) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if thread_state(tid).is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn pollers_spin_at_idle_priority_only_while_held_and_stop_when_dropped() {
        let p = Pollers::start(2).expect("pollers");
        assert_eq!(p.tids().len(), 2);
        for &tid in p.tids() {
            assert_eq!(thread_state(tid).map(|s| s.1), Some(libc::SCHED_IDLE));
        }
        assert_eq!(wait_for(&p, 'S'), ['S', 'S'], "idle pollers must sleep");
        {
            let _a = p.hold();
            // Nested holds (concurrent calls) keep them spinning until the last one ends.
            let b = p.hold();
            assert_eq!(wait_for(&p, 'R'), ['R', 'R'], "held pollers must spin");
            drop(b);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(wait_for(&p, 'R'), ['R', 'R'], "one hold is still alive");
        }
        assert_eq!(wait_for(&p, 'S'), ['S', 'S'], "released pollers must sleep");
        let tids = p.tids().to_vec();
        drop(p);
        for tid in tids {
            assert!(gone(tid), "thread {tid} outlived its pollers");
        }
    }

    #[test]
    fn engines_share_the_pollers_until_the_last_lets_go() {
        let a = Pollers::shared(1).unwrap();
        let b = Pollers::shared(1).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let old = a.tids()[0];
        drop((a, b));
        assert!(gone(old));
        let c = Pollers::shared(1).unwrap();
        assert_ne!(c.tids()[0], old);
    }

    #[test]
    fn a_quota_below_the_affinity_mask_limits() {
        assert!(quota_limits(16, Some(2)));
        assert!(!quota_limits(2, Some(2)));
        assert!(!quota_limits(2, None));
        // Not under a quota here: std's count is the affinity mask's.
        let affinity = affinity_cpus().unwrap();
        let available = std::thread::available_parallelism().unwrap().get();
        assert_eq!(cpu_quota_limits(), available < affinity);
    }

    #[test]
    fn a_forked_child_can_drop_pollers_it_does_not_run() {
        let p = Pollers::start(1).unwrap();
        let _held = p.hold();
        // SAFETY: the child only drops the pollers (futex calls, a Vec) and exits.
        match unsafe { libc::fork() } {
            0 => {
                drop(_held);
                drop(p);
                unsafe { libc::_exit(0) };
            }
            child => {
                assert!(child > 0, "fork failed");
                let t = Instant::now();
                let mut status = 0;
                loop {
                    let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
                    if r == child {
                        break;
                    }
                    if t.elapsed() > Duration::from_secs(10) {
                        unsafe { libc::kill(child, libc::SIGKILL) };
                        unsafe { libc::waitpid(child, &mut status, 0) };
                        panic!("the forked child hung dropping its pollers");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
        }
    }

    #[test]
    fn passive_policy_is_read_as_libgomp_reads_it() {
        assert!(is_passive(Some("PASSIVE")));
        assert!(is_passive(Some("passive ")));
        assert!(!is_passive(Some("ACTIVE")));
        assert!(!is_passive(Some("")));
        assert!(!is_passive(None));
    }
}
