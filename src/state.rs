//! The shared runtime state built from one validated config: users with
//! their authentication material, and per database its topology and pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngCore;

use crate::auth::md5;
use crate::auth::secret::ScramSecret;
use crate::client::cancel::CancelRegistry;
use crate::config::{Config, Password, PoolMode};
use crate::pool::{PauseGate, Pool};
use crate::router::classify::FunctionPolicy;
use crate::server::ConnectSpec;
use crate::tls::{TlsError, TlsState};
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
    /// TLS acceptor and connector; `tls.reload(..)` swaps certificates
    /// without touching established connections.
    pub tls: Arc<TlsState>,
    /// Clients pinned to their server connection, by reason (ever).
    pins: Mutex<HashMap<&'static str, u64>>,
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

    /// Fails only when a `[tls]` file cannot be loaded.
    pub fn build(config: Config) -> Result<State, TlsError> {
        let config = Arc::new(config);
        let tls = Arc::new(TlsState::new(&config.tls)?);
        let policy = function_policy(&config.proxy);
        let users = config
            .users
            .iter()
            .map(|u| (u.name.clone(), user_auth(&u.name, u.password.as_ref())))
            .collect();
        let databases = config
            .databases
            .keys()
            .map(|name| (name.clone(), Arc::new(build_database(&config, name, &tls))))
            .collect();
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        Ok(State {
            config,
            users,
            databases,
            cancels: Arc::new(CancelRegistry::default()),
            mock_key,
            policy,
            tls,
            pins: Mutex::new(HashMap::new()),
        })
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
    tls: &Arc<TlsState>,
) -> ConnectSpec {
    ConnectSpec {
        node: node.clone(),
        user: user.name.clone(),
        database: dbname.to_owned(),
        password: user.password.clone(),
        connect_timeout: config.proxy.server_connect_timeout,
        keepalive: config.proxy.tcp_keepalive,
        tls: tls.clone(),
    }
}

fn build_database(config: &Config, name: &str, tls: &Arc<TlsState>) -> Database {
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
            .map(|h| Pool::new(spec(config, &db.dbname, user, h, tls), size))
            .collect();
        pools.insert(user.name.clone(), per_node);
        pool_modes.insert(user.name.clone(), config.pool_mode_for(name, &user.name));
    }
    let probe_spec = match monitor {
        Some(u) => spec(config, &db.dbname, u, &db.hosts[0], tls),
        None => ConnectSpec {
            node: db.hosts[0].clone(),
            user: String::new(),
            database: db.dbname.clone(),
            password: None,
            connect_timeout: config.proxy.server_connect_timeout,
            keepalive: false,
            tls: tls.clone(),
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
    }
}
