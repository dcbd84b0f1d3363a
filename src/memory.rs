//! Giving memory back to the operating system after a crowd of clients left.
//!
//! glibc's allocator keeps freed memory in its arenas; after ten thousand
//! clients disconnect, their sessions' memory would stay resident for the
//! life of the process. `malloc_trim` returns the free pages (also from the
//! middle of the heap). It walks the arenas, so it runs only when the number
//! of clients fell well below its recent high-water mark, not per client.

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

// The crate denies unsafe code; this is its one exception, a libc call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only inspects and releases the allocator's own
    // free lists; it is thread-safe and has no preconditions.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "returned free memory to the OS");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
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
