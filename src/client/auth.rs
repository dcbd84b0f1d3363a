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
use crate::auth::scram::{ScramServer, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::auth::secret::ScramSecret;
use crate::config::{hba_lookup, AuthMethod, ClientVerify, HbaMethod, HbaRequest};
use crate::protocol::{build, tag, views};
use crate::state::{State, UserAuth};

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
    let method = choose_method(io, state, user, database)?;
    check_client_cert(io, user)?;
    let result = match method {
        HbaMethod::Reject => Err(hba_rejected(io, user, database, true)),
        HbaMethod::Trust => {
            if known.is_none() {
                return Err(ClientError::UnknownRole(user.to_owned()));
            }
            Ok(())
        }
        HbaMethod::Cert => cert(io, user, known.is_some()),
        HbaMethod::Password => password(io, user, known).await,
        // Like Postgres, "md5" upgrades to SCRAM when only a SCRAM secret is
        // stored; "scram-sha-256" never falls back to md5.
        HbaMethod::Md5 => match known {
            Some(u) if u.md5.is_none() && u.scram.is_some() => {
                scram(io, state, user, u.scram.clone()).await
            }
            _ => md5_exchange(io, user, known.and_then(|u| u.md5.as_deref())).await,
        },
        HbaMethod::ScramSha256 => scram(io, state, user, known.and_then(|u| u.scram.clone())).await,
    };
    if let Err(ClientError::AuthFailed { reason, .. }) = &result {
        tracing::info!(user, reason, "client authentication failed");
    }
    result?;
    build::auth_ok(&mut io.wbuf);
    Ok(())
}

/// The `[[hba]]` rule's method, or `auth_method` when there are no rules.
fn choose_method(
    io: &ClientIo,
    state: &State,
    user: &str,
    database: &str,
) -> Result<HbaMethod, ClientError> {
    let rules = &state.config().hba;
    if rules.is_empty() {
        return Ok(match state.config().proxy.auth_method {
            AuthMethod::ScramSha256 => HbaMethod::ScramSha256,
            AuthMethod::Md5 => HbaMethod::Md5,
            AuthMethod::Trust => HbaMethod::Trust,
        });
    }
    let req = HbaRequest {
        database,
        user,
        address: peer_ip(io)?,
        tls: io.is_tls(),
    };
    hba_lookup(rules, &req).ok_or_else(|| hba_rejected(io, user, database, false))
}

fn peer_ip(io: &ClientIo) -> Result<std::net::IpAddr, ClientError> {
    Ok(io.stream.tcp().peer_addr()?.ip())
}

/// Names who and from where, never secrets; `explicit` for a "reject" rule.
fn hba_rejected(io: &ClientIo, user: &str, database: &str, explicit: bool) -> ClientError {
    ClientError::HbaRejected {
        addr: peer_ip(io).map_or_else(|_| "?".to_owned(), |a| a.to_string()),
        user: user.to_owned(),
        database: database.to_owned(),
        tls: io.is_tls(),
        explicit,
    }
}

/// `client_verify = "verify-full"`: a TLS client's certificate must name the
/// user, whatever the method (Postgres' clientcert=verify-full).
fn check_client_cert(io: &ClientIo, user: &str) -> Result<(), ClientError> {
    match &io.tls {
        Some(t) if t.verify == ClientVerify::VerifyFull => {
            if t.peer_cn.as_deref() == Some(user) {
                Ok(())
            } else {
                tracing::info!(user, cn = ?t.peer_cn, "client certificate does not name the user");
                Err(ClientError::CertAuthFailed(user.to_owned()))
            }
        }
        _ => Ok(()),
    }
}

/// `method = "cert"`: a verified client certificate whose CN is the user.
fn cert(io: &ClientIo, user: &str, known: bool) -> Result<(), ClientError> {
    let ok = io
        .tls
        .as_ref()
        .is_some_and(|t| t.peer_cert && t.peer_cn.as_deref() == Some(user));
    if !ok {
        tracing::info!(user, "client certificate missing or not for this user");
        return Err(ClientError::CertAuthFailed(user.to_owned()));
    }
    if !known {
        return Err(ClientError::UnknownRole(user.to_owned()));
    }
    Ok(())
}

/// `method = "password"`: the password in clear (over TLS, one hopes),
/// checked against whichever secret is stored.
async fn password(
    io: &mut ClientIo,
    user: &str,
    known: Option<&UserAuth>,
) -> Result<(), ClientError> {
    build::auth_cleartext(&mut io.wbuf);
    let body = read_password_message(io).await?;
    let given = views::password(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let given = std::str::from_utf8(given).map_err(|_| failed(user, "password is not UTF-8"))?;
    let ok = match known {
        Some(UserAuth {
            scram: Some(secret),
            ..
        }) => {
            let candidate = ScramSecret::from_password(given, &secret.salt, secret.iterations);
            crate::auth::constant_time_eq(&candidate.stored_key, &secret.stored_key)
        }
        Some(UserAuth { md5: Some(h), .. }) => {
            crate::auth::constant_time_eq(md5::password_hash(user, given).as_bytes(), h.as_bytes())
        }
        _ => return Err(failed(user, "unknown user or no password")),
    };
    if ok {
        Ok(())
    } else {
        Err(failed(user, "wrong password"))
    }
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
    // TLS clients get SCRAM-SHA-256-PLUS, bound to pgferry's certificate.
    let binding = io
        .tls
        .as_ref()
        .and_then(|t| t.end_point.as_deref().map(<[u8]>::to_vec));
    if binding.is_some() {
        build::auth_sasl(&mut io.wbuf, &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    } else {
        build::auth_sasl(&mut io.wbuf, &[SCRAM_SHA_256]);
    }
    let mut server = ScramServer::with_random_nonce(secret.clone()).with_channel_binding(binding);
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
