//! One server connection and what pgferry knows about it.

use std::net::SocketAddr;

use super::params::ServerParams;
use crate::config::HostAddr;
use crate::protocol::TxStatus;
use crate::tls::Stream;

/// Plain per-connection counters; folded into pool stats by their owner, so
/// nothing shared is touched per message.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    pub transactions: u64,
    pub queries: u64,
}

pub struct ServerConn {
    pub stream: Stream,
    pub id: u64,
    pub node: HostAddr,
    /// The address actually connected to, where CancelRequests go.
    pub socket_addr: SocketAddr,
    pub backend_pid: u32,
    pub backend_secret: u32,
    pub params: ServerParams,
    pub tx_status: TxStatus,
    /// Set when the connection's protocol state is unknown (I/O failed, a
    /// client left mid-transaction): such a connection is closed, never reused.
    pub broken: bool,
    /// When it was opened and last returned to its pool, on the process
    /// clock (`metrics::clock::now_us`): the pool's age checks are then a
    /// subtraction of integers.
    pub created_us: u64,
    pub last_used_us: u64,
    pub stats: ServerStats,
    /// The pool generation this connection belongs to; RECONNECT starts a
    /// new one and older connections are closed as they come back.
    pub epoch: u64,
    /// Named statements prepared on this connection by pgferry.
    pub statements: super::ServerStatements,
    /// This connection in SHOW SERVERS; set by the pool that opened it,
    /// removed when the connection is dropped.
    pub entry: Option<crate::metrics::Registered<crate::metrics::ServerEntry>>,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("id", &self.id)
            .field("node", &self.node)
            .field("backend_pid", &self.backend_pid)
            .field("tx_status", &self.tx_status)
            .field("broken", &self.broken)
            .finish()
    }
}

impl ServerConn {
    /// Whether the connection can be handed out again: idle, not broken, and
    /// the server has not closed it or sent anything while it sat in the pool
    /// (an idle server only speaks to say it is going away).
    ///
    /// The readiness check costs no system call unless the runtime has seen
    /// the socket become readable. For TLS the raw socket is probed: any
    /// byte (a record, a close_notify) means the server spoke, and such a
    /// connection is dropped anyway, so consuming it does no harm.
    pub fn is_reusable(&mut self) -> bool {
        if !self.is_clean() {
            return false;
        }
        // `try_read` looks at the runtime's readiness flag first: while it is
        // clear this is WouldBlock at once (no system call, no waker); once
        // set, the read tells (EAGAIN clears the flag again).
        let mut probe = [0u8; 1];
        matches!(
            self.stream.tcp().try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Not broken and outside a transaction: fit to go back to the pool
    /// (whether Postgres said something meanwhile is checked on the way out,
    /// by `is_reusable`).
    pub fn is_clean(&self) -> bool {
        !self.broken && self.tx_status == TxStatus::Idle
    }

    /// Whether the connection to Postgres is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }
}
