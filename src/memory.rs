//! Giving memory back to the operating system after a crowd of clients left.
//!
//! An allocator keeps freed memory in its arenas; after ten thousand
//! clients disconnect, their sessions' memory would stay resident (glibc's
//! for the life of the process, jemalloc's until its decay timer runs out).
//! A trim returns the free pages: jemalloc's `arena.<all>.purge` in the
//! default build, glibc's `malloc_trim` with the system allocator. It walks
//! the arenas, so it runs only when the number of clients fell well below
//! its recent high-water mark, not per client.

/// Fewer clients than this gone since the high-water mark: not worth a trim.
const MIN_DROP: usize = 256;

#[derive(Debug, Default)]
pub struct Trimmer {
    /// Most clients seen since the last trim.
    high: usize,
}

impl Trimmer {
    /// Called periodically with the current number of clients. Returns
    /// whether memory was trimmed.
    pub fn tick(&mut self, clients: usize) -> bool {
        if clients > self.high {
            self.high = clients;
            return false;
        }
        if self.high - clients < MIN_DROP || clients > self.high / 2 {
            return false;
        }
        self.high = clients;
        trim();
        true
    }
}

// The crate denies unsafe code; the trims are its exception, one
// allocator call each.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[allow(unsafe_code)]
fn trim() {
    // 4096 is MALLCTL_ARENAS_ALL: every arena's unused dirty pages.
    let name = c"arena.4096.purge";
    // SAFETY: a mallctl write-less command with no old/new values (null
    // pointers and zero lengths are what jemalloc documents for "purge").
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    tracing::debug!(rc, "returned free memory to the OS");
}

#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(all(feature = "jemalloc", not(feature = "mimalloc")))
))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only inspects and releases the allocator's own
    // free lists; it is thread-safe and has no preconditions.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "returned free memory to the OS");
}

#[cfg(not(any(
    all(target_os = "linux", target_env = "gnu"),
    all(feature = "jemalloc", not(feature = "mimalloc"))
)))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_a_large_drop() {
        let mut t = Trimmer::default();
        assert!(!t.tick(1000));
        assert!(!t.tick(900), "a small drop is not worth it");
        assert!(!t.tick(600), "still more than half of the high-water mark");
        assert!(t.tick(400));
        assert!(!t.tick(300), "the mark was reset to 400 at the trim");
        assert!(t.tick(0));
        assert!(!t.tick(0), "nothing left to give back");
    }
}
