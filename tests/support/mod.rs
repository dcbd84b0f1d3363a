//! Shared helpers for pgferry's integration tests.
//!
//! Use from a test file with `mod support;` then `use support::*;`.
//!
//! * [`shared_cluster()`] — one PostgreSQL primary + 2 streaming replicas per test
//!   binary, started on first use by `scripts/pgcluster` and removed by its watchdog
//!   when the test process exits. Tests that stop, kill or promote nodes must use
//!   their own [`Cluster::start()`] instead, since tests run in parallel.
//! * [`Proxy::start()`] — runs the pgferry binary with a TOML config; `{listen}` in
//!   the config is replaced by `127.0.0.1:<free port>`.
//! * [`connect()`] / [`try_connect()`] — tokio-postgres clients (NoTls).
//!
//! Test users in every cluster (see docs/development.md): app/secret (scram),
//! md5user/md5pass (md5), clearuser/clearpass (password), trustuser (trust),
//! postgres/postgres (superuser); database `app`.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long connect()/try_connect() wait for the server before panicking.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn pgcluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pgcluster")
}

fn output_text(out: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn run_pgcluster(args: &[&str]) -> Output {
    Command::new(pgcluster_script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", pgcluster_script().display()))
}

/// A throwaway PostgreSQL cluster made by `scripts/pgcluster start`:
/// node 0 is the primary (as started), nodes 1.. are streaming replicas.
pub struct Cluster {
    pub dir: PathBuf,
    pub primary_port: u16,
    pub replica_ports: Vec<u16>,
}

impl Cluster {
    /// Starts a primary and 2 streaming replicas. The cluster is removed when the
    /// value is dropped, or by the script's watchdog once this process exits.
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Like [`Cluster::start`] with extra `pgcluster start` arguments, e.g.
    /// `&["--replicas", "1", "--set", "log_connections=on"]`.
    pub fn start_with(extra_args: &[&str]) -> Cluster {
        let pid = std::process::id().to_string();
        let mut args = vec!["start", "--owner-pid", pid.as_str()];
        args.extend_from_slice(extra_args);
        let out = run_pgcluster(&args);
        if !out.status.success() {
            panic!("scripts/pgcluster start failed\n{}", output_text(&out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| -> String {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    panic!("pgcluster start did not print {key}\n{}", output_text(&out))
                })
        };
        let parse_port = |s: &str| -> u16 {
            s.parse()
                .unwrap_or_else(|_| panic!("bad port {s:?} from pgcluster\n{}", output_text(&out)))
        };
        let dir = PathBuf::from(get("PGCLUSTER_DIR"));
        let primary_port = parse_port(&get("PGCLUSTER_PRIMARY_PORT"));
        let replica_ports = get("PGCLUSTER_REPLICA_PORTS")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(parse_port)
            .collect();
        Cluster {
            dir,
            primary_port,
            replica_ports,
        }
    }

    /// All nodes (primary first) as a TOML array: `["127.0.0.1:1","127.0.0.1:2"]`.
    pub fn hosts_toml(&self) -> String {
        let hosts: Vec<String> = self
            .all_ports()
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", hosts.join(","))
    }

    /// Ports of every node, node 0 (primary as started) first.
    pub fn all_ports(&self) -> Vec<u16> {
        let mut ports = vec![self.primary_port];
        ports.extend_from_slice(&self.replica_ports);
        ports
    }

    /// Port of node `node`; node 0 is the primary as started.
    pub fn port(&self, node: usize) -> u16 {
        match node {
            0 => self.primary_port,
            n => *self.replica_ports.get(n - 1).unwrap_or_else(|| {
                panic!(
                    "cluster {} has no node {n} ({} replicas)",
                    self.dir.display(),
                    self.replica_ports.len()
                )
            }),
        }
    }

    /// `pgcluster node DIR N ACTION`: start, stop, restart, promote, kill
    /// (immediate stop), status, or `follow M`. Extra pg_ctl words may follow the
    /// action, e.g. `"stop -m immediate"`. Panics on failure.
    pub fn node(&self, node: usize, action: &str) {
        let dir = self.dir.to_string_lossy().into_owned();
        let n = node.to_string();
        let mut args = vec!["node", dir.as_str(), n.as_str()];
        args.extend(action.split_whitespace());
        let out = run_pgcluster(&args);
        if !out.status.success() {
            panic!("pgcluster node {n} {action} failed\n{}", output_text(&out));
        }
    }

    /// Runs `psql -XAtq -c SQL` as postgres against node `node` and returns the
    /// trimmed stdout. Panics on failure.
    pub fn psql(&self, node: usize, sql: &str) -> String {
        let dir = self.dir.to_string_lossy().into_owned();
        let n = node.to_string();
        let out = run_pgcluster(&[
            "psql",
            &dir,
            &n,
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]);
        if !out.status.success() {
            panic!("psql on node {n} failed for {sql:?}\n{}", output_text(&out));
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Connection string for a direct (proxy-less) connection to node `node`.
    pub fn url(&self, node: usize, user: &str, password: &str, db: &str) -> String {
        conninfo(self.port(node), user, password, db)
    }

    /// The PostgreSQL log of node `node`.
    pub fn log(&self, node: usize) -> String {
        read_lossy(&self.dir.join(format!("node{node}.log")))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let out = run_pgcluster(&["stop", &dir]);
        if !out.status.success() {
            eprintln!(
                "warning: pgcluster stop {dir} failed\n{}",
                output_text(&out)
            );
        }
    }
}

/// One cluster per test binary, started on first use. Never dropped: the
/// pgcluster watchdog removes it once the test process exits. Do not stop,
/// kill or promote its nodes (other tests share it); use `Cluster::start()`.
pub fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// A free TCP port on 127.0.0.1, never the same twice in this process. Picked
/// outside the kernel's ephemeral range (so outgoing connections can't take
/// it), from the upper half of that window: `scripts/pgcluster` picks its
/// nodes' ports from the lower half, so a cluster starting beside a test
/// cannot take the port the test was just handed.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());

    let (lo, hi) = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let (a, b): (u32, u32) = if lo > 16000 {
        (15000, lo)
    } else if hi < 64000 {
        (hi + 1, 65536)
    } else {
        (0, 0)
    };
    let (a, b) = (a + (b - a) / 2, b);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let seed = nanos
        ^ ((std::process::id() as u64) << 32)
        ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut x: u64 = seed | 1;
    if b > a + 100 {
        for _ in 0..500 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = (a + (x % u64::from(b - a)) as u32) as u16;
            if handed_out.contains(&p) {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", p)).is_ok() {
                handed_out.push(p);
                return p;
            }
        }
    }
    for _ in 0..100 {
        let p = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if !handed_out.contains(&p) {
            handed_out.push(p);
            return p;
        }
    }
    panic!("could not find a free port");
}

/// A libpq-style connection string with values quoted as needed.
pub fn conninfo(port: u16, user: &str, password: &str, db: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user={} password={} dbname={}",
        quote_value(user),
        quote_value(password),
        quote_value(db)
    )
}

fn quote_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A running pgferry process for one test.
pub struct Proxy {
    pub port: u16,
    pub config_path: PathBuf,
    child: Child,
    log_path: PathBuf,
    dir: PathBuf,
}

impl Proxy {
    /// Writes `config_toml` (with `{listen}` replaced by `127.0.0.1:<free port>`)
    /// to a temp file, runs `pgferry --config FILE` with its output in a log file
    /// and waits (up to 20 s) until the port accepts TCP connections. Panics with
    /// the log's tail if pgferry exits early or never listens.
    pub fn start(config_toml: &str) -> Proxy {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pgferry-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let config_path = dir.join("pgferry.toml");
        let log_path = dir.join("pgferry.log");

        let uses_placeholder = config_toml.contains("{listen}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (config, port) = if uses_placeholder {
                let port = free_port();
                (
                    config_toml.replace("{listen}", &format!("127.0.0.1:{port}")),
                    port,
                )
            } else {
                let port = listen_port_of(config_toml).unwrap_or_else(|| {
                    panic!("config has neither {{listen}} nor a parsable listen = \"host:port\"")
                });
                (config_toml.to_string(), port)
            };
            fs::write(&config_path, &config)
                .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
            let log = fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
            let log2 = log.try_clone().expect("clone log file handle");
            let child = Command::new(env!("CARGO_BIN_EXE_pgferry"))
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_pgferry")));
            let mut proxy = Proxy {
                port,
                config_path: config_path.clone(),
                child,
                log_path: log_path.clone(),
                dir: dir.clone(),
            };
            match proxy.wait_listening(Duration::from_secs(20)) {
                Ok(()) => return proxy,
                Err(why) => {
                    let log = proxy.log();
                    let lower = log.to_lowercase();
                    let addr_in_use =
                        lower.contains("address already in use") || lower.contains("addrinuse");
                    if uses_placeholder && addr_in_use && attempt < 3 {
                        eprintln!("pgferry could not bind port {port}, retrying on another");
                        drop(proxy);
                        continue;
                    }
                    panic!(
                        "pgferry {why}\nconfig ({}):\n{config}\n--- last lines of {} ---\n{}",
                        config_path.display(),
                        log_path.display(),
                        tail(&log, 60)
                    );
                }
            }
        }
    }

    fn wait_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "exited early ({status}) before listening on {addr}"
                ));
            }
            // Our own log must say so too: a port picked as free may have
            // been taken by another test's pgferry meanwhile, which would
            // answer the connect while this one failed to bind (and leave
            // with that test, refusing this test's first client).
            if self.log().contains("pgferry listening")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("did not listen on {addr} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// tokio-postgres connection string for a client of this proxy.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        conninfo(self.port, user, password, db)
    }

    /// Everything pgferry wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces `from` by `to` in the config file, sends SIGHUP and waits
    /// (up to 10 s) until pgferry logs that it reloaded.
    pub async fn reload_replacing(&self, from: &str, to: &str) {
        let config = fs::read_to_string(&self.config_path).expect("read config");
        assert!(config.contains(from), "{from:?} not in the config");
        fs::write(&self.config_path, config.replace(from, to)).expect("write config");
        let reloads = || self.log().matches("config reloaded").count();
        let before = reloads();
        self.signal("HUP");
        for _ in 0..200 {
            if reloads() > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reload logged:\n{}", self.log());
    }

    /// Sends a signal by name (e.g. "HUP", "TERM") to the pgferry process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {sig} {} failed", self.child.id());
    }

    /// `Some(status)` once pgferry has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("pgferry log kept at {}", self.log_path.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Port of a `listen = "host:port"` line in a TOML config.
fn listen_port_of(toml: &str) -> Option<u16> {
    toml.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("listen")?.trim_start().strip_prefix('=')?;
        let v = rest.trim().trim_matches('"');
        v.rsplit(':').next()?.parse().ok()
    })
}

fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {}: {} (code {})",
            db.severity(),
            e,
            db.message(),
            db.code().code()
        ),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

fn redact(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects with tokio-postgres (NoTls) and spawns the connection task.
/// Panics after [`CONNECT_TIMEOUT`] if the server never answers.
pub async fn try_connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let fut = tokio_postgres::connect(conninfo, tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(res) => res?,
        Err(_) => panic!(
            "connecting with `{}` did not finish within {CONNECT_TIMEOUT:?}",
            redact(conninfo)
        ),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!(
                "tokio-postgres connection ended with error: {}",
                describe_error(&e)
            );
        }
    });
    Ok(client)
}

/// Like [`try_connect`] but panics with a clear message on error.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    match try_connect(conninfo).await {
        Ok(c) => c,
        Err(e) => panic!(
            "could not connect with `{}`: {}",
            redact(conninfo),
            describe_error(&e)
        ),
    }
}
