//! The client-facing side: the rustls server config clients handshake with.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::certs::{load_certs, load_key, load_roots};
use super::{der, provider, Stream, TlsError};
use crate::config::{ClientTlsMode, ClientVerify, TlsConfig};

/// The ALPN protocol name Postgres 17 uses; required for direct TLS.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Client-side TLS as configured.
pub struct ClientSide {
    pub mode: ClientTlsMode,
    pub verify: ClientVerify,
    acceptor: TlsAcceptor,
    /// `tls-server-end-point` channel-binding data of the certificate this
    /// acceptor presents; `None` if its signature algorithm has no single
    /// hash (then SCRAM-SHA-256-PLUS is not offered).
    end_point: Option<Arc<[u8]>>,
}

/// What a TLS client's session tells the authentication step.
#[derive(Clone, Debug)]
pub struct ClientTlsInfo {
    pub end_point: Option<Arc<[u8]>>,
    /// The client certificate was presented and verified against client_ca_file.
    pub peer_cert: bool,
    /// The verified certificate's subject CN.
    pub peer_cn: Option<String>,
    pub verify: ClientVerify,
}

impl ClientSide {
    pub(super) fn build(cfg: &TlsConfig) -> Result<Option<ClientSide>, TlsError> {
        if !cfg.client_mode.enabled() {
            return Ok(None);
        }
        let (Some(cert_file), Some(key_file)) = (&cfg.client_cert_file, &cfg.client_key_file)
        else {
            return Err(TlsError::Config(
                "client TLS needs client_cert_file and client_key_file".into(),
            ));
        };
        let certs = load_certs(cert_file)?;
        let key = load_key(key_file)?;
        let end_point = certs
            .first()
            .and_then(|c| der::end_point_hash(c))
            .map(Arc::from);
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &cfg.client_ca_file {
            Some(ca) => {
                let roots = Arc::new(load_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if cfg.client_verify == ClientVerify::None {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(Some(ClientSide {
            mode: cfg.client_mode,
            verify: cfg.client_verify,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            end_point,
        }))
    }
}

/// Runs the TLS handshake on a client socket. `direct` is a connection that
/// started with a ClientHello instead of an SSLRequest: Postgres 17 requires
/// ALPN "postgresql" there, so that a TLS connection meant for another
/// protocol is not taken for a Postgres one.
pub async fn accept(
    side: &ClientSide,
    tcp: TcpStream,
    direct: bool,
) -> std::io::Result<(Stream, ClientTlsInfo)> {
    let tls = side.acceptor.accept(tcp).await?;
    let conn = tls.get_ref().1;
    if direct && conn.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "direct TLS connection without ALPN \"postgresql\"",
        ));
    }
    let peer = conn.peer_certificates().and_then(|c| c.first());
    let info = ClientTlsInfo {
        end_point: side.end_point.clone(),
        peer_cert: peer.is_some(),
        peer_cn: peer.and_then(|c| der::subject_cn(c)),
        verify: side.verify,
    };
    Ok((Stream::Tls(Box::new(tls.into())), info))
}
