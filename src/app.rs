//! Wiring: builds the shared state from a config, binds the listener, starts
//! the health monitors, and runs until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::prometheus::ProxyEndpoints;
use crate::config::Config;
use crate::lifecycle::ShutdownKind;
use crate::reload::Reloader;
use crate::state::State;

/// A running proxy.
pub struct App {
    pub state: Arc<State>,
    pub local_addr: SocketAddr,
    /// Where `/metrics` and the health endpoints are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    accepting: Arc<AtomicBool>,
    /// Stops background tasks (monitors, reaper).
    shutdown: CancellationToken,
    /// Stops accepting clients.
    accept: CancellationToken,
    tracker: TaskTracker,
    /// One task per client connection.
    clients: TaskTracker,
}

impl App {
    /// Binds the listener and starts serving in the background. Without a
    /// config file there is nothing to reload (see [`App::start_from`]).
    pub async fn start(config: Config) -> std::io::Result<App> {
        App::start_from(config, None).await
    }

    /// Like [`App::start`], for a config read from `path`: SIGHUP and the
    /// console's RELOAD re-read it.
    pub async fn start_from(config: Config, path: Option<PathBuf>) -> std::io::Result<App> {
        let file_users = match &config.proxy.auth_file {
            Some(path) => {
                crate::auth::userlist::load(path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot read auth_file {}: {e}", path.display()),
                        )
                    })?
                    .entries
            }
            None => Vec::new(),
        };
        let state =
            Arc::new(State::build_with_users(config, file_users).map_err(std::io::Error::other)?);
        if let Some(auth_user) = &state.config().proxy.auth_user {
            if !state.users().contains_key(auth_user) {
                tracing::warn!(
                    auth_user,
                    "auth_user is neither in [[users]] nor in auth_file: auth_query cannot run"
                );
            }
        }
        let proxy = &state.config().proxy;
        let listener = bind(proxy.listen, proxy.so_reuseport)?;
        let local_addr = listener.local_addr()?;
        // This process's own address, for its peers' forwarded cancel requests.
        let peer_listener = match proxy.peer_listen {
            Some(addr) => Some(bind(addr, false)?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let accept = CancellationToken::new();
        let tracker = TaskTracker::new();
        let clients = TaskTracker::new();
        // One health monitor per database; its first round runs at once, so
        // the primary is usually known before the first client arrives.
        for db in state.databases().values() {
            db.topology.spawn_monitor(&tracker, db.monitor_stop.clone());
        }
        if let Some(path) = path {
            tracker.spawn(
                Reloader {
                    path,
                    state: state.clone(),
                    tracker: tracker.clone(),
                    shutdown: shutdown.clone(),
                }
                .run(),
            );
        }
        tracker.spawn(reap_idle(state.clone(), shutdown.clone()));
        // One max_client_conn for both listeners.
        let limit = Arc::new(tokio::sync::Semaphore::new(
            state.config().proxy.max_client_conn,
        ));
        if let Some(l) = peer_listener {
            tracing::info!(peer_listen = %l.local_addr()?, peer_id = state.config().proxy.peer_id, "listening for peers");
            // Open until the process stops: while it drains, its peers
            // still forward its clients' cancel requests here.
            tracker.spawn(crate::client::serve(
                state.clone(),
                l,
                limit.clone(),
                shutdown.clone(),
                Some(accept.clone()),
                clients.clone(),
            ));
        }
        tracker.spawn(crate::client::serve(
            state.clone(),
            listener,
            limit,
            accept.clone(),
            None,
            clients.clone(),
        ));
        let accepting = Arc::new(AtomicBool::new(true));
        let metrics_addr = match state.config().proxy.metrics_listen {
            Some(addr) => {
                let listener = bind(addr, false)?;
                let bound = listener.local_addr()?;
                let endpoints = Arc::new(ProxyEndpoints {
                    state: state.clone(),
                    accepting: accepting.clone(),
                });
                tracker.spawn(crate::metrics::http::serve(
                    listener,
                    endpoints,
                    shutdown.clone(),
                    tracker.clone(),
                ));
                tracing::info!(listen = %bound, "metrics and health endpoints listening");
                Some(bound)
            }
            None => None,
        };
        tracing::info!(listen = %local_addr, databases = state.databases().len(), "pgferry listening");
        Ok(App {
            state,
            local_addr,
            metrics_addr,
            accepting,
            shutdown,
            accept,
            tracker,
            clients,
        })
    }

    /// Shuts down as `kind` says (see [`ShutdownKind`]); a stronger request
    /// made meanwhile (a SIGINT during a drain) takes over. Returns when the
    /// process may exit.
    pub async fn shutdown(self, kind: ShutdownKind) {
        self.accept.cancel();
        self.clients.close();
        let lifecycle = &self.state.lifecycle;
        let mut kind = kind;
        if kind == ShutdownKind::WaitForClients {
            tracing::info!(
                clients = self.clients.len(),
                "shutdown: waiting for clients to disconnect"
            );
            tokio::select! {
                _ = self.clients.wait() => {}
                k = lifecycle.wait_for(ShutdownKind::Graceful) => kind = k,
            }
        }
        if kind == ShutdownKind::Graceful {
            let timeout = self.state.config().proxy.shutdown_timeout;
            tracing::info!(
                clients = self.clients.len(),
                timeout_ms = timeout.as_millis() as u64,
                "shutdown: letting clients finish their transactions"
            );
            lifecycle.start_draining();
            // Idle sessions wait on their kill switch only: wake them to
            // close now (busy ones see the drain at their next boundary).
            for c in self.state.clients.snapshot() {
                c.kill.drain();
            }
            tokio::select! {
                _ = self.clients.wait() => {}
                _ = tokio::time::sleep(timeout) => {
                    tracing::warn!(clients = self.clients.len(), "shutdown_timeout reached; closing the remaining clients");
                }
                _ = lifecycle.wait_for(ShutdownKind::Fast) => {}
            }
        }
        self.stop().await;
    }

    /// Stops accepting and closes pools. Client tasks end as their sockets
    /// close; the process exits after this returns.
    pub async fn stop(self) {
        self.accept.cancel();
        self.accepting.store(false, Ordering::Relaxed);
        self.shutdown.cancel();
        self.tracker.close();
        for db in self.state.databases().values() {
            db.monitor_stop.cancel();
            for pool in db.pools() {
                pool.close();
            }
        }
    }
}

/// Closes idle server connections past `server_idle_timeout` or
/// `server_lifetime`, once a second; gives memory back to the OS after many
/// clients left (see [`crate::memory`]).
async fn reap_idle(state: Arc<State>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trimmer = crate::memory::Trimmer::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        trimmer.tick(state.clients.len());
        for db in state.databases().values() {
            for pool in db.pools() {
                let n = pool.reap();
                if n > 0 {
                    tracing::debug!(database = %db.name, user = %pool.spec().user, closed = n, "closed idle server connections");
                }
            }
        }
    }
}

/// `reuseport`: SO_REUSEPORT, so that other pgferry processes may listen on
/// the same address (`so_reuseport`).
fn bind(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
