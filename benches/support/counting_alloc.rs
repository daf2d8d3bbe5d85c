//! mimalloc (the allocator the kubegate binary runs with), counting live
//! bytes: live heap beside RSS tells data from allocator slack. Shared by
//! the benches that report memory, through `#[path]`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated and not yet freed, process-wide.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most `live_bytes` has been.
#[allow(dead_code)] // not every bench reports it
pub fn peak_live_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        grew(new);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

unsafe extern "C" {
    /// In the mimalloc library the global allocator links.
    fn mi_collect(force: bool);
}

/// Makes mimalloc return the pages that are empty now. A running kubegate
/// allocates all the time, so mimalloc purges them within its purge delay;
/// right after a bench's fill they would still count in RSS.
#[allow(dead_code)] // not every bench settles before measuring
pub fn collect() {
    // SAFETY: a plain call into the allocator the process runs on.
    unsafe { mi_collect(true) };
}
