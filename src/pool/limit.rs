//! Limits shared by several pools: `max_db_connections` (one database, all
//! users, per host) and `max_user_connections` (one user, all databases, per
//! host). A pool under its own size may open a connection only with a permit
//! from each of its limits; a connection's permits are given back when it
//! closes. When a limit is full, an idle connection of another member pool is
//! closed to make room (as PgBouncer does), else the checkout waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::Pool;

#[derive(Debug, Default)]
pub struct Limit {
    /// Zero means no limit.
    cap: AtomicUsize,
    used: AtomicUsize,
    /// Checkouts waiting because this limit is full.
    waiters: AtomicUsize,
    members: Mutex<Vec<Weak<Pool>>>,
}

impl Limit {
    pub fn new(cap: usize) -> Arc<Limit> {
        Arc::new(Limit {
            cap: AtomicUsize::new(cap),
            ..Limit::default()
        })
    }

    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
        self.release(0);
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn join(&self, pool: &Arc<Pool>) {
        let mut m = self.members.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|w| w.strong_count() > 0);
        m.push(Arc::downgrade(pool));
    }

    fn try_acquire(&self) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if cap != 0 && used >= cap {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    pub(super) fn release(&self, n: usize) {
        // Saturating: a release can never drive the count below zero.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
        self.wake_members();
    }

    pub(super) fn waiting(&self, delta: isize) {
        if delta >= 0 {
            self.waiters
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.waiters
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Cheap check made on every checkin of a limited pool.
    pub(super) fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0
    }

    /// The live member pools (collected so no pool lock is taken while
    /// the members lock is held).
    fn members(&self) -> Vec<Arc<Pool>> {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(super) fn wake_members(&self) {
        for pool in self.members() {
            pool.wake_limited();
        }
    }

    /// Closes the longest-idle connection of a member pool other than
    /// `except`. True if one was closed (its permit is free now).
    pub(super) fn evict_idle(&self, except: &Pool) -> bool {
        let members = self.members();
        let victim = members
            .iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), except))
            .filter_map(|p| p.oldest_idle().map(|at| (at, p)))
            .min_by_key(|(at, _)| *at);
        match victim {
            Some((_, pool)) => pool.close_oldest_idle(),
            None => false,
        }
    }
}

/// Takes a permit from every limit, or none.
pub(super) fn acquire_all(limits: &[Arc<Limit>]) -> Result<(), usize> {
    for (i, l) in limits.iter().enumerate() {
        if !l.try_acquire() {
            // Held for an instant only: give back without waking anyone (a
            // wake here would make our own waiter spin).
            for l in &limits[..i] {
                l.used.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        let a = Limit::new(2);
        let b = Limit::new(1);
        let both = [a.clone(), b.clone()];
        assert_eq!(acquire_all(&both), Ok(()));
        assert_eq!(acquire_all(&both), Err(1));
        assert_eq!((a.used(), b.used()), (1, 1), "a's permit was given back");
        b.release(1);
        assert_eq!(acquire_all(&both), Ok(()));
        let none = Limit::new(0);
        for _ in 0..100 {
            assert!(none.try_acquire(), "zero means unlimited");
        }
        none.release(1000);
        assert_eq!(none.used(), 0);
    }
}
