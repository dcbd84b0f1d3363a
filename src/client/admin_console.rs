//! The admin console's connection loop: simple queries in, admin replies
//! out. Extended-protocol messages are refused without dropping the client.

use std::sync::Arc;

use bytes::Buf;

use super::io::ClientIo;
use super::ClientError;
use crate::admin;
use crate::protocol::build::{self, Severity};
use crate::protocol::{frame, sqlstate, tag, views, TxStatus};
use crate::state::State;

/// Admin statements are short; anything larger is refused.
const MAX_ADMIN_MESSAGE: usize = 64 * 1024;

pub struct AdminConsole {
    io: ClientIo,
    state: Arc<State>,
    user: String,
}

impl AdminConsole {
    pub(super) fn start(mut io: ClientIo, state: Arc<State>, user: String) -> AdminConsole {
        for (k, v) in [
            ("server_version", "15.0 (pgferry admin console)"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("application_name", "pgferry"),
        ] {
            build::parameter_status(&mut io.wbuf, k, v);
        }
        build::backend_key_data(&mut io.wbuf, 0, 0);
        build::ready_for_query(&mut io.wbuf, TxStatus::Idle);
        AdminConsole { io, state, user }
    }

    pub async fn run(mut self) {
        if let Err(e) = self.serve().await {
            if let Some(w) = e.to_wire() {
                build::error_response(&mut self.io.wbuf, w.severity, &w.code, &w.message);
            }
        }
        let _ = self.io.flush().await;
    }

    async fn serve(&mut self) -> Result<(), ClientError> {
        loop {
            self.io.flush().await?;
            let (t, body) = match self.io.read_message(MAX_ADMIN_MESSAGE).await {
                Ok(m) => m,
                Err(ClientError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            };
            match t {
                tag::TERMINATE => return Ok(()),
                tag::QUERY => {
                    let sql = views::query_text(&body)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    tracing::info!(user = %self.user, command = %sql, "admin command");
                    // Checked at login; a user removed from both lists since
                    // gets read-only access.
                    let access =
                        admin::Access::of(&self.state, &self.user).unwrap_or(admin::Access::Stats);
                    admin::execute(&self.state, sql, access, &mut self.io.wbuf).await;
                    build::ready_for_query(&mut self.io.wbuf, TxStatus::Idle);
                }
                tag::SYNC => build::ready_for_query(&mut self.io.wbuf, TxStatus::Idle),
                tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH => {
                    self.refuse_extended();
                }
                other => return Err(ClientError::UnexpectedMessage(other)),
            }
        }
    }

    /// Errors once per batch, then drops messages up to its Sync (answered
    /// above with ReadyForQuery).
    fn refuse_extended(&mut self) {
        build::error_response(
            &mut self.io.wbuf,
            Severity::Error,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "the admin console speaks the simple query protocol only",
        );
        while let Ok(Some(h)) = frame::header(&self.io.rbuf, MAX_ADMIN_MESSAGE) {
            if h.tag == tag::SYNC || self.io.rbuf.len() < h.total_len() {
                break;
            }
            self.io.rbuf.advance(h.total_len());
        }
    }
}
