//! Slowing down password guessing: per client IP address, failed logins past
//! the first few within a window wait before they get their error, the wait
//! doubling with each further failure up to a cap. A successful login from
//! the address forgets its failures. Other addresses are not affected.
//!
//! The table is bounded (the oldest address is evicted), so a peer cycling
//! through addresses cannot make it grow without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures from one address that go undelayed.
pub const FREE_FAILURES: u32 = 3;
/// Failures older than this (counted from the latest) are forgotten.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses tracked at once.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug)]
pub struct FailureLimiter {
    initial: Duration,
    max: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

impl FailureLimiter {
    /// `initial` zero disables the delay.
    pub fn new(initial: Duration, max: Duration) -> FailureLimiter {
        FailureLimiter::with_capacity(initial, max, MAX_ADDRESSES)
    }

    fn with_capacity(initial: Duration, max: Duration, capacity: usize) -> FailureLimiter {
        FailureLimiter {
            initial,
            max,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed login from `ip`; returns how long to wait before
    /// sending the error.
    pub fn failure(&self, ip: IpAddr) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&ip) {
            evict(&mut entries, self.capacity, now);
        }
        let entry = entries.entry(ip).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.duration_since(entry.last) > WINDOW {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        self.delay_after(entry.failures)
    }

    /// A successful login from `ip` forgets its failures.
    pub fn success(&self, ip: IpAddr) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// `initial * 2^(n - FREE_FAILURES - 1)`, capped at `max`.
    fn delay_after(&self, failures: u32) -> Duration {
        let Some(extra) = failures.checked_sub(FREE_FAILURES + 1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(extra.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }

    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Drops stale entries, then the oldest ones, until there is room for one.
fn evict(entries: &mut HashMap<IpAddr, Entry>, capacity: usize, now: Instant) {
    entries.retain(|_, e| now.duration_since(e.last) <= WINDOW);
    while entries.len() >= capacity {
        let oldest = entries.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                entries.remove(&k);
            }
            None => break,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn delay_grows_after_free_failures_and_is_capped() {
        let l = FailureLimiter::new(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<u128> = (0..12).map(|_| l.failure(ip(1)).as_millis()).collect();
        assert_eq!(
            delays,
            vec![0, 0, 0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
        // Many more failures do not overflow.
        for _ in 0..100 {
            assert_eq!(l.failure(ip(1)), Duration::from_secs(5));
        }
    }

    #[test]
    fn addresses_are_independent_and_success_resets() {
        let l = FailureLimiter::new(Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..5 {
            l.failure(ip(1));
        }
        assert_eq!(l.failure(ip(2)), Duration::ZERO);
        assert_eq!(l.failure(ip(1)), Duration::from_millis(400));
        l.success(ip(1));
        assert_eq!(l.failure(ip(1)), Duration::ZERO);
    }

    #[test]
    fn zero_initial_disables() {
        let l = FailureLimiter::new(Duration::ZERO, Duration::ZERO);
        for _ in 0..10 {
            assert_eq!(l.failure(ip(1)), Duration::ZERO);
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn table_is_bounded() {
        let l = FailureLimiter::with_capacity(Duration::from_millis(1), Duration::from_secs(1), 4);
        for i in 0..50u8 {
            l.failure(ip(i));
        }
        assert_eq!(l.tracked(), 4);
        // The newest addresses survived.
        for _ in 0..3 {
            l.failure(ip(49));
        }
        assert_eq!(l.failure(ip(49)), Duration::from_millis(2));
    }
}
