//! From accept to a StartupMessage: declines SSL/GSS encryption (until TLS
//! lands), answers CancelRequests, negotiates the protocol version.

use std::sync::Arc;

use bytes::Buf;

use super::io::ClientIo;
use super::ClientError;
use crate::protocol::build;
use crate::protocol::startup::{self, StartupPacket};
use crate::state::State;

/// The parameters of an accepted StartupMessage.
pub struct Startup {
    pub params: Vec<(String, String)>,
}

pub enum Handshake {
    Startup(Startup),
    /// A CancelRequest was handled; the connection is done.
    Cancelled,
}

/// Reads packets until a StartupMessage or CancelRequest. The caller bounds
/// this with `client_login_timeout`.
pub async fn handshake(io: &mut ClientIo, state: &Arc<State>) -> Result<Handshake, ClientError> {
    loop {
        let (packet, used) = loop {
            if let Some(p) = startup::parse(&io.rbuf)? {
                break p;
            }
            io.read_more().await?;
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
                io.wbuf.extend_from_slice(b"N");
                io.flush().await?;
            }
            StartupPacket::Cancel { pid, secret } => {
                if let Some(t) = state.cancels.lookup(pid, secret) {
                    crate::server::send_cancel(
                        t.addr,
                        t.pid,
                        t.secret,
                        state.config.proxy.server_connect_timeout,
                    )
                    .await;
                } else {
                    tracing::debug!(pid, "cancel request with unknown keys ignored");
                }
                return Ok(Handshake::Cancelled);
            }
            StartupPacket::Startup { minor, params } => {
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
