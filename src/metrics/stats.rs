//! Traffic statistics. Each connection keeps plain [`ConnCounters`] and
//! folds them into its pool's [`PoolStats`] atomics at transaction end
//! (ReadyForQuery reporting idle) and when it lets go of the server
//! connection; nothing shared is touched per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::clock;
use super::histogram::{LocalHistogram, SharedHistogram};

/// Totals of one pool (database, user, node), read at scrape time.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub xact_count: AtomicU64,
    pub query_count: AtomicU64,
    /// Bytes received from clients (and forwarded to the server).
    pub received: AtomicU64,
    /// Bytes sent to clients.
    pub sent: AtomicU64,
    pub xact_time_us: AtomicU64,
    pub query_time_us: AtomicU64,
    /// Time clients waited for a server connection of this pool.
    pub wait_time_us: AtomicU64,
    /// Times a server connection was handed to a client.
    pub assignments: AtomicU64,
    pub query_latency: SharedHistogram,
    pub xact_latency: SharedHistogram,
    pub wait_latency: SharedHistogram,
}

/// A copy of the totals, for sums and averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub xact_count: u64,
    pub query_count: u64,
    pub received: u64,
    pub sent: u64,
    pub xact_time_us: u64,
    pub query_time_us: u64,
    pub wait_time_us: u64,
    pub assignments: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.xact_count += o.xact_count;
        self.query_count += o.query_count;
        self.received += o.received;
        self.sent += o.sent;
        self.xact_time_us += o.xact_time_us;
        self.query_time_us += o.query_time_us;
        self.wait_time_us += o.wait_time_us;
        self.assignments += o.assignments;
    }

    /// `self - earlier`, per field (never negative).
    pub fn minus(&self, earlier: &Totals) -> Totals {
        Totals {
            xact_count: self.xact_count.saturating_sub(earlier.xact_count),
            query_count: self.query_count.saturating_sub(earlier.query_count),
            received: self.received.saturating_sub(earlier.received),
            sent: self.sent.saturating_sub(earlier.sent),
            xact_time_us: self.xact_time_us.saturating_sub(earlier.xact_time_us),
            query_time_us: self.query_time_us.saturating_sub(earlier.query_time_us),
            wait_time_us: self.wait_time_us.saturating_sub(earlier.wait_time_us),
            assignments: self.assignments.saturating_sub(earlier.assignments),
        }
    }
}

impl PoolStats {
    pub fn totals(&self) -> Totals {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            xact_count: l(&self.xact_count),
            query_count: l(&self.query_count),
            received: l(&self.received),
            sent: l(&self.sent),
            xact_time_us: l(&self.xact_time_us),
            query_time_us: l(&self.query_time_us),
            wait_time_us: l(&self.wait_time_us),
            assignments: l(&self.assignments),
        }
    }
}

/// How far back averages look (PgBouncer's default stats_period).
pub const STATS_PERIOD: Duration = Duration::from_secs(60);
/// Samples are taken at most this often (when averages are read).
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples of a database's totals for PgBouncer's avg_* columns: the
/// averages cover the last [`STATS_PERIOD`] (less right after start).
#[derive(Debug)]
pub struct StatsWindow(std::sync::Mutex<std::collections::VecDeque<(Instant, Totals)>>);

impl Default for StatsWindow {
    fn default() -> Self {
        let mut v = std::collections::VecDeque::new();
        v.push_back((Instant::now(), Totals::default()));
        StatsWindow(std::sync::Mutex::new(v))
    }
}

impl StatsWindow {
    /// Notes `now_totals` and returns what changed over the window and the
    /// window's length in seconds.
    pub fn delta(&self, now_totals: &Totals) -> (Totals, f64) {
        let now = Instant::now();
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.back()
            .is_none_or(|b| now.duration_since(b.0) >= SAMPLE_EVERY)
        {
            v.push_back((now, *now_totals));
        }
        while v.len() > 2
            && v.get(1)
                .is_some_and(|s| now.duration_since(s.0) >= STATS_PERIOD)
        {
            v.pop_front();
        }
        match v.front() {
            Some((at, base)) => (
                now_totals.minus(base),
                now.duration_since(*at).as_secs_f64(),
            ),
            None => (Totals::default(), 0.0),
        }
    }
}

/// Plain counters of one client connection since the last fold.
#[derive(Debug, Clone, Default)]
pub struct ConnCounters {
    xacts: u64,
    queries: u64,
    received: u64,
    sent: u64,
    xact_time_us: u64,
    query_time_us: u64,
    wait_time_us: u64,
    assignments: u64,
    query_latency: LocalHistogram,
    xact_latency: LocalHistogram,
    wait_latency: LocalHistogram,
    /// When the oldest unanswered request was sent (process clock,
    /// `clock::now_us`; 0: none).
    query_start: u64,
    /// When the transaction in progress started (0: none).
    xact_start: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ConnCounters {
    /// Everything counted was folded into a pool's statistics and no timer
    /// runs (between transactions).
    pub fn is_settled(&self) -> bool {
        self.xacts == 0
            && self.queries == 0
            && self.received == 0
            && self.sent == 0
            && self.xact_time_us == 0
            && self.query_time_us == 0
            && self.wait_time_us == 0
            && self.assignments == 0
            && self.query_start == 0
            && self.xact_start == 0
    }

    /// A request (Query, Sync, FunctionCall) went to the server.
    #[inline]
    pub fn request_sent(&mut self) {
        if self.query_start == 0 {
            let now = clock::now_us();
            self.query_start = now;
            if self.xact_start == 0 {
                self.xact_start = now;
            }
        }
    }

    /// ReadyForQuery arrived; `more` requests are still unanswered and
    /// `idle` says the transaction (if any) is over.
    pub fn ready(&mut self, more: bool, idle: bool) {
        let now = clock::now_us();
        let start = std::mem::take(&mut self.query_start);
        if start != 0 {
            let us = now.saturating_sub(start);
            self.queries += 1;
            self.query_time_us += us;
            self.query_latency.observe(us);
        }
        if more {
            self.query_start = now;
        }
        if idle {
            let start = std::mem::take(&mut self.xact_start);
            if start != 0 {
                let us = now.saturating_sub(start);
                self.xacts += 1;
                self.xact_time_us += us;
                self.xact_latency.observe(us);
            }
            if more {
                self.xact_start = now;
            }
        }
    }

    #[inline]
    pub fn received(&mut self, n: usize) {
        self.received += n as u64;
    }

    #[inline]
    pub fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// A server connection was assigned after waiting `waited`.
    pub fn assigned(&mut self, waited: Duration) {
        let us = micros(waited);
        self.assignments += 1;
        self.wait_time_us += us;
        self.wait_latency.observe(us);
    }

    /// Adds everything counted so far to `to` and starts over (timers of a
    /// request in flight keep running).
    pub fn fold_into(&mut self, to: &PoolStats) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v > 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&to.xact_count, &mut self.xacts);
        add(&to.query_count, &mut self.queries);
        add(&to.received, &mut self.received);
        add(&to.sent, &mut self.sent);
        add(&to.xact_time_us, &mut self.xact_time_us);
        add(&to.query_time_us, &mut self.query_time_us);
        add(&to.wait_time_us, &mut self.wait_time_us);
        add(&to.assignments, &mut self.assignments);
        self.query_latency.fold_into(&to.query_latency);
        self.xact_latency.fold_into(&to.xact_latency);
        self.wait_latency.fold_into(&to.wait_latency);
    }

    /// The server connection went away: timers of unanswered requests stop.
    pub fn detach(&mut self) {
        self.query_start = 0;
        self.xact_start = 0;
    }
}

/// Errors clients were given, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No server connection within query_wait_timeout (or PAUSE held too long).
    WaitTimeout,
    /// No primary within failover_timeout.
    FailoverTimeout,
    /// The server connection was lost with work in flight.
    ServerLost,
    /// No node could take a request (connect failures, no replica).
    NoServer,
    /// The client broke the protocol.
    Protocol,
    /// Login refused (authentication, unknown database or role, limits).
    Login,
    /// Closed by the admin console (KILL, KILL_CLIENT) or a shutdown.
    Killed,
    /// client_idle_timeout, idle_transaction_timeout.
    IdleTimeout,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::WaitTimeout,
        ErrorKind::FailoverTimeout,
        ErrorKind::ServerLost,
        ErrorKind::NoServer,
        ErrorKind::Protocol,
        ErrorKind::Login,
        ErrorKind::Killed,
        ErrorKind::IdleTimeout,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::WaitTimeout => "wait_timeout",
            ErrorKind::FailoverTimeout => "failover_timeout",
            ErrorKind::ServerLost => "server_lost",
            ErrorKind::NoServer => "no_server",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Login => "login",
            ErrorKind::Killed => "killed",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::Other => "other",
        }
    }
}

/// Error counters (errors are rare: one atomic each).
#[derive(Debug, Default)]
pub struct ErrorCounts([AtomicU64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn count(&self, kind: ErrorKind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_counts_transactions_and_queries() {
        let pool = PoolStats::default();
        let mut c = ConnCounters::default();
        // BEGIN; SELECT; COMMIT as three simple queries.
        for idle in [false, false, true] {
            c.request_sent();
            c.received(10);
            c.sent(20);
            c.ready(false, idle);
        }
        // A pipelined pair in one transaction each.
        c.request_sent();
        c.ready(true, true);
        c.ready(false, true);
        c.assigned(Duration::from_millis(3));
        c.fold_into(&pool);
        let t = pool.totals();
        assert_eq!(t.query_count, 5);
        assert_eq!(t.xact_count, 3);
        assert_eq!((t.received, t.sent), (30, 60));
        assert_eq!(t.assignments, 1);
        assert!(t.wait_time_us >= 3000);
        assert_eq!(pool.query_latency.snapshot().count, 5);
        assert_eq!(pool.xact_latency.snapshot().count, 3);
        c.fold_into(&pool);
        assert_eq!(pool.totals(), t, "a second fold adds nothing");
    }

    #[test]
    fn error_counts() {
        let e = ErrorCounts::default();
        e.count(ErrorKind::Killed);
        e.count(ErrorKind::Killed);
        assert_eq!(e.get(ErrorKind::Killed), 2);
        assert_eq!(e.get(ErrorKind::Other), 0);
    }
}
