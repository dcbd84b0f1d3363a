//! Wiring: builds the shared state from a config, binds the listener, starts
//! the health monitors, and runs until shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::prometheus::ProxyEndpoints;
use crate::config::Config;
use crate::state::State;

/// A running proxy.
pub struct App {
    pub state: Arc<State>,
    pub local_addr: SocketAddr,
    /// Where `/metrics` and the health endpoints are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    accepting: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl App {
    /// Binds the listener and starts serving in the background.
    pub async fn start(config: Config) -> std::io::Result<App> {
        let state = Arc::new(State::build(config));
        let listener = bind(state.config.proxy.listen)?;
        let local_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // One health monitor per database; its first round runs at once, so
        // the primary is usually known before the first client arrives.
        for db in state.databases.values() {
            db.topology.spawn_monitor(&tracker, shutdown.clone());
        }
        tracker.spawn(crate::client::serve(
            state.clone(),
            listener,
            shutdown.clone(),
            tracker.clone(),
        ));
        let accepting = Arc::new(AtomicBool::new(true));
        let metrics_addr = match state.config.proxy.metrics_listen {
            Some(addr) => {
                let listener = bind(addr)?;
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
        tracing::info!(listen = %local_addr, databases = state.databases.len(), "pgferry listening");
        Ok(App {
            state,
            local_addr,
            metrics_addr,
            accepting,
            shutdown,
            tracker,
        })
    }

    /// Stops accepting and closes pools. Client tasks end as their sockets
    /// close; the process exits after this returns.
    pub async fn stop(self) {
        self.accepting.store(false, Ordering::Relaxed);
        self.shutdown.cancel();
        self.tracker.close();
        for db in self.state.databases.values() {
            for pool in db.pools() {
                pool.close();
            }
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
