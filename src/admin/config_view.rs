//! SHOW CONFIG (the effective `[proxy]` settings, PgBouncer's key / value /
//! default / changeable columns) and SET for the settings that can change
//! while running.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::reply::Rows;
use super::AdminError;
use crate::config::{parse_duration, ProxyConfig};
use crate::protocol::{build, sqlstate};
use crate::state::State;

/// Settings SET may change. Others need a restart (or RELOAD).
const CHANGEABLE: &[&str] = &["query_wait_timeout", "default_pool_size"];

fn dur(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn list(v: &[String]) -> String {
    v.join(",")
}

fn opt_list(v: &Option<Vec<String>>) -> String {
    v.as_deref().map(list).unwrap_or_default()
}

/// (key, value) of every `[proxy]` key, in the config file's order.
fn entries(p: &ProxyConfig) -> Vec<(&'static str, String)> {
    let r = &p.routing;
    vec![
        ("listen", p.listen.to_string()),
        ("pool_mode", p.pool_mode.to_string()),
        ("default_pool_size", p.default_pool_size.to_string()),
        ("max_client_conn", p.max_client_conn.to_string()),
        ("auth_method", p.auth_method.to_string()),
        ("query_wait_timeout", dur(p.query_wait_timeout)),
        ("client_login_timeout", dur(p.client_login_timeout)),
        ("server_connect_timeout", dur(p.server_connect_timeout)),
        ("server_reset_query", p.server_reset_query.clone()),
        ("max_message_size", p.max_message_size.to_string()),
        ("workers", p.workers.to_string()),
        ("cpu_policy", p.cpu_policy.to_string()),
        ("nice", p.nice.to_string()),
        ("so_reuseport", p.so_reuseport.to_string()),
        ("peer_id", p.peer_id.to_string()),
        (
            "peer_listen",
            p.peer_listen.map(|a| a.to_string()).unwrap_or_default(),
        ),
        ("monitor_user", p.monitor_user.clone().unwrap_or_default()),
        ("tcp_keepalive", p.tcp_keepalive.to_string()),
        ("health_interval", dur(p.health_interval)),
        ("health_suspect_interval", dur(p.health_suspect_interval)),
        ("health_timeout", dur(p.health_timeout)),
        ("health_down_after", p.health_down_after.to_string()),
        ("health_up_after", p.health_up_after.to_string()),
        ("route_deny_functions", opt_list(&p.route_deny_functions)),
        ("route_allow_functions", opt_list(&p.route_allow_functions)),
        ("admin_users", list(&p.admin_users)),
        ("stats_users", list(&p.stats_users)),
        (
            "metrics_listen",
            p.metrics_listen.map(|a| a.to_string()).unwrap_or_default(),
        ),
        ("pause_timeout", dur(p.pause_timeout)),
        ("pin_policy", p.pin_policy.to_string()),
        (
            "max_prepared_statements",
            p.max_prepared_statements.to_string(),
        ),
        (
            "cache_unnamed_statements",
            p.cache_unnamed_statements.to_string(),
        ),
        ("route", r.route.to_string()),
        ("max_replica_lag", dur(r.max_replica_lag)),
        (
            "max_replica_lag_bytes",
            r.max_replica_lag_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
        ),
        ("replica_fallback", r.replica_fallback.to_string()),
        ("read_your_writes", r.read_your_writes.to_string()),
        ("failover_timeout", dur(r.failover_timeout)),
    ]
}

pub fn show(state: &Arc<State>, out: &mut BytesMut) {
    let mut effective = state.config().proxy.clone();
    effective.query_wait_timeout = state.settings.query_wait_timeout();
    effective.default_pool_size = state.settings.default_pool_size();
    let defaults = entries(&ProxyConfig::default());
    let mut rows = Rows::new(out, &["key", "value", "default", "changeable"]);
    for (key, value) in entries(&effective) {
        let default = defaults
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        let changeable = if CHANGEABLE.contains(&key) {
            "yes"
        } else {
            "no"
        };
        rows.row(&[
            Some(key.to_owned()),
            Some(value),
            default,
            Some(changeable.to_owned()),
        ]);
    }
    rows.finish("SHOW");
}

/// SET key = value for a run-time setting.
pub fn set(
    state: &Arc<State>,
    key: &str,
    value: &str,
    out: &mut BytesMut,
) -> Result<(), AdminError> {
    let bad = |message: String| AdminError {
        code: sqlstate::INVALID_PARAMETER_VALUE,
        message,
    };
    match key {
        "query_wait_timeout" => {
            let d = parse_duration(value).map_err(|e| bad(format!("query_wait_timeout: {e}")))?;
            state.settings.set_query_wait_timeout(d);
        }
        "default_pool_size" => {
            let size: usize = value
                .parse()
                .ok()
                .filter(|&n| (1..=100_000).contains(&n))
                .ok_or_else(|| {
                    bad(format!(
                        "default_pool_size: expected a number from 1 to 100000, got {value:?}"
                    ))
                })?;
            state.settings.set_default_pool_size(size);
            resize_default_pools(state, size);
        }
        other
            if entries(&state.config().proxy)
                .iter()
                .any(|(k, _)| *k == other) =>
        {
            return Err(AdminError {
                code: sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                message: format!(
                    "{other} cannot be changed at run time (changeable: {})",
                    CHANGEABLE.join(", ")
                ),
            })
        }
        other => {
            return Err(AdminError {
                code: sqlstate::UNDEFINED_OBJECT,
                message: format!(
                    "unknown setting \"{}\" (see SHOW CONFIG)",
                    other.chars().take(64).collect::<String>()
                ),
            })
        }
    }
    tracing::warn!(key, value, "admin SET");
    build::command_complete(out, "SET");
    Ok(())
}

/// Pools whose size comes from default_pool_size (no per-user or
/// per-database pool_size) take the new size. Growing takes effect at
/// once; shrinking as surplus connections close.
fn resize_default_pools(state: &State, size: usize) {
    for (name, db) in state.databases().iter() {
        let db_size = state.config().databases.get(name).and_then(|d| d.pool_size);
        for user in &db.users() {
            let user_size = state.config().user(user).and_then(|u| u.pool_size);
            if user_size.is_none() && db_size.is_none() {
                for pool in db.user_pools(user) {
                    pool.set_size(size);
                }
            }
        }
    }
}
