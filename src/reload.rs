//! Config reload (SIGHUP, or RELOAD on the admin console), in numbered steps:
//!
//! 1. Load and validate the file (every problem reported); read `auth_file`.
//!    Anything wrong: the running config stays, the reason goes back.
//! 2. TLS certificates (the only step that can still fail; nothing is
//!    applied before it).
//! 3. Keys that need a restart are reported, and keep their old values.
//! 4. Databases: unchanged ones are updated in place (pool sizes and ages,
//!    limits, users and passwords: a pool whose server login changed is
//!    replaced and the old one drains); a database whose hosts, dbname, pool
//!    modes or health settings changed is rebuilt; added ones start their
//!    monitor; removed and replaced ones drain (their clients carry on until
//!    they leave, then the monitor stops).
//! 5. Users, function policy, run-time settings, then the config itself are
//!    swapped, and the generation is bumped so sessions re-read their
//!    database and routing settings at their next transaction.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::userlist::UserlistEntry;
use crate::config::Config;
use crate::state::{self, Database, PoolContext, State};

/// What a reload did, for the log and the RELOAD caller.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub notes: Vec<String>,
    /// Keys whose new value needs a restart (the old value stays in force).
    pub needs_restart: Vec<String>,
}

/// A reload asked for by the admin console; the answer comes back on
/// `reply` (Err: every problem, one per line).
pub struct ReloadRequest {
    pub reply: oneshot::Sender<Result<ReloadReport, String>>,
}

/// Where reloads are requested; the receiving end is run by the app.
pub struct ReloadChannel {
    tx: mpsc::UnboundedSender<ReloadRequest>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<ReloadRequest>>>,
}

impl Default for ReloadChannel {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        ReloadChannel {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl ReloadChannel {
    /// Asks for a reload and waits for its outcome.
    pub async fn request(&self) -> Result<ReloadReport, String> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(ReloadRequest { reply }).is_err() {
            return Err("reload is not available".to_owned());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("reload is not available (no config file)".to_owned()))
    }

    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<ReloadRequest>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Runs reloads: SIGHUP and console requests, one at a time.
pub struct Reloader {
    pub path: PathBuf,
    pub state: Arc<State>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

impl Reloader {
    pub async fn run(self) {
        let Some(mut requests) = self.state.reloads.take_receiver() else {
            return;
        };
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                req = requests.recv() => {
                    let Some(req) = req else { return };
                    let _ = req.reply.send(self.reload());
                }
                _ = hangup => {
                    let _ = self.reload();
                }
            }
        }
    }

    /// One reload; logs its outcome.
    pub fn reload(&self) -> Result<ReloadReport, String> {
        let result = load(&self.path).and_then(|(config, users)| {
            apply(&self.state, config, users, &self.tracker, &self.shutdown)
        });
        match &result {
            Ok(report) => tracing::info!(
                notes = ?report.notes,
                needs_restart = ?report.needs_restart,
                "config reloaded"
            ),
            Err(problems) => tracing::error!(
                path = %self.path.display(),
                %problems,
                "config reload rejected; the running config stays"
            ),
        }
        result
    }
}

/// Step 1: the new config and its auth_file users, or every problem.
fn load(path: &std::path::Path) -> Result<(Config, Vec<UserlistEntry>), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let users = match &config.proxy.auth_file {
        Some(file) => {
            crate::auth::userlist::load(file)
                .map_err(|e| format!("cannot read auth_file {}: {e}", file.display()))?
                .entries
        }
        None => Vec::new(),
    };
    Ok((config, users))
}

/// Steps 2–5 (see the module docs).
pub fn apply(
    state: &Arc<State>,
    new: Config,
    file_users: Vec<UserlistEntry>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<ReloadReport, String> {
    let old = state.config();
    let mut report = ReloadReport::default();

    // 2. TLS files: on error nothing has changed yet.
    state
        .tls
        .reload(&new.tls)
        .map_err(|e| format!("tls: {e}"))?;

    // 3. Restart-only keys keep their running values.
    let mut new = new;
    restart_only(&old, &mut new, &mut report);

    // 4. Databases.
    let users = state::build_users(&new, &file_users);
    for name in users.keys() {
        // Creates the credential slot of a new user.
        let _ = state.passthrough(name);
    }
    let passthrough = state.passthrough_snapshot();
    let old_dbs = state.databases();
    let mut dbs: HashMap<String, Arc<Database>> = HashMap::new();
    for name in new.databases.keys() {
        match old_dbs.get(name) {
            Some(db) if same_identity(&old, &new, name) => {
                let changed = update_database(state, db, &new, name, &passthrough);
                if changed > 0 {
                    report.notes.push(format!(
                        "database {name}: {changed} pool(s) replaced (login changed)"
                    ));
                }
                dbs.insert(name.clone(), db.clone());
            }
            previous => {
                let db = {
                    let mut limits = state.user_limits();
                    Arc::new(state::build_database(
                        &new,
                        name,
                        &passthrough,
                        &mut limits,
                        &state.tls,
                        &state.servers,
                    ))
                };
                db.topology.spawn_monitor(tracker, db.monitor_stop.clone());
                if let Some(old_db) = previous {
                    report.notes.push(format!(
                        "database {name}: rebuilt (its old connections drain)"
                    ));
                    drain(old_db.clone(), tracker, shutdown);
                } else {
                    report.notes.push(format!("database {name}: added"));
                }
                dbs.insert(name.clone(), db);
            }
        }
    }
    for (name, db) in old_dbs.iter() {
        if !new.databases.contains_key(name) {
            report
                .notes
                .push(format!("database {name}: removed (its clients drain)"));
            drain(db.clone(), tracker, shutdown);
        }
    }
    drop(old_dbs);

    // 5. Swap.
    let added: Vec<&String> = users
        .keys()
        .filter(|u| !state.users().contains_key(*u))
        .collect();
    if !added.is_empty() {
        report.notes.push(format!("users added: {added:?}"));
    }
    state
        .settings
        .set_query_wait_timeout(new.proxy.query_wait_timeout);
    state
        .settings
        .set_default_pool_size(new.proxy.default_pool_size);
    state.swap(new, users, dbs);
    if report.notes.is_empty() {
        report.notes.push("no database or user changed".to_owned());
    }
    Ok(report)
}

/// Keys read once at startup: a new value is reported and the old one kept.
fn restart_only(old: &Config, new: &mut Config, report: &mut ReloadReport) {
    macro_rules! keep {
        ($($path:ident).+, $name:expr) => {
            if old.$($path).+ != new.$($path).+ {
                report.needs_restart.push($name.to_owned());
                new.$($path).+ = old.$($path).+.clone();
            }
        };
    }
    keep!(proxy.listen, "proxy.listen");
    keep!(proxy.workers, "proxy.workers");
    keep!(proxy.cpu_policy, "proxy.cpu_policy");
    keep!(proxy.nice, "proxy.nice");
    keep!(proxy.so_reuseport, "proxy.so_reuseport");
    keep!(proxy.peer_id, "proxy.peer_id");
    keep!(proxy.peer_listen, "proxy.peer_listen");
    keep!(proxy.max_client_conn, "proxy.max_client_conn");
    keep!(proxy.metrics_listen, "proxy.metrics_listen");
    keep!(proxy.auth_cache_ttl, "proxy.auth_cache_ttl");
    keep!(proxy.auth_failure_delay, "proxy.auth_failure_delay");
    keep!(proxy.auth_failure_max_delay, "proxy.auth_failure_max_delay");
    keep!(log.level, "log.level");
    keep!(log.format, "log.format");
}

/// Whether database `name` can be updated in place: same servers, pool
/// modes and health settings (else it is rebuilt).
fn same_identity(old: &Config, new: &Config, name: &str) -> bool {
    let (Some(a), Some(b)) = (old.databases.get(name), new.databases.get(name)) else {
        return false;
    };
    let modes = |c: &Config| -> Vec<(String, crate::config::PoolMode)> {
        let mut v: Vec<_> = c
            .users
            .iter()
            .map(|u| (u.name.clone(), c.pool_mode_for(name, &u.name)))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let monitor = |c: &Config| {
        c.proxy
            .monitor_user
            .as_deref()
            .and_then(|m| c.user(m))
            .map(|u| (u.name.clone(), u.password.clone()))
    };
    let health = |c: &Config, r: &crate::config::RoutingConfig| {
        format!(
            "{:?}",
            crate::topology::HealthSettings::from_config(&c.proxy, r)
        )
    };
    a.hosts == b.hosts
        && a.dbname == b.dbname
        && a.pool_mode == b.pool_mode
        && old.proxy.pool_mode == new.proxy.pool_mode
        && modes(old) == modes(new)
        && monitor(old) == monitor(new)
        && old.proxy.server_connect_timeout == new.proxy.server_connect_timeout
        && old.proxy.tcp_keepalive == new.proxy.tcp_keepalive
        && health(old, &a.routing) == health(new, &b.routing)
}

/// Updates a database in place; returns how many users' pools were
/// replaced because their server login changed.
fn update_database(
    state: &State,
    db: &Arc<Database>,
    new: &Config,
    name: &str,
    passthrough: &HashMap<String, Arc<crate::auth::passthrough::PassThrough>>,
) -> usize {
    let cfg = &new.databases[name];
    let cap = cfg
        .max_db_connections
        .unwrap_or(new.proxy.max_db_connections);
    db.set_db_limit(cap);
    db.set_default_settings(state::default_settings(new, name));
    let mut replaced = 0;
    let mut limits = state.user_limits();
    let cx = PoolContext {
        passthrough,
        tls: &state.tls,
        servers: &state.servers,
        db_limits: db.db_limits(),
    };
    let mut keep: Vec<String> = Vec::new();
    for user in &new.users {
        keep.push(user.name.clone());
        let current = db.user_pools(&user.name);
        let same_login = current
            .first()
            .is_some_and(|p| p.spec().password == user.password);
        if same_login {
            let settings = state::pool_settings(new, name, &user.name);
            for p in &current {
                p.apply(&settings);
            }
            let user_cap = user
                .max_user_connections
                .unwrap_or(new.proxy.max_user_connections);
            for h in &cfg.hosts {
                if let Some(l) = limits.get(&(user.name.clone(), h.clone())) {
                    l.set_cap(user_cap);
                }
            }
        } else {
            let pools = state::user_pools(new, name, user, &cx, &mut limits);
            if let Some(old) = db.replace_pools(&user.name, pools) {
                replaced += 1;
                for p in old {
                    p.close();
                }
            }
        }
    }
    // Users no longer configured: those still known (auth_file,
    // auth_query) keep their pools with the default settings; others are
    // closed (their clients' next checkout fails like an unknown user's).
    let defaults = state::default_settings(new, name);
    for user in db.users() {
        if keep.contains(&user) {
            continue;
        }
        let known_elsewhere = new.proxy.auth_file.is_some() || new.proxy.auth_user.is_some();
        if known_elsewhere {
            for p in db.user_pools(&user) {
                p.apply(&defaults);
            }
        } else if let Some(old) = db.remove_pools(&user) {
            for p in old {
                p.close();
            }
        }
    }
    replaced
}

/// A database no longer served (removed, or replaced by a rebuilt one):
/// once no session holds it, its monitor stops and its pools close.
fn drain(db: Arc<Database>, tracker: &TaskTracker, shutdown: &CancellationToken) {
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        loop {
            // This task's reference is the last one.
            if Arc::strong_count(&db) <= 1 {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracing::info!(database = %db.name, "drained database closed");
        db.monitor_stop.cancel();
        for pool in db.pools() {
            pool.close();
        }
    });
}
