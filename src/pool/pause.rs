//! PAUSE / RESUME: a gate in front of a database's pools. While paused, new
//! checkouts wait; transactions already running carry on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct PauseGate {
    paused: AtomicBool,
    opened: Notify,
}

/// The gate stayed closed past the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StillPaused;

impl PauseGate {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Closes the gate; true if it was open.
    pub fn pause(&self) -> bool {
        !self.paused.swap(true, Ordering::AcqRel)
    }

    /// Opens the gate and releases every waiter; true if it was closed.
    pub fn resume(&self) -> bool {
        let was = self.paused.swap(false, Ordering::AcqRel);
        self.opened.notify_waiters();
        was
    }

    /// Returns once the gate is open (at once on the fast path: one atomic
    /// load), or `StillPaused` at `deadline`.
    pub async fn wait_open(&self, deadline: Instant) -> Result<(), StillPaused> {
        loop {
            if !self.is_paused() {
                return Ok(());
            }
            let opened = self.opened.notified();
            tokio::pin!(opened);
            // Register before re-checking, so a resume in between is not missed.
            opened.as_mut().enable();
            if !self.is_paused() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline.into(), opened)
                .await
                .is_err()
            {
                return Err(StillPaused);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_are_released_by_resume_or_time_out() {
        let gate = Arc::new(PauseGate::default());
        let soon = || Instant::now() + Duration::from_secs(5);
        assert_eq!(gate.wait_open(soon()).await, Ok(()));
        assert!(gate.pause());
        assert!(!gate.pause(), "already paused");
        let short = Instant::now() + Duration::from_millis(50);
        assert_eq!(gate.wait_open(short).await, Err(StillPaused));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait_open(Instant::now() + Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(gate.resume());
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(!gate.resume(), "not paused any more");
    }
}
