//! `"huge_pages"` (opt-in): by default a CPU engine leaves the process heap alone; with `true`
//! its init puts the heap in transparent huge pages and a call advises what the heap grew by
//! since. One test in its own
//! binary: the heap is the whole process's, so no other test may create engines meanwhile.

mod common;

use common::*;
use ji::ffi::evsdk::*;
use ji::hugepages::heap_thp_eligible;

/// The kernel's THP mode: "always", "madvise" or "never" (None: no THP support).
fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = s[start..].find(']')? + start;
    Some(s[start..end].to_string())
}

/// `THPeligible` of the mapping that holds `addr` (from `/proc/self/smaps`).
fn thp_eligible_at(addr: usize) -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            inside = (a..b).contains(&addr);
        } else if inside && line.starts_with("THPeligible:") {
            return Some(line.split_whitespace().nth(1) == Some("1"));
        }
    }
    None
}

#[test]
fn the_heap_is_left_alone_by_default_and_put_in_huge_pages_when_asked() {
    let mode = thp_mode();
    if !matches!(mode.as_deref(), Some("madvise") | Some("always")) {
        eprintln!("skipped: transparent huge pages are {mode:?} on this kernel");
        return;
    }
    let config = |name: &str, on: Option<bool>| {
        let extra: Vec<(&str, serde_json::Value)> = match on {
            Some(b) => vec![("huge_pages", b.into()), ("device", "cpu".into())],
            None => vec![("device", "cpu".into())],
        };
        config_copy(&fixture("colour.json"), "huge_pages", name, &extra)
    };

    // The default: a guest in the host's process does not advise the host's heap.
    let off = evsdk_open(&config("default", None));
    if mode.as_deref() == Some("madvise") {
        // Only advised mappings are eligible in this mode, and nothing advised the heap.
        assert_eq!(
            heap_thp_eligible(),
            Some(false),
            "a default init must leave the [heap] as the host had it"
        );
    }
    let on = evsdk_open(&config("on", Some(true)));
    assert_eq!(
        heap_thp_eligible(),
        Some(true),
        "after an init with \"huge_pages\": true the [heap] must be THP-eligible"
    );
    let img = std::fs::read(fixture("images/red.jpg")).unwrap();
    if mode.as_deref() == Some("madvise") {
        // Heap the process maps after init (here moved by hand, as a host's allocations
        // would) is advised after the next call that sees it.
        let grow = 16 << 20;
        // SAFETY: sbrk moves the break up; glibc treats memory it did not map itself as
        // foreign and leaves it alone, and nothing uses it.
        let old = unsafe { libc::sbrk(grow) } as usize;
        assert_ne!(old, usize::MAX, "sbrk failed");
        let probe = old + grow as usize / 2;
        assert_eq!(
            thp_eligible_at(probe),
            Some(false),
            "new heap is not advised before a call"
        );
        let mut out = std::ptr::null_mut();
        let rc =
            unsafe { evsdk_process_image(on, img.as_ptr(), img.len(), std::ptr::null(), &mut out) };
        assert_eq!(rc, 0, "{}", last_error());
        take_json(out);
        assert_eq!(
            thp_eligible_at(probe),
            Some(true),
            "the call after the heap grew must advise what it grew by"
        );
    }
    // Calls still work on both handles.
    for h in [off, on] {
        let mut out = std::ptr::null_mut();
        let rc =
            unsafe { evsdk_process_image(h, img.as_ptr(), img.len(), std::ptr::null(), &mut out) };
        assert_eq!(rc, 0, "{}", last_error());
        assert_eq!(take_json(out)["model_data"]["class_id"], 0);
        unsafe { evsdk_release(h) };
    }
}
