//! The admin console: clients connect to the database `pgferry` (or
//! `pgbouncer`, for existing tools) as a user listed in `admin_users` and
//! send commands with the simple query protocol.
//!
//! `parse` turns a statement into a [`Command`]; `control` runs PAUSE,
//! RESUME and RECONNECT; `show` answers SHOW commands; `reply` encodes
//! result sets. Nothing here touches client sockets.

mod config_view;
mod control;
pub mod parse;
mod pgbouncer_views;
pub mod prometheus;
mod reply;
mod show;

use std::sync::Arc;

use bytes::BytesMut;

pub use parse::Command;

use crate::protocol::build::{self, Severity};
use crate::protocol::sqlstate;
use crate::state::State;

/// Database names that reach the admin console.
pub const ADMIN_DATABASES: &[&str] = &["pgferry", "pgbouncer"];

pub fn is_admin_database(name: &str) -> bool {
    ADMIN_DATABASES.contains(&name)
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `admin_users`: everything.
    Admin,
    /// `stats_users`: SHOW only.
    Stats,
}

impl Access {
    /// The access of `user`, if it may use the console at all.
    pub fn of(state: &State, user: &str) -> Option<Access> {
        let proxy = &state.config().proxy;
        if proxy.admin_users.iter().any(|u| u == user) {
            Some(Access::Admin)
        } else if proxy.stats_users.iter().any(|u| u == user) {
            Some(Access::Stats)
        } else {
            None
        }
    }
}

/// Runs one admin statement and appends its reply (without ReadyForQuery)
/// to `out`. Bad commands get an ErrorResponse; nothing here panics.
pub async fn execute(state: &Arc<State>, sql: &str, access: Access, out: &mut BytesMut) {
    match parse::parse(sql) {
        Ok(Command::Empty) => build::empty_query_response(out),
        Ok(cmd) if access == Access::Stats && !cmd.read_only() => build::error_response(
            out,
            Severity::Error,
            sqlstate::INSUFFICIENT_PRIVILEGE,
            "permission denied: stats_users may only run SHOW commands",
        ),
        Ok(cmd) => {
            if let Err(e) = run(state, cmd, out).await {
                build::error_response(out, Severity::Error, e.code, &e.message);
            }
        }
        Err(message) => {
            build::error_response(out, Severity::Error, sqlstate::SYNTAX_ERROR, &message)
        }
    }
}

/// An admin command that failed, with what the client is told.
pub struct AdminError {
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    fn unknown_database(name: &str) -> AdminError {
        AdminError {
            code: sqlstate::INVALID_CATALOG_NAME,
            message: format!("no such database: {name}"),
        }
    }
}

async fn run(state: &Arc<State>, cmd: Command, out: &mut BytesMut) -> Result<(), AdminError> {
    match cmd {
        Command::Pause(db) => control::pause(state, db.as_deref(), out).await,
        Command::Resume(db) => control::resume(state, db.as_deref(), out),
        Command::Reconnect(db) => control::reconnect(state, db.as_deref(), out),
        Command::Kill(db) => control::kill(state, &db, out),
        Command::KillClient(id) => control::kill_client(state, id, out),
        Command::Set { key, value } => config_view::set(state, &key, &value, out),
        Command::Show(what) => show::show(state, &what, out),
        Command::Reload => match state.reloads.request().await {
            Ok(report) => {
                for note in report.notes {
                    build::notice_response(out, sqlstate::SUCCESSFUL_COMPLETION, &note);
                }
                for key in report.needs_restart {
                    build::notice_response(
                        out,
                        sqlstate::WARNING,
                        &format!("{key} changed: takes effect after a restart"),
                    );
                }
                build::command_complete(out, "RELOAD");
                Ok(())
            }
            Err(problems) => Err(AdminError {
                code: sqlstate::CONFIG_FILE_ERROR,
                message: format!("RELOAD rejected, the running config stays: {problems}"),
            }),
        },
        Command::Shutdown { wait_for_clients } => {
            use crate::lifecycle::ShutdownKind;
            state.lifecycle.request(if wait_for_clients {
                ShutdownKind::WaitForClients
            } else {
                ShutdownKind::Fast
            });
            build::command_complete(out, "SHUTDOWN");
            Ok(())
        }
        Command::Empty => Ok(()),
    }
}
