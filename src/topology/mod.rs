//! What pgferry knows about each database's nodes: who is primary, who is
//! healthy, how far each replica lags.
//!
//! One monitor task per database keeps a persistent connection (as the
//! monitor user) to every host and probes all of them together in rounds,
//! every `health_interval`, or every `health_suspect_interval` while any node
//! is suspect. Each round is folded into hysteresis state (see [`health`]),
//! replica lag is computed against the primary's LSN from the same round
//! (see [`lag`]), and the result is published as one immutable [`Snapshot`]
//! behind an `ArcSwap`: the routing path reads it without locks, and never
//! sees a half-updated view. Sessions whose server connections fail report
//! it ([`Topology::report_failure`]); that counts like a failed probe at once
//! and brings the next round forward.
//!
//! Every change of a node's role or health, of a replica's lag exclusion and
//! of the adopted primary is logged as one structured line.

mod failover;
mod health;
mod lag;
mod lsn;
mod monitor;
mod probe;
mod snapshot;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use failover::Summary as FailoverSummary;
pub use health::Health;
pub use lsn::{format_lsn, parse_lsn, LsnError};
pub use probe::ProbeError;
pub use snapshot::{NodeRole, NodeView, Snapshot};

use crate::config::{HostAddr, ProxyConfig, RoutingConfig};
use crate::server::ConnectSpec;
use snapshot::{Assembler, Event};

#[derive(Debug, Error, Clone)]
pub enum TopologyError {
    #[error("no primary found among {hosts}: {detail}")]
    NoPrimary { hosts: String, detail: String },
}

/// Health-check settings for one database: `[proxy]` health keys plus the
/// database's lag limits.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub interval: Duration,
    pub suspect_interval: Duration,
    /// Bounds one probe, connecting included.
    pub timeout: Duration,
    pub down_after: u32,
    pub up_after: u32,
    pub max_lag: Duration,
    pub max_lag_bytes: Option<u64>,
}

impl HealthSettings {
    pub fn from_config(proxy: &ProxyConfig, routing: &RoutingConfig) -> Self {
        // The config validates these as counts >= 1; anything beyond u32 is
        // "practically never", which saturating keeps.
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        HealthSettings {
            interval: proxy.health_interval,
            suspect_interval: proxy.health_suspect_interval,
            timeout: proxy.health_timeout,
            down_after: count(proxy.health_down_after),
            up_after: count(proxy.health_up_after),
            max_lag: routing.max_replica_lag,
            max_lag_bytes: routing.max_replica_lag_bytes,
        }
    }
}

/// Extra time `primary()` allows a round beyond the probe timeout, for
/// scheduling and assembling.
const ROUND_SLACK: Duration = Duration::from_millis(500);

pub struct Topology {
    database: String,
    hosts: Vec<HostAddr>,
    /// Credentials used for probes (the monitor user); `node` is replaced per host.
    probe_spec: ConnectSpec,
    settings: HealthSettings,
    snapshot: ArcSwap<Snapshot>,
    /// Hysteresis state. Held only to fold in a round or a report and to
    /// publish the result (never across an await), so that snapshots are
    /// stored in the order their state changes happened.
    assembler: Mutex<Assembler>,
    /// Brings the next round forward (a report, or a caller waiting for a primary).
    wake: Notify,
    /// The number of the last finished round, for callers waiting for one.
    rounds: watch::Sender<u64>,
    /// `round + 1` of the snapshot during which a session reported the
    /// adopted primary failing; while it is newer than the published round,
    /// `primary()` waits for a fresh round instead of handing out the node
    /// that just failed.
    primary_reported: AtomicU64,
    monitor_started: AtomicBool,
    failovers: Mutex<failover::FailoverLog>,
    /// How long clients were held waiting for a primary (metrics).
    pub hold_latency: crate::metrics::SharedHistogram,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("database", &self.database)
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl Topology {
    pub fn new(
        database: String,
        hosts: Vec<HostAddr>,
        probe_spec: ConnectSpec,
        settings: HealthSettings,
    ) -> Arc<Topology> {
        Arc::new(Topology {
            snapshot: ArcSwap::from_pointee(Snapshot::initial(hosts.len())),
            assembler: Mutex::new(Assembler::new(hosts.len(), settings.clone())),
            database,
            hosts,
            probe_spec,
            settings,
            wake: Notify::new(),
            rounds: watch::channel(0).0,
            primary_reported: AtomicU64::new(0),
            monitor_started: AtomicBool::new(false),
            failovers: Mutex::new(failover::FailoverLog::default()),
            hold_latency: Default::default(),
        })
    }

    /// Starts the monitor task (tracked, stops when `shutdown` fires). Only
    /// the first call starts one.
    pub fn spawn_monitor(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        if self.monitor_started.swap(true, Ordering::AcqRel) {
            tracing::warn!(database = %self.database, "health monitor already running");
            return;
        }
        let span = tracing::info_span!("monitor", database = %self.database);
        tracker.spawn(monitor::run(Arc::clone(self), shutdown).instrument(span));
    }

    pub fn hosts(&self) -> &[HostAddr] {
        &self.hosts
    }

    /// The current view; lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The primary's index. When none is known yet (or a session just
    /// reported it failing), brings the next round forward and waits for it
    /// (at most the suspect interval plus the probe timeout and a little; at
    /// start the first round runs at once), so that the first client after
    /// start, or the one that saw the primary fail, gets a fresh answer.
    pub async fn primary(&self) -> Result<usize, TopologyError> {
        let snap = self.snapshot.load();
        let reported = self.primary_reported.load(Ordering::Acquire) > snap.round;
        if let (Some(p), false) = (snap.primary, reported) {
            return Ok(p);
        }
        let round = snap.round;
        drop(snap);
        self.await_round_after(round).await;
        let snap = self.snapshot.load();
        snap.primary.ok_or_else(|| self.no_primary(&snap))
    }

    /// A server connection to `node` failed in use (connect refused, lost
    /// mid-request): counts like one failed probe now, and brings the next
    /// round forward.
    pub fn report_failure(&self, node: usize) {
        let events = {
            let mut a = self.lock();
            if a.primary() == Some(node) {
                self.primary_reported
                    .store(a.round() + 1, Ordering::Release);
                self.failover_log().lost(Some(node), Instant::now());
            }
            let events = a.apply_report(node);
            if events.is_some() {
                self.snapshot.store(Arc::new(a.snapshot()));
            }
            events
        };
        for e in events.iter().flatten() {
            self.log_event(e);
        }
        self.wake.notify_one();
    }

    /// Folds a finished round in, publishes it, and says whether any node is
    /// suspect (so the monitor probes again sooner).
    fn finish_round(&self, outcomes: &[Result<probe::ProbeSample, String>], at: Instant) -> bool {
        let (events, snap) = {
            let mut a = self.lock();
            let events = a.apply_round(outcomes, at);
            let snap = Arc::new(a.snapshot());
            self.snapshot.store(Arc::clone(&snap));
            (events, snap)
        };
        self.rounds.send_replace(snap.round);
        for e in &events {
            self.log_event(e);
        }
        let primary_up = snap
            .primary
            .filter(|&p| snap.nodes.get(p).is_some_and(|n| n.health == Health::Up));
        let (gap, settled) = {
            let mut log = self.failover_log();
            let now = Instant::now();
            (log.recovered(primary_up, now), log.settle(now))
        };
        if let (Some(gap), Some(p)) = (gap, primary_up) {
            tracing::warn!(database = %self.database, primary = %self.host(p), gap_ms = millis(gap),
                "failover: primary back; held work is released");
        }
        if let Some(s) = settled {
            tracing::warn!(database = %self.database,
                from = %s.from.map_or_else(|| "none".to_owned(), |n| self.host(n)),
                to = %self.host(s.to), detected_at_unix_ms = s.detected_unix_ms as u64,
                adopted_at_unix_ms = s.adopted_unix_ms as u64, gap_ms = millis(s.gap), clients_held = s.clients_held,
                longest_hold_ms = millis(s.longest_hold), errors_returned = s.errors,
                "failover summary");
        }
        snap.nodes.iter().any(|n| n.health == Health::Suspect)
    }

    async fn await_round_after(&self, round: u64) {
        let mut rx = self.rounds.subscribe();
        self.wake.notify_one();
        // A woken monitor starts its next round within the suspect interval
        // (see monitor.rs), and the round takes at most the probe timeout.
        let wait = self.settings.suspect_interval + self.settings.timeout + ROUND_SLACK;
        if tokio::time::timeout(wait, rx.wait_for(|r| *r > round))
            .await
            .is_err()
        {
            tracing::warn!(database = %self.database, waited_ms = millis(wait), "no health-check round finished in time");
        }
    }

    fn failover_log(&self) -> MutexGuard<'_, failover::FailoverLog> {
        self.failovers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client waited `waited` for a primary and then got one.
    pub fn note_held(&self, waited: Duration) {
        self.hold_latency
            .observe(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
        self.failover_log().held(waited);
    }

    /// Failovers finished since start.
    pub fn failovers_finished(&self) -> u64 {
        self.failover_log().finished
    }

    /// A client got an error because the primary was lost.
    pub fn note_failover_error(&self) {
        self.failover_log().error();
    }

    /// Finished failovers, oldest first.
    pub fn failover_history(&self) -> Vec<FailoverSummary> {
        self.failover_log().history.clone()
    }

    /// Waits until a round finishes (or `deadline`); used by clients waiting
    /// for a primary.
    pub async fn next_round(&self, deadline: Instant) {
        let round = self.snapshot.load().round;
        let mut rx = self.rounds.subscribe();
        self.wake.notify_one();
        let _ = tokio::time::timeout_at(deadline.into(), rx.wait_for(|r| *r > round)).await;
    }

    fn lock(&self) -> MutexGuard<'_, Assembler> {
        // A panic while folding in a round leaves counters, not invariants,
        // behind; carrying on beats taking routing down with it.
        self.assembler.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn host(&self, node: usize) -> String {
        self.hosts
            .get(node)
            .map_or_else(|| format!("#{node}"), |h| h.to_string())
    }

    fn no_primary(&self, snap: &Snapshot) -> TopologyError {
        let detail = snap
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let what = match (&n.last_error, n.role) {
                    (Some(e), _) => e.clone(),
                    (None, Some(role)) => format!("{role}, {}", n.health),
                    (None, None) => "not probed yet".to_owned(),
                };
                format!("{}: {what}", self.host(i))
            })
            .collect::<Vec<_>>()
            .join("; ");
        TopologyError::NoPrimary {
            hosts: self
                .hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            detail,
        }
    }

    fn log_event(&self, e: &Event) {
        let db = &self.database;
        match e {
            Event::Role { node, from, to } => {
                let from = from.map_or_else(|| "unknown".to_owned(), |r| r.to_string());
                tracing::info!(database = %db, node = %self.host(*node), node_index = node, %from, %to, "node role changed");
            }
            Event::Health {
                node,
                from,
                to,
                failures,
                reason,
            } => {
                let node = self.host(*node);
                if *to == Health::Up {
                    tracing::info!(database = %db, %node, %from, %to, reason = %reason, "node health changed");
                } else {
                    tracing::warn!(database = %db, %node, %from, %to, failures, reason = %reason, "node health changed");
                }
            }
            Event::Lag {
                node,
                excluded,
                lag,
                lag_bytes,
                reason,
            } => {
                let node = self.host(*node);
                let lag_ms = lag.map(millis);
                let max_lag_ms = millis(self.settings.max_lag);
                let max_lag_bytes = self.settings.max_lag_bytes;
                if *excluded {
                    tracing::warn!(database = %db, %node, from = "included", to = "excluded", lag_ms, lag_bytes, max_lag_ms, max_lag_bytes, reason, "replica lag exclusion changed");
                } else {
                    tracing::info!(database = %db, %node, from = "excluded", to = "included", lag_ms, lag_bytes, max_lag_ms, max_lag_bytes, reason, "replica lag exclusion changed");
                }
            }
            Event::Primary { from, to, reason } => {
                let from_node = *from;
                let name =
                    |n: &Option<usize>| n.map_or_else(|| "none".to_owned(), |n| self.host(n));
                let (from, to_name) = (name(from), name(to));
                let now = Instant::now();
                if let Some(new) = *to {
                    tracing::info!(database = %db, %from, to = %to_name, reason, "primary changed");
                    let gap = {
                        let mut log = self.failover_log();
                        if from_node.is_some() {
                            // A direct switch (higher timeline) is a failover too.
                            log.lost(from_node, now);
                        }
                        log.adopted(new, now)
                    };
                    if let Some(gap) = gap {
                        tracing::warn!(database = %db, primary = %to_name, gap_ms = millis(gap),
                            "failover: primary adopted; held work is released");
                    }
                } else {
                    tracing::warn!(database = %db, %from, to = %to_name, reason, "primary changed");
                    let mut log = self.failover_log();
                    log.reopened();
                    log.lost(from_node, now);
                }
            }
            Event::ConflictingPrimaries { claimants, chosen } => {
                let claimants = claimants
                    .iter()
                    .map(|&(n, tli)| match tli {
                        Some(t) => format!("{} (timeline {t})", self.host(n)),
                        None => format!("{} (timeline unknown)", self.host(n)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                match chosen {
                    Some(chosen) => {
                        tracing::error!(database = %db, %claimants, chosen = %self.host(*chosen),
                        "more than one node answers as primary; routing to the one on the highest timeline: fence the other")
                    }
                    None => tracing::error!(database = %db, %claimants,
                        "more than one node answers as primary on the same timeline; holding writes until only one does"),
                }
            }
            Event::Fenced {
                node,
                timeline,
                adopted_timeline,
            } => {
                tracing::error!(database = %db, node = %self.host(*node), timeline = ?timeline, adopted_timeline,
                    "node answers as primary on an older timeline than the adopted primary; fenced, it gets no traffic");
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
