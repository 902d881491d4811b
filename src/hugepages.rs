//! Transparent huge pages for the process heap (`"huge_pages"`, default true on the CPU).
//!
//! libtorch keeps a CPU model's weights (oneDNN's reordered copies), its activations and
//! our pooled buffers in glibc's heap, in 4 KiB pages. A forward pass of a small network walks
//! tens of megabytes of them, and in a VM each TLB miss is a two-level page walk. Measured on
//! the 2-vCPU VM (BENCHMARKS.md): a whole Lite0 call 8.3–9.1 → 7.0–7.2 ms once the heap is
//! in 2 MiB pages, as with glibc's own `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which a
//! library cannot set for its host.
//!
//! At the end of a CPU engine's init, the heap's whole 2 MiB extents are marked
//! `MADV_HUGEPAGE` (pages faulted in later come as huge pages where the kernel can) and
//! collapsed into huge pages now with `MADV_COLLAPSE` (Linux 6.1+; older kernels leave them
//! to khugepaged). Memory the heap grows by later is a new mapping without the advice, so
//! after each call the engine compares the heap's end with the advised one and advises what
//! it grew by when that is 2 MiB or more (a host that allocates between calls, as a Python one
//! does). Nothing changes where THP is off (`/sys/kernel/mm/transparent_hugepage/
//! enabled` = never) or unsupported; the process's resident memory grows only by the unused
//! parts of the collapsed extents, which glibc's heap rarely has.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`advise_heap`] did, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapAdvice {
    /// Marked `MADV_HUGEPAGE`.
    pub advised: usize,
    /// Collapsed into huge pages now (0 where `MADV_COLLAPSE` is unsupported or failed).
    pub collapsed: usize,
}

const HUGE: usize = 2 << 20;
/// The heap's end (`sbrk(0)`) when it was last advised; 0 before any engine asked for huge
/// pages.
static ADVISED_BRK: AtomicUsize = AtomicUsize::new(0);
/// `MADV_COLLAPSE` (Linux 6.1); the libc crate may not name it.
const MADV_COLLAPSE: libc::c_int = 25;

/// The `[heap]` mappings of `/proc/self/maps` (start, end), trimmed inward to whole 2 MiB
/// extents; empty ones are dropped.
fn heap_extents(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter(|l| l.trim_end().ends_with("[heap]"))
        .filter_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            if !rest.starts_with("rw") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            let start = a.checked_add(HUGE - 1)? & !(HUGE - 1);
            let end = b & !(HUGE - 1);
            (end > start).then_some((start, end))
        })
        .collect()
}

/// Marks the heap's whole 2 MiB extents for huge pages and collapses them (see the module
/// docs). An error means `madvise(MADV_HUGEPAGE)` itself failed (THP not built into the
/// kernel); nothing has changed then.
pub fn advise_heap() -> std::io::Result<HeapAdvice> {
    // SAFETY: sbrk(0) only reads the current program break.
    let brk = unsafe { libc::sbrk(0) } as usize;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut done = HeapAdvice::default();
    for (start, end) in heap_extents(&maps) {
        advise_range(start, end, &mut done)?;
    }
    ADVISED_BRK.store(brk.max(1), Ordering::Relaxed);
    Ok(done)
}

/// `MADV_HUGEPAGE` and `MADV_COLLAPSE` on `start..end` (2 MiB aligned), counted in `done`.
fn advise_range(start: usize, end: usize, done: &mut HeapAdvice) -> std::io::Result<()> {
    let len = end - start;
    // SAFETY: madvise with these advices changes how the kernel backs pages of a mapping of
    // this process, never their contents; a range that is no longer mapped (the heap trimmed
    // meanwhile by another thread) is ENOMEM, not undefined behaviour.
    if unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    done.advised += len;
    // SAFETY: as above.
    if unsafe { libc::madvise(start as *mut libc::c_void, len, MADV_COLLAPSE) } == 0 {
        done.collapsed += len;
    }
    Ok(())
}

/// After a call: when the heap has grown by 2 MiB or more since it was last advised (new heap
/// memory does not inherit the advice), advises the whole 2 MiB extents it grew by. Costs one
/// `sbrk(0)` otherwise; does nothing in a process where no engine asked for huge pages.
pub fn advise_heap_growth() {
    let advised = ADVISED_BRK.load(Ordering::Relaxed);
    if advised == 0 {
        return;
    }
    // SAFETY: sbrk(0) only reads the current program break.
    let brk = unsafe { libc::sbrk(0) } as usize;
    if brk >= advised.saturating_add(HUGE) {
        // The heap is advised up to `advised`; what lies between it and the break is the heap
        // mapped since (glibc's heap is contiguous up to the break).
        let start = advised.saturating_add(HUGE - 1) & !(HUGE - 1);
        let end = brk & !(HUGE - 1);
        if end > start {
            let _ = advise_range(start, end, &mut HeapAdvice::default());
        }
        ADVISED_BRK.store(brk, Ordering::Relaxed);
    } else if brk < advised {
        // Trimmed: what grows back from here is new memory.
        ADVISED_BRK.store(brk.max(1), Ordering::Relaxed);
    }
}

/// Whether the kernel would back the `[heap]` with huge pages (`THPeligible: 1` in
/// `/proc/self/smaps` for a `[heap]` mapping); None when smaps cannot be read.
pub fn heap_thp_eligible() -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut in_heap = false;
    let mut eligible = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_heap = line.trim_end().ends_with("[heap]");
        } else if in_heap && line.starts_with("THPeligible:") {
            eligible |= line.split_whitespace().nth(1) == Some("1");
        }
    }
    Some(eligible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_extents_are_whole_2mib_extents_of_rw_heap_mappings() {
        let maps = "\
55d0c0000000-55d0c0a00000 r--p 00000000 08:01 123 /usr/bin/judge
55d0c1234000-55d0c5a00000 rw-p 00000000 00:00 0                          [heap]
55d0c5a00000-55d0c5b00000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        // The first heap mapping rounds inward to 0x55d0c1400000..0x55d0c5a00000; the second
        // holds no whole 2 MiB extent; anonymous mappings and the stack are not the heap.
        assert_eq!(heap_extents(maps), vec![(0x55d0c1400000, 0x55d0c5a00000)]);
        assert!(heap_extents("55d0c1234000-55d0c5a00000 r--p 0 00:00 0 [heap]\n").is_empty());
        assert!(heap_extents("garbage\n\n").is_empty());
    }
}
