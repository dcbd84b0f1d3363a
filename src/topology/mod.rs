//! Which node of a database is the primary.
//!
//! The current view is one immutable snapshot behind an `ArcSwap`, read
//! without locks on the routing path. Until continuous health checking lands,
//! the primary is found by probing every host (`pg_is_in_recovery()`) at start
//! and again whenever connecting to the current primary fails.

mod probe;

// Sans-IO building blocks of continuous health checking; the monitor that
// uses them lands in the next commit, so for now only their tests build them.
#[cfg(test)]
mod health;
#[cfg(test)]
mod lag;
#[cfg(test)]
mod lsn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;

pub use probe::{probe_node, NodeRole};

use crate::config::HostAddr;
use crate::server::ConnectSpec;

#[derive(Debug, Error, Clone)]
pub enum TopologyError {
    #[error("no primary found among {hosts}: {detail}")]
    NoPrimary { hosts: String, detail: String },
}

/// One published view of a database's nodes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Index into the hosts list of the node believed to be primary.
    pub primary: Option<usize>,
    pub probed_at: Option<Instant>,
}

pub struct Topology {
    hosts: Vec<HostAddr>,
    /// Credentials used for probes (the monitor user).
    probe_spec: ConnectSpec,
    snapshot: ArcSwap<Snapshot>,
    /// Single-flight: concurrent callers wait for one discovery.
    discovering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl Topology {
    pub fn new(hosts: Vec<HostAddr>, probe_spec: ConnectSpec) -> Arc<Topology> {
        Arc::new(Topology {
            hosts,
            probe_spec,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            discovering: tokio::sync::Mutex::new(()),
        })
    }

    pub fn hosts(&self) -> &[HostAddr] {
        &self.hosts
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The primary's index, discovering it first if unknown.
    pub async fn primary(&self) -> Result<usize, TopologyError> {
        if let Some(p) = self.snapshot.load().primary {
            return Ok(p);
        }
        self.discover(None).await
    }

    /// Reports that `node` failed as primary; the next caller rediscovers.
    pub fn primary_failed(&self, node: usize) {
        let cur = self.snapshot.load();
        if cur.primary == Some(node) {
            tracing::warn!(node = %self.hosts[node], "primary unreachable; will look for the primary again");
            self.snapshot.store(Arc::new(Snapshot {
                primary: None,
                probed_at: cur.probed_at,
            }));
        }
    }

    /// Probes every host and publishes the primary. If another task is
    /// already discovering, waits for its result instead of probing again.
    pub async fn discover(&self, stale: Option<usize>) -> Result<usize, TopologyError> {
        let started = Instant::now();
        let _one = self.discovering.lock().await;
        let cur = self.snapshot.load_full();
        if let (Some(p), Some(at)) = (cur.primary, cur.probed_at) {
            if at >= started && Some(p) != stale {
                return Ok(p);
            }
        }
        let probes = self.hosts.iter().map(|h| {
            let mut spec = self.probe_spec.clone();
            spec.node = h.clone();
            async move { probe_node(&spec).await }
        });
        let results = futures_util::future::join_all(probes).await;
        let mut primary = None;
        let mut detail = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(NodeRole::Primary) if primary.is_none() => primary = Some(i),
                Ok(NodeRole::Primary) => {
                    tracing::error!(first = %self.hosts[primary.unwrap_or(i)], second = %self.hosts[i],
                        "two nodes claim to be primary; using the first listed");
                }
                Ok(NodeRole::Replica) => detail.push(format!("{} is a replica", self.hosts[i])),
                Err(e) => detail.push(format!("{}: {e}", self.hosts[i])),
            }
        }
        let old = cur.primary;
        self.snapshot.store(Arc::new(Snapshot {
            primary,
            probed_at: Some(Instant::now()),
        }));
        match primary {
            Some(p) => {
                if old != Some(p) {
                    tracing::info!(primary = %self.hosts[p], took_ms = started.elapsed().as_millis() as u64, "primary found");
                }
                Ok(p)
            }
            None => Err(TopologyError::NoPrimary {
                hosts: self
                    .hosts
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                detail: detail.join("; "),
            }),
        }
    }
}

/// Probes are quick; one that hangs must not stall discovery.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
