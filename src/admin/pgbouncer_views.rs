//! PgBouncer's SHOW views, with its column names in its order (as of
//! PgBouncer 1.18), so existing dashboards and exporters read pgferry.
//! pgferry's own columns come after PgBouncer's.
//!
//! pgferry pools per (database, user, node); PgBouncer's rows are per
//! (database, user), so server counts are summed over the nodes (SHOW
//! NODES has the per-node view).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;

use super::reply::Rows;
use crate::metrics::stats::Totals;
use crate::metrics::{clock, ClientEntry, ClientState, ServerEntry};
use crate::state::{Database, State};

fn n<T: ToString>(v: T) -> Option<String> {
    Some(v.to_string())
}

fn sorted_dbs(state: &State) -> Vec<Arc<Database>> {
    let mut dbs: Vec<_> = state.databases().values().cloned().collect();
    dbs.sort_by(|a, b| a.name.cmp(&b.name));
    dbs
}

/// Client counts of one (database, user): (active, waiting, longest wait µs).
#[derive(Default, Clone, Copy)]
struct ClientCounts {
    active: u64,
    waiting: u64,
    maxwait_us: u64,
}

fn client_counts(state: &State) -> BTreeMap<(String, String), ClientCounts> {
    let mut m: BTreeMap<(String, String), ClientCounts> = BTreeMap::new();
    for c in state.clients.snapshot() {
        let e = m
            .entry((c.database.to_string(), c.user.to_string()))
            .or_default();
        match c.wait_us() {
            Some(w) => {
                e.waiting += 1;
                e.maxwait_us = e.maxwait_us.max(w);
            }
            // PgBouncer counts logged-in clients that are not waiting as
            // active, linked to a server or not.
            None => e.active += 1,
        }
    }
    m
}

/// Server counts of a set of pools: (active, idle, login).
fn server_counts<'a>(pools: impl Iterator<Item = &'a Arc<crate::pool::Pool>>) -> (u64, u64, u64) {
    let (mut active, mut idle, mut login) = (0u64, 0u64, 0u64);
    for p in pools {
        let (open, idle_now, _) = p.sizes();
        let lent = p.in_flight();
        active += lent as u64;
        idle += idle_now as u64;
        login += open.saturating_sub(idle_now + lent) as u64;
    }
    (active, idle, login)
}

pub fn pools(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(
        out,
        &[
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "cl_active_cancel_req",
            "cl_waiting_cancel_req",
            "sv_active",
            "sv_active_cancel",
            "sv_being_canceled",
            "sv_idle",
            "sv_used",
            "sv_tested",
            "sv_login",
            "maxwait",
            "maxwait_us",
            "pool_mode",
            "paused",
        ],
        "ttiiiiiiiiiiiiitt",
    );
    let clients = client_counts(state);
    for db in &sorted_dbs(state) {
        for user in &db.users() {
            let c = clients
                .get(&(db.name.to_string(), user.to_owned()))
                .copied()
                .unwrap_or_default();
            let (sv_active, sv_idle, sv_login) = server_counts(db.user_pools(user).iter());
            let mode = db.pool_mode(user).unwrap_or(state.config().proxy.pool_mode);
            rows.row(&[
                n(&db.name),
                n(user),
                n(c.active),
                n(c.waiting),
                n(0),
                n(0),
                n(sv_active),
                n(0),
                n(0),
                n(sv_idle),
                n(0),
                n(0),
                n(sv_login),
                n(c.maxwait_us / 1_000_000),
                n(c.maxwait_us % 1_000_000),
                n(mode),
                n(db.gate.is_paused()),
            ]);
        }
    }
    rows.finish("SHOW");
}

const CONN_COLUMNS: [&str; 19] = [
    "type",
    "user",
    "database",
    "state",
    "addr",
    "port",
    "local_addr",
    "local_port",
    "connect_time",
    "request_time",
    "wait",
    "wait_us",
    "close_needed",
    "ptr",
    "link",
    "remote_pid",
    "tls",
    "application_name",
    "id",
];
const CONN_TYPES: &str = "tttttitittiiittitti";

/// PgBouncer shows object addresses; pgferry shows ids in hex, servers
/// offset so the two never look alike.
fn client_ptr(id: u64) -> String {
    format!("0x{id:x}")
}

fn server_ptr(id: u64) -> String {
    format!("0x{:x}", id | (1 << 48))
}

pub fn clients(state: &State, out: &mut BytesMut) {
    let mut cols: Vec<&str> = CONN_COLUMNS.to_vec();
    cols.extend(["pgferry_state", "pin_reason"]);
    let mut rows = Rows::typed(out, &cols, CONN_TYPES);
    for c in state.clients.snapshot() {
        rows.row(&client_row(&c));
    }
    rows.finish("SHOW");
}

fn client_row(c: &ClientEntry) -> Vec<Option<String>> {
    let state = c.state();
    let wait = c.wait_us().unwrap_or(0);
    let link = c.link();
    vec![
        n("C"),
        n(&c.user),
        n(&c.database),
        n(if state == ClientState::Waiting {
            "waiting"
        } else {
            "active"
        }),
        n(c.peer.ip()),
        n(c.peer.port()),
        c.local.map(|a| a.ip().to_string()),
        c.local.map(|a| a.port().to_string()),
        n(clock::format_utc(c.connect_us)),
        n(clock::format_utc(c.request_us())),
        n(wait / 1_000_000),
        n(wait % 1_000_000),
        n(0),
        n(client_ptr(c.id)),
        n(if link == 0 {
            String::new()
        } else {
            server_ptr(link)
        }),
        n(0),
        n(""),
        n(&c.application_name),
        n(c.id),
        n(state.as_str()),
        c.pin().map(|p| p.0.to_owned()),
    ]
}

pub fn servers(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(out, &CONN_COLUMNS, CONN_TYPES);
    for s in state.servers.snapshot() {
        rows.row(&server_row(state, &s));
    }
    rows.finish("SHOW");
}

fn server_row(state: &State, s: &ServerEntry) -> Vec<Option<String>> {
    let link = s.link();
    let app = match link {
        0 => String::new(),
        id => state
            .clients
            .get(id)
            .map(|c| c.application_name.to_string())
            .unwrap_or_default(),
    };
    vec![
        n("S"),
        n(&s.user),
        n(&s.database),
        n(s.state().as_str()),
        n(&s.addr),
        n(s.port),
        s.local.map(|a| a.ip().to_string()),
        s.local.map(|a| a.port().to_string()),
        n(clock::format_utc(s.connect_us)),
        n(clock::format_utc(s.request_us())),
        n(0),
        n(0),
        n(0),
        n(server_ptr(s.id)),
        n(if link == 0 {
            String::new()
        } else {
            client_ptr(link)
        }),
        n(s.remote_pid),
        n(""),
        n(app),
        n(s.id),
    ]
}

/// Totals of a database over all its pools.
fn db_totals(db: &Database) -> Totals {
    let mut t = Totals::default();
    for p in db.pools() {
        t.add(&p.stats.totals());
    }
    t
}

/// PgBouncer's averages over the last stats period: rates per second for
/// counts and bytes, microseconds per transaction / query / assignment
/// for times.
struct Averages {
    xact_count: u64,
    query_count: u64,
    recv: u64,
    sent: u64,
    xact_time: u64,
    query_time: u64,
    wait_time: u64,
    assignments: u64,
}

fn averages(db: &Database, now: &Totals) -> Averages {
    let (d, secs) = db.stats_window.delta(now);
    let per_sec = |v: u64| (v as f64 / secs.max(1e-3)) as u64;
    let per = |v: u64, by: u64| v.checked_div(by).unwrap_or(0);
    Averages {
        xact_count: per_sec(d.xact_count),
        query_count: per_sec(d.query_count),
        recv: per_sec(d.received),
        sent: per_sec(d.sent),
        xact_time: per(d.xact_time_us, d.xact_count),
        query_time: per(d.query_time_us, d.query_count),
        wait_time: per(d.wait_time_us, d.assignments),
        assignments: per_sec(d.assignments),
    }
}

pub fn stats(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(
        out,
        &[
            "database",
            "total_xact_count",
            "total_query_count",
            "total_received",
            "total_sent",
            "total_xact_time",
            "total_query_time",
            "total_wait_time",
            "avg_xact_count",
            "avg_query_count",
            "avg_recv",
            "avg_sent",
            "avg_xact_time",
            "avg_query_time",
            "avg_wait_time",
            // pgferry's: PgBouncer < 1.8's total_requests (what older
            // exporters read; = total_query_count) and 1.23's assignments.
            "total_requests",
            "total_server_assignment_count",
            "avg_server_assignment_count",
        ],
        "tiiiiiiiiiiiiiiiii",
    );
    for db in &sorted_dbs(state) {
        let t = db_totals(db);
        let a = averages(db, &t);
        rows.row(&[
            n(&db.name),
            n(t.xact_count),
            n(t.query_count),
            n(t.received),
            n(t.sent),
            n(t.xact_time_us),
            n(t.query_time_us),
            n(t.wait_time_us),
            n(a.xact_count),
            n(a.query_count),
            n(a.recv),
            n(a.sent),
            n(a.xact_time),
            n(a.query_time),
            n(a.wait_time),
            n(t.query_count),
            n(t.assignments),
            n(a.assignments),
        ]);
    }
    rows.finish("SHOW");
}

const TOTALS_COLUMNS: [&str; 8] = [
    "database",
    "xact_count",
    "query_count",
    "bytes_received",
    "bytes_sent",
    "xact_time",
    "query_time",
    "wait_time",
];

pub fn stats_totals(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(out, &TOTALS_COLUMNS, "tiiiiiii");
    for db in &sorted_dbs(state) {
        let t = db_totals(db);
        rows.row(&[
            n(&db.name),
            n(t.xact_count),
            n(t.query_count),
            n(t.received),
            n(t.sent),
            n(t.xact_time_us),
            n(t.query_time_us),
            n(t.wait_time_us),
        ]);
    }
    rows.finish("SHOW");
}

pub fn stats_averages(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(out, &TOTALS_COLUMNS, "tiiiiiii");
    for db in &sorted_dbs(state) {
        let a = averages(db, &db_totals(db));
        rows.row(&[
            n(&db.name),
            n(a.xact_count),
            n(a.query_count),
            n(a.recv),
            n(a.sent),
            n(a.xact_time),
            n(a.query_time),
            n(a.wait_time),
        ]);
    }
    rows.finish("SHOW");
}

pub fn databases(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(
        out,
        &[
            "name",
            "host",
            "port",
            "database",
            "force_user",
            "pool_size",
            "min_pool_size",
            "reserve_pool",
            "pool_mode",
            "max_connections",
            "current_connections",
            "paused",
            "disabled",
            "hosts",
        ],
        "ttitiiiitiiiit",
    );
    let config = state.config();
    for db in &sorted_dbs(state) {
        let Some(cfg) = config.databases.get(&*db.name) else {
            continue;
        };
        // PgBouncer's one host: the current primary (else the first host).
        let snap = db.topology.snapshot();
        let hosts = db.topology.hosts();
        let host = snap
            .primary
            .and_then(|p| hosts.get(p))
            .or_else(|| hosts.first());
        let pool_size = db.pools().iter().map(|p| p.max_size()).max().unwrap_or(0);
        let current: usize = db.pools().iter().map(|p| p.sizes().0).sum();
        rows.row(&[
            n(&db.name),
            host.map(|h| h.host.clone()),
            host.map(|h| h.port.to_string()),
            n(&cfg.dbname),
            None,
            n(pool_size),
            n(0),
            n(0),
            cfg.pool_mode.map(|m| m.to_string()),
            n(0),
            n(current),
            n(u8::from(db.gate.is_paused())),
            n(0),
            n(hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(",")),
        ]);
    }
    rows.finish("SHOW");
}

pub fn users(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::new(out, &["name", "pool_mode"]);
    let config = state.config();
    let mut users: Vec<_> = config.users.iter().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    for u in users {
        rows.row(&[n(&u.name), u.pool_mode.map(|m| m.to_string())]);
    }
    rows.finish("SHOW");
}

pub fn lists(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(out, &["list", "items"], "ti");
    let pools: usize = state.databases().values().map(|d| d.users().len()).sum();
    let items: [(&str, usize); 12] = [
        ("databases", state.databases().len()),
        ("users", state.config().users.len()),
        ("pools", pools),
        ("free_clients", 0),
        ("used_clients", state.clients.len()),
        ("login_clients", 0),
        ("free_servers", 0),
        ("used_servers", state.servers.len()),
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ];
    for (k, v) in items {
        rows.row(&[n(k), n(v)]);
    }
    rows.finish("SHOW");
}

/// pgferry's SHOW PINS: clients pinned to their server connection.
pub fn pins(state: &State, out: &mut BytesMut) {
    let mut rows = Rows::typed(
        out,
        &["id", "database", "user", "reason", "since", "seconds"],
        "itttti",
    );
    for c in state.clients.snapshot() {
        if let Some((reason, since)) = c.pin() {
            rows.row(&[
                n(c.id),
                n(&c.database),
                n(&c.user),
                n(reason),
                n(clock::format_utc(since)),
                n(clock::since_us(since) / 1_000_000),
            ]);
        }
    }
    rows.finish("SHOW");
}
