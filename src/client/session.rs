//! A logged-in client: waits for work, checks out a server connection from
//! the primary's pool, lets the pump forward until a release point, and
//! answers locally when no server can take the work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;

use super::cancel::{CancelKey, CancelSlot, CancelTarget};
use super::io::ClientIo;
use super::login::welcome;
use super::pump::{Busy, Outcome, Pump, Tracker};
use super::ClientError;

use crate::config::{PoolMode, ReplicaFallback, Route, RoutingConfig};
use crate::metrics::{ClientEntry, ErrorKind, Registered};
use crate::pool::{PoolError, Pooled};
use crate::protocol::build::{self, Severity};
use crate::protocol::{frame, sqlstate, tag, TxStatus};
use crate::server::{self, ParamSet};
use crate::state::{Database, State};

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Whether the server holding the client's open transaction was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxLost {
    No,
    /// Lost while the client was idle in the transaction: its next request
    /// gets the 40001.
    Unreported,
    /// The client was told (40001); it must end the transaction, which
    /// pgferry answers.
    Reported,
}

/// What a client is told when its server went away (see `server_lost`).
fn lost_reply(t: &Tracker) -> (&str, String, TxStatus) {
    if let Some((code, message)) = t.server_fatal.as_deref() {
        if !super::pump::node_going_away(code) {
            return (code.as_str(), message.clone(), TxStatus::Idle);
        }
    }
    if t.tx != TxStatus::Idle {
        if t.end_in_flight {
            (
                sqlstate::TRANSACTION_RESOLUTION_UNKNOWN,
                "pgferry: the server was lost while this transaction was ending; it may or may not have committed".to_owned(),
                TxStatus::Idle,
            )
        } else {
            (
                sqlstate::SERIALIZATION_FAILURE,
                "pgferry: the server was lost; this transaction was rolled back and can be retried"
                    .to_owned(),
                TxStatus::Failed,
            )
        }
    } else {
        (
            sqlstate::TRANSACTION_RESOLUTION_UNKNOWN,
            "pgferry: the server was lost while running this statement; it may or may not have taken effect".to_owned(),
            TxStatus::Idle,
        )
    }
}

/// How long a reset query or rollback may take before the connection is
/// closed instead of reused.
pub(super) const RESET_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Session {
    pub(super) state: Arc<State>,
    pub(super) db: Arc<Database>,
    /// Shared with the database's pools and the client registry.
    pub(super) user: Arc<str>,
    pub(super) mode: PoolMode,
    pub(super) io: ClientIo,
    pub(super) desired: ParamSet,
    pub(super) key: CancelKey,
    pub(super) track: Tracker,
    /// What the client needs only while it has work (see `Busy`): None
    /// until its first request, and again while it is parked with nothing
    /// of its own in it (`spare::give_busy`).
    pub(super) busy: Option<Box<Busy>>,
    /// The pool of the primary last checked out from, and its node: saves a
    /// lookup per transaction. Dropped at a reload (pools may be replaced).
    pub(super) primary_pool: Option<(u32, Arc<crate::pool::Pool>)>,
    /// Discard client messages up to the next Sync (an error was already
    /// reported for the batch they belong to).
    pub(super) discard_until_sync: bool,
    /// Bytes of a partly forwarded client message still to be dropped.
    pub(super) discard_bytes: usize,
    /// The server holding this client's open transaction was lost; the
    /// next batch is told so instead of running outside that transaction.
    pub(super) tx_lost: TxLost,
    /// The transaction status the ReadyForQuery ending a discarded batch reports.
    pub(super) discard_status: TxStatus,
    /// The database's routing settings.
    pub(super) routing: SessionRouting,
    /// The state's reload generation `db`, `routing` and `knobs` were read at.
    pub(super) generation: u64,
    pub(super) knobs: Arc<crate::state::Knobs>,
    /// The session's `pgferry.route`, from the startup packet or SET.
    pub(super) route_setting: Option<Route>,
    /// The parameters the client started with (RESET ALL returns to them).
    pub(super) startup_params: ParamSet,
    /// Session mode: the server connection was lost; the next request
    /// reattaches the client to a new one.
    pub(super) session_lost: bool,
    /// This client in SHOW CLIENTS; its state is updated at checkout and
    /// release, never per message.
    pub(super) entry: Registered<ClientEntry>,
}

/// The routing settings a session consults, in 8 bytes instead of the
/// configuration's 56 (every client carries a copy).
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionRouting {
    pub route: Route,
    pub replica_fallback: ReplicaFallback,
    pub read_your_writes: bool,
    /// `failover_timeout` in milliseconds (saturated at about 49 days).
    failover_timeout_ms: u32,
}

impl SessionRouting {
    pub(super) fn new(r: &RoutingConfig) -> SessionRouting {
        SessionRouting {
            route: r.route,
            replica_fallback: r.replica_fallback,
            read_your_writes: r.read_your_writes,
            failover_timeout_ms: u32::try_from(r.failover_timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }

    pub(super) fn failover_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.failover_timeout_ms))
    }
}

impl Session {
    /// After a reload: the database (rebuilt if its hosts changed) and its
    /// routing settings are read again. Only between transactions, with no
    /// server connection held. A removed database keeps serving this client
    /// (it drains).
    pub(super) fn refresh_if_reloaded(&mut self) {
        let generation = self.state.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        self.knobs = self.state.knobs();
        self.primary_pool = None;
        if let Some(db) = self.state.database(&self.db.name) {
            if !Arc::ptr_eq(&db, &self.db) {
                self.span().in_scope(|| tracing::info!(client_id = self.entry.id, database = %db.name, "client moves to the reloaded database"));
                self.db = db;
            }
        }
        if let Some(d) = self.state.config().databases.get(&*self.db.name) {
            self.routing = SessionRouting::new(&d.routing);
        }
    }

    /// The client's log fields (client_id, addr, database, user,
    /// application_name), wrapped around each line written about it. The
    /// span is made per line rather than kept for the session: a live span
    /// per idle client costs memory the allocator cannot give back after
    /// the client leaves, and entering it at every poll costs CPU.
    pub(super) fn span(&self) -> tracing::Span {
        let e = &*self.entry;
        tracing::info_span!(
            "client",
            client_id = e.id,
            addr = %e.peer,
            database = %e.database,
            user = %e.user,
            application_name = %e.application_name,
        )
    }

    /// Logs that the client logged in (`log_connections`).
    pub fn log_login(&self) {
        if self.state.config().log.log_connections {
            let tls = self.io.is_tls();
            self.span()
                .in_scope(|| tracing::info!(tls, "client logged in"));
        }
    }

    pub(super) async fn start(
        io: ClientIo,
        state: Arc<State>,
        user: String,
        database: String,
        desired: ParamSet,
        route_setting: Option<Route>,
    ) -> Result<Session, (ClientIo, ClientError)> {
        let Some(db) = state.databases().get(&database).cloned() else {
            return Err((io, ClientError::UnknownDatabase(database)));
        };
        let mode = db
            .pool_mode(&user)
            .unwrap_or(state.config().proxy.pool_mode);
        let generation = state.generation();
        let routing = state
            .config()
            .databases
            .get(&database)
            .map(|d| SessionRouting::new(&d.routing))
            .unwrap_or_else(|| SessionRouting::new(&state.config().proxy.routing));
        let key = state.cancels.reserve();
        let user = db.user_name(&user);
        let id = NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed);
        let peer = io
            .stream
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let entry = state.clients.register(ClientEntry::new(
            id,
            db.name.clone(),
            user.clone(),
            peer,
            io.stream.local_addr().ok(),
            desired.get("application_name").unwrap_or(""),
            CancelSlot::new(key.secret),
        ));
        state.cancels.attach(&key, entry.shared());
        let knobs = state.knobs();
        let mut s = Session {
            state,
            db,
            user,
            mode,
            io,
            desired,
            key,
            track: Tracker::default(),
            busy: None,
            primary_pool: None,
            discard_until_sync: false,
            discard_bytes: 0,
            tx_lost: TxLost::No,
            discard_status: TxStatus::Idle,
            routing,
            generation,
            knobs,
            route_setting,
            startup_params: ParamSet::new(),
            session_lost: false,
            entry,
        };
        s.startup_params = s.desired.clone();
        match s.first_connection().await {
            Ok(()) => Ok(s),
            Err(e) => {
                let Session { io, .. } = s;
                Err((io, e))
            }
        }
    }

    /// Checks out a server connection to bring it in line with the client's
    /// parameters; its report becomes the client's ParameterStatus set.
    async fn first_connection(&mut self) -> Result<(), ClientError> {
        let mut conn = match self.welcome_from_replica().await {
            Some(c) => c,
            None => self.checkout().await?,
        };
        self.sync_params(&mut conn).await?;
        welcome(
            &mut self.io,
            &conn.params.reported,
            self.key.pid,
            self.key.secret,
        );
        self.io.flush().await?;
        self.io.release_empty();
        if self.mode == PoolMode::Session {
            self.set_cancel_target(Some(&conn));
            self.busy().held = Some(conn);
        }
        Ok(())
    }

    /// While there is no healthy primary (a failover in progress), a client
    /// logging in in transaction or statement mode gets its parameters from
    /// a healthy replica instead of waiting: its reads can run meanwhile, and
    /// its writes wait for the primary like everyone else's.
    async fn welcome_from_replica(&self) -> Option<Pooled> {
        if self.mode == PoolMode::Session {
            return None;
        }
        let snap = self.db.topology.snapshot();
        let primary_up = snap
            .primary
            .and_then(|p| snap.nodes.get(p))
            .is_some_and(|n| n.health == crate::topology::Health::Up);
        if primary_up {
            return None;
        }
        let node = snap.eligible_replicas().next()?;
        self.db
            .pool(&self.user, node)?
            .checkout(self.deadline())
            .await
            .ok()
    }

    /// PAUSE holds new work here (at most until `deadline`).
    pub(super) async fn wait_unpaused(&self, deadline: Instant) -> Result<(), ClientError> {
        if !self.db.gate.is_paused() {
            return Ok(());
        }
        let started = Instant::now();
        self.db.gate.wait_open(deadline).await.map_err(|_| {
            ClientError::Pool(PoolError::WaitTimeout {
                waited_ms: started.elapsed().as_millis(),
            })
        })
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline_from(Instant::now())
    }

    /// `query_wait_timeout` after `now`.
    fn deadline_from(&self, now: Instant) -> Instant {
        let wait = self.state.settings.query_wait_timeout();
        let wait = if wait.is_zero() {
            Duration::from_secs(86_400 * 365)
        } else {
            wait
        };
        now + wait
    }

    /// A connection to the current primary. A node that refuses connections
    /// sends us looking for the primary again, once per checkout.
    /// A connection to the current primary. While there is none (the
    /// primary is lost, restarting, or two nodes claim the role), waits up to
    /// `failover_timeout` for one: the client is held, not failed.
    pub(super) async fn checkout(&mut self) -> Result<Pooled, ClientError> {
        // One reading of the clock for the wait's start, its deadline and,
        // when an idle connection is there at once, the checkout itself.
        let now = Instant::now();
        let now_us = crate::metrics::clock::us_at(now);
        self.entry.waiting_at(now_us);
        let got = self.checkout_primary(now, now_us).await;
        if got.is_err() {
            self.entry.idle();
        }
        got
    }

    async fn checkout_primary(&mut self, now: Instant, now_us: u64) -> Result<Pooled, ClientError> {
        let mut started = now;
        // The clock reading the first attempt may use.
        let mut fresh = Some((now, now_us));
        let deadline = self.deadline_from(started);
        if self.db.gate.is_paused() {
            fresh = None;
            self.wait_unpaused(deadline).await?;
            // The failover wait starts after the pause.
            started = Instant::now();
        }
        let give_up = started + self.routing.failover_timeout();
        let topology = &self.db.topology;
        let mut held = false;
        let mut refetched = false;
        loop {
            if let Ok(node) = topology.primary().await {
                let pool = match &self.primary_pool {
                    Some((n, p)) if *n as usize == node => p.clone(),
                    _ => {
                        let p = self
                            .db
                            .pool(&self.user, node)
                            .ok_or_else(|| ClientError::UnknownRole(self.user.to_string()))?;
                        // (Node indexes are small: the hosts of one database.)
                        self.primary_pool = u32::try_from(node).ok().map(|n| (n, p.clone()));
                        p
                    }
                };
                let (at, at_us) = fresh.take().unwrap_or_else(|| {
                    let at = Instant::now();
                    (at, crate::metrics::clock::us_at(at))
                });
                match pool.checkout_at(at, at_us, deadline).await {
                    Ok(c) => {
                        if held {
                            topology.note_held(started.elapsed());
                            self.span().in_scope(|| {
                                tracing::info!(
                                    client_id = self.entry.id,
                                    held_ms = started.elapsed().as_millis() as u64,
                                    "client released to the primary after a hold"
                                )
                            });
                        }
                        return Ok(c);
                    }
                    Err(PoolError::Server(e)) if e.is_node_failure() => {
                        self.span().in_scope(|| tracing::warn!(client_id = self.entry.id, node = %pool.spec().node, error = %e, "primary connect failed"));
                        pool.drop_idle();
                        topology.report_failure(node);
                    }
                    // A reload replaced the cached pool: look it up again.
                    Err(PoolError::Closed) if !refetched => {
                        refetched = true;
                        self.primary_pool = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if Instant::now() >= give_up {
                topology.note_failover_error();
                return Err(ClientError::FailoverTimeout {
                    database: self.db.name.to_string(),
                    waited: started.elapsed(),
                });
            }
            held = true;
            fresh = None;
            topology.next_round(give_up).await;
        }
    }

    pub(super) async fn sync_params(&self, conn: &mut Pooled) -> Result<(), ClientError> {
        if let Some(sql) = conn.params.sync_query(&self.desired, self.replay_sets()) {
            match tokio::time::timeout(RESET_TIMEOUT, server::simple_query(conn, &sql)).await {
                Ok(Ok(_)) => conn.params.synced(&self.desired, self.replay_sets()),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    conn.broken = true;
                    return Err(ClientError::Protocol(
                        "timed out applying session parameters".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Links the client to `conn` (or unlinks it): where its CancelRequests
    /// go, and what SHOW CLIENTS / SERVERS show.
    pub(super) fn set_cancel_target(&self, conn: Option<&Pooled>) {
        match conn {
            Some(c) => {
                self.entry.linked(c.id);
                if let Some(e) = &c.entry {
                    e.set_link(self.entry.id);
                }
            }
            None => self.entry.idle(),
        }
        self.entry.cancel.set(conn.map(|c| CancelTarget {
            addr: c.socket_addr,
            pid: c.backend_pid,
            secret: c.backend_secret,
        }));
    }

    /// The session's life after login.
    pub async fn run(mut self: Box<Self>) {
        let started = Instant::now();
        let result = self.run_pooled().await;
        // The goodbye is boxed: its state would otherwise be laid out beside
        // the session loop's in every client's task.
        Box::pin(self.finish(started, result)).await;
    }

    /// Tells the client why it is closed (if it is pgferry's doing), logs
    /// the disconnection and gives back a held server connection.
    async fn finish(&mut self, started: Instant, mut result: Result<(), ClientError>) {
        if self.entry.kill.is_killed() {
            result = Err(ClientError::Killed);
        }
        let log = self.state.config().log.clone();
        if let Err(e) = &result {
            self.db.errors.count(e.kind());
            if let Some(w) = e.to_wire() {
                if log.log_pooler_errors {
                    self.span().in_scope(|| tracing::warn!(code = %w.code, message = %w.message, "pooler error sent to client"));
                }
                build::error_response(&mut self.io.wbuf, w.severity, &w.code, &w.message);
            }
        }
        if log.log_disconnections {
            let reason = match &result {
                Ok(()) => "client closed the connection".to_owned(),
                Err(e) => e.to_string(),
            };
            self.span().in_scope(|| {
                tracing::info!(
                    duration_ms = started.elapsed().as_millis() as u64,
                    reason,
                    "client disconnected"
                )
            });
        }
        let _ = self.io.flush().await;
        if let Some(conn) = self.take_held() {
            Box::pin(self.return_server(conn)).await;
        }
    }

    /// Session mode: forwards between the client and its own server
    /// connection until one side goes. A lost server is handled like in
    /// transaction mode (one error for work in flight); the client then gets
    /// a new connection with its session state replayed (see `reattach`).
    pub(super) async fn run_held(&mut self, mut conn: Pooled) -> Result<bool, ClientError> {
        match self.pump(&mut conn, false, false, false).await {
            // A pinned client (transaction or statement mode) reached a
            // transaction boundary: it keeps the connection while pinned.
            Outcome::Released => {
                if self.track.needs_rollback {
                    self.track.needs_rollback = false;
                    rollback(&mut conn).await;
                }
                if self.state.lifecycle.is_draining() {
                    self.busy().held = Some(conn);
                    return Err(ClientError::ShuttingDown);
                }
                if self.unreplayable().is_some() {
                    self.busy().held = Some(conn);
                } else {
                    self.span()
                        .in_scope(|| tracing::info!(client_id = self.entry.id, "client unpinned"));
                    self.entry.set_pin(None);
                    self.set_cancel_target(None);
                }
                Ok(true)
            }
            Outcome::ClientGone => {
                self.busy().held = Some(conn);
                Ok(false)
            }
            Outcome::ClientProtocol(v) => {
                self.busy().held = Some(conn);
                Err(v.into())
            }
            Outcome::IdleInTransaction => {
                self.abandon(conn);
                Err(ClientError::IdleInTransaction)
            }
            Outcome::ClientIdle => {
                self.busy().held = Some(conn);
                Err(ClientError::IdleTimeout)
            }
            Outcome::ShuttingDown => {
                self.busy().held = Some(conn);
                Err(ClientError::ShuttingDown)
            }
            Outcome::ServerGone(_) | Outcome::Retry => {
                self.span().in_scope(|| {
                    tracing::warn!(
                        client_id = self.entry.id,
                        server_id = conn.id,
                        "server connection lost in session mode"
                    )
                });
                conn.broken = true;
                if let Some(node) = self
                    .db
                    .topology
                    .hosts()
                    .iter()
                    .position(|h| *h == conn.node)
                {
                    self.db.topology.report_failure(node);
                }
                drop(conn);
                self.server_lost();
                self.session_lost = true;
                Ok(true)
            }
        }
    }

    /// The client's request-time state (see `Busy`), made at its first
    /// request: a client that never sent one carries a pointer instead.
    pub(super) fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(super::spare::take_busy)
    }

    /// Why the session cannot move to another server connection, if so.
    pub(super) fn unreplayable(&self) -> Option<&'static str> {
        self.busy.as_deref().and_then(|b| b.replay.unreplayable)
    }

    /// The client's SET statements, to apply on a server connection.
    pub(super) fn replay_sets(&self) -> &ParamSet {
        static NONE: ParamSet = ParamSet::new();
        self.busy.as_deref().map_or(&NONE, |b| &b.replay.sets)
    }

    /// The server connection the client keeps (session mode, or pinned).
    pub(super) fn take_held(&mut self) -> Option<Pooled> {
        self.busy.as_deref_mut()?.held.take()
    }

    /// Drops the session state that was to be replayed.
    pub(super) fn forget_session_state(&mut self) {
        if let Some(b) = self.busy.as_deref_mut() {
            b.replay = Default::default();
        }
    }

    /// Forwards until a release point. `single` limits it to one batch (a
    /// replica), `hold` keeps that batch for a retry elsewhere.
    /// `plain_head`: the first message is a plain SELECT (`BatchFacts::plain`).
    pub(super) async fn pump(
        &mut self,
        conn: &mut Pooled,
        single: bool,
        hold: bool,
        plain_head: bool,
    ) -> Outcome {
        let max = self.knobs.max_message_size;
        let pool = conn.pool().cloned();
        let busy = &mut **self.busy.get_or_insert_with(super::spare::take_busy);
        busy.counters.assigned(std::mem::take(&mut conn.waited));
        let mut pump = Pump::new(
            &mut self.io,
            conn,
            &mut self.track,
            &mut self.desired,
            self.mode,
            max,
            &mut busy.sbuf,
        );
        let generation = busy.replay.generation;
        let refuse = self.mode != PoolMode::Session && self.knobs.pin_error;
        let knobs = &*self.knobs;
        let held = self.mode == PoolMode::Session || busy.replay.unreplayable.is_some();
        if held {
            pump.draining(&self.state.lifecycle);
        }
        // (Configured in place: the pump is a few hundred bytes, and each
        // by-value builder step was a copy of it.)
        // (Session mode notes named statements too: nothing is skipped.)
        pump.recording(
            &mut busy.replay,
            plain_head && self.mode != PoolMode::Session,
        );
        pump.counting(
            &mut busy.counters,
            pool.as_deref().map(|p| &p.stats),
            &self.entry.kill,
        );
        pump.refusing_pins(refuse);
        pump.timeouts(
            knobs.query_timeout,
            knobs.idle_transaction_timeout,
            knobs.client_idle_timeout,
            knobs.server_connect_timeout,
        );
        if self.mode != PoolMode::Session {
            pump.sharing(
                &mut busy.stmts,
                knobs.max_prepared_statements,
                knobs.cache_unnamed_statements,
            );
            pump.with_scratch(&mut busy.scratch);
        }
        if single {
            pump.single_batch(hold);
        }
        let outcome = pump.run().await;
        if let Some(p) = &pool {
            busy.counters.fold_into(&p.stats);
        }
        if let Outcome::ServerGone(_) | Outcome::Retry = outcome {
            busy.counters.detach();
        }
        if busy.replay.generation != generation {
            // The client's SET statements ran on this connection.
            conn.params.applied_sets = busy.replay.sets.clone();
        }
        if std::mem::take(&mut busy.replay.deallocated) {
            // DISCARD ALL / DEALLOCATE ALL ran on this connection: its
            // statements are gone, and so are the client's.
            conn.statements.clear();
            busy.stmts.clear();
        }
        if std::mem::take(&mut busy.replay.reset_all) {
            // RESET ALL / DISCARD ALL also undid what pgferry applied. On
            // Postgres they return to the client's startup values; the next
            // sync applies those again.
            conn.params.applied = ParamSet::new();
            self.desired = self.startup_params.clone();
        }
        outcome
    }

    /// The client left (or broke the protocol) while holding `conn`. A
    /// connection with work in flight is cancelled and closed, never reused.
    pub(super) fn abandon(&mut self, mut conn: Pooled) {
        if self.track.pending > 0 {
            let (addr, pid, secret) = (conn.socket_addr, conn.backend_pid, conn.backend_secret);
            let timeout = self.state.config().proxy.server_connect_timeout;
            tokio::spawn(server::send_cancel(addr, pid, secret, timeout));
        }
        if !self.track.is_clean() {
            conn.broken = true;
        }
    }

    /// The server went away mid-request. Every outstanding sync point gets
    /// an error and ReadyForQuery; an unfinished batch is discarded up to its
    /// Sync; an open transaction is reported lost on the next request.
    /// The server went away mid-request (or while the client was idle in a
    /// transaction). The client keeps its connection and gets exactly one
    /// error saying what happened to its work:
    /// - inside a transaction block, before COMMIT was sent: `40001`, the
    ///   transaction certainly did not commit and can be retried; the
    ///   client's ROLLBACK is then answered by pgferry;
    /// - a COMMIT, or a standalone statement that may have written, in
    ///   flight: `08007`, the outcome is unknown;
    /// - a FATAL that is not about the node going away (say
    ///   idle_in_transaction_session_timeout): that error, as an ERROR.
    pub(super) fn server_lost(&mut self) {
        let t = std::mem::take(&mut self.track);
        let in_flight = t.pending > 0 || t.unsynced;
        let (code, message, status) = lost_reply(&t);
        if in_flight {
            self.db.topology.note_failover_error();
            self.db.errors.count(ErrorKind::ServerLost);
            for _ in 0..t.pending {
                build::error_response(&mut self.io.wbuf, Severity::Error, code, &message);
                build::ready_for_query(&mut self.io.wbuf, status);
            }
            if t.unsynced {
                if t.pending == 0 {
                    build::error_response(&mut self.io.wbuf, Severity::Error, code, &message);
                }
                self.discard_until_sync = true;
                self.discard_status = status;
            }
            // After a 40001 the client sits in a failed transaction until it
            // ends it; pgferry answers that.
            self.tx_lost = if status == TxStatus::Failed {
                TxLost::Reported
            } else {
                TxLost::No
            };
        } else if t.tx != TxStatus::Idle {
            // Idle in a transaction: nothing is sent now; its next request
            // learns that the transaction is gone.
            self.tx_lost = TxLost::Unreported;
        }
        self.discard_bytes = t.partial;
    }

    /// Answers the batch at the head of the client's buffer with an error,
    /// without a server.
    pub(super) fn fail_batch(&mut self, code: &str, message: &str) -> Result<(), ClientError> {
        self.fail_batch_in(code, message, TxStatus::Idle)
    }

    /// Like `fail_batch`, ending with ReadyForQuery reporting `status`.
    pub(super) fn fail_batch_in(
        &mut self,
        code: &str,
        message: &str,
        status: TxStatus,
    ) -> Result<(), ClientError> {
        let Some(h) = frame::header(&self.io.rbuf, self.knobs.max_message_size)? else {
            return Ok(());
        };
        build::error_response(&mut self.io.wbuf, Severity::Error, code, message);
        match h.tag {
            tag::QUERY | tag::FUNCTION_CALL => {
                self.discard_bytes = h.total_len();
                build::ready_for_query(&mut self.io.wbuf, status);
            }
            _ => {
                self.discard_until_sync = true;
                self.discard_status = status;
            }
        }
        self.discard_local();
        Ok(())
    }

    /// Consumes client input that belongs to a failed batch.
    pub(super) fn discard_local(&mut self) {
        loop {
            if self.discard_bytes > 0 {
                let n = self.discard_bytes.min(self.io.rbuf.len());
                self.io.rbuf.advance(n);
                self.discard_bytes -= n;
                if self.discard_bytes > 0 {
                    return;
                }
            }
            if !self.discard_until_sync {
                return;
            }
            let Ok(Some(h)) = frame::header(&self.io.rbuf, usize::MAX) else {
                return;
            };
            if h.tag == tag::TERMINATE {
                return;
            }
            if h.tag == tag::SYNC {
                self.discard_until_sync = false;
                build::ready_for_query(&mut self.io.wbuf, self.discard_status);
            }
            self.discard_bytes = h.total_len();
        }
    }

    /// Session end: a clean connection is reset and returned, anything else
    /// is closed.
    async fn return_server(&mut self, mut conn: Pooled) {
        if !self.track.is_clean() || conn.broken {
            self.abandon(conn);
            return;
        }
        let reset = self.state.config().proxy.server_reset_query.clone();
        if !reset.is_empty() {
            match tokio::time::timeout(RESET_TIMEOUT, server::simple_query(&mut conn, &reset)).await
            {
                Ok(Ok(_)) => {
                    // DISCARD ALL / RESET ALL return every setting to its default.
                    conn.params.applied = ParamSet::new();
                    conn.params.applied_sets = ParamSet::new();
                    conn.statements.clear();
                }
                _ => conn.broken = true,
            }
        }
    }
}

pub(super) async fn rollback(conn: &mut Pooled) {
    match tokio::time::timeout(RESET_TIMEOUT, server::simple_query(conn, "ROLLBACK")).await {
        Ok(Ok(_)) if conn.tx_status == TxStatus::Idle => {}
        _ => conn.broken = true,
    }
}
