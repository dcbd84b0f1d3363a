//! PAUSE, RESUME and RECONNECT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::AdminError;
use crate::protocol::build;
use crate::protocol::sqlstate;
use crate::state::{Database, State};

/// The databases a command names: one, or all when none is given.
fn select(state: &State, db: Option<&str>) -> Result<Vec<Arc<Database>>, AdminError> {
    match db {
        Some(name) => state
            .database(name)
            .map(|d| vec![d])
            .ok_or_else(|| AdminError::unknown_database(name)),
        None => Ok(state.databases().values().cloned().collect()),
    }
}

fn in_flight(dbs: &[Arc<Database>]) -> usize {
    dbs.iter()
        .flat_map(|d| d.pools())
        .map(|p| p.in_flight())
        .sum()
}

/// Holds new work for the databases, then waits for running transactions
/// (server connections on loan) to finish, at most `pause_timeout`; what
/// is still running then has its statements cancelled.
pub async fn pause(
    state: &Arc<State>,
    db: Option<&str>,
    out: &mut BytesMut,
) -> Result<(), AdminError> {
    let dbs = select(state, db)?;
    for d in &dbs {
        if d.gate.pause() {
            tracing::warn!(database = %d.name, "paused: new work is held until RESUME");
        }
    }
    let deadline = Instant::now() + state.config().proxy.pause_timeout;
    loop {
        let busy = in_flight(&dbs);
        if busy == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let timeout = state.config().proxy.server_connect_timeout;
            let mut cancelled = 0;
            for d in &dbs {
                for t in state.cancels.targets_for(&d.name) {
                    tokio::spawn(crate::server::send_cancel(t.addr, t.pid, t.secret, timeout));
                    cancelled += 1;
                }
            }
            let message = format!(
                "{busy} transaction(s) still running after pause_timeout; cancelled {cancelled} running statement(s)"
            );
            tracing::warn!(
                running = busy,
                cancelled,
                "PAUSE timed out waiting for transactions"
            );
            build::notice_response(out, sqlstate::WARNING, &message);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    build::command_complete(out, "PAUSE");
    Ok(())
}

pub fn resume(state: &Arc<State>, db: Option<&str>, out: &mut BytesMut) -> Result<(), AdminError> {
    let dbs = select(state, db)?;
    let mut resumed = 0;
    for d in &dbs {
        if d.gate.resume() {
            tracing::warn!(database = %d.name, "resumed");
            resumed += 1;
        }
    }
    if resumed == 0 {
        return Err(AdminError {
            code: sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            message: "not paused".to_owned(),
        });
    }
    build::command_complete(out, "RESUME");
    Ok(())
}

/// Replaces every server connection as it becomes idle.
pub fn reconnect(
    state: &Arc<State>,
    db: Option<&str>,
    out: &mut BytesMut,
) -> Result<(), AdminError> {
    for d in select(state, db)? {
        for pool in d.pools() {
            pool.reconnect();
        }
        tracing::info!(database = %d.name, "reconnect: server connections are replaced as they become idle");
    }
    build::command_complete(out, "RECONNECT");
    Ok(())
}

/// KILL db: closes every client of the database (FATAL 57P01) and its
/// server connections, and pauses it like PgBouncer does: new work waits
/// for RESUME.
pub fn kill(state: &Arc<State>, db: &str, out: &mut BytesMut) -> Result<(), AdminError> {
    let dbs = select(state, Some(db))?;
    let mut killed = 0;
    for c in state.clients.snapshot() {
        if &*c.database == db {
            c.kill.kill();
            killed += 1;
        }
    }
    for d in &dbs {
        d.gate.pause();
        // Connections in use close as their (killed) clients let go.
        for pool in d.pools() {
            pool.reconnect();
        }
    }
    tracing::warn!(
        database = db,
        clients = killed,
        "KILL: clients and server connections dropped; paused until RESUME"
    );
    build::command_complete(out, "KILL");
    Ok(())
}

/// KILL_CLIENT id: closes one client (FATAL 57P01); a transaction it had
/// open is rolled back by its server connection being closed.
pub fn kill_client(state: &Arc<State>, id: u64, out: &mut BytesMut) -> Result<(), AdminError> {
    let Some(c) = state.clients.get(id) else {
        return Err(AdminError {
            code: sqlstate::UNDEFINED_OBJECT,
            message: format!("no client with id {id} (see SHOW CLIENTS)"),
        });
    };
    c.kill.kill();
    tracing::warn!(client_id = id, database = %c.database, user = %c.user, "KILL_CLIENT");
    build::command_complete(out, "KILL_CLIENT");
    Ok(())
}
