//! The shared runtime state built from one validated config: users with
//! their authentication material, and per database its topology and pools.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;

use crate::auth::md5;
use crate::auth::secret::ScramSecret;
use crate::client::cancel::CancelRegistry;
use crate::config::{Config, Password, PoolMode};
use crate::metrics::stats::StatsWindow;
use crate::metrics::{ClientEntry, ErrorCounts, Registry, ServerEntry};
use crate::pool::{PauseGate, Pool};
use crate::router::classify::FunctionPolicy;
use crate::server::ConnectSpec;
use crate::topology::{HealthSettings, Topology};

/// What pgferry can verify a client's password against.
pub struct UserAuth {
    pub name: String,
    pub scram: Option<ScramSecret>,
    /// The "md5..." hash.
    pub md5: Option<String>,
}

pub struct Database {
    pub name: String,
    pub topology: Arc<Topology>,
    /// PAUSE / RESUME of this database.
    pub gate: PauseGate,
    /// Per user: one pool per node, indexed like the hosts list.
    pools: HashMap<String, Vec<Arc<Pool>>>,
    pool_modes: HashMap<String, PoolMode>,
    /// Errors this database's clients were given, by kind.
    pub errors: ErrorCounts,
    /// Samples behind SHOW STATS' averages.
    pub stats_window: StatsWindow,
}

impl Database {
    pub fn pool(&self, user: &str, node: usize) -> Option<&Arc<Pool>> {
        self.pools.get(user).and_then(|p| p.get(node))
    }

    pub fn pool_mode(&self, user: &str) -> Option<PoolMode> {
        self.pool_modes.get(user).copied()
    }

    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.values().flatten()
    }

    /// Users with pools here, sorted.
    pub fn users(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.pools.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The pools of `user`, one per node.
    pub fn user_pools(&self, user: &str) -> &[Arc<Pool>] {
        self.pools.get(user).map_or(&[], Vec::as_slice)
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
    pub config: Arc<Config>,
    pub users: HashMap<String, UserAuth>,
    pub databases: HashMap<String, Arc<Database>>,
    pub cancels: Arc<CancelRegistry>,
    /// Key for fake SCRAM salts of unknown users (see ScramSecret::mock).
    pub mock_key: [u8; 32],
    /// Which function calls make a statement a write for `auto` routing.
    pub policy: FunctionPolicy,
    /// Clients pinned to their server connection, by reason (ever).
    pins: Mutex<HashMap<&'static str, u64>>,
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

    pub fn build(config: Config) -> State {
        let config = Arc::new(config);
        let policy = function_policy(&config.proxy);
        let users = config
            .users
            .iter()
            .map(|u| (u.name.clone(), user_auth(&u.name, u.password.as_ref())))
            .collect();
        let servers: Arc<Registry<ServerEntry>> = Arc::default();
        let databases = config
            .databases
            .keys()
            .map(|name| {
                let db = build_database(&config, name, &servers);
                (name.clone(), Arc::new(db))
            })
            .collect();
        let settings = RuntimeSettings::new(&config);
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        State {
            config,
            users,
            databases,
            cancels: Arc::new(CancelRegistry::default()),
            mock_key,
            policy,
            pins: Mutex::new(HashMap::new()),
            clients: Arc::default(),
            servers,
            settings,
        }
    }
}

fn function_policy(proxy: &crate::config::ProxyConfig) -> FunctionPolicy {
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
    match password {
        Some(Password::Plain(p)) => UserAuth {
            name: name.to_owned(),
            scram: Some(ScramSecret::generate(p)),
            md5: Some(md5::password_hash(name, p)),
        },
        Some(Password::Md5(h)) => UserAuth {
            name: name.to_owned(),
            scram: None,
            md5: Some(h.clone()),
        },
        Some(Password::Scram(s)) => UserAuth {
            name: name.to_owned(),
            scram: ScramSecret::parse(s).ok(),
            md5: None,
        },
        None => UserAuth {
            name: name.to_owned(),
            scram: None,
            md5: None,
        },
    }
}

fn spec(
    config: &Config,
    dbname: &str,
    user: &crate::config::UserConfig,
    node: &crate::config::HostAddr,
) -> ConnectSpec {
    ConnectSpec {
        node: node.clone(),
        user: user.name.clone(),
        database: dbname.to_owned(),
        password: user.password.clone(),
        connect_timeout: config.proxy.server_connect_timeout,
        keepalive: config.proxy.tcp_keepalive,
    }
}

fn build_database(config: &Config, name: &str, servers: &Arc<Registry<ServerEntry>>) -> Database {
    let db = &config.databases[name];
    let monitor = config
        .proxy
        .monitor_user
        .as_deref()
        .and_then(|m| config.user(m))
        .or_else(|| config.users.first());
    let mut pools = HashMap::new();
    let mut pool_modes = HashMap::new();
    for user in &config.users {
        let size = config.pool_size_for(name, &user.name);
        let per_node = db
            .hosts
            .iter()
            .map(|h| {
                Pool::new(
                    spec(config, &db.dbname, user, h),
                    size,
                    name,
                    servers.clone(),
                )
            })
            .collect();
        pools.insert(user.name.clone(), per_node);
        pool_modes.insert(user.name.clone(), config.pool_mode_for(name, &user.name));
    }
    let probe_spec = match monitor {
        Some(u) => spec(config, &db.dbname, u, &db.hosts[0]),
        None => ConnectSpec {
            node: db.hosts[0].clone(),
            user: String::new(),
            database: db.dbname.clone(),
            password: None,
            connect_timeout: config.proxy.server_connect_timeout,
            keepalive: false,
        },
    };
    Database {
        name: name.to_owned(),
        gate: PauseGate::default(),
        topology: Topology::new(
            name.to_owned(),
            db.hosts.clone(),
            probe_spec,
            HealthSettings::from_config(&config.proxy, &db.routing),
        ),
        pools,
        pool_modes,
        errors: ErrorCounts::default(),
        stats_window: StatsWindow::default(),
    }
}
