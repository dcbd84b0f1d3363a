//! Waiting in line without a timer per waiter.
//!
//! A checkout that waits for a connection needs to be woken at its deadline
//! if nothing comes. Arming a runtime timer for every wait (and disarming it
//! when, as almost always, a connection comes first) costs more than the
//! rest of the wait. Instead each waiter records its deadline in the line,
//! and one task per pool, running only while someone waits, sleeps until the
//! earliest deadline and hands the waiters it finds past theirs an
//! [`Grant::Expired`](super::Grant).

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{oneshot, Notify};

use super::{Grant, Inner, Pool};

/// One place in a pool's line.
pub(super) struct Waiter {
    pub(super) tx: oneshot::Sender<Grant>,
    /// When the sweeper times this waiter out; None for a waiter that runs
    /// its own timer (one that also waits for a shared limit or the
    /// reserve).
    pub(super) deadline: Option<Instant>,
}

/// The sweeper's state, kept under the pool's lock.
#[derive(Default)]
pub(super) struct Sweep {
    running: bool,
    /// The deadline the sweeper sleeps until.
    until: Option<Instant>,
}

/// Puts a waiter with `deadline` in line and makes sure the sweeper will
/// wake for it: started if not running, woken early if it sleeps past it.
pub(super) fn enqueue(
    pool: &Arc<Pool>,
    inner: &mut Inner,
    tx: oneshot::Sender<Grant>,
    deadline: Instant,
) {
    inner.waiters.push_back(Waiter {
        tx,
        deadline: Some(deadline),
    });
    if !inner.sweep.running {
        inner.sweep.running = true;
        inner.sweep.until = Some(deadline);
        tokio::spawn(run(Arc::downgrade(pool), pool.sweep_wake.clone()));
    } else if inner.sweep.until.is_none_or(|u| deadline < u) {
        inner.sweep.until = Some(deadline);
        pool.sweep_wake.notify_one();
    }
}

/// Times out the waiters past their deadline; the next deadline to wake
/// for, or None (and the sweeper stops) when nobody waits with one.
fn expire(inner: &mut Inner, now: Instant) -> Option<Instant> {
    let mut i = 0;
    while i < inner.waiters.len() {
        if inner.waiters[i].deadline.is_some_and(|d| d <= now) {
            if let Some(w) = inner.waiters.remove(i) {
                // A waiter that went away meanwhile needs nothing.
                let _ = w.tx.send(Grant::Expired);
            }
        } else {
            i += 1;
        }
    }
    let next = inner.waiters.iter().filter_map(|w| w.deadline).min();
    inner.sweep.until = next;
    inner.sweep.running = next.is_some();
    next
}

async fn run(pool: Weak<Pool>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let mut inner = pool.lock();
            match expire(&mut inner, Instant::now()) {
                Some(next) => next,
                None => return,
            }
        };
        // (No strong reference while asleep: a pool nobody uses goes away.)
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expire_times_out_only_waiters_past_their_deadline() {
        let mut inner = Inner::default();
        let now = Instant::now();
        let mut rxs = Vec::new();
        for (i, d) in [
            Some(now),
            None,
            Some(now + Duration::from_secs(5)),
            Some(now - Duration::from_secs(1)),
        ]
        .into_iter()
        .enumerate()
        {
            let (tx, rx) = oneshot::channel();
            inner.waiters.push_back(Waiter { tx, deadline: d });
            rxs.push((i, rx));
        }
        inner.sweep.running = true;
        assert_eq!(expire(&mut inner, now), Some(now + Duration::from_secs(5)));
        assert_eq!(
            inner.waiters.len(),
            2,
            "the one without a deadline and the later one stay"
        );
        let expired: Vec<usize> = rxs
            .iter_mut()
            .filter_map(|(i, rx)| matches!(rx.try_recv(), Ok(Grant::Expired)).then_some(*i))
            .collect();
        assert_eq!(expired, vec![0, 3]);
        assert!(inner.sweep.running);
        inner.waiters.retain(|w| w.deadline.is_none());
        assert_eq!(expire(&mut inner, now), None);
        assert!(!inner.sweep.running, "nothing left to wake for");
    }
}
