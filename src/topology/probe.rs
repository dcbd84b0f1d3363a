//! One node's probe on its own persistent monitor connection, and the pure
//! parsing of the probe's one-row answer.
//!
//! # The probe query
//!
//! One statement reads everything, so the values are consistent with each
//! other and a probe is one round trip. `pg_is_in_recovery()` is read once in
//! a materialised CTE and every role-specific function sits behind a
//! `CASE` on it: `pg_current_wal_lsn()` and `pg_walfile_name()` raise an
//! error during recovery, and the branch not taken is never executed.
//!
//! # Timeline without superuser
//!
//! The monitor user is an ordinary login role. On PostgreSQL 15:
//!
//! * primary: `pg_walfile_name(pg_current_wal_lsn())` is executable by
//!   PUBLIC and its first 8 hex digits are the current insert timeline, so
//!   `('x' || substr(..., 1, 8))::bit(32)::bigint` is exact.
//! * replica: `pg_walfile_name()` is refused during recovery.
//!   `pg_stat_wal_receiver.received_tli` is current but only visible to
//!   superusers and members of `pg_read_all_stats` (NULL for others), so it
//!   is tried first; otherwise `pg_control_checkpoint().timeline_id`, which
//!   PUBLIC may execute by default. That is the timeline of the replica's
//!   last restartpoint, so after the replica follows a new timeline it can
//!   lag until the next restartpoint. Granting `pg_monitor` (which includes
//!   `pg_read_all_stats`) to the monitor user gives the exact value.
//! * Where an administrator revoked `pg_control_checkpoint()` from PUBLIC,
//!   the whole statement fails with 42501 even on a primary (the privilege is
//!   checked when the plan starts, not when the branch runs). The probe then
//!   switches, for that connection's node, to a statement without it, and a
//!   replica's timeline is `None` unless `received_tli` is visible.

use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use super::lag::ReplicaPosition;
use super::lsn::{parse_lsn, LsnError};
use crate::server::{self, ConnectSpec, ServerConn, ServerError};

/// What one successful probe read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSample {
    pub in_recovery: bool,
    pub timeline: Option<u32>,
    /// Current LSN on a primary, replay LSN on a replica.
    pub lsn: Option<u64>,
    /// Replicas only.
    pub receive_lsn: Option<u64>,
    /// The server's `now()`, microseconds since the Unix epoch.
    pub now_us: Option<i64>,
    /// Replicas only: `pg_last_xact_replay_timestamp()` in microseconds.
    pub last_replay_us: Option<i64>,
}

impl ProbeSample {
    pub fn position(&self) -> ReplicaPosition {
        ReplicaPosition {
            replay_lsn: self.lsn,
            receive_lsn: self.receive_lsn,
            now_us: self.now_us,
            last_replay_us: self.last_replay_us,
        }
    }
}

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("probe timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("unexpected probe result: {0}")]
    BadRow(String),
}

impl From<LsnError> for ProbeError {
    fn from(e: LsnError) -> Self {
        ProbeError::BadRow(e.to_string())
    }
}

/// The replica timeline expression, with and without `pg_control_checkpoint()`.
const REPLICA_TLI_FULL: &str = "coalesce((SELECT received_tli::bigint FROM pg_stat_wal_receiver), \
     (SELECT timeline_id::bigint FROM pg_control_checkpoint()))";
const REPLICA_TLI_NO_CONTROL: &str = "(SELECT received_tli::bigint FROM pg_stat_wal_receiver)";

fn probe_sql(replica_tli: &str) -> String {
    format!(
        "WITH s AS MATERIALIZED (SELECT pg_is_in_recovery() AS r) \
         SELECT s.r, \
           CASE WHEN s.r THEN {replica_tli} \
             ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END, \
           CASE WHEN s.r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, \
           CASE WHEN s.r THEN pg_last_wal_receive_lsn() END, \
           (extract(epoch FROM now()) * 1000000)::bigint, \
           CASE WHEN s.r THEN (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint END \
         FROM s"
    )
}

/// Parses the probe's result rows (text format).
pub fn parse_rows(rows: &[Vec<Option<String>>]) -> Result<ProbeSample, ProbeError> {
    let [row] = rows else {
        return Err(ProbeError::BadRow(format!(
            "expected 1 row, got {}",
            rows.len()
        )));
    };
    let [r, tli, lsn, recv, now, replay_ts] = row.as_slice() else {
        return Err(ProbeError::BadRow(format!(
            "expected 6 columns, got {}",
            row.len()
        )));
    };
    let in_recovery = match r.as_deref() {
        Some("t") => true,
        Some("f") => false,
        other => {
            return Err(ProbeError::BadRow(format!(
                "pg_is_in_recovery() returned {other:?}"
            )))
        }
    };
    let int = |what: &str, v: &Option<String>| -> Result<Option<i64>, ProbeError> {
        v.as_deref()
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ProbeError::BadRow(format!("{what} is not an integer: {s:?}")))
            })
            .transpose()
    };
    let timeline = int("timeline", tli)?
        .map(|t| {
            u32::try_from(t)
                .map_err(|_| ProbeError::BadRow(format!("timeline {t} is out of range")))
        })
        .transpose()?;
    let lsn_of = |v: &Option<String>| v.as_deref().map(parse_lsn).transpose();
    Ok(ProbeSample {
        in_recovery,
        timeline,
        lsn: lsn_of(lsn)?,
        receive_lsn: lsn_of(recv)?,
        now_us: int("now()", now)?,
        last_replay_us: int("last replay timestamp", replay_ts)?,
    })
}

/// SQLSTATE insufficient_privilege.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// The monitor's connection to one node, kept open between probes.
pub struct NodeProbe {
    spec: ConnectSpec,
    conn: Option<ServerConn>,
    /// Cleared once the node refuses `pg_control_checkpoint()` (see the
    /// module docs); kept per node because privileges are per server.
    control_allowed: bool,
}

impl NodeProbe {
    /// `spec` names the node and the monitor user.
    pub fn new(spec: ConnectSpec) -> NodeProbe {
        NodeProbe {
            spec,
            conn: None,
            control_allowed: true,
        }
    }

    /// One probe, connecting first if needed; the whole of it (connect
    /// included) is bounded by `timeout`. On any failure the connection is
    /// dropped, because its protocol state is unknown after a timeout and a
    /// server error here usually means the session is going away anyway.
    pub async fn probe(&mut self, timeout: Duration) -> Result<ProbeSample, ProbeError> {
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.probe_inner(deadline)).await {
            Ok(Ok(sample)) => Ok(sample),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(ProbeError::Timeout(timeout))
            }
        }
    }

    async fn probe_inner(&mut self, deadline: Instant) -> Result<ProbeSample, ProbeError> {
        // A kept connection the server closed while idle (restart, terminated
        // backend) says nothing about the node now: replace it up front.
        let reused = self.conn.as_mut().is_some_and(|c| c.is_reusable());
        if !reused {
            self.conn = None;
        }
        match self.query(deadline).await {
            // A kept connection can also die between the readiness check and
            // the query. Only a fresh connection failing is evidence about
            // the node, so retry once on a new one.
            Err(ProbeError::Server(e)) if reused && e.is_node_failure() => {
                self.conn = None;
                self.query(deadline).await
            }
            other => other,
        }
    }

    async fn query(&mut self, deadline: Instant) -> Result<ProbeSample, ProbeError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            slot @ None => slot.insert(connect(&self.spec, deadline).await?),
        };
        loop {
            let tli = if self.control_allowed {
                REPLICA_TLI_FULL
            } else {
                REPLICA_TLI_NO_CONTROL
            };
            match server::simple_query(conn, &probe_sql(tli)).await {
                Ok(rows) => return parse_rows(&rows),
                Err(ServerError::Rejected { code, message, .. })
                    if code == INSUFFICIENT_PRIVILEGE && self.control_allowed =>
                {
                    tracing::warn!(
                        node = %self.spec.node,
                        user = %self.spec.user,
                        error = %message,
                        "monitor user may not call pg_control_checkpoint(); replica timelines \
                         are unknown unless pg_stat_wal_receiver is visible (grant pg_monitor)"
                    );
                    self.control_allowed = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

async fn connect(spec: &ConnectSpec, deadline: Instant) -> Result<ServerConn, ProbeError> {
    let mut spec = spec.clone();
    // The probe's own deadline bounds the connect; server_connect_timeout
    // (meant for client traffic) must not stretch it.
    spec.connect_timeout = deadline.saturating_duration_since(Instant::now());
    let mut conn = server::connect(&spec).await?;
    // Lets operators tell monitor sessions apart in pg_stat_activity.
    server::simple_query(&mut conn, "SET application_name = 'pgferry monitor'").await?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[Option<&str>]) -> Vec<Vec<Option<String>>> {
        vec![cols.iter().map(|c| c.map(str::to_owned)).collect()]
    }

    #[test]
    fn parses_a_primary() {
        let s = parse_rows(&row(&[
            Some("f"),
            Some("3"),
            Some("0/4018C88"),
            None,
            Some("1795347906244640"),
            None,
        ]))
        .unwrap();
        assert_eq!(
            s,
            ProbeSample {
                in_recovery: false,
                timeline: Some(3),
                lsn: Some(0x0401_8C88),
                receive_lsn: None,
                now_us: Some(1_795_347_906_244_640),
                last_replay_us: None,
            }
        );
    }

    #[test]
    fn parses_a_replica_with_unknown_timeline() {
        let s = parse_rows(&row(&[
            Some("t"),
            None,
            Some("1/0"),
            Some("1/10"),
            Some("10"),
            Some("5"),
        ]))
        .unwrap();
        assert!(s.in_recovery);
        assert_eq!(s.timeline, None);
        assert_eq!(s.lsn, Some(1 << 32));
        assert_eq!(s.receive_lsn, Some((1 << 32) + 16));
        assert_eq!(s.last_replay_us, Some(5));
    }

    #[test]
    fn rejects_malformed_results() {
        let good = [
            Some("t"),
            Some("1"),
            Some("0/1"),
            Some("0/1"),
            Some("1"),
            None,
        ];
        assert!(parse_rows(&[]).is_err());
        assert!(parse_rows(&[row(&good)[0].clone(), row(&good)[0].clone()]).is_err());
        assert!(parse_rows(&row(&good[..5])).is_err());
        let mut bad = good;
        bad[0] = Some("yes");
        assert!(parse_rows(&row(&bad)).is_err());
        let mut bad = good;
        bad[1] = Some("-1");
        assert!(parse_rows(&row(&bad)).is_err());
        let mut bad = good;
        bad[2] = Some("nope");
        assert!(parse_rows(&row(&bad)).is_err());
        let mut bad = good;
        bad[4] = Some("1.5");
        assert!(parse_rows(&row(&bad)).is_err());
    }

    #[test]
    fn both_query_variants_guard_primary_only_functions() {
        for tli in [REPLICA_TLI_FULL, REPLICA_TLI_NO_CONTROL] {
            let sql = probe_sql(tli);
            assert!(sql
                .contains("CASE WHEN s.r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn()"));
            assert_eq!(sql.matches("pg_is_in_recovery()").count(), 1);
        }
        assert!(!probe_sql(REPLICA_TLI_NO_CONTROL).contains("pg_control_checkpoint"));
    }
}
