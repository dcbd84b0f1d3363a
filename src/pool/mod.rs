//! Server connection pools, one per (database, user, node).
//!
//! Checkout takes an idle connection, opens a new one while the pool is under
//! its size, or waits in strict FIFO order. Whatever is checked out is a
//! guard: dropping it returns a clean connection to the pool (or to the
//! longest waiter) and closes a dirty one, so no code path can leak a slot.

mod guard;
mod pause;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use thiserror::Error;
use tokio::sync::oneshot;

pub use guard::Pooled;
pub use pause::{PauseGate, StillPaused};

use crate::metrics::{PoolStats, Registry, ServerEntry, ServerState};
use crate::server::{self, ConnectSpec, ServerConn, ServerError};

#[derive(Debug, Error)]
pub enum PoolError {
    #[error("no server connection available within {waited_ms} ms")]
    WaitTimeout { waited_ms: u128 },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("pool is closed")]
    Closed,
}

/// What a waiter is handed: a connection, or the right to open one.
enum Grant {
    Conn(Pooled),
    Slot(Slot),
}

#[derive(Default)]
struct Inner {
    /// Idle connections; the most recently used is reused first so the
    /// working set stays warm and surplus connections age out.
    #[allow(clippy::vec_box)] // kept boxed so checkout does not re-allocate
    idle: Vec<Box<ServerConn>>,
    /// Connections open or being opened, including checked-out ones.
    open: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    closed: bool,
}

/// Counters read by the admin console and metrics.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub active: AtomicUsize,
    pub waiting: AtomicUsize,
}

pub struct Pool {
    spec: ConnectSpec,
    max_size: AtomicUsize,
    /// Current generation; connections from older ones are closed on return.
    epoch: AtomicU64,
    inner: Mutex<Inner>,
    pub counters: PoolCounters,
    /// Traffic totals, folded in by clients at transaction end.
    pub stats: PoolStats,
    /// pgferry's name of the database (the key in `[databases]`).
    database: String,
    /// Where this pool's server connections are listed (SHOW SERVERS).
    servers: Arc<Registry<ServerEntry>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("node", &self.spec.node)
            .field("user", &self.spec.user)
            .field("database", &self.spec.database)
            .finish()
    }
}

impl Pool {
    /// A pool for `spec`, listed as database `database`; its connections
    /// register in `servers`.
    pub fn new(
        spec: ConnectSpec,
        size: usize,
        database: &str,
        servers: Arc<Registry<ServerEntry>>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            spec,
            max_size: AtomicUsize::new(size.max(1)),
            epoch: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            counters: PoolCounters::default(),
            stats: PoolStats::default(),
            database: database.to_owned(),
            servers,
        })
    }

    /// pgferry's name of the pool's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The configured size (SET default_pool_size may change it).
    pub fn max_size(&self) -> usize {
        self.max_size.load(Ordering::Relaxed)
    }

    pub fn spec(&self) -> &ConnectSpec {
        &self.spec
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave Inner half-updated in
        // a way that matters more than losing the pool, so recover the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks out a connection, waiting until `deadline` at most.
    /// Cancel safety: cancel-safe; a grant that arrives after the caller went
    /// away is returned to the pool by its guard.
    pub async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Pooled, PoolError> {
        enum Step {
            Ready(Pooled),
            Open(Slot),
            Wait(oneshot::Receiver<Grant>),
        }
        let step = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(PoolError::Closed);
            }
            let mut found = None;
            while let Some(mut conn) = inner.idle.pop() {
                if conn.is_reusable() {
                    found = Some(conn);
                    break;
                }
                inner.open -= 1;
            }
            if let Some(conn) = found {
                Step::Ready(Pooled::new(self.clone(), conn))
            } else if inner.open < self.max_size.load(Ordering::Relaxed) {
                inner.open += 1;
                Step::Open(Slot {
                    pool: Some(self.clone()),
                })
            } else {
                let (tx, rx) = oneshot::channel();
                inner.waiters.push_back(tx);
                Step::Wait(rx)
            }
        };
        let rx = match step {
            Step::Ready(p) => return Ok(p),
            Step::Open(slot) => return self.open_new(slot).await,
            Step::Wait(rx) => rx,
        };
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let got = tokio::time::timeout_at(deadline.into(), rx).await;
        self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        match got {
            Ok(Ok(Grant::Conn(mut c))) => {
                c.waited = started.elapsed();
                Ok(c)
            }
            Ok(Ok(Grant::Slot(slot))) => {
                let waited = started.elapsed();
                let mut c = self.open_new(slot).await?;
                c.waited = waited;
                Ok(c)
            }
            Ok(Err(_)) => Err(PoolError::Closed),
            Err(_) => Err(PoolError::WaitTimeout {
                waited_ms: started.elapsed().as_millis(),
            }),
        }
    }

    async fn open_new(self: &Arc<Self>, slot: Slot) -> Result<Pooled, PoolError> {
        let mut conn = server::connect(&self.spec).await?;
        conn.epoch = self.epoch.load(Ordering::Relaxed);
        let local = conn.stream.local_addr().ok();
        conn.entry = Some(self.servers.register(ServerEntry::new(
            conn.id,
            &self.database,
            &self.spec.user,
            &self.spec.node.host,
            self.spec.node.port,
            local,
            conn.backend_pid,
        )));
        tracing::debug!(server_id = conn.id, node = %self.spec.node, user = %self.spec.user, "opened server connection");
        Ok(slot.fill(Box::new(conn)))
    }

    /// Returns a clean connection: to the longest waiter if any, else idle.
    fn checkin(self: &Arc<Self>, mut conn: Box<ServerConn>) {
        let mut inner = self.lock();
        if inner.closed || conn.epoch < self.epoch.load(Ordering::Relaxed) || !conn.is_reusable() {
            drop(inner);
            self.release_slot();
            return;
        }
        conn.last_used = Instant::now();
        let mut offer = Grant::Conn(Pooled::new(self.clone(), conn));
        while let Some(tx) = inner.waiters.pop_front() {
            match tx.send(offer) {
                Ok(()) => return,
                Err(back) => offer = back,
            }
        }
        if let Grant::Conn(mut pooled) = offer {
            if let Some(conn) = pooled.take() {
                if let Some(e) = &conn.entry {
                    e.set_state(ServerState::Idle);
                }
                inner.idle.push(conn);
            }
        }
    }

    /// A connection closed (or failed to open): its slot passes to the
    /// longest waiter, which opens a new connection, or is freed.
    fn release_slot(self: &Arc<Self>) {
        let mut inner = self.lock();
        let mut offer = Grant::Slot(Slot {
            pool: Some(self.clone()),
        });
        while let Some(tx) = inner.waiters.pop_front() {
            match tx.send(offer) {
                Ok(()) => return,
                Err(back) => offer = back,
            }
        }
        if let Grant::Slot(mut slot) = offer {
            // Forget the slot without passing it on again.
            slot.pool = None;
        }
        inner.open -= 1;
    }

    /// Closes idle connections and refuses new checkouts.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        let n = inner.idle.len();
        inner.idle.clear();
        inner.open -= n;
        inner.waiters.clear();
    }

    /// RECONNECT: every connection opened so far is replaced as it becomes
    /// idle; idle ones go now.
    pub fn reconnect(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.drop_idle();
    }

    /// Drops every idle connection (after a node failed, say).
    pub fn drop_idle(&self) {
        let mut inner = self.lock();
        let n = inner.idle.len();
        inner.idle.clear();
        inner.open -= n;
    }

    /// Connections of this pool currently lent out: the outstanding work
    /// the router balances replicas by.
    pub fn in_flight(&self) -> usize {
        self.counters.active.load(Ordering::Relaxed)
    }

    pub fn set_size(&self, size: usize) {
        self.max_size.store(size.max(1), Ordering::Relaxed);
    }

    /// (open, idle, waiting) for diagnostics.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.open, inner.idle.len(), inner.waiters.len())
    }
}

/// The right to hold one open connection in a pool. Dropping an unused slot
/// passes it on, so a failed connect or a cancelled waiter never leaks it.
struct Slot {
    pool: Option<Arc<Pool>>,
}

impl Slot {
    fn fill(mut self, conn: Box<ServerConn>) -> Pooled {
        match self.pool.take() {
            Some(pool) => Pooled::new(pool, conn),
            // Unreachable by construction: a Slot always has its pool until filled or dropped.
            None => Pooled::detached(conn),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release_slot();
        }
    }
}
