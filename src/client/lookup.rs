//! Where a user's secret comes from: `[[users]]`, then `auth_file` (both
//! loaded into [`State::users`]), then `auth_query` run on the primary as
//! `auth_user`, whose answers are cached for `auth_cache_ttl`.
//!
//! A user that no source knows gets `None`, and the caller runs the usual
//! fake exchange: it fails exactly like a wrong password.

use tokio::io::AsyncWriteExt;

use super::ClientError;
use crate::config::Password;
use crate::protocol::build;
use crate::server::{self, ServerError};
use crate::state::{State, UserAuth};

/// Finds what to verify `user`'s password against. `database` is the
/// database the client asked for (the default place to run `auth_query`).
///
/// An error means the lookup itself failed (no primary, `auth_user` cannot
/// log in, a broken query); it is not cached.
pub async fn find_user(
    state: &State,
    user: &str,
    database: &str,
) -> Result<Option<UserAuth>, ClientError> {
    if let Some(u) = state.users().get(user) {
        return Ok(Some(u.clone()));
    }
    let Some(auth_user) = state.config().proxy.auth_user.clone() else {
        return Ok(None);
    };
    let auth_user = auth_user.as_str();
    if auth_user == user {
        return Ok(None);
    }
    let answer = match state.auth_cache.get(user) {
        Some(answer) => answer,
        None => {
            let answer = run_auth_query(state, auth_user, user, database).await?;
            state.auth_cache.put(user, answer.clone());
            answer
        }
    };
    let Some(password) = answer else {
        return Ok(None);
    };
    let auth = UserAuth::from_password(user, &password);
    // Server connections of this user answer md5 challenges with the
    // current hash; a SCRAM ClientKey is learned at login.
    state.passthrough(user).set_md5(auth.md5.clone());
    Ok(Some(auth))
}

/// Runs `auth_query` for `user` on a short-lived connection as `auth_user`
/// to the primary of `database` (or of the first database, when the client
/// named one that does not exist), in `auth_dbname` if set.
async fn run_auth_query(
    state: &State,
    auth_user: &str,
    user: &str,
    database: &str,
) -> Result<Option<Password>, ClientError> {
    let db = match state.database(database) {
        Some(db) => db,
        None => match state.databases().values().next().cloned() {
            Some(db) => db,
            None => return Ok(None),
        },
    };
    state.ensure_pools(&db.name, auth_user);
    let node = db.topology.primary().await?;
    let Some(pool) = db.pool(auth_user, node) else {
        return Ok(None);
    };
    let mut spec = pool.spec().clone();
    if let Some(dbname) = &state.config().proxy.auth_dbname {
        spec.database = dbname.clone();
    }
    // The client learns only that the lookup failed: Postgres's error could
    // describe the query or the auth user. The details go to our log.
    let hidden = |what: &'static str| {
        move |e: ServerError| {
            tracing::warn!(auth_user, error = %e, "{what}");
            ClientError::Server(ServerError::Protocol(
                "auth_query lookup failed (see pgferry's log)".into(),
            ))
        }
    };
    let mut conn = server::connect(&spec)
        .await
        .map_err(hidden("auth_query: cannot connect as auth_user"))?;
    let rows = server::extended_query(&mut conn, &state.config().proxy.auth_query, &[user])
        .await
        .map_err(hidden("auth_query failed"))?;
    // Say goodbye so the server does not log an unexpected EOF.
    let mut bye = bytes::BytesMut::with_capacity(8);
    build::terminate(&mut bye);
    let _ = conn.stream.write_all(&bye).await;
    let _ = conn.stream.flush().await;
    let passwd = match rows.first() {
        None => None,
        Some(row) if row.len() < 2 => {
            return Err(ClientError::Server(ServerError::Protocol(
                "auth_query must return two columns (user name, password)".into(),
            )));
        }
        Some(row) => row.get(1).cloned().flatten(),
    };
    Ok(passwd.and_then(|p| match Password::parse(&p) {
        Ok(p) => Some(p),
        Err(_) => {
            // The message would quote nothing secret, but keep it short.
            tracing::warn!(user, "auth_query returned a malformed SCRAM secret");
            None
        }
    }))
}
