//! From accept to a StartupMessage: TLS (via SSLRequest, or direct TLS as in
//! Postgres 17), declined GSS encryption, CancelRequests, and the protocol
//! version.

use std::sync::Arc;

use bytes::Buf;

use super::io::ClientIo;
use super::ClientError;
use crate::config::ClientTlsMode;
use crate::protocol::build;
use crate::protocol::startup::{self, StartupPacket};
use crate::state::State;
use crate::tls::Stream;

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The parameters of an accepted StartupMessage.
pub struct Startup {
    pub params: Vec<(String, String)>,
}

pub enum Handshake {
    Startup(Startup),
    /// A CancelRequest was handled; the connection is done.
    Cancelled,
    /// The client is to be switched to TLS (see [`start_tls`]); `direct`
    /// when it opened with a ClientHello rather than an SSLRequest.
    StartTls {
        direct: bool,
    },
}

/// Reads packets until a StartupMessage, CancelRequest or the start of TLS.
/// The caller bounds this with `client_login_timeout`.
pub async fn handshake(io: &mut ClientIo, state: &Arc<State>) -> Result<Handshake, ClientError> {
    let tls = state.tls.current();
    let tls_mode = tls.client.as_ref().map(|c| c.mode);
    if tls_mode.is_some() && !io.is_tls() && io.rbuf.is_empty() {
        // Direct TLS: peek, so the ClientHello stays in the socket for the
        // TLS acceptor to read.
        let mut first = [0u8; 1];
        if io.stream.tcp().peek(&mut first).await? == 0 {
            return Err(ClientError::Closed);
        }
        if first[0] == TLS_HANDSHAKE_RECORD {
            return Ok(Handshake::StartTls { direct: true });
        }
    }
    loop {
        let (packet, used) = loop {
            if let Some(p) = startup::parse(&io.rbuf)? {
                break p;
            }
            io.read_login().await?;
        };
        io.rbuf.advance(used);
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // Bytes pipelined behind an encryption request would be
                // read as if they had been encrypted: refuse them
                // (CVE-2021-23214 class).
                if !io.rbuf.is_empty() {
                    return Err(ClientError::Protocol(
                        "data received before encryption negotiation finished".into(),
                    ));
                }
                if io.is_tls() {
                    return Err(ClientError::Protocol(
                        "encryption requested on an encrypted connection".into(),
                    ));
                }
                if matches!(packet, StartupPacket::SslRequest) && tls_mode.is_some() {
                    io.wbuf.extend_from_slice(b"S");
                    io.flush().await?;
                    return Ok(Handshake::StartTls { direct: false });
                }
                io.wbuf.extend_from_slice(b"N");
                io.flush().await?;
            }
            StartupPacket::Cancel { pid, secret } => {
                super::cancel::handle(state, pid, secret).await;
                return Ok(Handshake::Cancelled);
            }
            StartupPacket::Startup { minor, params } => {
                if tls_mode == Some(ClientTlsMode::Require) && !io.is_tls() {
                    return Err(ClientError::TlsRequired);
                }
                // Protocol options (_pq_.*) and minor versions we do not
                // speak are declined with NegotiateProtocolVersion; the
                // client may then carry on with 3.0.
                let unknown: Vec<&str> = params
                    .iter()
                    .filter(|(k, _)| k.starts_with("_pq_."))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if minor > 0 || !unknown.is_empty() {
                    build::negotiate_protocol_version(&mut io.wbuf, 0, &unknown);
                }
                let params = params
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("_pq_."))
                    .collect();
                return Ok(Handshake::Startup(Startup { params }));
            }
        }
    }
}

/// Runs the TLS handshake and returns the client on the encrypted stream.
/// A failed handshake leaves nothing to answer on, so the connection is
/// just closed (the error says why, for the log).
pub async fn start_tls(io: ClientIo, state: &State, direct: bool) -> Result<ClientIo, ClientError> {
    let tls = state.tls.current();
    let Some(side) = tls.client.as_ref() else {
        return Err(ClientError::Protocol("TLS is not enabled".into()));
    };
    let ClientIo {
        stream, rbuf, wbuf, ..
    } = io;
    let Stream::Plain(tcp) = stream else {
        return Err(ClientError::Protocol(
            "connection is already encrypted".into(),
        ));
    };
    let (stream, info) = crate::tls::accept(side, tcp, direct).await?;
    Ok(ClientIo {
        stream,
        tls: Some(Box::new(info)),
        rbuf,
        wbuf,
    })
}
