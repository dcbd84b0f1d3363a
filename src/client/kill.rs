//! How KILL and KILL_CLIENT reach a session: a flag and the session's one
//! waker. The session checks it at every poll of its pump and while idle,
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

    /// pgferry started draining: wakes the session if it waits idle (it
    /// then sees the drain and closes), without marking it killed. Saves
    /// every idle session watching the drain token itself.
    pub fn drain(&self) {
        self.drained.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Completes once killed or drained.
    pub fn woken(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let done = || self.is_killed() || self.drained.load(Ordering::Acquire);
            if done() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if done() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Ready once killed; otherwise the task is woken by `kill`.
    pub fn poll_killed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_killed() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A kill between the check and the registration woke nobody.
        if self.is_killed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Completes once killed.
    pub fn killed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_killed(cx))
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
            tokio::spawn(async move { k.killed().await })
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
        k.killed().await;
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
