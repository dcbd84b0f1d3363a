//! The shape of the config file: which keys each table has, their types and defaults, and the
//! checks that span several tables.
//!
//! Adding a key is one line in the struct literal of its section. The fields are evaluated in
//! order, so problems come out in the order the keys are listed here.

use std::collections::{BTreeMap, HashSet};

use toml::{Table, Value};

use super::parse::{parse_host, parse_listen};
use super::walk::{Problems, Walker};
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Config, DatabaseConfig, LogConfig, Password, Problem, ProxyConfig, RoutingConfig, UserConfig,
    MAX_PEER_ID, PEER_KEY_ROOM,
};

/// The protocol's length field is an i32, so no message can be larger.
const MAX_MESSAGE: u64 = i32::MAX as u64;

pub(super) fn build(table: Table) -> Result<Config, Vec<Problem>> {
    let problems = Problems::default();
    let mut root = Walker::new(String::new(), table, &problems);

    let mut proxy_log = LogSwitches::default();
    let mut proxy = root
        .table("proxy")
        .map(|w| proxy(w, &mut proxy_log))
        .unwrap_or_default();
    let mut log = root.table("log").map(log).unwrap_or_default();
    // PgBouncer keeps these in its main section: accepted in [proxy] too.
    if let Some(v) = proxy_log.connections {
        log.log_connections = v;
    }
    if let Some(v) = proxy_log.disconnections {
        log.log_disconnections = v;
    }
    if let Some(v) = proxy_log.pooler_errors {
        log.log_pooler_errors = v;
    }
    let tls = root.table("tls").map(super::tls::tls).unwrap_or_default();
    let hba = root
        .array_of_tables("hba")
        .map(|rules| super::hba::rules(rules, tls.client_ca_file.is_some()))
        .unwrap_or_default();

    // A wrong type for `users` or its entries is reported by the walker; only an absent or
    // empty list is a problem of its own.
    let no_users = match root.peek("users") {
        None => true,
        Some(Value::Array(entries)) => entries.is_empty(),
        Some(_) => false,
    };
    let user_tables = root.array_of_tables("users");
    if no_users {
        problems.report(
            "users",
            "at least one [[users]] entry is required (pgferry logs in to Postgres as these users)",
        );
    }
    let users = users(user_tables.unwrap_or_default());

    let databases = root
        .table("databases")
        .map(|w| databases(w, &proxy.routing))
        .unwrap_or_default();
    let peers = root
        .table("peers")
        .map(|w| peers(w, &problems))
        .unwrap_or_default();
    root.finish();

    for (key, list) in [
        ("proxy.admin_users", &proxy.admin_users),
        ("proxy.stats_users", &proxy.stats_users),
    ] {
        for name in list {
            if !users.iter().any(|u| &u.name == name) {
                problems.report(key, format!("unknown user {name:?} (not in [[users]])"));
            }
        }
    }
    match &proxy.monitor_user {
        None => proxy.monitor_user = users.first().map(|u| u.name.clone()),
        Some(name) if !users.iter().any(|u| &u.name == name) => problems.report(
            "proxy.monitor_user",
            format!("unknown user {name:?} (not in [[users]])"),
        ),
        Some(_) => {}
    }

    let problems = problems.into_vec();
    if problems.is_empty() {
        Ok(Config {
            proxy,
            log,
            users,
            databases,
            tls,
            hba,
            peers,
        })
    } else {
        Err(problems)
    }
}

/// `[peers]`: `ID = "host:port"` per pgferry process sharing the port.
fn peers(mut w: Walker<'_>, problems: &Problems) -> BTreeMap<u16, SocketAddr> {
    let mut out = BTreeMap::new();
    for (key, path, value) in w.named_values() {
        let id = match key.parse::<u16>() {
            Ok(id) if (1..=MAX_PEER_ID).contains(&id) => id,
            _ => {
                problems.report(
                    path,
                    format!("the key must be a peer id from 1 to {MAX_PEER_ID}"),
                );
                continue;
            }
        };
        match value {
            Value::String(s) => match parse_listen(&s) {
                Ok(addr) => {
                    out.insert(id, addr);
                }
                Err(e) => problems.report(path, e),
            },
            _ => problems.report(
                path,
                "expected a string \"host:port\" (the peer's peer_listen)",
            ),
        }
    }
    out
}

/// `log_connections`, `log_disconnections`, `log_pooler_errors` written in
/// `[proxy]`, PgBouncer style.
#[derive(Default)]
struct LogSwitches {
    connections: Option<bool>,
    disconnections: Option<bool>,
    pooler_errors: Option<bool>,
}

fn proxy(mut w: Walker<'_>, log: &mut LogSwitches) -> ProxyConfig {
    let d = ProxyConfig::default();
    log.connections = w.bool("log_connections");
    log.disconnections = w.bool("log_disconnections");
    log.pooler_errors = w.bool("log_pooler_errors");
    // Kept one key per line so the schema reads as a table; rustfmt would wrap the long ones.
    #[rustfmt::skip]
    let proxy = ProxyConfig {
        listen:                 w.parsed("listen", parse_listen).unwrap_or(d.listen),
        pool_mode:              w.keyword("pool_mode").unwrap_or(d.pool_mode),
        default_pool_size:      w.count("default_pool_size", 1).unwrap_or(d.default_pool_size),
        max_client_conn:        w.count("max_client_conn", 1).unwrap_or(d.max_client_conn),
        auth_method:            w.keyword("auth_method").unwrap_or(d.auth_method),
        query_wait_timeout:     w.duration("query_wait_timeout").unwrap_or(d.query_wait_timeout),
        client_login_timeout:   w.duration("client_login_timeout").unwrap_or(d.client_login_timeout),
        server_connect_timeout: w.duration("server_connect_timeout").unwrap_or(d.server_connect_timeout),
        server_reset_query:     w.string("server_reset_query").unwrap_or(d.server_reset_query),
        max_message_size:       w.byte_size("max_message_size", 1024, MAX_MESSAGE).unwrap_or(d.max_message_size),
        workers:                w.count("workers", 0).unwrap_or(d.workers),
        cpu_policy:             w.keyword("cpu_policy").unwrap_or(d.cpu_policy),
        nice:                   w.int_in("nice", -20, 19).map_or(d.nice, |n| n as i32),
        so_reuseport:           w.bool("so_reuseport").unwrap_or(d.so_reuseport),
        peer_id:                w.int_in("peer_id", 0, i64::from(MAX_PEER_ID)).map_or(d.peer_id, |n| n as u16),
        peer_listen:            w.parsed("peer_listen", parse_listen),
        monitor_user:           w.string("monitor_user").or(d.monitor_user),
        tcp_keepalive:          w.bool("tcp_keepalive").unwrap_or(d.tcp_keepalive),
        health_interval:        positive(&mut w, "health_interval").unwrap_or(d.health_interval),
        health_suspect_interval: positive(&mut w, "health_suspect_interval").unwrap_or(d.health_suspect_interval),
        health_timeout:         positive(&mut w, "health_timeout").unwrap_or(d.health_timeout),
        health_down_after:      w.count("health_down_after", 1).unwrap_or(d.health_down_after),
        health_up_after:        w.count("health_up_after", 1).unwrap_or(d.health_up_after),
        route_deny_functions:   w.list("route_deny_functions", function_name).map(names),
        route_allow_functions:  w.list("route_allow_functions", function_name).map(names),
        admin_users:            w.list("admin_users", |s| Ok(s.to_owned())).map(names).unwrap_or_default(),
        stats_users:            w.list("stats_users", |s| Ok(s.to_owned())).map(names).unwrap_or_default(),
        metrics_listen:         w.parsed("metrics_listen", parse_listen),
        pause_timeout:          w.duration("pause_timeout").unwrap_or(d.pause_timeout),
        pin_policy:             w.keyword("pin_policy").unwrap_or(d.pin_policy),
        max_prepared_statements: w.count("max_prepared_statements", 1).unwrap_or(d.max_prepared_statements),
        cache_unnamed_statements: w.bool("cache_unnamed_statements").unwrap_or(d.cache_unnamed_statements),
        max_db_connections:     w.count("max_db_connections", 0).unwrap_or(d.max_db_connections),
        max_user_connections:   w.count("max_user_connections", 0).unwrap_or(d.max_user_connections),
        reserve_pool_size:      w.count("reserve_pool_size", 0).unwrap_or(d.reserve_pool_size),
        reserve_pool_timeout:   w.duration("reserve_pool_timeout").unwrap_or(d.reserve_pool_timeout),
        server_lifetime:        w.duration("server_lifetime").unwrap_or(d.server_lifetime),
        server_idle_timeout:    w.duration("server_idle_timeout").unwrap_or(d.server_idle_timeout),
        client_idle_timeout:    w.duration("client_idle_timeout").unwrap_or(d.client_idle_timeout),
        idle_transaction_timeout: w.duration("idle_transaction_timeout").unwrap_or(d.idle_transaction_timeout),
        query_timeout:          w.duration("query_timeout").unwrap_or(d.query_timeout),
        shutdown_timeout:       w.duration("shutdown_timeout").unwrap_or(d.shutdown_timeout),
        auth_file:              w.parsed("auth_file", non_empty).map(Into::into),
        auth_user:              w.parsed("auth_user", non_empty),
        auth_query:             w.parsed("auth_query", non_empty).unwrap_or(d.auth_query),
        auth_dbname:            w.parsed("auth_dbname", non_empty),
        auth_cache_ttl:         w.duration("auth_cache_ttl").unwrap_or(d.auth_cache_ttl),
        auth_failure_delay:     w.duration("auth_failure_delay").unwrap_or(d.auth_failure_delay),
        auth_failure_max_delay: w.duration("auth_failure_max_delay").unwrap_or(d.auth_failure_max_delay),
        routing:                routing(&mut w, &d.routing),
    };
    if proxy.peer_id != 0 && proxy.max_client_conn >= PEER_KEY_ROOM {
        w.report(
            "max_client_conn",
            format!(
                "must be less than {PEER_KEY_ROOM} when peer_id is set (the cancel keys one peered process can hand out)"
            ),
        );
    }
    if proxy.auth_failure_max_delay < proxy.auth_failure_delay {
        w.report(
            "auth_failure_max_delay",
            "must not be less than auth_failure_delay",
        );
    }
    w.finish();
    proxy
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty (leave the key out instead)".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// The routing keys of `[proxy]` or of one `[databases.NAME]`, unset ones from `base`.
fn routing(w: &mut Walker<'_>, base: &RoutingConfig) -> RoutingConfig {
    #[rustfmt::skip]
    let r = RoutingConfig {
        route:                 w.keyword("route").unwrap_or(base.route),
        max_replica_lag:       w.duration("max_replica_lag").unwrap_or(base.max_replica_lag),
        max_replica_lag_bytes: w.byte_size("max_replica_lag_bytes", 0, u64::MAX).map(|b| b as u64).or(base.max_replica_lag_bytes),
        replica_fallback:      w.keyword("replica_fallback").unwrap_or(base.replica_fallback),
        read_your_writes:      w.bool("read_your_writes").unwrap_or(base.read_your_writes),
        failover_timeout:      w.duration("failover_timeout").unwrap_or(base.failover_timeout),
    };
    r
}

/// A duration that must be above zero (an interval of zero would spin).
fn positive(w: &mut Walker<'_>, key: &'static str) -> Option<Duration> {
    let d = w.duration(key)?;
    if d.is_zero() {
        w.report(key, "must be greater than zero");
        return None;
    }
    Some(d)
}

fn function_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{s:?} is not a function name"))
    }
}

fn names(list: Vec<(String, String)>) -> Vec<String> {
    list.into_iter().map(|(_, n)| n).collect()
}

fn log(mut w: Walker<'_>) -> LogConfig {
    let d = LogConfig::default();
    let log = LogConfig {
        level: w.one_of("level", LogConfig::LEVELS).unwrap_or(d.level),
        format: w.keyword("format").unwrap_or(d.format),
        log_connections: w.bool("log_connections").unwrap_or(d.log_connections),
        log_disconnections: w.bool("log_disconnections").unwrap_or(d.log_disconnections),
        log_pooler_errors: w.bool("log_pooler_errors").unwrap_or(d.log_pooler_errors),
    };
    w.finish();
    log
}

/// Users without a valid, unique name are reported and left out.
fn users(tables: Vec<Walker<'_>>) -> Vec<UserConfig> {
    let mut users: Vec<UserConfig> = Vec::new();
    for mut w in tables {
        w.require("name");
        let name = w
            .string("name")
            .filter(|name| match name_problem(name, &users) {
                Some(problem) => {
                    w.report("name", problem);
                    false
                }
                None => true,
            });
        let password = w.parsed("password", password);
        let pool_mode = w.keyword("pool_mode");
        let pool_size = w.count("pool_size", 1);
        let max_user_connections = w.count("max_user_connections", 0);
        w.finish();
        if let Some(name) = name {
            users.push(UserConfig {
                name,
                password,
                pool_mode,
                pool_size,
                max_user_connections,
            });
        }
    }
    users
}

fn name_problem(name: &str, users: &[UserConfig]) -> Option<String> {
    if name.is_empty() {
        Some("user name must not be empty".to_owned())
    } else if users.iter().any(|u| u.name == name) {
        Some(format!("duplicate user {name:?}"))
    } else {
        None
    }
}

fn password(s: &str) -> Result<Password, String> {
    if s.is_empty() {
        // Postgres refuses empty passwords too; leaving the key out is how to say "none".
        return Err("must not be empty (leave the key out for no password)".to_owned());
    }
    Password::parse(s)
}

fn databases(mut w: Walker<'_>, defaults: &RoutingConfig) -> BTreeMap<String, DatabaseConfig> {
    let mut databases = BTreeMap::new();
    for (name, db) in w.named_tables("[databases.NAME]") {
        let config = database(&name, db, defaults);
        databases.insert(name, config);
    }
    w.finish();
    databases
}

fn database(name: &str, mut w: Walker<'_>, defaults: &RoutingConfig) -> DatabaseConfig {
    if name.is_empty() {
        w.problems()
            .report(w.path(), "database name must not be empty");
    }
    if w.require("hosts") && matches!(w.peek("hosts"), Some(Value::Array(a)) if a.is_empty()) {
        w.report("hosts", "must list at least one host");
    }
    let hosts = w.list("hosts", parse_host).unwrap_or_default();
    let mut seen = HashSet::new();
    for (path, host) in &hosts {
        if !seen.insert(host) {
            w.problems()
                .report(path, format!("duplicate host \"{host}\""));
        }
    }
    let dbname = w.string("dbname").filter(|dbname| {
        let empty = dbname.is_empty();
        if empty {
            w.report(
                "dbname",
                "must not be empty (leave the key out to use the table name)",
            );
        }
        !empty
    });
    let config = DatabaseConfig {
        hosts: hosts.into_iter().map(|(_, host)| host).collect(),
        dbname: dbname.unwrap_or_else(|| name.to_owned()),
        pool_size: w.count("pool_size", 1),
        pool_mode: w.keyword("pool_mode"),
        max_db_connections: w.count("max_db_connections", 0),
        routing: routing(&mut w, defaults),
    };
    w.finish();
    config
}
