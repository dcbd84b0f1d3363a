//! SHOW commands of pgferry's own: VERSION, NODES, FAILOVERS, PEERS.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::pgbouncer_views as views;
use super::reply::Rows;
use super::AdminError;
use crate::protocol::sqlstate;
use crate::state::State;
use crate::topology::format_lsn;

const SUBJECTS: &str = "POOLS, CLIENTS, SERVERS, STATS, STATS_TOTALS, STATS_AVERAGES, DATABASES, USERS, CONFIG, LISTS, VERSION, NODES, FAILOVERS, PINS, PEERS";

pub fn show(state: &Arc<State>, what: &str, out: &mut BytesMut) -> Result<(), AdminError> {
    match what {
        "version" => {
            let mut rows = Rows::new(out, &["version"]);
            // One `version` column, like PgBouncer ("PgBouncer 1.18.0").
            rows.row(&[Some(format!("pgferry {}", env!("CARGO_PKG_VERSION")))]);
            rows.finish("SHOW");
        }
        "nodes" => nodes(state, out),
        "failovers" => failovers(state, out),
        "pools" => views::pools(state, out),
        "clients" => views::clients(state, out),
        "servers" => views::servers(state, out),
        "stats" => views::stats(state, out),
        "stats_totals" => views::stats_totals(state, out),
        "stats_averages" => views::stats_averages(state, out),
        "databases" => views::databases(state, out),
        "users" => views::users(state, out),
        "lists" => views::lists(state, out),
        "pins" => views::pins(state, out),
        "config" => super::config_view::show(state, out),
        "peers" => peers(state, out),
        other => {
            return Err(AdminError {
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: format!(
                    "unknown SHOW subject \"{}\" (try {SUBJECTS})",
                    other.chars().take(64).collect::<String>()
                ),
            })
        }
    }
    Ok(())
}

/// SHOW PEERS: the `[peers]` table, PgBouncer's columns (pool_size: one
/// connection per forwarded request, none kept); `self` marks this process.
fn peers(state: &Arc<State>, out: &mut BytesMut) {
    let config = state.config();
    let mut rows = Rows::new(out, &["peer_id", "host", "port", "pool_size", "self"]);
    for (id, addr) in &config.peers {
        rows.row(&[
            Some(id.to_string()),
            Some(addr.ip().to_string()),
            Some(addr.port().to_string()),
            Some("0".to_owned()),
            Some((*id == config.proxy.peer_id).to_string()),
        ]);
    }
    rows.finish("SHOW");
}

fn opt<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

fn nodes(state: &Arc<State>, out: &mut BytesMut) {
    let mut rows = Rows::new(
        out,
        &[
            "database",
            "host",
            "port",
            "role",
            "state",
            "timeline",
            "lsn",
            "lag_bytes",
            "lag_ms",
            "lag_excluded",
            "in_flight",
            "last_probe_ms_ago",
            "last_error",
            "primary",
            "paused",
        ],
    );
    let now = Instant::now();
    let dbs = state.databases();
    let mut names: Vec<_> = dbs.keys().collect();
    names.sort();
    for name in names {
        let Some(db) = dbs.get(name) else {
            continue;
        };
        let snap = db.topology.snapshot();
        for (i, (host, n)) in db.topology.hosts().iter().zip(&snap.nodes).enumerate() {
            let in_flight: usize = db
                .pools()
                .iter()
                .filter(|p| p.spec().node == *host)
                .map(|p| p.in_flight())
                .sum();
            rows.row(&[
                Some(name.clone()),
                Some(host.host.clone()),
                Some(host.port.to_string()),
                opt(n.role),
                Some(n.health.to_string()),
                opt(n.timeline),
                n.lsn.map(format_lsn),
                opt(n.lag_bytes),
                opt(n.lag.map(|l| l.as_millis())),
                Some(n.lag_excluded.to_string()),
                Some(in_flight.to_string()),
                opt(n
                    .last_probe
                    .map(|t| now.saturating_duration_since(t).as_millis())),
                n.last_error.clone(),
                Some((snap.primary == Some(i)).to_string()),
                Some(db.gate.is_paused().to_string()),
            ]);
        }
    }
    rows.finish("SHOW");
}

fn failovers(state: &Arc<State>, out: &mut BytesMut) {
    let mut rows = Rows::new(
        out,
        &[
            "database",
            "from_host",
            "to_host",
            "detected_at_unix_ms",
            "adopted_at_unix_ms",
            "gap_ms",
            "clients_held",
            "longest_hold_ms",
            "errors_returned",
        ],
    );
    for (name, db) in state.databases().iter() {
        let host = |n: usize| db.topology.hosts().get(n).map(|h| h.to_string());
        for f in db.topology.failover_history() {
            rows.row(&[
                Some(name.clone()),
                f.from.and_then(host),
                host(f.to),
                Some(f.detected_unix_ms.to_string()),
                Some(f.adopted_unix_ms.to_string()),
                Some(f.gap.as_millis().to_string()),
                Some(f.clients_held.to_string()),
                Some(f.longest_hold.as_millis().to_string()),
                Some(f.errors.to_string()),
            ]);
        }
    }
    rows.finish("SHOW");
}
