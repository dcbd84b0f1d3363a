//! Login: startup parameters, authentication, the first server connection
//! (which also supplies the ParameterStatus set the client sees).

use std::sync::Arc;

use super::admin_console::AdminConsole;
use super::auth::authenticate;
use super::handshake::Startup;
use super::io::ClientIo;
use super::route::{parse_route, ROUTE_PARAM};
use super::session::Session;
use super::ClientError;
use crate::admin;
use crate::config::Route;
use crate::protocol::startup::parse_options;
use crate::protocol::{build, TxStatus};
use crate::server::ParamSet;
use crate::state::State;

/// Startup parameters that describe the connection rather than set GUCs.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// What login hands the session.
pub struct LoginInfo {
    pub user: String,
    pub database: String,
    pub desired: ParamSet,
    pub route: Option<Route>,
}

/// A logged-in client: a regular session, or the admin console.
pub enum LoggedIn {
    Session(Box<Session>),
    Admin(Box<AdminConsole>),
}

pub async fn login(
    mut io: ClientIo,
    state: Arc<State>,
    startup: Startup,
    over_limit: bool,
) -> Result<LoggedIn, (ClientIo, ClientError)> {
    match prepare(&mut io, &state, startup, over_limit).await {
        Ok(i) if admin::is_admin_database(&i.database) => Ok(LoggedIn::Admin(Box::new(
            AdminConsole::start(io, state, i.user),
        ))),
        Ok(i) => Session::start(io, state, i.user, i.database, i.desired, i.route)
            .await
            .map(|s| LoggedIn::Session(Box::new(s))),
        Err(e) => Err((io, e)),
    }
}

async fn prepare(
    io: &mut ClientIo,
    state: &Arc<State>,
    startup: Startup,
    over_limit: bool,
) -> Result<LoginInfo, ClientError> {
    if over_limit {
        return Err(ClientError::TooManyClients);
    }
    let param = |name: &str| {
        startup
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user = param("user")
        .filter(|u| !u.is_empty())
        .ok_or(ClientError::Protocol(
            "no PostgreSQL user name specified in startup packet".into(),
        ))?;
    let database = param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    if param("replication").is_some_and(|r| !matches!(r.as_str(), "false" | "off" | "no" | "0")) {
        return Err(ClientError::BadParameter(
            "replication connections are not supported".into(),
        ));
    }
    authenticate(io, state, &user, &database).await?;
    if admin::is_admin_database(&database) {
        let proxy = &state.config().proxy;
        if !proxy.admin_users.contains(&user) && !proxy.stats_users.contains(&user) {
            return Err(ClientError::NotAdmin(user));
        }
    } else if !state.databases().contains_key(&database) {
        return Err(ClientError::UnknownDatabase(database));
    } else {
        // Users from auth_file and auth_query get their pools on first login.
        state.ensure_pools(&database, &user);
    }
    let mut desired = ParamSet::new();
    for (k, v) in &startup.params {
        if !NOT_SETTINGS.contains(&k.as_str()) {
            desired.set(k, v);
        }
    }
    if let Some(options) = param("options") {
        for (k, v) in parse_options(&options).map_err(ClientError::BadParameter)? {
            desired.set(&k, &v);
        }
    }
    // pgferry's own setting is answered by pgferry, never sent to Postgres.
    let route = match desired.get(ROUTE_PARAM) {
        Some(v) => Some(parse_route(v).map_err(ClientError::BadParameter)?),
        None => None,
    };
    desired.remove(ROUTE_PARAM);
    Ok(LoginInfo {
        user,
        database,
        desired,
        route,
    })
}

/// Sends the parameters, key data and first ReadyForQuery.
pub fn welcome(io: &mut ClientIo, reported: &ParamSet, pid: u32, secret: u32) {
    for (k, v) in reported.iter() {
        build::parameter_status(&mut io.wbuf, k, v);
    }
    build::backend_key_data(&mut io.wbuf, pid, secret);
    build::ready_for_query(&mut io.wbuf, TxStatus::Idle);
}
