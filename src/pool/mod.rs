//! Server connection pools, one per (database, user, node).
//!
//! Checkout takes an idle connection, opens a new one while the pool is under
//! its size, or waits in strict FIFO order. Whatever is checked out is a
//! guard: dropping it returns a clean connection to the pool (or to the
//! longest waiter) and closes a dirty one, so no code path can leak a slot.

#[cfg(feature = "bench-internals")]
mod bench;
mod guard;
pub mod limit;
mod pause;
mod sweep;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{oneshot, Notify};

pub use guard::Pooled;
pub use limit::Limit;
pub use pause::{PauseGate, StillPaused};

use crate::metrics::{clock, PoolStats, Registry, ServerEntry};
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
    /// The waiter's deadline passed (see `sweep`).
    Expired,
}

#[derive(Default)]
struct Inner {
    /// Idle connections; the most recently used is reused first so the
    /// working set stays warm and surplus connections age out.
    #[allow(clippy::vec_box)] // kept boxed so checkout does not re-allocate
    idle: Vec<Box<ServerConn>>,
    /// Connections open or being opened, including checked-out ones.
    open: usize,
    waiters: VecDeque<sweep::Waiter>,
    sweep: sweep::Sweep,
    closed: bool,
}

/// Counters read by the admin console and metrics.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub active: AtomicUsize,
    pub waiting: AtomicUsize,
}

/// Sizes and ages of one pool; atomics so a reload can change them live.
#[derive(Debug, Default, Clone)]
pub struct PoolSettings {
    pub size: usize,
    /// `reserve_pool_size`: extra connections for clients that waited
    /// `reserve_pool_timeout`.
    pub reserve_size: usize,
    pub reserve_timeout: Duration,
    /// `server_lifetime`: connections older than this are closed when they
    /// come back (zero: no limit).
    pub lifetime: Duration,
    /// `server_idle_timeout`: idle connections unused for this long are
    /// closed (zero: no limit).
    pub idle_timeout: Duration,
}

#[derive(Debug, Default)]
struct LiveSettings {
    size: AtomicUsize,
    reserve_size: AtomicUsize,
    reserve_timeout_ms: AtomicU64,
    lifetime_ms: AtomicU64,
    idle_timeout_ms: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `at_us` lies `limit_ms` or more before `now_us` (process clock,
/// `metrics::clock`); a zero limit is off.
fn older_than(at_us: u64, limit_ms: u64, now_us: u64) -> bool {
    limit_ms != 0 && now_us.saturating_sub(at_us) >= limit_ms.saturating_mul(1000)
}

pub struct Pool {
    spec: ConnectSpec,
    settings: LiveSettings,
    limits: Vec<Arc<Limit>>,
    /// Woken when one of `limits` frees a permit.
    limit_freed: Notify,
    /// Wakes the line's sweeper early (see `sweep`).
    sweep_wake: Arc<Notify>,
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

/// What one look at the pool decided.
enum Step {
    Ready(Pooled),
    Open(Slot),
    /// Under its own size, but limit `.0` is full: in line for a
    /// connection of this pool, and woken when a limit frees a permit.
    Limited(usize, oneshot::Receiver<Grant>),
    Wait(oneshot::Receiver<Grant>),
}

impl Pool {
    /// A pool for `spec` with no shared limits, listed as database
    /// `database`; its connections register in `servers`.
    pub fn new(
        spec: ConnectSpec,
        size: usize,
        database: &str,
        servers: Arc<Registry<ServerEntry>>,
    ) -> Arc<Pool> {
        Pool::with_limits(
            spec,
            &PoolSettings {
                size,
                ..PoolSettings::default()
            },
            Vec::new(),
            database,
            servers,
        )
    }

    /// A pool that also takes a permit from each of `limits` per
    /// connection (max_db_connections, max_user_connections).
    pub fn with_limits(
        spec: ConnectSpec,
        settings: &PoolSettings,
        limits: Vec<Arc<Limit>>,
        database: &str,
        servers: Arc<Registry<ServerEntry>>,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            spec,
            settings: LiveSettings::default(),
            limits,
            limit_freed: Notify::new(),
            sweep_wake: Arc::new(Notify::new()),
            epoch: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            counters: PoolCounters::default(),
            stats: PoolStats::default(),
            database: database.to_owned(),
            servers,
        });
        pool.apply(settings);
        for l in &pool.limits {
            l.join(&pool);
        }
        pool
    }

    /// Takes new sizes and ages (reload). A smaller size takes effect as
    /// connections come back.
    pub fn apply(&self, s: &PoolSettings) {
        let l = &self.settings;
        l.size.store(s.size.max(1), Ordering::Relaxed);
        l.reserve_size.store(s.reserve_size, Ordering::Relaxed);
        l.reserve_timeout_ms
            .store(ms(s.reserve_timeout), Ordering::Relaxed);
        l.lifetime_ms.store(ms(s.lifetime), Ordering::Relaxed);
        l.idle_timeout_ms
            .store(ms(s.idle_timeout), Ordering::Relaxed);
    }

    pub fn spec(&self) -> &ConnectSpec {
        &self.spec
    }

    /// pgferry's name of the pool's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The configured size (SET default_pool_size and reload may change it).
    pub fn max_size(&self) -> usize {
        self.settings.size.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave Inner half-updated in
        // a way that matters more than losing the pool, so recover the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` connections closed: their slots and limit permits are free.
    fn forget(&self, inner: &mut Inner, n: usize) {
        if n == 0 {
            return;
        }
        inner.open -= n;
        for l in &self.limits {
            l.release(n);
        }
    }

    fn expired(&self, conn: &ServerConn, now_us: u64) -> bool {
        older_than(
            conn.created_us,
            self.settings.lifetime_ms.load(Ordering::Relaxed),
            now_us,
        ) || older_than(
            conn.last_used_us,
            self.settings.idle_timeout_ms.load(Ordering::Relaxed),
            now_us,
        )
    }

    /// Checks out a connection, waiting until `deadline` at most.
    /// Cancel safety: cancel-safe; a grant that arrives after the caller went
    /// away is returned to the pool by its guard.
    pub async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Pooled, PoolError> {
        let now = Instant::now();
        self.checkout_at(now, clock::us_at(now), deadline).await
    }

    /// [`Self::checkout`] for a caller that has just read the clock
    /// (`started`, and the same moment on the process clock, `started_us`):
    /// the common case, an idle connection at once, reads it no more.
    pub async fn checkout_at(
        self: &Arc<Self>,
        started: Instant,
        started_us: u64,
        deadline: Instant,
    ) -> Result<Pooled, PoolError> {
        // The common case, an idle connection at once, did not wait (and
        // needs no second reading of the clock).
        if let Some(p) = self.take_idle(&mut self.lock(), started_us) {
            return Ok(p);
        }
        let mut conn = self.checkout_inner(started, deadline).await?;
        conn.waited = started.elapsed();
        Ok(conn)
    }

    async fn checkout_inner(
        self: &Arc<Self>,
        started: Instant,
        deadline: Instant,
    ) -> Result<Pooled, PoolError> {
        let reserve_size = self.settings.reserve_size.load(Ordering::Relaxed);
        let reserve_at = started
            + Duration::from_millis(self.settings.reserve_timeout_ms.load(Ordering::Relaxed));
        let mut use_reserve = false;
        // Whether to watch for freed limit permits: only once a shared limit
        // was hit (registering costs a lock on every checkout otherwise).
        let mut watch_limits = false;
        loop {
            // Registered before looking, so a permit freed meanwhile wakes us.
            let freed = self.limit_freed.notified();
            tokio::pin!(freed);
            if watch_limits {
                freed.as_mut().enable();
            }
            // Until the reserve opens, waiting stops early to try it.
            let until = if !use_reserve && reserve_size > 0 && reserve_at < deadline {
                reserve_at
            } else {
                deadline
            };
            // Waiting only for the deadline: the pool's sweeper keeps time
            // (a task, so only inside a runtime).
            let swept = until == deadline && tokio::runtime::Handle::try_current().is_ok();
            let step = self.look(use_reserve, Instant::now(), swept.then_some(deadline))?;
            let rx = match step {
                Step::Ready(p) => return Ok(p),
                Step::Open(slot) => return Box::pin(self.open_new(slot)).await,
                Step::Limited(_, rx) if !watch_limits => {
                    // Look again, this time watching for freed permits (the
                    // dropped place in line is skipped by whoever offers it).
                    drop(rx);
                    watch_limits = true;
                    continue;
                }
                Step::Limited(i, rx) => {
                    let limit = &self.limits[i];
                    if limit.evict_idle(self) {
                        continue;
                    }
                    self.counters.waiting.fetch_add(1, Ordering::Relaxed);
                    limit.waiting(1);
                    let woke = tokio::time::timeout_at(until.into(), async {
                        tokio::select! {
                            got = rx => Some(got),
                            _ = freed => None,
                        }
                    })
                    .await;
                    limit.waiting(-1);
                    self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                    match woke {
                        Ok(Some(Ok(Grant::Conn(c)))) => return Ok(c),
                        // (Limited waiters keep their own timer.)
                        Ok(Some(Ok(Grant::Expired))) => {
                            return Err(PoolError::WaitTimeout {
                                waited_ms: started.elapsed().as_millis(),
                            })
                        }
                        Ok(Some(Ok(Grant::Slot(slot)))) => {
                            return Box::pin(self.open_new(slot)).await
                        }
                        Ok(Some(Err(_))) => return Err(PoolError::Closed),
                        // A permit was freed, or an idle connection may be
                        // evictable now: look again.
                        Ok(None) => {}
                        Err(_) if until < deadline => use_reserve = true,
                        Err(_) => {
                            return Err(PoolError::WaitTimeout {
                                waited_ms: started.elapsed().as_millis(),
                            })
                        }
                    }
                    continue;
                }
                Step::Wait(rx) => rx,
            };
            self.counters.waiting.fetch_add(1, Ordering::Relaxed);
            let got = if swept {
                Ok(rx.await)
            } else {
                tokio::time::timeout_at(until.into(), rx).await
            };
            self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
            match got {
                Ok(Ok(Grant::Conn(c))) => return Ok(c),
                Ok(Ok(Grant::Slot(slot))) => return Box::pin(self.open_new(slot)).await,
                Ok(Err(_)) => return Err(PoolError::Closed),
                Err(_) if until < deadline => use_reserve = true,
                Ok(Ok(Grant::Expired)) | Err(_) => {
                    return Err(PoolError::WaitTimeout {
                        waited_ms: started.elapsed().as_millis(),
                    })
                }
            }
        }
    }

    /// The most recently used idle connection still fit for use; unfit
    /// ones met on the way are closed.
    fn take_idle(self: &Arc<Self>, inner: &mut Inner, now_us: u64) -> Option<Pooled> {
        if inner.closed {
            return None;
        }
        while let Some(mut conn) = inner.idle.pop() {
            if conn.is_reusable() && !self.expired(&conn, now_us) {
                return Some(Pooled::new(self.clone(), conn, now_us));
            }
            self.forget(inner, 1);
        }
        None
    }

    /// One look under the lock: an idle connection, a slot to open one, or
    /// a place in line.
    /// `deadline`: a waiter the sweeper times out (None: it keeps time itself).
    fn look(
        self: &Arc<Self>,
        use_reserve: bool,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Step, PoolError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(PoolError::Closed);
        }
        if let Some(p) = self.take_idle(&mut inner, clock::us_at(now)) {
            return Ok(Step::Ready(p));
        }
        let mut cap = self.settings.size.load(Ordering::Relaxed);
        if use_reserve {
            cap += self.settings.reserve_size.load(Ordering::Relaxed);
        }
        if inner.open < cap {
            if let Err(i) = limit::acquire_all(&self.limits) {
                let (tx, rx) = oneshot::channel();
                inner
                    .waiters
                    .push_back(sweep::Waiter { tx, deadline: None });
                return Ok(Step::Limited(i, rx));
            }
            inner.open += 1;
            return Ok(Step::Open(Slot {
                pool: Some(self.clone()),
            }));
        }
        let (tx, rx) = oneshot::channel();
        match deadline {
            Some(d) => sweep::enqueue(self, &mut inner, tx, d),
            None => inner
                .waiters
                .push_back(sweep::Waiter { tx, deadline: None }),
        }
        Ok(Step::Wait(rx))
    }

    /// Opens a connection into `slot`. Awaited boxed: the connect and login
    /// state is about 2 KiB, which every checkout's future (and the
    /// session's boxed batch future, copied to the heap once per
    /// transaction) would otherwise carry for the rare case.
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
        let now_us = clock::now_us();
        let too_old = older_than(
            conn.created_us,
            self.settings.lifetime_ms.load(Ordering::Relaxed),
            now_us,
        );
        // Beyond the size (after a reload shrank it, or reserve connections
        // with nobody waiting any more) connections close as they return.
        let mut keep = self.settings.size.load(Ordering::Relaxed);
        if !inner.waiters.is_empty() {
            keep += self.settings.reserve_size.load(Ordering::Relaxed);
        }
        let over_size = inner.open > keep;
        if inner.closed
            || too_old
            || over_size
            || conn.epoch < self.epoch.load(Ordering::Relaxed)
            || !conn.is_clean()
        {
            drop(inner);
            self.release_slot();
            return;
        }
        conn.last_used_us = now_us;
        if !inner.waiters.is_empty() {
            let mut offer = Grant::Conn(Pooled::new(self.clone(), conn, now_us));
            while let Some(w) = inner.waiters.pop_front() {
                match w.tx.send(offer) {
                    Ok(()) => return,
                    Err(back) => offer = back,
                }
            }
            // Every waiter had gone: the connection goes idle after all.
            let Grant::Conn(mut pooled) = offer else {
                return;
            };
            let Some(back) = pooled.take() else {
                return;
            };
            conn = back;
        }
        if let Some(e) = &conn.entry {
            e.set_idle();
        }
        inner.idle.push(conn);
        drop(inner);
        // A pool waiting on a shared limit may now close this idle
        // connection to make room.
        for l in &self.limits {
            if l.has_waiters() {
                l.wake_members();
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
        while let Some(w) = inner.waiters.pop_front() {
            match w.tx.send(offer) {
                Ok(()) => return,
                Err(back) => offer = back,
            }
        }
        if let Grant::Slot(mut slot) = offer {
            // Forget the slot without passing it on again.
            slot.pool = None;
        }
        self.forget(&mut inner, 1);
    }

    /// Closes idle connections and refuses new checkouts.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        let n = inner.idle.len();
        inner.idle.clear();
        self.forget(&mut inner, n);
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
        self.forget(&mut inner, n);
    }

    /// Closes idle connections past `server_idle_timeout` or
    /// `server_lifetime`; returns how many.
    pub fn reap(&self) -> usize {
        let mut inner = self.lock();
        let now_us = clock::now_us();
        let before = inner.idle.len();
        inner.idle.retain(|c| !self.expired(c, now_us));
        let n = before - inner.idle.len();
        self.forget(&mut inner, n);
        n
    }

    /// When the longest-idle connection was last used.
    /// (Process clock, `metrics::clock`.)
    fn oldest_idle(&self) -> Option<u64> {
        self.lock().idle.first().map(|c| c.last_used_us)
    }

    /// Closes the longest-idle connection (to free a shared limit's permit).
    fn close_oldest_idle(&self) -> bool {
        let mut inner = self.lock();
        if inner.idle.is_empty() {
            return false;
        }
        inner.idle.remove(0);
        self.forget(&mut inner, 1);
        true
    }

    /// A limit this pool shares freed a permit.
    fn wake_limited(&self) {
        self.limit_freed.notify_waiters();
    }

    /// Connections of this pool currently lent out: the outstanding work
    /// the router balances replicas by.
    pub fn in_flight(&self) -> usize {
        self.counters.active.load(Ordering::Relaxed)
    }

    pub fn set_size(&self, size: usize) {
        self.settings.size.store(size.max(1), Ordering::Relaxed);
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
            Some(pool) => Pooled::new(pool, conn, clock::now_us()),
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
