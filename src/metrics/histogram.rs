//! Latency histograms with fixed buckets. A connection observes into a
//! plain [`LocalHistogram`] and folds it into the pool's
//! [`SharedHistogram`] at transaction end, so the shared atomics are not
//! touched per message.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket upper bounds in microseconds (100 µs .. 10 s); one more bucket
/// holds everything above.
pub const BOUNDS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
const SLOTS: usize = BOUNDS_US.len() + 1;

fn slot(us: u64) -> usize {
    BOUNDS_US.partition_point(|&b| b < us)
}

#[derive(Debug, Clone, Default)]
pub struct LocalHistogram {
    counts: [u32; SLOTS],
    /// Bit i set: `counts[i]` is not zero (a fold visits only those; a
    /// transaction's fold usually finds one or two).
    touched: u16,
    sum_us: u64,
    count: u32,
}

const _: () = assert!(SLOTS <= u16::BITS as usize);

impl LocalHistogram {
    pub fn observe(&mut self, us: u64) {
        let i = slot(us);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.touched |= 1 << i;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count = self.count.saturating_add(1);
    }

    /// Adds everything observed to `to` and starts over.
    pub fn fold_into(&mut self, to: &SharedHistogram) {
        if self.count == 0 {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        while touched != 0 {
            let i = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            let c = std::mem::take(&mut self.counts[i]);
            to.counts[i].fetch_add(u64::from(c), Ordering::Relaxed);
        }
        to.sum_us.fetch_add(self.sum_us, Ordering::Relaxed);
        to.count.fetch_add(u64::from(self.count), Ordering::Relaxed);
        self.sum_us = 0;
        self.count = 0;
    }
}

#[derive(Debug, Default)]
pub struct SharedHistogram {
    counts: [AtomicU64; SLOTS],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A histogram read at scrape time; buckets are per slot (not cumulative),
/// upper bounds in seconds, the last one +Inf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub sum_secs: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSnapshot {
    /// Adds another histogram with the same buckets.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        self.sum_secs += other.sum_secs;
        self.count += other.count;
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            a.1 += b.1;
        }
    }
}

impl SharedHistogram {
    /// One observation straight into the shared atomics (for rare events).
    pub fn observe(&self, us: u64) {
        self.counts[slot(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bound = BOUNDS_US.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1e6);
                (bound, c.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_and_snapshot() {
        let shared = SharedHistogram::default();
        let mut local = LocalHistogram::default();
        local.observe(50);
        local.observe(100);
        local.observe(101);
        local.observe(20_000_000);
        local.fold_into(&shared);
        local.fold_into(&shared); // nothing left to add
        let s = shared.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0001, 2));
        assert_eq!(s.buckets[1], (0.00025, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum_secs - 20.000251).abs() < 1e-9);
        // After a fold the local histogram starts from zero again.
        local.observe(300);
        local.fold_into(&shared);
        let s = shared.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], (0.0001, 2));
        assert_eq!(s.buckets[2], (0.0005, 1));
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 5);
    }
}
