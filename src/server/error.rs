use thiserror::Error;

/// Why talking to a server failed. Every variant says which side failed.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("could not connect to server {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to server {addr}")]
    ConnectTimeout { addr: String },
    #[error("server connection I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection unexpectedly")]
    Closed,
    /// The server answered with an ErrorResponse; it is passed on as-is.
    #[error("server error {code}: {message}")]
    Rejected {
        severity: String,
        code: String,
        message: String,
    },
    #[error("server protocol error: {0}")]
    Protocol(String),
    #[error("cannot authenticate to server as \"{user}\": {reason}")]
    Auth { user: String, reason: String },
    /// TLS was required and the server declined it, or the handshake
    /// (certificate verification included) failed.
    #[error("TLS with server {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
}

impl ServerError {
    /// True when the failure means the node itself is unreachable (as opposed
    /// to, say, a wrong password), so the primary must be found again.
    pub fn is_node_failure(&self) -> bool {
        match self {
            ServerError::Connect { .. }
            | ServerError::ConnectTimeout { .. }
            | ServerError::Closed => true,
            ServerError::Io(_) => true,
            // The server is shutting down, starting up or in recovery.
            ServerError::Rejected { code, .. } => code.starts_with("57P") || code == "08006",
            ServerError::Protocol(_) | ServerError::Auth { .. } | ServerError::Tls { .. } => false,
        }
    }
}
