//! How the process ends: the kinds of shutdown, who asked for one (a signal
//! or the admin console's SHUTDOWN), and the flag sessions check to close
//! at their next transaction boundary while pgferry drains.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// How pgferry shuts down, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShutdownKind {
    /// SHUTDOWN WAIT_FOR_CLIENTS: stop accepting and exit once every client
    /// has disconnected by itself.
    WaitForClients,
    /// SIGTERM: stop accepting, let clients finish their current transaction
    /// (up to `shutdown_timeout`), closing each at its next transaction
    /// boundary, then close what is left.
    Graceful,
    /// SIGINT, or SHUTDOWN on the console: close everything now.
    Fast,
}

#[derive(Debug)]
pub struct Lifecycle {
    /// Set when sessions must close at their next transaction boundary
    /// (graceful shutdown); idle sessions are woken through their
    /// `KillSwitch` (see `App::run`).
    drain_flag: AtomicBool,
    requested: watch::Sender<Option<ShutdownKind>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            drain_flag: AtomicBool::new(false),
            requested: watch::Sender::new(None),
        }
    }
}

impl Lifecycle {
    /// Sessions close at their next transaction boundary from now on.
    pub fn start_draining(&self) {
        self.drain_flag.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.drain_flag.load(Ordering::Acquire)
    }

    /// Asks for a shutdown; a weaker request than one already made is
    /// ignored (a SIGINT during a graceful drain makes it fast).
    pub fn request(&self, kind: ShutdownKind) {
        self.requested.send_if_modified(|r| {
            if r.is_none_or(|old| kind > old) {
                *r = Some(kind);
                true
            } else {
                false
            }
        });
    }

    /// The strongest request so far.
    pub fn current(&self) -> Option<ShutdownKind> {
        *self.requested.borrow()
    }

    /// Waits until a request at least as strong as `at_least` is made.
    pub async fn wait_for(&self, at_least: ShutdownKind) -> ShutdownKind {
        let mut rx = self.requested.subscribe();
        loop {
            if let Some(k) = *rx.borrow_and_update() {
                if k >= at_least {
                    return k;
                }
            }
            if rx.changed().await.is_err() {
                // The sender lives in State as long as anyone can ask.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stronger_requests_win() {
        let l = Lifecycle::default();
        assert_eq!(l.current(), None);
        l.request(ShutdownKind::Graceful);
        l.request(ShutdownKind::WaitForClients);
        assert_eq!(l.current(), Some(ShutdownKind::Graceful));
        assert_eq!(
            l.wait_for(ShutdownKind::WaitForClients).await,
            ShutdownKind::Graceful
        );
        let fast = l.wait_for(ShutdownKind::Fast);
        l.request(ShutdownKind::Fast);
        assert_eq!(fast.await, ShutdownKind::Fast);
    }
}
