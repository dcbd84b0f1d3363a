//! The data path: forwards bytes between a client and its server connection
//! in both directions at once, looking only at frame headers plus the few
//! messages that tell where a transaction ends.
//!
//! Both directions are driven from one `poll_fn`, so neither side can block
//! the other (a client pipelining into a full server socket while the server
//! waits for us to read its results would otherwise deadlock). Bytes are
//! forwarded straight out of the receive buffer: a read may carry many
//! messages and they leave in one write; a message larger than the buffer
//! streams through without being held whole.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::io::ClientIo;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::prepared::{self, ClientStatements, Prepared};
use super::replay::SessionState;
use crate::config::PoolMode;
use crate::metrics::{ConnCounters, PoolStats};
use crate::protocol::build::{self, Severity};
use crate::protocol::frame::{self, FrameError};
use crate::protocol::{sqlstate, tag, views, TxStatus};
use crate::router::classify::{self, TxEffect};
use crate::server::{params, ParamSet, ServerConn};
use crate::tls::Stream;

/// Stop reading a side while this much is buffered and unsent (backpressure).
const HIGH_WATER: usize = 64 * 1024;
/// Largest ParameterStatus we inspect; bigger ones just pass through.
const MAX_INSPECTED: usize = 1 << 20;
/// Queries up to this size are read whole before forwarding when statements
/// are shared (one may be a DEALLOCATE to answer for the client's view).
const MAX_DEALLOCATE_QUERY: usize = 1024;

/// Buffers of the statement-sharing path, kept by the session between pump
/// runs so a busy client allocates none per transaction (an idle one gives
/// them back with its other buffers).
#[derive(Debug, Default)]
pub struct Scratch {
    c_out: BytesMut,
    expect: VecDeque<(u64, u8, bool)>,
    added: Vec<(u64, Arc<Prepared>)>,
    used: Vec<(u64, Arc<Prepared>)>,
    synth: VecDeque<u64>,
}

/// What a client needs only once it has work: the statement-sharing
/// buffers, its prepared statements and their routing verdicts, its traffic
/// counters, its session state, read-your-writes position, held server
/// connection and server-to-client buffer. Made at its first request, so a
/// client that only logged in carries a pointer instead of some 750 bytes.
#[derive(Debug, Default)]
pub struct Busy {
    pub scratch: Scratch,
    pub counters: ConnCounters,
    /// Transaction/statement mode: the client's prepared statements.
    pub stmts: ClientStatements,
    /// Classifier verdicts of the client's named prepared statements.
    pub verdicts: std::collections::HashMap<String, crate::router::classify::Verdict>,
    /// The client's session state (SET statements and what cannot move),
    /// replayed or applied on each server connection it gets.
    pub replay: SessionState,
    /// Read-your-writes: where the client last wrote.
    pub ryw: super::route::ReadYourWrites,
    /// Session mode or a pinned client: the server connection it keeps.
    pub held: Option<crate::pool::Pooled>,
    /// Bytes read from the server, not yet passed on to the client.
    pub sbuf: BytesMut,
}

impl Busy {
    /// Whether this holds nothing of the client's own: no statements or
    /// verdicts, no session state, read-your-writes position or held
    /// connection, no unsent bytes and counters already folded into the
    /// pool's. Such a state goes back to the thread's spares while its
    /// client is parked (see `spare::give_busy`).
    pub fn is_spare(&self) -> bool {
        self.stmts.is_empty()
            && self.verdicts.is_empty()
            && self.replay == SessionState::default()
            && self.ryw.is_clear()
            && self.held.is_none()
            && self.sbuf.is_empty()
            && self.counters.is_settled()
    }
}

/// Why the pump stopped.
#[derive(Debug)]
pub enum Outcome {
    /// A transaction (or statement) boundary: the server connection may go
    /// back to the pool. Output for the client may still be queued.
    Released,
    /// The client sent Terminate or closed its socket.
    ClientGone,
    /// The server connection failed or closed.
    ServerGone(Option<std::io::Error>),
    /// The client broke the protocol; it gets this error and is closed.
    ClientProtocol(ClientViolation),
    /// A held (retry-safe) batch lost its server before any answer reached
    /// the client; its bytes are still in the client buffer, untouched, and
    /// the tracker is as before the batch.
    Retry,
    /// The client sat idle inside a transaction past
    /// `idle_transaction_timeout`.
    IdleInTransaction,
    /// The client sat idle past `client_idle_timeout`.
    ClientIdle,
    /// pgferry is draining for shutdown and the client is idle.
    ShuttingDown,
}

/// What the pump is waiting for, for its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Requests are in flight (query_timeout).
    Query,
    /// Inside a transaction, waiting for the client (idle_transaction_timeout).
    IdleInTransaction,
    /// Outside a transaction, waiting for the client (client_idle_timeout;
    /// session mode and pinned clients, which keep their connection).
    Idle,
    Other,
}

struct Timeouts {
    query: Duration,
    idle_tx: Duration,
    idle: Duration,
    connect: Duration,
    phase: Phase,
    since: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The running query was cancelled already.
    cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientViolation {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("invalid frontend message type '{}'", char::from(*.0))]
    BadTag(u8),
}

/// Per-attachment protocol tracking, kept across pump runs of a session.
#[derive(Debug)]
pub struct Tracker {
    /// Sync points (Query, Sync, FunctionCall) sent and not yet answered by
    /// ReadyForQuery.
    pub pending: u32,
    /// Extended-protocol messages sent since the last Sync.
    pub unsynced: bool,
    pub tx: TxStatus,
    /// The client sent Terminate.
    pub terminated: bool,
    /// Statement mode turned a transaction block into an error; the server
    /// must be rolled back before reuse.
    pub needs_rollback: bool,
    /// After the server was lost: body bytes of a client message that was
    /// partly forwarded and whose rest has not arrived yet.
    pub partial: usize,
    /// A COMMIT (or other transaction end) may be among the requests in
    /// flight inside a transaction block: if the server is lost now, the
    /// outcome is unknown.
    pub end_in_flight: bool,
    /// The FATAL error the server ended the connection with, if any.
    /// (Boxed: rare, and the tracker lives in every session.)
    pub server_fatal: Option<Box<(String, String)>>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            pending: 0,
            unsynced: false,
            tx: TxStatus::Idle,
            terminated: false,
            needs_rollback: false,
            partial: 0,
            end_in_flight: false,
            server_fatal: None,
        }
    }
}

impl Tracker {
    /// True when the server holds no state for this client beyond the
    /// session itself: nothing in flight, no open transaction.
    pub fn is_clean(&self) -> bool {
        self.pending == 0 && !self.unsynced && self.tx == TxStatus::Idle
    }
}

pub struct Pump<'a> {
    pub io: &'a mut ClientIo,
    pub server: &'a mut ServerConn,
    pub track: &'a mut Tracker,
    /// The client's session parameters, updated from ParameterStatus.
    pub desired: &'a mut ParamSet,
    pub mode: PoolMode,
    pub max_message: usize,
    /// Server→client bytes (owned by the session so its capacity is reused).
    pub sbuf: &'a mut BytesMut,
    // Scan positions: bytes before `*_scanned` are whole frames (or parts of
    // a frame whose header was seen) ready to forward; `*_remaining` counts
    // body bytes of the current frame not yet in the buffer.
    c_scanned: usize,
    c_remaining: usize,
    s_scanned: usize,
    s_remaining: usize,
    client_eof: bool,
    /// The client (server) socket's last read in this pump returned Pending:
    /// the task's waker is registered with it until it becomes readable, so
    /// while its readiness stays clear it need not be read (and the waker
    /// registered) again. Cleared by every read that returns.
    c_armed: bool,
    s_armed: bool,
    release: bool,
    /// Forward only one batch (up to its Sync/Query) while the server is
    /// between transactions: a replica must not receive the next one.
    one_batch: bool,
    /// Keep the batch's bytes in the client buffer until the server's first
    /// answer has reached the client, so it can be re-run elsewhere.
    hold: bool,
    /// While holding: bytes of the client buffer already written to the server.
    c_sent: usize,
    retry: bool,
    /// The server sent a FATAL error: the connection is ending.
    server_gone: bool,
    /// Session mode: statements are noted for replay on a new connection.
    record: Option<&'a mut SessionState>,
    /// The first message is known not to touch session state (the router
    /// found it a plain SELECT): it is not looked at again.
    plain_head: bool,
    refuse_pins: bool,
    /// `query_timeout` / `idle_transaction_timeout` (None: both off).
    timeouts: Option<Timeouts>,
    /// Held connections (session mode, pinned clients): ends an idle
    /// client's session when pgferry drains for shutdown (the drain wakes
    /// the pump through the client's kill switch).
    drain: Option<&'a crate::lifecycle::Lifecycle>,
    /// Transaction/statement mode: the client's named statements, shared
    /// across server connections (see `prepared`).
    stmts: Option<&'a mut ClientStatements>,
    /// Most statements a server connection keeps.
    stmt_cap: usize,
    /// `cache_unnamed_statements`: unnamed statements are shared too.
    cache_unnamed: bool,
    /// Once a named statement is seen, client bytes go through `c_out`
    /// (copied, possibly rewritten) instead of straight from the buffer.
    staging: bool,
    c_out: BytesMut,
    /// ParseComplete / CloseComplete the server will send, in order:
    /// (batch, tag, hidden). Hidden ones answer messages pgferry added.
    expect: VecDeque<(u64, u8, bool)>,
    /// Statements prepared on the server in a batch not answered yet.
    added: Vec<(u64, Arc<Prepared>)>,
    /// Statements bound or described in a batch not answered yet.
    used: Vec<(u64, Arc<Prepared>)>,
    /// Batches whose answers start with a ParseComplete pgferry writes: the
    /// client's unnamed Parse that opened the batch was not sent, its
    /// statement being prepared on the connection already.
    synth: VecDeque<u64>,
    /// Nothing of the current client batch has been scanned yet.
    batch_fresh: bool,
    /// Where the buffers above come from and go back to.
    scratch: Option<&'a mut Scratch>,
    c_batches: u64,
    s_batches: u64,
    /// The client's traffic counters (plain fields, no atomics) ...
    counters: Option<&'a mut ConnCounters>,
    /// ... folded into the pool's stats at each transaction end.
    stats: Option<&'a PoolStats>,
    /// KILL / KILL_CLIENT: the pump stops as if the client had left.
    kill: Option<&'a crate::client::KillSwitch>,
}

impl<'a> Pump<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        io: &'a mut ClientIo,
        server: &'a mut ServerConn,
        track: &'a mut Tracker,
        desired: &'a mut ParamSet,
        mode: PoolMode,
        max_message: usize,
        sbuf: &'a mut BytesMut,
    ) -> Pump<'a> {
        // Output already queued for the client (errors, an earlier
        // transaction's tail) goes out first, in order.
        // (Swapped, not split: splitting even an empty BytesMut turns it
        // into a shared one, an allocation per transaction.)
        let s_scanned = io.wbuf.len();
        let batch_fresh = !track.unsynced && track.partial == 0;
        if !io.wbuf.is_empty() {
            std::mem::swap(sbuf, &mut io.wbuf);
            io.wbuf.clear();
        }
        Pump {
            io,
            server,
            track,
            desired,
            mode,
            max_message,
            sbuf,
            c_scanned: 0,
            c_remaining: 0,
            s_scanned,
            s_remaining: 0,
            client_eof: false,
            c_armed: false,
            s_armed: false,
            release: false,
            one_batch: false,
            hold: false,
            c_sent: 0,
            retry: false,
            server_gone: false,
            record: None,
            plain_head: false,
            refuse_pins: false,
            timeouts: None,
            drain: None,
            stmts: None,
            stmt_cap: 0,
            cache_unnamed: false,
            staging: false,
            c_out: BytesMut::new(),
            expect: VecDeque::new(),
            added: Vec::new(),
            used: Vec::new(),
            synth: VecDeque::new(),
            batch_fresh,
            scratch: None,
            c_batches: 0,
            s_batches: 0,
            counters: None,
            stats: None,
            kill: None,
        }
    }

    /// Counts traffic into `counters`, folded into `stats` at transaction
    /// end; stops when `kill` completes.
    pub fn counting(
        &mut self,
        counters: &'a mut ConnCounters,
        stats: Option<&'a PoolStats>,
        kill: &'a crate::client::KillSwitch,
    ) {
        self.counters = Some(counters);
        self.stats = stats;
        self.kill = Some(kill);
    }

    /// Shares the client's named statements across server connections.
    pub fn sharing(&mut self, stmts: &'a mut ClientStatements, cap: usize, cache_unnamed: bool) {
        self.stmts = Some(stmts);
        self.stmt_cap = cap;
        self.cache_unnamed = cache_unnamed;
    }

    /// Reuses the session's buffers (handed back when the run ends).
    pub fn with_scratch(&mut self, scratch: &'a mut Scratch) {
        self.c_out = std::mem::take(&mut scratch.c_out);
        self.expect = std::mem::take(&mut scratch.expect);
        self.added = std::mem::take(&mut scratch.added);
        self.used = std::mem::take(&mut scratch.used);
        self.synth = std::mem::take(&mut scratch.synth);
        self.scratch = Some(scratch);
    }

    /// Arms `query_timeout`, `idle_transaction_timeout` and
    /// `client_idle_timeout` (zero: off).
    pub fn timeouts(
        &mut self,
        query: Duration,
        idle_tx: Duration,
        idle: Duration,
        connect: Duration,
    ) {
        if !query.is_zero() || !idle_tx.is_zero() || !idle.is_zero() {
            self.timeouts = Some(Timeouts {
                query,
                idle_tx,
                idle,
                connect,
                phase: Phase::Other,
                since: Instant::now(),
                timer: None,
                cancelled: false,
            });
        }
    }

    /// Ends the pump with `Outcome::ShuttingDown` once pgferry drains and
    /// the client is idle.
    pub fn draining(&mut self, drain: &'a crate::lifecycle::Lifecycle) {
        self.drain = Some(drain);
    }

    /// Statements that would pin the client are refused (pin_policy =
    /// "error"), not recorded.
    pub fn refusing_pins(&mut self, on: bool) {
        self.refuse_pins = on;
    }

    /// Notes session state of every statement forwarded; `plain_head`: the
    /// first one is known to leave it alone.
    pub fn recording(&mut self, state: &'a mut SessionState, plain_head: bool) {
        self.record = Some(state);
        self.plain_head = plain_head;
    }

    /// Forward a single batch (see `one_batch`), optionally holding it for a
    /// retry. Holding requires that nothing is queued for the client yet.
    pub fn single_batch(&mut self, hold: bool) {
        self.one_batch = true;
        self.hold = hold && self.s_scanned == 0;
    }

    /// The server's first answer reached the client (or the batch ended):
    /// the held request bytes can go.
    fn drop_held(&mut self) {
        if self.hold {
            self.io.rbuf.advance(self.c_sent);
            self.c_scanned -= self.c_sent;
            self.c_sent = 0;
            self.hold = false;
        }
    }

    /// Runs until a release point, a departure or a failure.
    /// Cancel safety: not cancel-safe (scan state lives in `self`); run it to
    /// completion.
    pub async fn run(&mut self) -> Outcome {
        let mut out = poll_fn(|cx| self.poll_run(cx)).await;
        if self.hold && matches!(out, Outcome::ServerGone(_) | Outcome::Retry) {
            // Nothing reached the client: forget this server's answer and
            // hand the untouched batch back for another node.
            self.c_scanned = 0;
            self.c_sent = 0;
            self.c_remaining = 0;
            self.sbuf.clear();
            self.s_scanned = 0;
            *self.track = Tracker::default();
            self.server.broken = true;
            out = Outcome::Retry;
        } else if let Outcome::Retry = out {
            out = Outcome::ServerGone(None);
        }
        if let Outcome::ServerGone(_) = out {
            // Scanned client bytes were counted against the lost server and
            // are answered by the session; they must not be sent again.
            self.io.rbuf.advance(self.c_scanned);
            self.c_scanned = 0;
            self.c_out.clear();
            self.track.partial = self.c_remaining;
        }
        // Whatever the server sent and we did not scan after the release
        // point cannot be attributed safely; drop it and the connection.
        if self.sbuf.len() > self.s_scanned {
            self.sbuf.truncate(self.s_scanned);
            self.server.broken = true;
        }
        // Unsent output stays queued for the client.
        if !self.sbuf.is_empty() {
            if self.io.wbuf.is_empty() {
                std::mem::swap(self.sbuf, &mut self.io.wbuf);
            } else {
                self.io.wbuf.extend_from_slice(self.sbuf);
                self.sbuf.clear();
            }
        }
        if let Some(scratch) = self.scratch.take() {
            self.c_out.clear();
            self.expect.clear();
            self.added.clear();
            self.used.clear();
            self.synth.clear();
            scratch.c_out = std::mem::take(&mut self.c_out);
            scratch.expect = std::mem::take(&mut self.expect);
            scratch.added = std::mem::take(&mut self.added);
            scratch.used = std::mem::take(&mut self.used);
            scratch.synth = std::mem::take(&mut self.synth);
        }
        out
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(kill) = self.kill {
            if kill.poll_killed(cx).is_ready() {
                return Poll::Ready(Outcome::ClientGone);
            }
        }
        // A socket that returned Pending stays so until the runtime's next
        // turn of its event loop, which cannot happen inside this poll:
        // reading it again would only cost a readiness check.
        let (mut c_blocked, mut s_blocked) = (false, false);
        loop {
            let mut progress = false;

            // Client → buffer.
            if !c_blocked
                && !self.client_eof
                && !self.track.terminated
                && !self.release
                && (self.io.rbuf.len() < HIGH_WATER || self.c_scanned == 0)
            {
                match poll_side(
                    &mut self.io.stream,
                    &mut self.io.rbuf,
                    &mut self.c_armed,
                    cx,
                ) {
                    Poll::Ready(Ok(0)) => {
                        self.client_eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(_)) => return Poll::Ready(Outcome::ClientGone),
                    Poll::Pending => c_blocked = true,
                }
            }
            if !self.release {
                if let Err(v) = self.scan_client() {
                    return Poll::Ready(Outcome::ClientProtocol(v));
                }
            }

            // Staged (rewritten) bytes → server.
            if !self.c_out.is_empty() {
                match Pin::new(&mut self.server.stream).poll_write(cx, &self.c_out) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Outcome::ServerGone(None)),
                    Poll::Ready(Ok(n)) => {
                        self.c_out.advance(n);
                        if let Some(c) = self.counters.as_deref_mut() {
                            c.received(n);
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Outcome::ServerGone(Some(e))),
                    Poll::Pending => {}
                }
            }
            // Buffer → server.
            let from = if self.hold { self.c_sent } else { 0 };
            if self.c_scanned > from {
                match Pin::new(&mut self.server.stream)
                    .poll_write(cx, &self.io.rbuf[from..self.c_scanned])
                {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Outcome::ServerGone(None)),
                    Poll::Ready(Ok(n)) => {
                        if let Some(c) = self.counters.as_deref_mut() {
                            c.received(n);
                        }
                        if self.hold {
                            self.c_sent += n;
                        } else {
                            self.io.rbuf.advance(n);
                            self.c_scanned -= n;
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Outcome::ServerGone(Some(e))),
                    Poll::Pending => {}
                }
            }

            // Server → buffer.
            if !s_blocked && !self.release && (self.sbuf.len() < HIGH_WATER || self.s_scanned == 0)
            {
                match poll_side(&mut self.server.stream, self.sbuf, &mut self.s_armed, cx) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Outcome::ServerGone(None)),
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Outcome::ServerGone(Some(e))),
                    Poll::Pending => s_blocked = true,
                }
            }
            self.scan_server();
            if self.retry {
                return Poll::Ready(Outcome::Retry);
            }
            if self.server_gone {
                return Poll::Ready(Outcome::ServerGone(None));
            }

            // Buffer → client.
            if self.s_scanned > 0 && !self.client_eof {
                match Pin::new(&mut self.io.stream).poll_write(cx, &self.sbuf[..self.s_scanned]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        if let Some(c) = self.counters.as_deref_mut() {
                            c.sent(n);
                        }
                        self.sbuf.advance(n);
                        self.s_scanned -= n;
                        self.drop_held();
                        progress = true;
                    }
                    Poll::Ready(_) => return Poll::Ready(Outcome::ClientGone),
                    Poll::Pending => {}
                }
            }

            // TLS may hold records it could not send yet; push them out so
            // neither side waits on bytes stuck in a session buffer. Costs
            // nothing for plaintext (wants_flush is false).
            if self.server.stream.wants_flush() {
                if let Poll::Ready(Err(e)) = Pin::new(&mut self.server.stream).poll_flush(cx) {
                    return Poll::Ready(Outcome::ServerGone(Some(e)));
                }
            }
            if self.io.stream.wants_flush() {
                if let Poll::Ready(Err(_)) = Pin::new(&mut self.io.stream).poll_flush(cx) {
                    return Poll::Ready(Outcome::ClientGone);
                }
            }

            if self.release {
                self.drop_held();
                self.c_scanned = 0;
                return Poll::Ready(Outcome::Released);
            }
            if self.client_eof {
                return Poll::Ready(Outcome::ClientGone);
            }
            if self.track.terminated
                && self.c_scanned == 0
                && self.track.pending == 0
                && !self.track.unsynced
            {
                return Poll::Ready(Outcome::ClientGone);
            }
            if !progress {
                if self.timeouts.is_some() || self.drain.is_some() {
                    if let Some(out) = self.poll_timeouts(cx) {
                        return Poll::Ready(out);
                    }
                }
                return Poll::Pending;
            }
        }
    }

    /// Runs the query and idle-in-transaction timers. Called only when the
    /// pump is about to wait, so a timer is (re)armed at most once per change
    /// of phase. Some(outcome) when the client must go.
    fn poll_timeouts(&mut self, cx: &mut Context<'_>) -> Option<Outcome> {
        let phase = if self.track.pending > 0 {
            Phase::Query
        } else if self.track.unsynced || self.c_scanned > 0 || !self.c_out.is_empty() {
            Phase::Other
        } else if self.track.tx != TxStatus::Idle {
            Phase::IdleInTransaction
        } else {
            Phase::Idle
        };
        if phase == Phase::Idle && self.drain.is_some_and(|l| l.is_draining()) {
            return Some(Outcome::ShuttingDown);
        }
        let t = self.timeouts.as_mut()?;
        if t.phase != phase {
            t.phase = phase;
            t.since = Instant::now();
            t.cancelled = false;
            let limit = match phase {
                Phase::Query => t.query,
                Phase::IdleInTransaction => t.idle_tx,
                Phase::Idle => t.idle,
                Phase::Other => Duration::ZERO,
            };
            t.timer = (!limit.is_zero())
                .then(|| Box::pin(tokio::time::sleep_until((t.since + limit).into())));
        }
        let timer = t.timer.as_mut()?;
        if timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        t.timer = None;
        match phase {
            Phase::Query if !t.cancelled => {
                t.cancelled = true;
                tracing::info!(
                    server_id = self.server.id,
                    "query_timeout: cancelling the running query"
                );
                tokio::spawn(crate::server::send_cancel(
                    self.server.socket_addr,
                    self.server.backend_pid,
                    self.server.backend_secret,
                    t.connect,
                ));
                None
            }
            Phase::IdleInTransaction => Some(Outcome::IdleInTransaction),
            Phase::Idle => Some(Outcome::ClientIdle),
            _ => None,
        }
    }

    /// Walks client frames: counts sync points and spots Terminate.
    fn scan_client(&mut self) -> Result<(), ClientViolation> {
        while self.c_scanned < self.io.rbuf.len() {
            if self.c_remaining > 0 {
                let n = self.c_remaining.min(self.io.rbuf.len() - self.c_scanned);
                self.c_scanned += n;
                self.c_remaining -= n;
                if self.staging {
                    self.c_out
                        .extend_from_slice(&self.io.rbuf[..self.c_scanned]);
                    self.io.rbuf.advance(self.c_scanned);
                    self.c_scanned = 0;
                }
                continue;
            }
            if self.track.terminated {
                break;
            }
            if self.one_batch
                && self.track.pending > 0
                && self.track.tx == TxStatus::Idle
                && !matches!(
                    self.io.rbuf.get(self.c_scanned),
                    Some(&(tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL))
                )
            {
                // The batch is complete; what follows waits for its own route
                // (COPY data always belongs to the batch before it).
                break;
            }
            let Some(mut h) = frame::header(&self.io.rbuf[self.c_scanned..], self.max_message)?
            else {
                break;
            };
            // Short Queries are looked at whole too: one may DEALLOCATE a
            // shared statement.
            let statement_frame = self.stmts.is_some()
                && (matches!(h.tag, tag::PARSE | tag::BIND | tag::DESCRIBE | tag::CLOSE)
                    || (h.tag == tag::QUERY && h.total_len() <= MAX_DEALLOCATE_QUERY));
            if statement_frame && self.io.rbuf.len() - self.c_scanned < h.total_len() {
                // Rewriting needs the whole (small) message.
                break;
            }
            let mut refused = None;
            let plain =
                matches!(h.tag, tag::QUERY | tag::PARSE) && std::mem::take(&mut self.plain_head);
            if let (Some(rec), false) = (self.record.as_deref_mut(), plain) {
                if matches!(h.tag, tag::QUERY | tag::PARSE) {
                    if let Some(msg) = self
                        .io
                        .rbuf
                        .get(self.c_scanned..self.c_scanned + h.total_len())
                    {
                        let named = h.tag == tag::PARSE
                            && msg.get(frame::HEADER_LEN).is_some_and(|&b| b != 0);
                        // Shared named statements need no pin outside
                        // session mode.
                        let pins = named && self.mode == PoolMode::Session;
                        let look = pins
                            || super::route::head_bytes(msg)
                                .is_some_and(super::replay::SessionState::may_observe);
                        if let Some(text) = look.then(|| super::route::head_text(msg)).flatten() {
                            let before = rec.unreplayable;
                            rec.observe(text, pins, self.track.tx != TxStatus::Idle);
                            if self.refuse_pins && before.is_none() {
                                refused = rec.unreplayable.take();
                            }
                        }
                    }
                }
            }
            if let Some(reason) = refused {
                if h.tag == tag::PARSE {
                    self.refuse_parse(h.total_len(), reason);
                    continue;
                }
                match self.refuse_query(h.total_len(), reason) {
                    Some(rewritten) => h = rewritten,
                    None => break,
                }
            }
            match h.tag {
                tag::TERMINATE => {
                    // Never forwarded: the server connection outlives the client.
                    self.io.rbuf.truncate(self.c_scanned);
                    self.track.terminated = true;
                    break;
                }
                tag::QUERY | tag::PARSE if self.track.tx != TxStatus::Idle => {
                    // Inside a transaction block: note whether this may end
                    // it (a partial message counts, conservatively).
                    let effect = self
                        .io
                        .rbuf
                        .get(self.c_scanned..self.c_scanned + h.total_len())
                        .and_then(super::route::head_bytes)
                        .and_then(classify::tx_effect_bytes);
                    if effect.is_none_or(|e| e == TxEffect::End) {
                        self.track.end_in_flight = true;
                    }
                    if h.tag == tag::QUERY {
                        self.track.pending += 1;
                        self.request_sent();
                    } else {
                        self.track.unsynced = true;
                    }
                }
                tag::QUERY | tag::FUNCTION_CALL => {
                    self.track.pending += 1;
                    self.request_sent();
                }
                tag::SYNC => {
                    self.track.pending += 1;
                    self.request_sent();
                    self.track.unsynced = false;
                }
                tag::PARSE | tag::BIND | tag::EXECUTE | tag::DESCRIBE | tag::CLOSE => {
                    self.track.unsynced = true
                }
                tag::FLUSH | tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {}
                other => return Err(ClientViolation::BadTag(other)),
            }
            if h.tag == tag::QUERY {
                if let Some(stmts) = self.stmts.as_deref_mut() {
                    // A simple Query drops the unnamed statement on Postgres.
                    stmts.forget_unnamed();
                }
            }
            let fresh = std::mem::replace(
                &mut self.batch_fresh,
                matches!(h.tag, tag::SYNC | tag::QUERY | tag::FUNCTION_CALL),
            );
            if statement_frame && self.statement(h.tag, h.total_len(), fresh) {
                continue;
            }
            if self.stmts.is_some() && matches!(h.tag, tag::SYNC | tag::QUERY | tag::FUNCTION_CALL)
            {
                self.c_batches += 1;
            }
            self.c_scanned += frame::HEADER_LEN;
            self.c_remaining = h.body_len;
            if self.staging {
                let n = (self.c_remaining).min(self.io.rbuf.len() - self.c_scanned);
                self.c_scanned += n;
                self.c_remaining -= n;
                self.c_out
                    .extend_from_slice(&self.io.rbuf[..self.c_scanned]);
                self.io.rbuf.advance(self.c_scanned);
                self.c_scanned = 0;
            }
        }
        Ok(())
    }

    /// A Parse, Bind, Describe or Close (whole, at `c_scanned`) when
    /// statements are shared. Returns true when it was consumed here
    /// (rewritten into `c_out`), false to forward it as it is.
    fn statement(&mut self, t: u8, total: usize, fresh: bool) -> bool {
        let start = self.c_scanned;
        let Some(msg) = self.io.rbuf.get(start..start + total) else {
            return false;
        };
        let batch = self.c_batches;
        // What the message is, and what to send instead.
        enum Plan {
            AsIs,
            Parse(String, Arc<Prepared>),
            /// A Parse of the unnamed statement, kept as a shared one.
            ParseUnnamed(Arc<Prepared>),
            Use(Arc<Prepared>, BytesMut),
            /// A Bind of a shared statement, rewritten straight into the
            /// staged output (no buffer of its own).
            Bind(Arc<Prepared>),
            CloseNamed(String),
            /// A Parse of a name the client already uses: Postgres refuses
            /// it (42P05), and so does the server here.
            Duplicate(String),
            /// A DEALLOCATE of one of the client's shared statements.
            Deallocate(String, BytesMut),
        }
        let Some(stmts) = self.stmts.as_deref_mut() else {
            return false;
        };
        // (Most texts are no DEALLOCATE: a look at the first word settles
        // it before the text is checked for UTF-8.)
        let dealloc = matches!(t, tag::QUERY | tag::PARSE)
            .then(|| super::route::head_bytes(msg))
            .flatten()
            .filter(|b| prepared::starts_deallocate(b))
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(prepared::deallocate_name)
            .filter(|name| stmts.get(name).is_some())
            .filter(|_| t == tag::QUERY || prepared::parse_name(msg) == Some(""));
        let plan = match t {
            _ if dealloc.is_some() => match (dealloc, prepared::rewrite_deallocate(msg)) {
                (Some(name), Some(rewritten)) => Plan::Deallocate(name, rewritten),
                _ => Plan::AsIs,
            },
            tag::PARSE => match prepared::parse_name(msg) {
                Some("") if self.cache_unnamed => match stmts.parse_unnamed(msg) {
                    Some(p) => Plan::ParseUnnamed(p),
                    None => Plan::AsIs,
                },
                Some("") => {
                    // Not cached (any more: a reload may have turned it
                    // off): the server's own unnamed statement.
                    stmts.forget_unnamed();
                    Plan::AsIs
                }
                Some(name) if stmts.get(name).is_some() => Plan::Duplicate(name.to_owned()),
                Some(name) if !name.is_empty() => match prepared::share(msg) {
                    Some(p) => Plan::Parse(name.to_owned(), Arc::new(p)),
                    None => Plan::AsIs,
                },
                _ => Plan::AsIs,
            },
            tag::BIND => match prepared::bind_statement(msg).and_then(|n| stmts.get(n)) {
                Some(p) => Plan::Bind(p.clone()),
                None => Plan::AsIs,
            },
            tag::DESCRIBE => match prepared::target(msg) {
                Some((b'S', name)) => match stmts.get(name) {
                    Some(p) => Plan::Use(
                        p.clone(),
                        prepared::statement_message(tag::DESCRIBE, &p.server_name),
                    ),
                    None => Plan::AsIs,
                },
                _ => Plan::AsIs,
            },
            tag::CLOSE => match prepared::target(msg) {
                Some((b'S', "")) => {
                    // Closes the server's own unnamed statement, as harmless
                    // as the client's on Postgres.
                    stmts.forget_unnamed();
                    Plan::AsIs
                }
                Some((b'S', name)) => Plan::CloseNamed(name.to_owned()),
                _ => Plan::AsIs,
            },
            _ => Plan::AsIs,
        };
        let strays = self.server.statements.take_strays();
        if !strays.is_empty() || !matches!(plan, Plan::AsIs) {
            self.start_staging();
        }
        for stray in strays {
            self.inject(prepared::statement_message(tag::CLOSE, &stray), b'3', batch);
        }
        if let Plan::AsIs = plan {
            match t {
                tag::PARSE => self.expect.push_back((batch, b'1', false)),
                tag::CLOSE => self.expect.push_back((batch, b'3', false)),
                _ => {}
            }
            return false;
        }
        match plan {
            Plan::Parse(name, p) => {
                if let Some(stmts) = self.stmts.as_deref_mut() {
                    stmts.insert(&name, p.clone());
                }
                if self.server.statements.contains(&p.server_name) {
                    // Prepared here already (by another client): close and
                    // prepare again, so the client's ParseComplete is real.
                    self.inject(
                        prepared::statement_message(tag::CLOSE, &p.server_name),
                        b'3',
                        batch,
                    );
                    self.server.statements.remove(&p.server_name);
                }
                self.prepare_here(&p, batch, false);
            }
            Plan::ParseUnnamed(p) => {
                // What follows in the batch, if it is here already.
                let next = self.io.rbuf.get(start + total).copied();
                let answered_later = next.is_some_and(|t| t != tag::FLUSH);
                let here = self.server.statements.contains(&p.server_name);
                if fresh && answered_later && here {
                    // Prepared here already and first in its batch: the
                    // server gets nothing for it, and the client's
                    // ParseComplete is written in front of the batch's
                    // answers, which the message after it guarantees.
                    self.synth.push_back(batch);
                } else if here {
                    // Prepared here already: an empty unnamed Parse earns
                    // the client its ParseComplete, and the Bind that
                    // follows uses the prepared (and planned) statement.
                    self.c_out.extend_from_slice(prepared::EMPTY_UNNAMED_PARSE);
                    self.expect.push_back((batch, b'1', false));
                } else {
                    self.prepare_here(&p, batch, false);
                }
            }
            Plan::Use(p, rewritten) => {
                if !self.server.statements.contains(&p.server_name) {
                    self.prepare_here(&p, batch, true);
                }
                self.c_out.extend_from_slice(&rewritten);
                self.used.push((batch, p));
            }
            Plan::Bind(p) => {
                if !self.server.statements.contains(&p.server_name) {
                    self.prepare_here(&p, batch, true);
                }
                // Staging moved the message to the front of the buffer.
                if !prepared::write_bind(&mut self.c_out, &self.io.rbuf[..total], &p.server_name) {
                    self.c_out.extend_from_slice(&self.io.rbuf[..total]);
                }
                self.used.push((batch, p));
            }
            Plan::CloseNamed(name) => {
                if let Some(stmts) = self.stmts.as_deref_mut() {
                    stmts.remove(&name);
                }
                // The shared statement stays for others; the client still
                // gets its CloseComplete from a harmless Close.
                self.c_out.extend_from_slice(&prepared::statement_message(
                    tag::CLOSE,
                    prepared::CLOSED_PLACEHOLDER,
                ));
                self.expect.push_back((batch, b'3', false));
            }
            Plan::Duplicate(name) => {
                // The server never sees client names, so it has none by
                // this name: prepare one (hidden), then send the client's
                // Parse as it is, which the server refuses with its own
                // error. The placeholder is closed before the connection's next statement message.
                self.server.statements.add_stray(&name);
                self.inject(prepared::named_placeholder_parse(&name), b'1', batch);
                // Staging moved the message to the front of the buffer.
                self.c_out.extend_from_slice(&self.io.rbuf[..total]);
                self.expect.push_back((batch, b'1', false));
            }
            Plan::Deallocate(name, rewritten) => {
                if let Some(stmts) = self.stmts.as_deref_mut() {
                    stmts.remove(&name);
                }
                // The client gets Postgres' own DEALLOCATE reply, for a
                // placeholder prepared just before; the shared statement
                // stays for others.
                self.inject(prepared::placeholder_parse(), b'1', batch);
                let parse = rewritten.first() == Some(&tag::PARSE);
                self.c_out.extend_from_slice(&rewritten);
                if parse {
                    self.expect.push_back((batch, b'1', false));
                } else {
                    self.c_batches += 1;
                }
            }
            Plan::AsIs => {}
        }
        self.io.rbuf.advance(total);
        true
    }

    /// Replaces the whole Query at `c_scanned` (`total` bytes) by one that
    /// makes the server refuse it (see `refuse`); returns the new header.
    fn refuse_query(&mut self, total: usize, reason: &'static str) -> Option<frame::Header> {
        self.start_staging();
        let msg = self.io.rbuf.get(..total)?;
        let rewritten = super::refuse::query(msg, &super::refuse::message(reason, self.mode))?;
        tracing::info!(
            reason,
            "statement refused: it would pin (pin_policy = \"error\")"
        );
        let mut rebuilt = BytesMut::with_capacity(rewritten.len() + self.io.rbuf.len() - total);
        rebuilt.extend_from_slice(&rewritten);
        rebuilt.extend_from_slice(&self.io.rbuf[total..]);
        self.io.rbuf = rebuilt;
        frame::header(&self.io.rbuf, usize::MAX).ok().flatten()
    }

    /// Drops the whole Parse at `c_scanned` (`total` bytes) and runs, in its
    /// place, an unnamed statement that raises the refusal: the client sees
    /// its Parse fail, and the server skips the rest of the batch.
    fn refuse_parse(&mut self, total: usize, reason: &'static str) {
        self.start_staging();
        self.batch_fresh = false;
        let batch = self.c_batches;
        let [parse, bind, execute] =
            super::refuse::parse(&super::refuse::message(reason, self.mode));
        tracing::info!(
            reason,
            "statement refused: it would pin (pin_policy = \"error\")"
        );
        self.inject(parse, b'1', batch);
        self.inject(bind, b'2', batch);
        self.c_out.extend_from_slice(&execute);
        self.io.rbuf.advance(total.min(self.io.rbuf.len()));
        self.track.unsynced = true;
    }

    /// From here on client bytes are copied (and rewritten) in order.
    fn start_staging(&mut self) {
        if !self.staging {
            let before = self.c_scanned;
            self.c_out.extend_from_slice(&self.io.rbuf[..before]);
            self.io.rbuf.advance(before);
            self.c_scanned = 0;
            self.staging = true;
            self.hold = false;
        }
    }

    /// Sends `p`'s Parse on this connection (evicting the oldest statement
    /// beyond the cap); its ParseComplete is hidden when pgferry added it.
    fn prepare_here(&mut self, p: &Arc<Prepared>, batch: u64, hidden: bool) {
        if self.server.statements.take_unknown(&p.server_name) {
            // It may still exist: closing an absent statement is harmless.
            self.inject(
                prepared::statement_message(tag::CLOSE, &p.server_name),
                b'3',
                batch,
            );
        }
        if let Some(evicted) = self.server.statements.add(&p.server_name, self.stmt_cap) {
            self.inject(
                prepared::statement_message(tag::CLOSE, &evicted),
                b'3',
                batch,
            );
        }
        self.added.push((batch, p.clone()));
        self.c_out.extend_from_slice(&p.parse);
        self.expect.push_back((batch, b'1', hidden));
    }

    /// Whether a ParseComplete / CloseComplete answers a message pgferry
    /// added (and so must not reach the client).
    fn answer_is_hidden(&mut self, t: u8) -> bool {
        // Entries of batches already answered were skipped by an error.
        while self.expect.front().is_some_and(|e| e.0 < self.s_batches) {
            self.expect.pop_front();
        }
        match self.expect.front() {
            Some(&(_, answer, hidden)) if answer == t => {
                self.expect.pop_front();
                hidden
            }
            _ => false,
        }
    }

    /// The first answers of a batch are arriving: the ParseComplete of its
    /// unsent unnamed Parse goes in front of them, at `at`.
    fn write_synthetic(&mut self, at: usize) -> bool {
        while self.synth.front().is_some_and(|&b| b < self.s_batches) {
            self.synth.pop_front();
        }
        if self.synth.front() != Some(&self.s_batches) {
            return false;
        }
        self.synth.pop_front();
        const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
        let len = self.sbuf.len();
        self.sbuf.extend_from_slice(PARSE_COMPLETE);
        self.sbuf.copy_within(at..len, at + PARSE_COMPLETE.len());
        self.sbuf[at..at + PARSE_COMPLETE.len()].copy_from_slice(PARSE_COMPLETE);
        self.s_scanned += PARSE_COMPLETE.len();
        true
    }

    /// A message pgferry adds; its answer is hidden from the client.
    fn inject(&mut self, msg: BytesMut, answer: u8, batch: u64) {
        self.c_out.extend_from_slice(&msg);
        self.expect.push_back((batch, answer, true));
    }

    /// Walks server frames: ReadyForQuery ends a batch, ParameterStatus
    /// updates both sides' parameters.
    fn scan_server(&mut self) {
        while self.s_scanned < self.sbuf.len() && !self.release {
            if self.s_remaining > 0 {
                let n = self.s_remaining.min(self.sbuf.len() - self.s_scanned);
                self.s_scanned += n;
                self.s_remaining -= n;
                continue;
            }
            let at = self.s_scanned;
            if !self.synth.is_empty() && self.write_synthetic(at) {
                continue;
            }
            let h = match frame::header(&self.sbuf[at..], i32::MAX as usize) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => {
                    // A server that frames badly cannot be trusted further.
                    self.server.broken = true;
                    self.s_scanned = self.sbuf.len();
                    break;
                }
            };
            let whole = self.sbuf.len() - at >= h.total_len();
            match h.tag {
                tag::READY_FOR_QUERY => {
                    if !whole {
                        break;
                    }
                    self.s_scanned += h.total_len();
                    self.ready_for_query(at, h.total_len());
                }
                tag::ERROR_RESPONSE if h.total_len() <= MAX_INSPECTED => {
                    if !whole {
                        break;
                    }
                    let body = &self.sbuf[at + frame::HEADER_LEN..at + h.total_len()];
                    if let Ok(e) = views::ErrorFields::parse(body) {
                        if self.hold && node_going_away(e.code) {
                            self.retry = true;
                            return;
                        }
                        if self.stmts.is_some() {
                            // Statements this batch prepared may or may not
                            // exist now; after "cached plan must not change
                            // result type" the ones it used must be prepared
                            // again. Either way the next use re-prepares.
                            let batch = self.s_batches;
                            let stale_plan = e.code == "0A000" && e.message.contains("cached plan");
                            let mut unknown: Vec<String> = self
                                .added
                                .iter()
                                .filter(|(b, _)| *b == batch)
                                .map(|(_, p)| p.server_name.clone())
                                .collect();
                            if stale_plan {
                                unknown.extend(
                                    self.used
                                        .iter()
                                        .filter(|(b, _)| *b == batch)
                                        .map(|(_, p)| p.server_name.clone()),
                                );
                            }
                            for name in unknown {
                                self.server.statements.mark_unknown(&name);
                            }
                        }
                        if matches!(e.severity, "FATAL" | "PANIC") {
                            // The server is ending this connection. The
                            // client must not see a FATAL (it would think its
                            // own connection is over); the session answers
                            // in its place.
                            self.track.server_fatal =
                                Some(Box::new((e.code.to_owned(), e.message.to_owned())));
                            self.server.broken = true;
                            self.server_gone = true;
                            return;
                        }
                    }
                    self.s_scanned += h.total_len();
                }
                // ParseComplete / CloseComplete may answer a message pgferry
                // added; a BindComplete only after a refused Parse (when
                // nothing is expected, it passes without a look).
                b'1' | b'2' | b'3'
                    if self.stmts.is_some() && (h.tag != b'2' || !self.expect.is_empty()) =>
                {
                    if !whole {
                        break;
                    }
                    if self.answer_is_hidden(h.tag) {
                        // The answer to a message pgferry added: cut it out.
                        let tail = self.sbuf.split_off(at);
                        self.sbuf.extend_from_slice(&tail[h.total_len()..]);
                        continue;
                    }
                    self.s_scanned += h.total_len();
                }
                tag::PARAMETER_STATUS if h.total_len() <= MAX_INSPECTED => {
                    if !whole {
                        break;
                    }
                    if let Ok((k, v)) = views::parameter_status(
                        &self.sbuf[at + frame::HEADER_LEN..at + h.total_len()],
                    ) {
                        self.server.params.reported.set(k, v);
                        if params::follows_client(k) {
                            self.server.params.applied.set(k, v);
                            self.desired.set(k, v);
                        }
                    }
                    self.s_scanned += h.total_len();
                }
                _ => {
                    self.s_scanned += frame::HEADER_LEN;
                    self.s_remaining = h.body_len;
                }
            }
        }
    }

    #[inline]
    fn request_sent(&mut self) {
        if let Some(c) = self.counters.as_deref_mut() {
            c.request_sent();
        }
    }

    fn ready_for_query(&mut self, at: usize, len: usize) {
        let status = self
            .sbuf
            .get(at + frame::HEADER_LEN)
            .copied()
            .and_then(TxStatus::from_byte);
        let Some(status) = status else {
            self.server.broken = true;
            return;
        };
        self.track.pending = self.track.pending.saturating_sub(1);
        self.track.tx = status;
        let idle = status == TxStatus::Idle;
        if let Some(c) = self.counters.as_deref_mut() {
            c.ready(self.track.pending > 0, idle);
        }
        if self.stmts.is_some() {
            self.s_batches += 1;
            let done = self.s_batches;
            self.expect.retain(|e| e.0 >= done);
            self.added.retain(|a| a.0 >= done);
            self.used.retain(|a| a.0 >= done);
        }
        if self.track.pending == 0 && !self.track.unsynced {
            self.track.end_in_flight = false;
        }
        self.server.tx_status = status;
        let batch_done = self.track.pending == 0
            && !self.track.unsynced
            && self.c_remaining == 0
            && self.c_out.is_empty();
        match self.mode {
            PoolMode::Session => {}
            PoolMode::Transaction => self.release = batch_done && status == TxStatus::Idle,
            PoolMode::Statement => {
                self.release = batch_done;
                if batch_done && status != TxStatus::Idle {
                    self.refuse_transaction_block(at, len);
                }
            }
        }
        // A finished transaction shows in the pool's statistics now; one
        // that releases the connection is folded in by the session as the
        // run ends (with the bytes still to be sent), so not twice here.
        if idle && !self.release {
            if let (Some(c), Some(stats)) = (self.counters.as_deref_mut(), self.stats) {
                c.fold_into(stats);
            }
        }
    }

    /// Statement mode: a statement left a transaction open. The client gets
    /// an error before its ReadyForQuery, which now reports idle, and the
    /// server is rolled back before reuse.
    fn refuse_transaction_block(&mut self, at: usize, len: usize) {
        let tail = self.sbuf.split_off(at);
        let mut err = BytesMut::new();
        build::error_response(
            &mut err,
            Severity::Error,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "transaction blocks are not allowed in statement pooling mode",
        );
        self.sbuf.extend_from_slice(&err);
        let z = self.sbuf.len();
        self.sbuf.extend_from_slice(&tail);
        self.sbuf[z + frame::HEADER_LEN] = TxStatus::Idle.as_byte();
        self.s_scanned += err.len();
        debug_assert_eq!(self.s_scanned, z + len);
        self.track.tx = TxStatus::Idle;
        self.track.needs_rollback = true;
    }
}

impl From<ClientViolation> for super::ClientError {
    fn from(v: ClientViolation) -> Self {
        match v {
            ClientViolation::Frame(e) => super::ClientError::Frame(e),
            ClientViolation::BadTag(t) => super::ClientError::UnexpectedMessage(t),
        }
    }
}

/// Errors that mean the node is shutting down or unreachable, not that the
/// statement failed: a held read-only batch may run elsewhere instead.
pub(super) fn node_going_away(code: &str) -> bool {
    matches!(
        code,
        "57P01" | "57P02" | "57P03" | "08006" | "08003" | "08001"
    )
}

fn reserve(buf: &mut BytesMut) {
    super::spare::reserve(buf);
}

/// One read of either side into its buffer. `armed`: the side's last read
/// returned Pending with the task's waker registered; while its readiness
/// stays clear (woken by the other side, most likely) it is not read, nor
/// its waker registered, again. A Pending of tokio's cooperative budget
/// registers no waker, so it does not arm.
fn poll_side(
    stream: &mut Stream,
    buf: &mut BytesMut,
    armed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if *armed && !stream.may_be_readable() {
        return Poll::Pending;
    }
    reserve(buf);
    let read = poll_read_buf(Pin::new(stream), cx, buf);
    *armed = read.is_pending() && tokio::task::coop::has_budget_remaining();
    read
}
