//! pgferry's configuration: a TOML file loaded into an immutable, validated [`Config`].
//!
//! Loading never stops at the first mistake: [`Config::parse`] walks the whole file and returns
//! every problem with its key path (`proxy.pool_mode: expected one of ...`), so an operator can
//! fix a config in one pass and a reload can say exactly why it kept the old config.
//! `config/pgferry.toml` in the repository documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

mod hba;
mod parse;
mod schema;
mod tls;
mod walk;

pub use hba::{hba_lookup, HbaAddress, HbaMethod, HbaName, HbaRequest, HbaRule};
pub use parse::parse_duration;
pub use tls::{ClientTlsMode, ClientVerify, ServerTlsMode, TlsConfig};

use walk::{keyword_from_str, keyword_name, Keyword};

/// A loaded and validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub log: LogConfig,
    /// Never empty: pgferry logs in to Postgres as these users.
    pub users: Vec<UserConfig>,
    /// Keyed by the database name clients ask for.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[[hba]]` rules in order; empty means `proxy.auth_method` for everyone.
    pub hba: Vec<HbaRule>,
    /// `[peers]`: peer id → the address of that pgferry process alone (its
    /// `peer_listen`), where cancel requests for its clients are forwarded. The
    /// same table may be given to every process: a process skips its own id.
    pub peers: BTreeMap<u16, SocketAddr>,
}

/// The largest `peer_id`. Cancel keys of a process with peering carry its id in
/// bits 17..=30 of the process-id field and a random number in bits 0..=16
/// (see `client::cancel`), so a process can tell whose key it was sent.
pub const MAX_PEER_ID: u16 = (1 << 14) - 1;
/// Bits of a peered cancel key's process-id field below the peer id.
pub const PEER_KEY_BITS: u32 = 17;
/// Distinct cancel keys one peered process can hand out: `max_client_conn` may
/// not be larger.
pub const PEER_KEY_ROOM: usize = 1 << PEER_KEY_BITS;

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and validates config text, reporting every problem found.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(vec![syntax_problem(text, &e)]))?;
        schema::build(table).map_err(ConfigError::Invalid)
    }

    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The most specific setting wins: the user's, then the database's, then `[proxy]`'s.
    pub fn pool_mode_for(&self, db: &str, user: &str) -> PoolMode {
        self.user(user)
            .and_then(|u| u.pool_mode)
            .or_else(|| self.databases.get(db).and_then(|d| d.pool_mode))
            .unwrap_or(self.proxy.pool_mode)
    }

    /// Same precedence as [`Config::pool_mode_for`].
    pub fn pool_size_for(&self, db: &str, user: &str) -> usize {
        self.user(user)
            .and_then(|u| u.pool_size)
            .or_else(|| self.databases.get(db).and_then(|d| d.pool_size))
            .unwrap_or(self.proxy.default_pool_size)
    }
}

/// A TOML syntax error ends parsing, so it is the only problem; it is located by line and column
/// (1-based, counted in characters) because there is no key path yet.
fn syntax_problem(text: &str, error: &toml::de::Error) -> Problem {
    let path = match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}")
        }
        None => "TOML".to_owned(),
    };
    Problem {
        path,
        message: format!("TOML syntax error: {}", error.message().trim()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration:{}", ProblemLines(.0))]
    Invalid(Vec<Problem>),
}

/// Formats problems one per line, each on a new line after the heading.
struct ProblemLines<'a>(&'a [Problem]);

impl fmt::Display for ProblemLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|p| write!(f, "\n  {p}"))
    }
}

/// One thing wrong with the config, at a key path like `databases.app.hosts[1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The `[proxy]` table. Field docs give the TOML key's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `listen`, default "127.0.0.1:6432".
    pub listen: SocketAddr,
    /// `pool_mode`, default "transaction".
    pub pool_mode: PoolMode,
    /// `default_pool_size`, default 20; server connections per (database, user, node).
    pub default_pool_size: usize,
    /// `max_client_conn`, default 10000.
    pub max_client_conn: usize,
    /// `auth_method`, default "scram-sha-256".
    pub auth_method: AuthMethod,
    /// `query_wait_timeout`, default "120s": how long a client may wait for a server connection.
    /// Zero means no limit.
    pub query_wait_timeout: Duration,
    /// `client_login_timeout`, default "60s": startup + authentication. Zero means no limit.
    pub client_login_timeout: Duration,
    /// `server_connect_timeout`, default "15s": connect + authenticate to Postgres.
    pub server_connect_timeout: Duration,
    /// `server_reset_query`, default "DISCARD ALL"; run in session mode before a server
    /// connection is reused. Empty disables it.
    pub server_reset_query: String,
    /// `max_message_size` in bytes, default 64 MiB; 1024 ..= i32::MAX.
    pub max_message_size: usize,
    /// `workers`: tokio worker threads; 1 (the default) is a single-threaded
    /// event loop, 0 one worker per core.
    pub workers: usize,
    /// `cpu_policy`, default "normal": the Linux scheduling policy of pgferry's
    /// threads. "batch" (SCHED_BATCH) keeps pgferry's wake-ups from preempting
    /// the processes it shares cores with, so it handles more ready sockets per
    /// wake-up (see `crate::sched`).
    pub cpu_policy: CpuPolicy,
    /// `nice`, default 0: the nice value of pgferry's threads (-20 ..= 19;
    /// lower is a larger share of the CPU). Below the current value needs
    /// CAP_SYS_NICE (or RLIMIT_NICE); see `crate::sched`.
    pub nice: i32,
    /// `so_reuseport`, default false: SO_REUSEPORT on the `listen` socket, so that
    /// several pgferry processes can listen on the same port and the kernel spreads new
    /// connections among them (PgBouncer's `so_reuseport`). See `peer_id` for cancel
    /// requests that reach another process than the client's.
    pub so_reuseport: bool,
    /// `peer_id`, default 0 (no peering): this process's number among pgferry processes
    /// that share a port (1 ..= [`MAX_PEER_ID`]). It is written into the cancel keys this
    /// process hands out, so a CancelRequest that reaches another process is forwarded to
    /// this one, at its address in `[peers]`.
    pub peer_id: u16,
    /// `peer_listen`: an address of this process alone (no SO_REUSEPORT), where its
    /// peers send it the cancel requests of its clients; clients may connect there too.
    /// It is what the other processes list for this one in `[peers]`. Default unset.
    pub peer_listen: Option<SocketAddr>,
    /// `monitor_user`: the user that probes hosts for the primary. After loading this is always
    /// `Some`: it defaults to the first `[[users]]` entry and must name a configured user.
    pub monitor_user: Option<String>,
    /// `tcp_keepalive`, default true.
    pub tcp_keepalive: bool,
    /// `health_interval`, default "1s": how often every host is probed.
    pub health_interval: Duration,
    /// `health_suspect_interval`, default "200ms": the probe interval while any host is suspect.
    pub health_suspect_interval: Duration,
    /// `health_timeout`, default "2s": a probe (connect included) slower than this fails.
    pub health_timeout: Duration,
    /// `health_down_after`, default 3: consecutive failed probes before a host is down.
    pub health_down_after: usize,
    /// `health_up_after`, default 2: consecutive good probes before a suspect or down host (or
    /// a replica excluded for lag) is used again.
    pub health_up_after: usize,
    /// `route_deny_functions`: functions whose call makes a statement a write for `auto`
    /// routing. Default: pgferry's built-in list (nextval, setval, pg_advisory_lock, ...).
    pub route_deny_functions: Option<Vec<String>>,
    /// `route_allow_functions`: when set, `auto` routing treats a call of any function not on
    /// this list as a write (deny by default).
    pub route_allow_functions: Option<Vec<String>>,
    /// `admin_users`: users (from [[users]]) that may connect to the admin console, the
    /// database `pgferry` (alias `pgbouncer`), and run PAUSE, RESUME and RECONNECT.
    pub admin_users: Vec<String>,
    /// `stats_users`: users (from [[users]]) that may connect to the admin console but only
    /// run SHOW commands. Default empty.
    pub stats_users: Vec<String>,
    /// `metrics_listen`: address of the HTTP listener for `/metrics`, `/health/live` and
    /// `/health/ready`. Default unset: no listener.
    pub metrics_listen: Option<SocketAddr>,
    /// `pause_timeout`, default "30s": how long PAUSE waits for running transactions to
    /// finish before it cancels them.
    pub pause_timeout: Duration,
    /// `max_prepared_statements`, default 200: named statements each server connection
    /// keeps in transaction and statement modes (the oldest is closed beyond it).
    pub max_prepared_statements: usize,
    /// `cache_unnamed_statements`, default false: in transaction and statement modes, keep
    /// a client's unnamed statement (Parse/Bind/Execute without a name, as most drivers send
    /// one-off queries) as a shared prepared statement too, so the same text parsed again
    /// skips Postgres' parsing and planning. Changes plan choice (generic plans after five
    /// executions) and can surface "cached plan must not change result type" once after DDL;
    /// a standalone read in flight when its node fails is not re-run elsewhere.
    pub cache_unnamed_statements: bool,
    /// `pin_policy`, default "pin": what transaction and statement modes do with a client
    /// that creates state which cannot move between server connections.
    pub pin_policy: PinPolicy,
    /// `max_db_connections`, default 0 (no limit): server connections per database per host,
    /// all users together. `[databases.NAME]` may override it.
    pub max_db_connections: usize,
    /// `max_user_connections`, default 0 (no limit): server connections per user per host,
    /// all databases together. `[[users]]` may override it.
    pub max_user_connections: usize,
    /// `reserve_pool_size`, default 0: extra server connections a pool may open for clients
    /// that waited `reserve_pool_timeout`.
    pub reserve_pool_size: usize,
    /// `reserve_pool_timeout`, default "5s".
    pub reserve_pool_timeout: Duration,
    /// `server_lifetime`, default "3600s": a server connection older than this is closed when
    /// it is next released. Zero means no limit.
    pub server_lifetime: Duration,
    /// `server_idle_timeout`, default "600s": idle server connections unused this long are
    /// closed. Zero means no limit.
    pub server_idle_timeout: Duration,
    /// `client_idle_timeout`, default "0s" (off): clients idle (outside a transaction) this
    /// long are disconnected with 57P05.
    pub client_idle_timeout: Duration,
    /// `idle_transaction_timeout`, default "0s" (off): clients idle inside a transaction this
    /// long are disconnected with 25P03 and their transaction rolled back.
    pub idle_transaction_timeout: Duration,
    /// `query_timeout`, default "0s" (off): a query running longer than this is cancelled
    /// (the client gets 57014 and keeps its connection).
    pub query_timeout: Duration,
    /// `shutdown_timeout`, default "30s": on SIGTERM, how long clients may take to finish
    /// their transactions before the rest are closed.
    pub shutdown_timeout: Duration,
    /// `auth_file`: a PgBouncer-style userlist.txt with more users (`"name" "password"` per
    /// line). `[[users]]` entries win over file entries of the same name.
    pub auth_file: Option<PathBuf>,
    /// `auth_user`: the user (from `[[users]]` or `auth_file`) that runs `auth_query` to look
    /// up users pgferry does not know. Unset: no lookup.
    pub auth_user: Option<String>,
    /// `auth_query`, default PgBouncer's `SELECT usename, passwd FROM pg_shadow WHERE
    /// usename=$1`; `$1` is the user name, sent as a parameter.
    pub auth_query: String,
    /// `auth_dbname`: the database `auth_query` runs in; default the client's database.
    pub auth_dbname: Option<String>,
    /// `auth_cache_ttl`, default "60s": how long an `auth_query` answer (found or not) is
    /// reused. Zero disables the cache.
    pub auth_cache_ttl: Duration,
    /// `auth_failure_delay`, default "100ms": the delay before the error of a failed login
    /// from an address that already failed 3 times in the last minute; doubles per further
    /// failure. Zero disables the delay.
    pub auth_failure_delay: Duration,
    /// `auth_failure_max_delay`, default "5s": the cap of that delay.
    pub auth_failure_max_delay: Duration,
    /// The routing keys in `[proxy]`: defaults for every database.
    pub routing: RoutingConfig,
}

/// PgBouncer's default `auth_query`.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";

/// Where statements go: `route`, `max_replica_lag`, `max_replica_lag_bytes`,
/// `replica_fallback`, `read_your_writes`. In `[proxy]` they set the default for every
/// database; a `[databases.NAME]` table may override each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// `route`, default "primary".
    pub route: Route,
    /// `max_replica_lag`, default "1s": replicas further behind are not used for reads.
    pub max_replica_lag: Duration,
    /// `max_replica_lag_bytes`: optional limit on replay lag in WAL bytes.
    pub max_replica_lag_bytes: Option<u64>,
    /// `replica_fallback`, default "primary": what a replica-routed read does when no replica
    /// qualifies.
    pub replica_fallback: ReplicaFallback,
    /// `read_your_writes`, default true.
    pub read_your_writes: bool,
    /// `failover_timeout`, default "30s": how long work that needs the primary waits for one
    /// (after the primary is lost, until a new one is adopted) before it gets an error.
    pub failover_timeout: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            route: Route::Primary,
            max_replica_lag: Duration::from_secs(1),
            max_replica_lag_bytes: None,
            replica_fallback: ReplicaFallback::Primary,
            read_your_writes: true,
            failover_timeout: Duration::from_secs(30),
        }
    }
}

/// Where a transaction or standalone statement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// Always the primary.
    Primary,
    /// A replica within the lag limits (read-only work only; writes fail on a replica).
    Replica,
    /// A replica when the statement is provably read-only, else the primary.
    Auto,
}

impl Keyword for Route {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("primary", Route::Primary),
        ("replica", Route::Replica),
        ("auto", Route::Auto),
    ];
}

/// What happens to a client that creates state which cannot move between server
/// connections (temporary tables, LISTEN, session advisory locks, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinPolicy {
    /// The client keeps its server connection until the state is gone.
    Pin,
    /// The statement is refused with an error.
    Error,
}

impl Keyword for PinPolicy {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("pin", PinPolicy::Pin), ("error", PinPolicy::Error)];
}

/// The scheduling policy pgferry's threads run under (`cpu_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuPolicy {
    /// The kernel's default (SCHED_OTHER).
    Normal,
    /// SCHED_BATCH: same CPU share, no wake-up preemption.
    Batch,
}

impl Keyword for CpuPolicy {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("normal", CpuPolicy::Normal), ("batch", CpuPolicy::Batch)];
}

/// What a replica-routed read does when no replica qualifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaFallback {
    Primary,
    Error,
}

impl Keyword for ReplicaFallback {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("primary", ReplicaFallback::Primary),
        ("error", ReplicaFallback::Error),
    ];
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 6432)),
            pool_mode: PoolMode::Transaction,
            default_pool_size: 20,
            max_client_conn: 10_000,
            auth_method: AuthMethod::ScramSha256,
            query_wait_timeout: Duration::from_secs(120),
            client_login_timeout: Duration::from_secs(60),
            server_connect_timeout: Duration::from_secs(15),
            server_reset_query: "DISCARD ALL".to_owned(),
            max_message_size: 64 * 1024 * 1024,
            workers: 1,
            cpu_policy: CpuPolicy::Normal,
            nice: 0,
            so_reuseport: false,
            peer_id: 0,
            peer_listen: None,
            monitor_user: None,
            tcp_keepalive: true,
            health_interval: Duration::from_secs(1),
            health_suspect_interval: Duration::from_millis(200),
            health_timeout: Duration::from_secs(2),
            health_down_after: 3,
            health_up_after: 2,
            route_deny_functions: None,
            route_allow_functions: None,
            admin_users: Vec::new(),
            stats_users: Vec::new(),
            metrics_listen: None,
            pause_timeout: Duration::from_secs(30),
            pin_policy: PinPolicy::Pin,
            max_prepared_statements: 200,
            cache_unnamed_statements: false,
            max_db_connections: 0,
            max_user_connections: 0,
            reserve_pool_size: 0,
            reserve_pool_timeout: Duration::from_secs(5),
            server_lifetime: Duration::from_secs(3600),
            server_idle_timeout: Duration::from_secs(600),
            client_idle_timeout: Duration::ZERO,
            idle_transaction_timeout: Duration::ZERO,
            query_timeout: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
            auth_file: None,
            auth_user: None,
            auth_query: DEFAULT_AUTH_QUERY.to_owned(),
            auth_dbname: None,
            auth_cache_ttl: Duration::from_secs(60),
            auth_failure_delay: Duration::from_millis(100),
            auth_failure_max_delay: Duration::from_secs(5),
            routing: RoutingConfig::default(),
        }
    }
}

/// The `[log]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// One of [`LogConfig::LEVELS`]; default "info".
    pub level: String,
    pub format: LogFormat,
    /// `log_connections`, default true: log each client login (PgBouncer's key; also
    /// accepted in `[proxy]`).
    pub log_connections: bool,
    /// `log_disconnections`, default true: log each client leaving, with why and after how
    /// long.
    pub log_disconnections: bool,
    /// `log_pooler_errors`, default true: log every error pgferry itself sends a client.
    pub log_pooler_errors: bool,
}

impl LogConfig {
    pub const LEVELS: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Plain,
            log_connections: true,
            log_disconnections: true,
            log_pooler_errors: true,
        }
    }
}

/// When a server connection goes back to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// When the client disconnects.
    Session,
    /// When a transaction ends.
    Transaction,
    /// After every statement; multi-statement transactions are not possible.
    Statement,
}

impl Keyword for PoolMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("session", PoolMode::Session),
        ("transaction", PoolMode::Transaction),
        ("statement", PoolMode::Statement),
    ];
}

/// How clients prove who they are to pgferry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ScramSha256,
    Md5,
    Trust,
}

impl Keyword for AuthMethod {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("scram-sha-256", AuthMethod::ScramSha256),
        ("md5", AuthMethod::Md5),
        ("trust", AuthMethod::Trust),
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    Plain,
    Json,
}

impl Keyword for LogFormat {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("plain", LogFormat::Plain), ("json", LogFormat::Json)];
}

/// Display and `FromStr` use the spelling in the config file.
macro_rules! keyword_text {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(keyword_name(*self))
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                keyword_from_str(s)
            }
        }
    )*};
}

keyword_text!(
    CpuPolicy,
    PoolMode,
    AuthMethod,
    LogFormat,
    Route,
    ReplicaFallback,
    PinPolicy
);

/// One `[[users]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserConfig {
    pub name: String,
    /// `None` is only useful with `auth_method = "trust"`.
    pub password: Option<Password>,
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
    /// `max_user_connections` for this user (else `[proxy]`'s).
    pub max_user_connections: Option<usize>,
}

/// A user's password, classified from its form in the config. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    /// "md5" followed by 32 lowercase hex digits, as in `pg_authid`; includes the prefix.
    Md5(String),
    /// A full "SCRAM-SHA-256$..." secret as in `pg_authid`.
    Scram(String),
}

impl Password {
    /// The secret itself, for the auth code. Keep it out of logs.
    pub fn expose(&self) -> &str {
        match self {
            Password::Plain(s) | Password::Md5(s) | Password::Scram(s) => s,
        }
    }

    fn variant(&self) -> &'static str {
        match self {
            Password::Plain(_) => "Plain",
            Password::Md5(_) => "Md5",
            Password::Scram(_) => "Scram",
        }
    }
}

// Hand-written so that logging a Config (or any struct holding one) cannot leak a secret.
impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password::{}(<redacted>)", self.variant())
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One `[databases.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// Never empty and without duplicates; pgferry finds which one is the primary.
    pub hosts: Vec<HostAddr>,
    /// The database name on the server; defaults to the table key.
    pub dbname: String,
    pub pool_size: Option<usize>,
    pub pool_mode: Option<PoolMode>,
    /// `max_db_connections` for this database (else `[proxy]`'s).
    pub max_db_connections: Option<usize>,
    /// The routing keys, with unset ones taken from `[proxy]`.
    pub routing: RoutingConfig,
}

/// A Postgres server address. `host` is an IPv4 address, an IPv6 address without brackets
/// (normalised), or a lowercased DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Accepts the same forms as the `hosts` key.
impl FromStr for HostAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse::parse_host(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
