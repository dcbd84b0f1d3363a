//! Opening a server connection: TCP, startup, authentication as the
//! configured user, and collecting the server's parameters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::credentials::{self, ScramClient};
use super::internal::read_message;
use super::params::ServerParams;
use super::{ServerConn, ServerError, ServerStats};
use crate::auth::md5;
use crate::auth::passthrough::PassThrough;
use crate::config::{HostAddr, Password};
use crate::protocol::views::{self, AuthRequest};
use crate::protocol::{build, tag, TxStatus};
use crate::tls::{server_name, Stream, TlsState};

static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

/// Everything needed to open a server connection for one pool.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub node: HostAddr,
    pub user: String,
    pub database: String,
    pub password: Option<Password>,
    /// Credentials learned at run time (SCRAM ClientKey, md5 hash), used
    /// when `password` is not plaintext. Shared by the user's pools.
    pub passthrough: Option<std::sync::Arc<PassThrough>>,
    pub connect_timeout: Duration,
    pub keepalive: bool,
    /// `server_mode` and the connector, read at each connect (reloadable).
    pub tls: Arc<TlsState>,
}

/// Opens and authenticates a server connection. The whole exchange is bounded
/// by `connect_timeout`.
pub async fn connect(spec: &ConnectSpec) -> Result<ServerConn, ServerError> {
    let addr = spec.node.to_string();
    match tokio::time::timeout(spec.connect_timeout, connect_inner(spec)).await {
        Ok(r) => r,
        Err(_) => Err(ServerError::ConnectTimeout { addr }),
    }
}

async fn open_socket(spec: &ConnectSpec) -> Result<(TcpStream, SocketAddr), ServerError> {
    let addr = spec.node.to_string();
    let err = |source| ServerError::Connect {
        addr: addr.clone(),
        source,
    };
    let mut last = None;
    for sa in tokio::net::lookup_host((spec.node.host.as_str(), spec.node.port))
        .await
        .map_err(err)?
    {
        match TcpStream::connect(sa).await {
            Ok(s) => {
                s.set_nodelay(true).map_err(err)?;
                if spec.keepalive {
                    let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
                    socket2::SockRef::from(&s)
                        .set_tcp_keepalive(&ka)
                        .map_err(err)?;
                }
                return Ok((s, sa));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(err(
        last.unwrap_or_else(|| std::io::Error::other("no addresses"))
    ))
}

/// SSLRequest and the TLS handshake, per `server_mode`. Returns the stream
/// and, for TLS, the server certificate's channel-binding data.
async fn negotiate_tls(
    spec: &ConnectSpec,
    mut tcp: TcpStream,
    addr: SocketAddr,
) -> Result<(Stream, Option<Vec<u8>>), ServerError> {
    let loaded = spec.tls.current();
    let Some(side) = &loaded.server else {
        return Ok((Stream::Plain(tcp), None));
    };
    let tls_err = |reason: String| ServerError::Tls {
        addr: spec.node.to_string(),
        reason,
    };
    let mut out = BytesMut::with_capacity(8);
    build::ssl_request(&mut out);
    tcp.write_all(&out).await?;
    // Exactly one byte: anything the server sends after 'S' is TLS, and
    // after 'N' the server waits for our StartupMessage.
    let mut answer = [0u8; 1];
    if tcp.read(&mut answer).await? == 0 {
        return Err(ServerError::Closed);
    }
    match answer[0] {
        b'S' => {
            let name = server_name(&spec.node.host, addr);
            side.connect(name, tcp)
                .await
                .map_err(|e| tls_err(e.to_string()))
        }
        b'N' if side.allows_plaintext() => Ok((Stream::Plain(tcp), None)),
        b'N' => Err(tls_err(format!(
            "server does not support TLS (server_mode = {:?})",
            side.mode
        ))),
        other => Err(ServerError::Protocol(format!(
            "unexpected answer {other:#04x} to SSLRequest"
        ))),
    }
}

async fn connect_inner(spec: &ConnectSpec) -> Result<ServerConn, ServerError> {
    let (tcp, socket_addr) = open_socket(spec).await?;
    let (mut stream, end_point) = negotiate_tls(spec, tcp, socket_addr).await?;
    let mut out = BytesMut::with_capacity(256);
    build::startup_message(
        &mut out,
        &[("user", &spec.user), ("database", &spec.database)],
    );
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    authenticate(&mut stream, &mut buf, spec, end_point).await?;

    let mut params = ServerParams::default();
    let mut key = (0, 0);
    loop {
        let (t, body) = read_message(&mut stream, &mut buf).await?;
        match t {
            tag::PARAMETER_STATUS => {
                let (k, v) = views::parameter_status(&body)
                    .map_err(|e| ServerError::Protocol(e.to_string()))?;
                params.reported.set(k, v);
            }
            tag::BACKEND_KEY_DATA => {
                key = views::backend_key_data(&body)
                    .map_err(|e| ServerError::Protocol(e.to_string()))?;
            }
            tag::READY_FOR_QUERY => break,
            tag::ERROR_RESPONSE => return Err(rejected(&body)),
            tag::NOTICE_RESPONSE => {}
            other => {
                return Err(ServerError::Protocol(format!(
                    "unexpected message '{}' during startup",
                    other as char
                )));
            }
        }
    }
    let now_us = crate::metrics::clock::now_us();
    Ok(ServerConn {
        stream,
        id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
        node: spec.node.clone(),
        socket_addr,
        backend_pid: key.0,
        backend_secret: key.1,
        params,
        tx_status: TxStatus::Idle,
        broken: false,
        created_us: now_us,
        last_used_us: now_us,
        stats: ServerStats::default(),
        entry: None,
        epoch: 0,
        statements: Default::default(),
    })
}

pub(super) fn rejected(body: &[u8]) -> ServerError {
    match views::ErrorFields::parse(body) {
        Ok(e) => ServerError::Rejected {
            severity: e.severity.to_owned(),
            code: e.code.to_owned(),
            message: e.message.to_owned(),
        },
        Err(e) => ServerError::Protocol(e.to_string()),
    }
}

fn auth_err(spec: &ConnectSpec, reason: impl Into<String>) -> ServerError {
    ServerError::Auth {
        user: spec.user.clone(),
        reason: reason.into(),
    }
}

/// Answers the server's authentication requests until AuthenticationOk.
async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    spec: &ConnectSpec,
    end_point: Option<Vec<u8>>,
) -> Result<(), ServerError> {
    let mut out = BytesMut::with_capacity(256);
    let mut scram: Option<ScramClient> = None;
    loop {
        let (t, body) = read_message(stream, buf).await?;
        match t {
            tag::AUTHENTICATION => {}
            tag::ERROR_RESPONSE => return Err(rejected(&body)),
            other => {
                return Err(ServerError::Protocol(format!(
                    "expected authentication, got '{}'",
                    other as char
                )));
            }
        }
        out.clear();
        match views::auth_request(&body).map_err(|e| ServerError::Protocol(e.to_string()))? {
            AuthRequest::Ok => return Ok(()),
            AuthRequest::Cleartext => {
                match &spec.password {
                    Some(Password::Plain(p)) => build::password_message(&mut out, p.as_bytes()),
                    _ => return Err(auth_err(
                        spec,
                        "server asks for a cleartext password; configure the plaintext password",
                    )),
                }
            }
            AuthRequest::Md5 { salt } => {
                let Some(hash) = credentials::md5_hash(spec) else {
                    return Err(auth_err(
                        spec,
                        "server asks for md5; configure a plaintext or md5 password",
                    ));
                };
                build::password_message(&mut out, md5::salted_response(&hash, salt).as_bytes());
            }
            AuthRequest::Sasl { mechanisms } => {
                if !mechanisms.contains(&"SCRAM-SHA-256") {
                    return Err(auth_err(
                        spec,
                        format!("unsupported SASL mechanisms {mechanisms:?}"),
                    ));
                }
                let plus = mechanisms.contains(&"SCRAM-SHA-256-PLUS");
                let (s, first, mechanism) = ScramClient::start(spec, end_point.clone(), plus)
                    .map_err(|r| auth_err(spec, r))?;
                build::sasl_initial_response(&mut out, mechanism, &first);
                scram = Some(s);
            }
            AuthRequest::SaslContinue(data) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| ServerError::Protocol("unexpected SASLContinue".into()))?;
                let fin = s.update(data).map_err(|e| auth_err(spec, e))?;
                build::sasl_response(&mut out, &fin);
            }
            AuthRequest::SaslFinal(data) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| ServerError::Protocol("unexpected SASLFinal".into()))?;
                s.finish(data)
                    .map_err(|e| auth_err(spec, format!("server signature invalid: {e}")))?;
                continue;
            }
            AuthRequest::Other(code) => {
                return Err(auth_err(
                    spec,
                    format!("unsupported authentication request {code}"),
                ))
            }
        }
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
}

/// Sends a CancelRequest for a backend. Best effort, bounded in time.
pub async fn send_cancel(addr: SocketAddr, pid: u32, secret: u32, timeout: Duration) {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut out = BytesMut::with_capacity(16);
        build::cancel_request(&mut out, pid, secret);
        s.write_all(&out).await?;
        // The server closes the connection once it has read the request.
        let mut sink = [0u8; 16];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => tracing::debug!(%addr, pid, "sent cancel request"),
        Ok(Err(e)) => tracing::warn!(%addr, pid, error = %e, "cancel request failed"),
        Err(_) => tracing::warn!(%addr, pid, "cancel request timed out"),
    }
}
