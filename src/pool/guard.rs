//! The checked-out connection guard.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Pool;
use crate::server::ServerConn;

/// A server connection on loan from a pool. Dropping it checks the
/// connection back in when it is clean and closes it otherwise.
#[derive(Debug)]
pub struct Pooled {
    pool: Option<Arc<Pool>>,
    // Boxed so guards and grants stay small when moved through channels;
    // the box is made once per server connection, not per checkout.
    conn: Option<Box<ServerConn>>,
    /// How long the checkout waited in the pool's queue.
    pub waited: Duration,
}

impl Pooled {
    /// Checked out (or offered to a waiter) at `now_us` (a
    /// `metrics::clock::now_us` value).
    pub(super) fn new(pool: Arc<Pool>, conn: Box<ServerConn>, now_us: u64) -> Pooled {
        pool.counters.active.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &conn.entry {
            e.set_active_at(now_us);
        }
        Pooled {
            pool: Some(pool),
            conn: Some(conn),
            waited: Duration::ZERO,
        }
    }

    pub(super) fn detached(conn: Box<ServerConn>) -> Pooled {
        Pooled {
            pool: None,
            conn: Some(conn),
            waited: Duration::ZERO,
        }
    }

    pub(super) fn take(&mut self) -> Option<Box<ServerConn>> {
        if let Some(pool) = self.pool.take() {
            pool.counters.active.fetch_sub(1, Ordering::Relaxed);
        }
        self.conn.take()
    }

    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    /// Closes the connection instead of returning it.
    pub fn discard(mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.broken = true;
        }
    }
}

impl Deref for Pooled {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        // `conn` is only None after take(), which consumes the guard's role.
        match &self.conn {
            Some(c) => c,
            None => unreachable_conn(),
        }
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut ServerConn {
        match &mut self.conn {
            Some(c) => c,
            None => unreachable_conn(),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_conn() -> ! {
    // take() is private to the pool and only used on guards it immediately
    // forgets, so user code can never observe an empty guard.
    panic!("pooled connection used after being taken")
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.counters.active.fetch_sub(1, Ordering::Relaxed);
        }
        if let (Some(pool), Some(conn)) = (self.pool.take(), self.conn.take()) {
            if conn.broken {
                tracing::debug!(server_id = conn.id, "closing server connection");
                drop(conn);
                pool.release_slot();
            } else {
                pool.checkin(conn);
            }
        }
    }
}
