//! What `/metrics` and `/health/ready` report, read from the live state at
//! scrape time: per pool (database, user, node) connection gauges, traffic
//! counters and latency histograms; per node role, health and lag; per
//! database errors, pins and failovers. Every name starts with `pgferry_`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::histogram::HistogramSnapshot;
use crate::metrics::http::Endpoints;
use crate::metrics::{ClientState, ErrorKind};
use crate::state::State;
use crate::topology::Health;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The HTTP endpoints of a running proxy.
pub struct ProxyEndpoints {
    pub state: Arc<State>,
    /// Set while the client listener accepts connections.
    pub accepting: Arc<AtomicBool>,
}

impl Endpoints for ProxyEndpoints {
    fn metrics(&self) -> String {
        render(&self.state)
    }

    fn ready(&self) -> Result<(), String> {
        if !self.accepting.load(Ordering::Relaxed) {
            return Err("the client listener is not accepting".to_owned());
        }
        let dbs = self.state.databases();
        let mut names: Vec<&String> = dbs.keys().collect();
        names.sort();
        for name in names {
            let Some(db) = dbs.get(name) else {
                continue;
            };
            let snap = db.topology.snapshot();
            let up = snap
                .primary
                .and_then(|p| snap.nodes.get(p))
                .is_some_and(|n| n.health == Health::Up);
            if !up {
                return Err(format!("no primary known for database {name}"));
            }
        }
        Ok(())
    }
}

/// The Prometheus text exposition of everything.
pub fn render(state: &Arc<State>) -> String {
    let mut registry = Registry::with_prefix("pgferry");
    registry.register_collector(Box::new(Collector(state.clone())));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        tracing::warn!("metrics encoding failed");
    }
    out
}

struct Collector(Arc<State>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

/// A metric family gathered before encoding.
enum Values {
    Gauge(Vec<(Labels, f64)>),
    Counter(Vec<(Labels, u64)>),
    Histogram(Vec<(Labels, HistogramSnapshot)>),
}

struct Family {
    name: &'static str,
    help: &'static str,
    values: Values,
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in families(&self.0) {
            let kind = match f.values {
                Values::Gauge(_) => MetricType::Gauge,
                Values::Counter(_) => MetricType::Counter,
                Values::Histogram(_) => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            match &f.values {
                Values::Gauge(v) => {
                    for (l, x) in v {
                        metric.encode_family(l)?.encode_gauge(x)?;
                    }
                }
                Values::Counter(v) => {
                    for (l, x) in v {
                        metric
                            .encode_family(l)?
                            .encode_counter::<NoLabelSet, u64, u64>(x, None)?;
                    }
                }
                Values::Histogram(v) => {
                    for (l, h) in v {
                        metric.encode_family(l)?.encode_histogram::<NoLabelSet>(
                            h.sum_secs, h.count, &h.buckets, None,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn families(state: &State) -> Vec<Family> {
    let mut f = pool_families(state);
    f.extend(client_families(state));
    f.extend(node_families(state));
    f
}

fn pool_families(state: &State) -> Vec<Family> {
    let (mut servers, mut xacts, mut queries, mut recv, mut sent) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut xact_time, mut query_time, mut wait_time) = (vec![], vec![], vec![]);
    let (mut q_hist, mut x_hist, mut w_hist) = (vec![], vec![], vec![]);
    for (name, db) in state.databases().iter() {
        for user in &db.users() {
            for (i, pool) in db.user_pools(user).iter().enumerate() {
                let node = db
                    .topology
                    .hosts()
                    .get(i)
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                let l = labels(&[("database", name), ("user", user), ("node", &node)]);
                let (open, idle, _) = pool.sizes();
                let active = pool.in_flight();
                for (st, v) in [
                    ("active", active),
                    ("idle", idle),
                    ("login", open.saturating_sub(idle + active)),
                ] {
                    let mut sl = l.clone();
                    sl.push(("state".into(), st.into()));
                    servers.push((sl, v as f64));
                }
                let t = pool.stats.totals();
                xacts.push((l.clone(), t.xact_count));
                queries.push((l.clone(), t.query_count));
                recv.push((l.clone(), t.received));
                sent.push((l.clone(), t.sent));
                xact_time.push((l.clone(), t.xact_time_us as f64 / 1e6));
                query_time.push((l.clone(), t.query_time_us as f64 / 1e6));
                wait_time.push((l.clone(), t.wait_time_us as f64 / 1e6));
                q_hist.push((l.clone(), pool.stats.query_latency.snapshot()));
                x_hist.push((l.clone(), pool.stats.xact_latency.snapshot()));
                w_hist.push((l, pool.stats.wait_latency.snapshot()));
            }
        }
    }
    let fam = |name, help, values| Family { name, help, values };
    vec![
        fam("server_connections", "Server connections by state (active: lent to a client, idle: in the pool, login: being opened)", Values::Gauge(servers)),
        fam("transactions", "Transactions completed", Values::Counter(xacts)),
        fam("queries", "Requests (queries, extended-protocol batches) answered", Values::Counter(queries)),
        fam("received_bytes", "Bytes received from clients", Values::Counter(recv)),
        fam("sent_bytes", "Bytes sent to clients", Values::Counter(sent)),
        fam("transaction_time_seconds", "Time spent in transactions", Values::Gauge(xact_time)),
        fam("query_time_seconds", "Time spent in queries", Values::Gauge(query_time)),
        fam("pool_wait_time_seconds", "Time clients waited for a server connection", Values::Gauge(wait_time)),
        fam("query_duration_seconds", "Query latency", Values::Histogram(q_hist)),
        fam("transaction_duration_seconds", "Transaction latency", Values::Histogram(x_hist)),
        fam("pool_wait_seconds", "Time from checkout to a server connection", Values::Histogram(w_hist)),
    ]
}

fn client_families(state: &State) -> Vec<Family> {
    // Every (database, user, state) appears, zero or not, so a series never
    // vanishes when its clients leave.
    let mut counts: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    for (name, db) in state.databases().iter() {
        for user in &db.users() {
            for st in [ClientState::Idle, ClientState::Active, ClientState::Waiting] {
                counts.insert((name.clone(), user.to_owned(), st.as_str()), 0);
            }
        }
    }
    let mut pinned: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for c in state.clients.snapshot() {
        *counts
            .entry((
                c.database.to_string(),
                c.user.to_string(),
                c.state().as_str(),
            ))
            .or_insert(0) += 1;
        if let Some((reason, _)) = c.pin() {
            *pinned.entry((c.database.to_string(), reason)).or_insert(0) += 1;
        }
    }
    let clients = counts
        .iter()
        .map(|((d, u, s), v)| {
            (
                labels(&[("database", d), ("user", u), ("state", s)]),
                *v as f64,
            )
        })
        .collect();
    let pinned = pinned
        .iter()
        .map(|((d, r), v)| (labels(&[("database", d), ("reason", r)]), *v as f64))
        .collect();
    let pins = state
        .pin_counts()
        .into_iter()
        .map(|(r, v)| (labels(&[("reason", r)]), v))
        .collect();
    let mut errors = vec![];
    for (name, db) in state.databases().iter() {
        for k in ErrorKind::ALL {
            errors.push((
                labels(&[("database", name), ("kind", k.as_str())]),
                db.errors.get(k),
            ));
        }
    }
    vec![
        Family { name: "client_connections", help: "Logged-in clients by state (idle, active: linked to a server connection, waiting: for one)", values: Values::Gauge(clients) },
        Family { name: "pinned_clients", help: "Clients pinned to their server connection now, by reason", values: Values::Gauge(pinned) },
        Family { name: "pins", help: "Clients pinned to a server connection since start, by reason", values: Values::Counter(pins) },
        Family { name: "client_errors", help: "Errors clients were given, by kind", values: Values::Counter(errors) },
    ]
}

fn node_families(state: &State) -> Vec<Family> {
    let (mut role, mut health, mut lag_s, mut lag_b) = (vec![], vec![], vec![], vec![]);
    let (mut failovers, mut holds) = (vec![], vec![]);
    for (name, db) in state.databases().iter() {
        let snap = db.topology.snapshot();
        for (host, n) in db.topology.hosts().iter().zip(&snap.nodes) {
            let node = host.to_string();
            let l = labels(&[("database", name), ("node", &node)]);
            for r in ["primary", "replica"] {
                let is = n.role.is_some_and(|x| x.to_string() == r);
                let mut rl = l.clone();
                rl.push(("role".into(), r.into()));
                role.push((rl, f64::from(u8::from(is))));
            }
            for h in ["up", "suspect", "down"] {
                let mut hl = l.clone();
                hl.push(("health".into(), h.into()));
                health.push((hl, f64::from(u8::from(n.health.to_string() == h))));
            }
            if let Some(lag) = n.lag {
                lag_s.push((l.clone(), lag.as_secs_f64()));
            }
            if let Some(b) = n.lag_bytes {
                lag_b.push((l, b as f64));
            }
        }
        let dl = labels(&[("database", name)]);
        failovers.push((dl.clone(), db.topology.failovers_finished()));
        holds.push((dl, db.topology.hold_latency.snapshot()));
    }
    vec![
        Family {
            name: "node_role",
            help: "1 for the node's current role",
            values: Values::Gauge(role),
        },
        Family {
            name: "node_health",
            help: "1 for the node's current health",
            values: Values::Gauge(health),
        },
        Family {
            name: "replica_lag_seconds",
            help: "Replica replay lag",
            values: Values::Gauge(lag_s),
        },
        Family {
            name: "replica_lag_bytes",
            help: "Replica replay lag in WAL bytes",
            values: Values::Gauge(lag_b),
        },
        Family {
            name: "failovers",
            help: "Failovers finished (primary lost, then a primary adopted)",
            values: Values::Counter(failovers),
        },
        Family {
            name: "failover_hold_seconds",
            help: "How long clients were held waiting for a primary",
            values: Values::Histogram(holds),
        },
    ]
}
