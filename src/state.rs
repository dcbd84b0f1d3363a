//! The shared runtime state built from one validated config: users with
//! their authentication material, and per database its topology and pools.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::{ArcSwap, Guard};
use std::time::Duration;

use rand::RngCore;

use crate::auth::md5;
use crate::auth::passthrough::PassThrough;
use crate::auth::secret::ScramSecret;
use crate::auth::userlist::UserlistEntry;
use crate::client::cancel::CancelRegistry;
use crate::client::ratelimit::FailureLimiter;
use crate::config::{Config, Password, PoolMode};
use crate::metrics::stats::StatsWindow;
use crate::metrics::{ClientEntry, ErrorCounts, Registry, ServerEntry};
use crate::pool::{Limit, PauseGate, Pool, PoolSettings};
use crate::router::classify::FunctionPolicy;
use crate::server::ConnectSpec;
use crate::tls::{TlsError, TlsState};
use crate::topology::{HealthSettings, Topology};

/// What pgferry can verify a client's password against.
#[derive(Clone)]
pub struct UserAuth {
    pub name: String,
    pub scram: Option<ScramSecret>,
    /// The "md5..." hash.
    pub md5: Option<String>,
    /// The stored form, for logging in to Postgres as this user.
    pub password: Option<Password>,
}

/// The md5 hash is a password equivalent: never printed.
impl fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAuth")
            .field("name", &self.name)
            .field("scram", &self.scram)
            .field("md5", &self.md5.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password)
            .finish()
    }
}

impl UserAuth {
    /// Classifies a stored password the way `[[users]]` does (plaintext,
    /// `md5...`, `SCRAM-SHA-256$...`). An unparsable SCRAM secret leaves the
    /// user without one (its logins fail like a wrong password).
    pub fn from_stored(name: &str, password: &str) -> UserAuth {
        user_auth(name, Password::parse(password).ok().as_ref())
    }

    pub fn from_password(name: &str, password: &Password) -> UserAuth {
        user_auth(name, Some(password))
    }
}

pub struct Database {
    /// Shared by every client's registry entries (not copied per client).
    pub name: Arc<str>,
    pub topology: Arc<Topology>,
    /// PAUSE / RESUME of this database.
    pub gate: PauseGate,
    /// Per user: one pool per node, indexed like the hosts list. Users from
    /// `auth_file` and `auth_query` get theirs at their first login.
    pools: RwLock<HashMap<Arc<str>, Vec<Arc<Pool>>>>,
    pool_modes: HashMap<String, PoolMode>,
    /// Pool mode and size of users without settings of their own.
    default_mode: PoolMode,
    default_settings: RwLock<PoolSettings>,
    /// `max_db_connections`, one limit per host.
    db_limits: Vec<Arc<Limit>>,
    /// Stops this database's health monitor (at shutdown, or once a
    /// database removed or replaced by a reload has drained).
    pub monitor_stop: tokio_util::sync::CancellationToken,
    /// Errors this database's clients were given, by kind.
    pub errors: ErrorCounts,
    /// Samples behind SHOW STATS' averages.
    pub stats_window: StatsWindow,
    /// Where the pools' server connections are listed.
    servers: Arc<Registry<ServerEntry>>,
}

impl Database {
    pub fn pool(&self, user: &str, node: usize) -> Option<Arc<Pool>> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.get(user).and_then(|p| p.get(node)).cloned()
    }

    pub fn pool_mode(&self, user: &str) -> Option<PoolMode> {
        Some(
            self.pool_modes
                .get(user)
                .copied()
                .unwrap_or(self.default_mode),
        )
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.values().flatten().cloned().collect()
    }

    pub(crate) fn db_limits(&self) -> &[Arc<Limit>] {
        &self.db_limits
    }

    pub(crate) fn set_db_limit(&self, cap: usize) {
        for l in &self.db_limits {
            l.set_cap(cap);
        }
    }

    pub(crate) fn set_default_settings(&self, settings: PoolSettings) {
        *self
            .default_settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// Puts `pools` in place of `user`'s; returns the old ones.
    pub(crate) fn replace_pools(
        &self,
        user: &str,
        pools: Vec<Arc<Pool>>,
    ) -> Option<Vec<Arc<Pool>>> {
        let mut map = self.pools.write().unwrap_or_else(|p| p.into_inner());
        map.insert(Arc::from(user), pools)
    }

    pub(crate) fn remove_pools(&self, user: &str) -> Option<Vec<Arc<Pool>>> {
        let mut map = self.pools.write().unwrap_or_else(|p| p.into_inner());
        map.remove(user)
    }

    /// Users with pools here, sorted.
    pub fn users(&self) -> Vec<String> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = pools.keys().map(|k| k.to_string()).collect();
        v.sort_unstable();
        v
    }

    /// `user`'s name as this database's pools hold it: one copy shared by
    /// all of the user's clients instead of a string each.
    pub fn user_name(&self, user: &str) -> Arc<str> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        match pools.get_key_value(user) {
            Some((name, _)) => name.clone(),
            None => Arc::from(user),
        }
    }

    /// The pools of `user`, one per node.
    pub fn user_pools(&self, user: &str) -> Vec<Arc<Pool>> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.get(user).cloned().unwrap_or_default()
    }

    /// Creates the pools of a user that has none yet (default settings).
    fn ensure_pools(
        &self,
        user: &str,
        spec: impl Fn(&crate::config::HostAddr) -> ConnectSpec,
        user_limit: impl Fn(&crate::config::HostAddr) -> Arc<Limit>,
    ) {
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        if pools.contains_key(user) {
            return;
        }
        let per_node = self
            .topology
            .hosts()
            .iter()
            .zip(&self.db_limits)
            .map(|(h, db_limit)| {
                Pool::with_limits(
                    spec(h),
                    &self
                        .default_settings
                        .read()
                        .unwrap_or_else(|p| p.into_inner()),
                    vec![db_limit.clone(), user_limit(h)],
                    &self.name,
                    self.servers.clone(),
                )
            })
            .collect();
        pools.insert(Arc::from(user), per_node);
    }
}

/// Settings the admin console's SET changes while running; everything
/// that reads them reads here, not the config.
#[derive(Debug)]
pub struct RuntimeSettings {
    query_wait_timeout_ms: AtomicU64,
    default_pool_size: AtomicU64,
}

impl RuntimeSettings {
    fn new(config: &Config) -> RuntimeSettings {
        RuntimeSettings {
            query_wait_timeout_ms: AtomicU64::new(
                config.proxy.query_wait_timeout.as_millis() as u64
            ),
            default_pool_size: AtomicU64::new(config.proxy.default_pool_size as u64),
        }
    }

    pub fn default_pool_size(&self) -> usize {
        self.default_pool_size.load(Ordering::Relaxed) as usize
    }

    pub fn set_default_pool_size(&self, n: usize) {
        self.default_pool_size.store(n as u64, Ordering::Relaxed);
    }

    pub fn query_wait_timeout(&self) -> Duration {
        Duration::from_millis(self.query_wait_timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_query_wait_timeout(&self, d: Duration) {
        self.query_wait_timeout_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }
}

pub struct State {
    /// The config in force; swapped whole by a reload.
    config: ArcSwap<Config>,
    /// `[[users]]` and `auth_file` users (`[[users]]` win on a name clash).
    users: ArcSwap<HashMap<String, UserAuth>>,
    /// Per user: credentials for server connections learned at run time
    /// (SCRAM ClientKeys of logged-in clients, md5 hashes); shared with the
    /// user's pools.
    passthrough: Mutex<HashMap<String, Arc<PassThrough>>>,
    /// Answers of `auth_query`, found or not, for `auth_cache_ttl`.
    pub auth_cache: crate::auth::cache::AuthCache,
    /// Delays failed logins per client address.
    pub login_limiter: FailureLimiter,
    databases: ArcSwap<HashMap<String, Arc<Database>>>,
    /// Bumped by every reload; sessions compare it to re-read their database
    /// and routing settings at their next transaction.
    generation: AtomicU64,
    pub cancels: Arc<CancelRegistry>,
    /// Key for fake SCRAM salts of unknown users (see ScramSecret::mock).
    pub mock_key: [u8; 32],
    /// What sessions read on every request, rebuilt with each config.
    knobs: ArcSwap<Knobs>,
    /// TLS acceptor and connector; `tls.reload(..)` swaps certificates
    /// without touching established connections.
    pub tls: Arc<TlsState>,
    /// Clients pinned to their server connection, by reason (ever).
    pins: Mutex<HashMap<&'static str, u64>>,
    /// `max_user_connections` limits, shared by a user's pools in every
    /// database.
    user_limits: Mutex<UserLimits>,
    /// Shutdown requests and the drain token sessions watch.
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// Where RELOAD asks for a config reload.
    pub reloads: crate::reload::ReloadChannel,
    /// Logged-in clients (SHOW CLIENTS, KILL_CLIENT).
    pub clients: Arc<Registry<ClientEntry>>,
    /// Open server connections (SHOW SERVERS).
    pub servers: Arc<Registry<ServerEntry>>,
    pub settings: RuntimeSettings,
}

impl State {
    /// Counts a client pinned for `reason` (pins are rare; a mutex is fine).
    pub fn count_pin(&self, reason: &'static str) {
        *self
            .pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_insert(0) += 1;
    }

    /// Pins so far, by reason.
    pub fn pin_counts(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    }

    /// Builds the state from a config alone (no `auth_file` users).
    pub fn build(config: Config) -> Result<State, TlsError> {
        State::build_with_users(config, Vec::new())
    }

    /// Builds the state from a config and the users of its `auth_file`
    /// (already read; see [`crate::auth::userlist`]).
    pub fn build_with_users(
        config: Config,
        file_users: Vec<UserlistEntry>,
    ) -> Result<State, TlsError> {
        let peer_id = config.proxy.peer_id;
        let config = Arc::new(config);
        let tls = Arc::new(TlsState::new(&config.tls)?);
        let users = build_users(&config, &file_users);
        let passthrough: HashMap<String, Arc<PassThrough>> = users
            .values()
            .map(|u| {
                let p = PassThrough::default();
                p.set_md5(u.md5.clone());
                (u.name.clone(), Arc::new(p))
            })
            .collect();
        let mut user_limits = UserLimits::new();
        let servers: Arc<Registry<ServerEntry>> = Arc::default();
        let settings = RuntimeSettings::new(&config);
        let databases: HashMap<String, Arc<Database>> = config
            .databases
            .keys()
            .map(|name| {
                let db = build_database(
                    &config,
                    name,
                    &passthrough,
                    &mut user_limits,
                    &tls,
                    &servers,
                );
                (name.clone(), Arc::new(db))
            })
            .collect();
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        let auth_cache = crate::auth::cache::AuthCache::new(config.proxy.auth_cache_ttl);
        let login_limiter = FailureLimiter::new(
            config.proxy.auth_failure_delay,
            config.proxy.auth_failure_max_delay,
        );
        let knobs = Knobs::new(&config);
        Ok(State {
            config: ArcSwap::new(config),
            users: ArcSwap::from_pointee(users),
            passthrough: Mutex::new(passthrough),
            auth_cache,
            login_limiter,
            databases: ArcSwap::from_pointee(databases),
            generation: AtomicU64::new(0),
            cancels: Arc::new(CancelRegistry::for_peer(peer_id)),
            mock_key,
            knobs: ArcSwap::from_pointee(knobs),
            tls,
            pins: Mutex::new(HashMap::new()),
            user_limits: Mutex::new(user_limits),
            lifecycle: crate::lifecycle::Lifecycle::default(),
            reloads: crate::reload::ReloadChannel::default(),
            clients: Arc::default(),
            servers,
            settings,
        })
    }
}

impl State {
    /// The config in force (cheap: no reference count is touched).
    pub fn config(&self) -> Guard<Arc<Config>> {
        self.config.load()
    }

    /// Users from `[[users]]` and `auth_file`.
    pub fn users(&self) -> Guard<Arc<HashMap<String, UserAuth>>> {
        self.users.load()
    }

    pub fn databases(&self) -> Guard<Arc<HashMap<String, Arc<Database>>>> {
        self.databases.load()
    }

    pub fn database(&self, name: &str) -> Option<Arc<Database>> {
        self.databases.load().get(name).cloned()
    }

    /// The settings sessions read per request (see [`Knobs`]).
    pub fn knobs(&self) -> Arc<Knobs> {
        self.knobs.load_full()
    }

    /// Bumped by every reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs a reloaded config with its users and databases.
    pub(crate) fn swap(
        &self,
        config: Config,
        users: HashMap<String, UserAuth>,
        databases: HashMap<String, Arc<Database>>,
    ) {
        self.knobs.store(Arc::new(Knobs::new(&config)));
        self.users.store(Arc::new(users));
        self.databases.store(Arc::new(databases));
        self.config.store(Arc::new(config));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Every user's credential slot, for building pools.
    pub(crate) fn passthrough_snapshot(&self) -> HashMap<String, Arc<PassThrough>> {
        self.passthrough
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn user_limits(&self) -> std::sync::MutexGuard<'_, UserLimits> {
        self.user_limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run-time credential slot of `user`, created on first use.
    pub fn passthrough(&self, user: &str) -> Arc<PassThrough> {
        let mut map = self.passthrough.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(user.to_owned()).or_default().clone()
    }

    /// Makes sure `user` has pools in `database` (users from `auth_file` or
    /// `auth_query` get default pool settings); call after a successful login.
    pub fn ensure_pools(&self, database: &str, user: &str) {
        let Some(db) = self.database(database) else {
            return;
        };
        let config = self.config();
        let Some(db_config) = config.databases.get(database) else {
            return;
        };
        let passthrough = self.passthrough(user);
        let user_limit = |node: &crate::config::HostAddr| {
            let mut limits = self.user_limits.lock().unwrap_or_else(|p| p.into_inner());
            limits
                .entry((user.to_owned(), node.clone()))
                .or_insert_with(|| Limit::new(self.config().proxy.max_user_connections))
                .clone()
        };
        let spec = |node: &crate::config::HostAddr| ConnectSpec {
            node: node.clone(),
            user: user.to_owned(),
            database: db_config.dbname.clone(),
            password: self.users().get(user).and_then(|u| u.password.clone()),
            passthrough: Some(passthrough.clone()),
            connect_timeout: self.config().proxy.server_connect_timeout,
            keepalive: self.config().proxy.tcp_keepalive,
            tls: self.tls.clone(),
        };
        db.ensure_pools(user, spec, user_limit);
    }
}

/// `[[users]]` over `auth_file` entries of the same name.
pub(crate) fn build_users(
    config: &Config,
    file_users: &[UserlistEntry],
) -> HashMap<String, UserAuth> {
    let mut users: HashMap<String, UserAuth> = file_users
        .iter()
        .map(|u| (u.name.clone(), UserAuth::from_stored(&u.name, &u.password)))
        .collect();
    for u in &config.users {
        users.insert(u.name.clone(), user_auth(&u.name, u.password.as_ref()));
    }
    users
}

/// Settings every session reads on every request, copied out of the config
/// once per reload and shared: an ArcSwap load per read would cost more, and
/// a copy per session would cost memory.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub max_message_size: usize,
    pub client_idle_timeout: std::time::Duration,
    pub pin_error: bool,
    pub query_timeout: std::time::Duration,
    pub idle_transaction_timeout: std::time::Duration,
    pub server_connect_timeout: std::time::Duration,
    pub max_prepared_statements: usize,
    pub cache_unnamed_statements: bool,
    /// Which function calls make a statement a write for `auto` routing.
    pub policy: FunctionPolicy,
    /// Unique to this copy of the knobs (a process-wide count): the router's
    /// memo of classified texts (`router::memo`) keeps facts computed under
    /// other settings apart.
    pub memo_key: u64,
}

impl Knobs {
    fn new(config: &Config) -> Knobs {
        let p = &config.proxy;
        Knobs {
            max_message_size: p.max_message_size,
            client_idle_timeout: p.client_idle_timeout,
            pin_error: p.pin_policy == crate::config::PinPolicy::Error,
            query_timeout: p.query_timeout,
            idle_transaction_timeout: p.idle_transaction_timeout,
            server_connect_timeout: p.server_connect_timeout,
            max_prepared_statements: p.max_prepared_statements,
            cache_unnamed_statements: p.cache_unnamed_statements,
            policy: function_policy(p),
            memo_key: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }
}

pub(crate) fn function_policy(proxy: &crate::config::ProxyConfig) -> FunctionPolicy {
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    match (&proxy.route_allow_functions, &proxy.route_deny_functions) {
        (Some(allow), _) => FunctionPolicy::allow_list(&refs(allow)),
        (None, Some(deny)) => FunctionPolicy::deny_list(&refs(deny)),
        (None, None) => FunctionPolicy::default(),
    }
}

fn user_auth(name: &str, password: Option<&Password>) -> UserAuth {
    let (scram, md5) = match password {
        Some(Password::Plain(p)) => (
            Some(ScramSecret::generate(p)),
            Some(md5::password_hash(name, p)),
        ),
        Some(Password::Md5(h)) => (None, Some(h.clone())),
        Some(Password::Scram(s)) => (ScramSecret::parse(s).ok(), None),
        None => (None, None),
    };
    UserAuth {
        name: name.to_owned(),
        scram,
        md5,
        password: password.cloned(),
    }
}

fn spec(
    config: &Config,
    dbname: &str,
    user: &crate::config::UserConfig,
    node: &crate::config::HostAddr,
    passthrough: &HashMap<String, Arc<PassThrough>>,
    tls: &Arc<TlsState>,
) -> ConnectSpec {
    ConnectSpec {
        node: node.clone(),
        user: user.name.clone(),
        database: dbname.to_owned(),
        password: user.password.clone(),
        passthrough: passthrough.get(&user.name).cloned(),
        connect_timeout: config.proxy.server_connect_timeout,
        keepalive: config.proxy.tcp_keepalive,
        tls: tls.clone(),
    }
}

/// `max_user_connections` limits, one per (user, host), shared by the pools
/// of every database.
pub(crate) type UserLimits = HashMap<(String, crate::config::HostAddr), Arc<Limit>>;

/// The sizes and ages of the pool of `user` in database `db`.
pub fn pool_settings(config: &Config, db: &str, user: &str) -> PoolSettings {
    let p = &config.proxy;
    PoolSettings {
        size: config.pool_size_for(db, user),
        reserve_size: p.reserve_pool_size,
        reserve_timeout: p.reserve_pool_timeout,
        lifetime: p.server_lifetime,
        idle_timeout: p.server_idle_timeout,
    }
}

/// What the pools of a database share.
pub(crate) struct PoolContext<'a> {
    pub passthrough: &'a HashMap<String, Arc<PassThrough>>,
    pub tls: &'a Arc<TlsState>,
    pub servers: &'a Arc<Registry<ServerEntry>>,
    /// `max_db_connections`, one per host.
    pub db_limits: &'a [Arc<Limit>],
}

/// The pools (one per host) of a `[[users]]` user in database `name`.
pub(crate) fn user_pools(
    config: &Config,
    name: &str,
    user: &crate::config::UserConfig,
    cx: &PoolContext<'_>,
    user_limits: &mut UserLimits,
) -> Vec<Arc<Pool>> {
    let db = &config.databases[name];
    let settings = pool_settings(config, name, &user.name);
    let user_cap = user
        .max_user_connections
        .unwrap_or(config.proxy.max_user_connections);
    db.hosts
        .iter()
        .zip(cx.db_limits)
        .map(|(h, db_limit)| {
            let user_limit = user_limits
                .entry((user.name.clone(), h.clone()))
                .or_insert_with(|| Limit::new(user_cap))
                .clone();
            user_limit.set_cap(user_cap);
            Pool::with_limits(
                spec(config, &db.dbname, user, h, cx.passthrough, cx.tls),
                &settings,
                vec![db_limit.clone(), user_limit],
                name,
                cx.servers.clone(),
            )
        })
        .collect()
}

/// Pool settings of users without their own (`auth_file`, `auth_query`).
pub(crate) fn default_settings(config: &Config, name: &str) -> PoolSettings {
    let db = &config.databases[name];
    PoolSettings {
        size: db.pool_size.unwrap_or(config.proxy.default_pool_size),
        ..pool_settings(config, name, "")
    }
}

pub(crate) fn build_database(
    config: &Config,
    name: &str,
    passthrough: &HashMap<String, Arc<PassThrough>>,
    user_limits: &mut UserLimits,
    tls: &Arc<TlsState>,
    servers: &Arc<Registry<ServerEntry>>,
) -> Database {
    let db = &config.databases[name];
    let monitor = config
        .proxy
        .monitor_user
        .as_deref()
        .and_then(|m| config.user(m))
        .or_else(|| config.users.first());
    let mut pools = HashMap::new();
    let mut pool_modes = HashMap::new();
    let db_cap = db
        .max_db_connections
        .unwrap_or(config.proxy.max_db_connections);
    let db_limits: Vec<Arc<Limit>> = db.hosts.iter().map(|_| Limit::new(db_cap)).collect();
    for user in &config.users {
        let per_node = user_pools(
            config,
            name,
            user,
            &PoolContext {
                passthrough,
                tls,
                servers,
                db_limits: &db_limits,
            },
            user_limits,
        );
        pools.insert(Arc::from(user.name.as_str()), per_node);
        pool_modes.insert(user.name.clone(), config.pool_mode_for(name, &user.name));
    }
    let probe_spec = match monitor {
        Some(u) => spec(config, &db.dbname, u, &db.hosts[0], passthrough, tls),
        None => ConnectSpec {
            node: db.hosts[0].clone(),
            user: String::new(),
            database: db.dbname.clone(),
            password: None,
            passthrough: None,
            connect_timeout: config.proxy.server_connect_timeout,
            keepalive: false,
            tls: tls.clone(),
        },
    };
    Database {
        name: Arc::from(name),
        gate: PauseGate::default(),
        topology: Topology::new(
            name.to_owned(),
            db.hosts.clone(),
            probe_spec,
            HealthSettings::from_config(&config.proxy, &db.routing),
        ),
        pools: RwLock::new(pools),
        pool_modes,
        default_mode: db.pool_mode.unwrap_or(config.proxy.pool_mode),
        default_settings: RwLock::new(default_settings(config, name)),
        monitor_stop: tokio_util::sync::CancellationToken::new(),
        db_limits,
        errors: ErrorCounts::default(),
        stats_window: StatsWindow::default(),
        servers: servers.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SCRAM: &str = "SCRAM-SHA-256$4096:cGdmZXJyeS1leGFtcGxlIQ==$\
        f0KxauqiB4dlKIK5oTDo2lCFe7OyoLsXSr3fR5Lq/nM=:LfLAfRXRD4VbTMj8pbekYwdA7lQPvI362RRdVFjSuD0=";

    fn file_user(name: &str, password: &str) -> UserlistEntry {
        UserlistEntry {
            name: name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn config_users_win_over_auth_file_and_file_users_get_pools_on_demand() {
        let config = Config::parse(
            "[[users]]\nname = \"app\"\npassword = \"from-config\"\n\
             [databases.db]\nhosts = [\"127.0.0.1:1\"]\npool_size = 3\npool_mode = \"session\"\n",
        )
        .unwrap();
        let state = State::build_with_users(
            config,
            vec![
                file_user("app", "from-file"),
                file_user("filer", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ],
        )
        .unwrap();
        let app = &state.users()["app"];
        assert_eq!(
            app.password.as_ref().map(Password::expose),
            Some("from-config")
        );
        let filer = &state.users()["filer"];
        assert_eq!(
            filer.md5.as_deref(),
            Some("md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        );

        let db = &*state.databases()["db"];
        assert!(db.pool("filer", 0).is_none());
        state.ensure_pools("db", "filer");
        let pool = db.pool("filer", 0).unwrap();
        assert_eq!(pool.spec().user, "filer");
        assert_eq!(
            db.default_settings.read().unwrap().size,
            3,
            "database default pool size"
        );
        assert_eq!(db.pool_mode("filer"), Some(PoolMode::Session));
        // Idempotent: the same pool stays.
        state.ensure_pools("db", "filer");
        assert!(Arc::ptr_eq(&pool, &db.pool("filer", 0).unwrap()));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let config = Config::parse(&format!(
            "[[users]]\nname = \"a\"\npassword = \"hunter2\"\n\
             [[users]]\nname = \"c\"\npassword = \"{SCRAM}\"\n\
             [databases.db]\nhosts = [\"127.0.0.1:1\"]\n"
        ))
        .unwrap();
        let state = State::build_with_users(
            config,
            vec![file_user("f", "md5bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")],
        )
        .unwrap();
        state
            .passthrough("c")
            .set_scram_key([0x5a; 32], ScramSecret::parse(SCRAM).unwrap());
        let mut debug = format!("{:?} {:#?}", state.config, state.users);
        for db in state.databases().values() {
            for pool in db.pools() {
                debug.push_str(&format!("{:?} {:?}", pool.spec(), pool.spec()));
            }
        }
        debug.push_str(&format!("{:?}", state.passthrough("c").scram_key()));
        for secret in [
            "hunter2",
            "bbbbbbbb",
            "LfLAfRXRD4Vb",
            "f0KxauqiB4dl",
            "cGdmZXJyeS1leGFtcGxlIQ",
            "90, 90",
        ] {
            assert!(!debug.contains(secret), "Debug leaked {secret:?}: {debug}");
        }
        assert!(debug.contains("<redacted>"));
    }
}
