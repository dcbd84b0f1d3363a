//! What pgferry answers a server's password challenge with: the configured
//! plaintext password, or what it learned without one (pass-through).
//!
//! * md5: the stored `md5...` hash (configured, from `auth_file`, or from
//!   `auth_query`) answers the challenge by itself.
//! * SCRAM-SHA-256: with a plaintext password, the normal client; with only a
//!   SCRAM secret, the ClientKey a client revealed when it logged in to
//!   pgferry (see [`crate::auth::passthrough`]). Until some client of the
//!   user has logged in, there is no key and the connect fails with a clear
//!   reason.

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::ConnectSpec;
use crate::auth::passthrough::ScramKeyClient;
use crate::config::Password;

/// The reason given when neither a password nor a ClientKey is known.
pub const NO_SCRAM_KEY: &str = "server asks for SCRAM-SHA-256 and pgferry has no plaintext \
     password for this user, and no client of it has logged in with SCRAM yet (pass-through \
     needs one)";

/// The md5 hash to answer an md5 challenge with.
pub(super) fn md5_hash(spec: &ConnectSpec) -> Option<String> {
    match &spec.password {
        Some(Password::Plain(p)) => Some(crate::auth::md5::password_hash(&spec.user, p)),
        Some(Password::Md5(h)) => Some(h.clone()),
        _ => spec.passthrough.as_ref().and_then(|p| p.md5()),
    }
}

/// The client side of one SCRAM exchange with a server.
pub(super) enum ScramClient {
    Password(Box<ScramSha256>),
    Key(Box<ScramKeyClient>),
}

impl ScramClient {
    /// Starts an exchange; returns the client and its client-first-message.
    pub(super) fn start(spec: &ConnectSpec) -> Result<(ScramClient, Vec<u8>), &'static str> {
        if let Some(Password::Plain(p)) = &spec.password {
            let s = ScramSha256::new(p.as_bytes(), ChannelBinding::unsupported());
            let first = s.message().to_vec();
            return Ok((ScramClient::Password(Box::new(s)), first));
        }
        let key = spec
            .passthrough
            .as_ref()
            .and_then(|p| p.scram_key())
            .ok_or(NO_SCRAM_KEY)?;
        let mut c = ScramKeyClient::with_random_nonce(key);
        let first = c.client_first();
        Ok((ScramClient::Key(Box::new(c)), first))
    }

    /// Takes server-first-message, returns client-final-message.
    pub(super) fn update(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            ScramClient::Password(s) => {
                s.update(data).map_err(|e| e.to_string())?;
                Ok(s.message().to_vec())
            }
            ScramClient::Key(c) => c.server_first(data).map_err(|e| e.to_string()),
        }
    }

    /// Checks server-final-message.
    pub(super) fn finish(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            ScramClient::Password(s) => s.finish(data).map_err(|e| e.to_string()),
            ScramClient::Key(c) => c.server_final(data).map_err(|e| e.to_string()),
        }
    }
}
