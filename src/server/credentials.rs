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
    /// Starts an exchange; returns the client, its client-first-message
    /// and the mechanism chosen. `end_point`: the server certificate's
    /// tls-server-end-point hash when the connection uses TLS; `plus`: the
    /// server offers SCRAM-SHA-256-PLUS.
    pub(super) fn start(
        spec: &ConnectSpec,
        end_point: Option<Vec<u8>>,
        plus: bool,
    ) -> Result<(ScramClient, Vec<u8>, &'static str), &'static str> {
        if let Some(Password::Plain(p)) = &spec.password {
            // Over TLS, bind the exchange to the server's certificate when
            // the server offers it (a man in the middle cannot relay it);
            // otherwise say we could have ("y") or could not ("n").
            let (binding, mechanism) = match end_point {
                Some(h) if plus => (
                    ChannelBinding::tls_server_end_point(h),
                    "SCRAM-SHA-256-PLUS",
                ),
                Some(_) => (ChannelBinding::unrequested(), "SCRAM-SHA-256"),
                None => (ChannelBinding::unsupported(), "SCRAM-SHA-256"),
            };
            let s = ScramSha256::new(p.as_bytes(), binding);
            let first = s.message().to_vec();
            return Ok((ScramClient::Password(Box::new(s)), first, mechanism));
        }
        let key = spec
            .passthrough
            .as_ref()
            .and_then(|p| p.scram_key())
            .ok_or(NO_SCRAM_KEY)?;
        let mut c = ScramKeyClient::with_random_nonce(key);
        let first = c.client_first();
        // The ClientKey exchange sends "n,,": no channel binding.
        Ok((ScramClient::Key(Box::new(c)), first, "SCRAM-SHA-256"))
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
