//! The Postgres-facing side: the rustls client config pgferry connects with,
//! per `server_mode`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::certs::{load_certs, load_key, load_roots};
use super::{der, provider, Stream, TlsError};
use crate::config::{ServerTlsMode, TlsConfig};

/// Server-side TLS as configured.
pub struct ServerSide {
    pub mode: ServerTlsMode,
    connector: TlsConnector,
}

impl ServerSide {
    pub(super) fn build(cfg: &TlsConfig) -> Result<Option<ServerSide>, TlsError> {
        let verifier: Arc<dyn ServerCertVerifier> = match cfg.server_mode {
            ServerTlsMode::Disable => return Ok(None),
            // libpq's prefer and require do not check the certificate.
            ServerTlsMode::Prefer | ServerTlsMode::Require => Arc::new(AnyCert(provider())),
            ServerTlsMode::VerifyCa | ServerTlsMode::VerifyFull => {
                let ca = cfg.server_ca_file.as_ref().ok_or_else(|| {
                    TlsError::Config("verify-ca and verify-full need server_ca_file".into())
                })?;
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(load_roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                if cfg.server_mode == ServerTlsMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&cfg.server_cert_file, &cfg.server_key_file) {
            (Some(c), Some(k)) => builder.with_client_auth_cert(load_certs(c)?, load_key(k)?)?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![super::ALPN_POSTGRESQL.to_vec()];
        Ok(Some(ServerSide {
            mode: cfg.server_mode,
            connector: TlsConnector::from(Arc::new(config)),
        }))
    }

    /// Whether plaintext is acceptable when the server declines TLS.
    pub fn allows_plaintext(&self) -> bool {
        self.mode == ServerTlsMode::Prefer
    }

    /// Runs the TLS handshake after the server answered 'S'. Returns the
    /// stream and the server certificate's `tls-server-end-point` data.
    pub async fn connect(
        &self,
        name: ServerName<'static>,
        tcp: TcpStream,
    ) -> std::io::Result<(Stream, Option<Vec<u8>>)> {
        let tls = self.connector.connect(name, tcp).await?;
        let end_point = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| der::end_point_hash(c));
        Ok((Stream::Tls(Box::new(tls.into())), end_point))
    }
}

/// The name to check the server certificate against (verify-full): the host
/// as written in `hosts`; the address connected to when the host is no valid
/// name (only possible for modes that do not check names).
pub fn server_name(host: &str, addr: SocketAddr) -> ServerName<'static> {
    ServerName::try_from(host.to_owned()).unwrap_or_else(|_| ServerName::from(addr.ip()))
}

/// `require`/`prefer`: any certificate, but the handshake signatures are
/// still verified, so the session is bound to the certificate's key.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to server_ca_file; the name is not
/// checked. webpki checks the chain before the name, so a name mismatch
/// means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
