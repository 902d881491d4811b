//! `"huge_pages"`: a CPU engine's init puts the process heap in transparent huge pages, and
//! `false` leaves it alone. One test in its own binary: the heap is the whole process's, so no
//! other test may create engines meanwhile.

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

#[test]
fn cpu_init_puts_the_heap_in_huge_pages_unless_told_not_to() {
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

    let off = evsdk_open(&config("off", Some(false)));
    if mode.as_deref() == Some("madvise") {
        // Only advised mappings are eligible in this mode, and nothing advised the heap.
        assert_eq!(heap_thp_eligible(), Some(false));
    }
    let on = evsdk_open(&config("default", None));
    assert_eq!(
        heap_thp_eligible(),
        Some(true),
        "after a default CPU init the [heap] must be THP-eligible"
    );
    // Calls still work on both handles.
    let img = std::fs::read(fixture("images/red.jpg")).unwrap();
    for h in [off, on] {
        let mut out = std::ptr::null_mut();
        let rc =
            unsafe { evsdk_process_image(h, img.as_ptr(), img.len(), std::ptr::null(), &mut out) };
        assert_eq!(rc, 0, "{}", last_error());
        assert_eq!(take_json(out)["model_data"]["class_id"], 0);
        unsafe { evsdk_release(h) };
    }
}
