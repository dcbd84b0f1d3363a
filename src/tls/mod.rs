//! TLS for both sides: the acceptor clients handshake with, the connector
//! pgferry uses towards Postgres, and the stream type both sides share.
//!
//! [`TlsState`] holds the configs built from the `[tls]` files in an
//! `ArcSwap`: [`TlsState::reload`] re-reads the files and swaps, so new
//! handshakes use the new certificates while established connections keep
//! the session they negotiated.

mod acceptor;
mod certs;
mod connector;
pub mod der;
mod stream;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::TlsConfig;

pub use acceptor::{accept, ClientSide, ClientTlsInfo, ALPN_POSTGRESQL};
pub use connector::{server_name, ServerSide};
pub use stream::Stream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Config(e.to_string())
    }
}

/// The TLS configs in force; one snapshot is used for a whole handshake.
pub struct Loaded {
    /// `None` when client_mode is disable.
    pub client: Option<ClientSide>,
    /// `None` when server_mode is disable.
    pub server: Option<ServerSide>,
}

impl Loaded {
    fn build(cfg: &TlsConfig) -> Result<Loaded, TlsError> {
        Ok(Loaded {
            client: ClientSide::build(cfg)?,
            server: ServerSide::build(cfg)?,
        })
    }
}

/// Reloadable TLS state, shared by the listener and every pool.
pub struct TlsState {
    current: ArcSwap<Loaded>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.current.load();
        f.debug_struct("TlsState")
            .field("client", &l.client.as_ref().map(|c| c.mode))
            .field("server", &l.server.as_ref().map(|s| s.mode))
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsState {
    /// Reads every configured file; fails on the first unreadable one.
    pub fn new(cfg: &TlsConfig) -> Result<TlsState, TlsError> {
        Ok(TlsState {
            current: ArcSwap::from_pointee(Loaded::build(cfg)?),
        })
    }

    /// TLS off on both sides.
    pub fn disabled() -> TlsState {
        TlsState {
            current: ArcSwap::from_pointee(Loaded {
                client: None,
                server: None,
            }),
        }
    }

    /// Re-reads the files named in `cfg` and swaps them in. On error the old
    /// configs stay in force. Connections already established are untouched.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), TlsError> {
        let loaded = Loaded::build(cfg)?;
        self.current.store(Arc::new(loaded));
        tracing::info!("TLS certificates reloaded");
        Ok(())
    }

    /// The configs in force now.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }
}
