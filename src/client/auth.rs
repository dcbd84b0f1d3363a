//! Authenticating a client against the users pgferry knows.
//!
//! Unknown users go through the same exchange as known ones (a fake SCRAM
//! secret, a random md5 salt) and fail with the same message, so a client
//! cannot tell an unknown user from a wrong password.

use bytes::BytesMut;
use rand::RngCore;

use super::io::ClientIo;
use super::ClientError;
use crate::auth::md5;
use crate::auth::scram::{ScramServer, SCRAM_SHA_256};
use crate::auth::secret::ScramSecret;
use crate::config::AuthMethod;
use crate::protocol::{build, tag, views};
use crate::state::State;

/// Password messages are tiny; anything larger is hostile.
const MAX_AUTH_MESSAGE: usize = 8192;

pub async fn authenticate(
    io: &mut ClientIo,
    state: &State,
    user: &str,
    database: &str,
) -> Result<(), ClientError> {
    let known = super::lookup::find_user(state, user, database).await?;
    let known = known.as_ref();
    let method = state.config.proxy.auth_method;
    let result = match method {
        AuthMethod::Trust => {
            if known.is_none() {
                return Err(ClientError::UnknownRole(user.to_owned()));
            }
            Ok(())
        }
        // Like Postgres, "md5" upgrades to SCRAM when only a SCRAM secret is
        // stored; "scram-sha-256" never falls back to md5.
        AuthMethod::Md5 => match known {
            Some(u) if u.md5.is_none() && u.scram.is_some() => {
                scram(io, state, user, u.scram.clone()).await
            }
            _ => md5_exchange(io, user, known.and_then(|u| u.md5.as_deref())).await,
        },
        AuthMethod::ScramSha256 => {
            scram(io, state, user, known.and_then(|u| u.scram.clone())).await
        }
    };
    if let Err(ClientError::AuthFailed { reason, .. }) = &result {
        tracing::info!(user, reason, "client authentication failed");
    }
    result?;
    build::auth_ok(&mut io.wbuf);
    Ok(())
}

fn failed(user: &str, reason: &'static str) -> ClientError {
    ClientError::AuthFailed {
        user: user.to_owned(),
        reason,
    }
}

async fn read_password_message(io: &mut ClientIo) -> Result<BytesMut, ClientError> {
    io.flush().await?;
    let (t, body) = io.read_message(MAX_AUTH_MESSAGE).await?;
    if t != tag::PASSWORD {
        return Err(ClientError::UnexpectedMessage(t));
    }
    Ok(body)
}

async fn scram(
    io: &mut ClientIo,
    state: &State,
    user: &str,
    secret: Option<ScramSecret>,
) -> Result<(), ClientError> {
    let real = secret.is_some();
    let secret = secret.unwrap_or_else(|| ScramSecret::mock(user, &state.mock_key));
    let mut server = ScramServer::with_random_nonce(secret.clone());
    build::auth_sasl(&mut io.wbuf, &[SCRAM_SHA_256]);
    let body = read_password_message(io).await?;
    let (mechanism, data) =
        views::sasl_initial_response(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let first = server
        .client_first(mechanism, data)
        .map_err(|e| ClientError::Protocol(format!("SCRAM: {e}")))?;
    build::auth_sasl_continue(&mut io.wbuf, &first);
    let body = read_password_message(io).await?;
    match server.client_final(&body) {
        Ok(fin) if real => {
            // Pass-through: the ClientKey lets pgferry log in to Postgres as
            // this user without its password (auth/passthrough.rs).
            if let Some(key) = server.client_key() {
                state.passthrough(user).set_scram_key(key, secret);
            }
            build::auth_sasl_final(&mut io.wbuf, &fin);
            Ok(())
        }
        Ok(_) => Err(failed(user, "unknown user")),
        Err(crate::auth::AuthError::InvalidProof) if real => Err(failed(user, "wrong password")),
        Err(crate::auth::AuthError::InvalidProof) => Err(failed(user, "unknown user")),
        Err(e) => Err(ClientError::Protocol(format!("SCRAM: {e}"))),
    }
}

async fn md5_exchange(
    io: &mut ClientIo,
    user: &str,
    hash: Option<&str>,
) -> Result<(), ClientError> {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    build::auth_md5(&mut io.wbuf, salt);
    let body = read_password_message(io).await?;
    let response = views::password(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    match hash {
        Some(h) if md5::verify(h, salt, response) => Ok(()),
        Some(_) => Err(failed(user, "wrong password")),
        None => Err(failed(user, "unknown user or no md5-compatible password")),
    }
}
