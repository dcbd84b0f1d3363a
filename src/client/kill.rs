//! How KILL, KILL_CLIENT and the shutdown drain reach a session: flags and
//! the session's one waker. The session checks it at every poll of its pump and while idle,
//! so it must cost a couple of atomics, not a lock (a cancellation token's
//! wait future locks on every poll and on drop).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

#[derive(Debug, Default)]
pub struct KillSwitch {
    killed: AtomicBool,
    /// pgferry drains for shutdown: an idle session closes (see `drain`).
    drained: AtomicBool,
    /// The waker of whichever part of the session waits (one at a time).
    waker: AtomicWaker,
}

impl KillSwitch {
    /// Marks the session killed and wakes it.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// pgferry started draining (`Lifecycle::start_draining`): wakes the
    /// session so that, if idle, it sees the drain and closes; it is not
    /// marked killed.
    pub fn drain(&self) {
        self.drained.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn is_woken(&self) -> bool {
        self.is_killed() || self.drained.load(Ordering::Acquire)
    }

    /// Ready once killed; otherwise the task is woken by `kill` or `drain`
    /// (the pump checks the shutdown drain itself, `Lifecycle::is_draining`,
    /// when its client is idle).
    pub fn poll_killed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, Self::is_killed)
    }

    fn poll_until(&self, cx: &mut Context<'_>, done: fn(&Self) -> bool) -> Poll<()> {
        if done(self) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A kill or drain between the check and the registration woke nobody.
        if done(self) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Completes once killed or drained.
    pub fn woken(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_woken(cx))
    }

    /// Ready once killed or drained (`woken` as a poll function).
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, Self::is_woken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiting_session_is_woken() {
        let k = Arc::new(KillSwitch::default());
        assert!(!k.is_killed());
        let waiter = {
            let k = k.clone();
            tokio::spawn(async move { k.woken().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        k.kill();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(k.is_killed());
        // Already killed: ready at once.
        k.woken().await;
    }

    #[tokio::test]
    async fn a_drain_wakes_an_idle_session_without_killing_it() {
        let k = Arc::new(KillSwitch::default());
        let waiter = {
            let k = k.clone();
            tokio::spawn(async move { k.woken().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        k.drain();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(!k.is_killed());
    }
}
