//! Client-side errors and the one place that turns them into what the client
//! sees: SQLSTATE, severity and a message that leaks nothing internal.

use thiserror::Error;

use crate::metrics::ErrorKind;
use crate::pool::PoolError;
use crate::protocol::build::Severity;
use crate::protocol::frame::FrameError;
use crate::protocol::sqlstate;
use crate::protocol::startup::StartupError;
use crate::server::ServerError;
use crate::topology::TopologyError;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("client I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("client closed the connection")]
    Closed,
    #[error("client did not complete login in time")]
    LoginTimeout,
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unexpected message type '{}'", char::from(*.0))]
    UnexpectedMessage(u8),
    #[error("{0}")]
    Protocol(String),
    #[error("password authentication failed for user \"{user}\" ({reason})")]
    AuthFailed { user: String, reason: &'static str },
    #[error("role \"{0}\" does not exist")]
    UnknownRole(String),
    #[error("database \"{0}\" does not exist")]
    UnknownDatabase(String),
    #[error("TLS is required: plaintext connections are not accepted (client_mode = require)")]
    TlsRequired,
    /// No `[[hba]]` rule matched, or the matching one says "reject". Names
    /// who and from where, never secrets.
    #[error("{} host \"{addr}\", user \"{user}\", database \"{database}\", {}",
        if *.explicit { "pgferry hba rejects connection for" } else { "no pgferry hba entry for" },
        if *.tls { "TLS" } else { "no encryption" })]
    HbaRejected {
        addr: String,
        user: String,
        database: String,
        tls: bool,
        explicit: bool,
    },
    #[error("certificate authentication failed for user \"{0}\"")]
    CertAuthFailed(String),
    #[error("no more connections allowed (max_client_conn)")]
    TooManyClients,
    #[error("invalid startup parameter: {0}")]
    BadParameter(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("no replica of database \"{0}\" is available within the configured lag")]
    NoReplica(String),
    #[error("no node could take the request")]
    NoServer,
    #[error(
        "terminating connection due to idle-in-transaction timeout (idle_transaction_timeout)"
    )]
    IdleInTransaction,
    #[error("terminating connection due to idle-session timeout (client_idle_timeout)")]
    IdleTimeout,
    #[error("terminating connection because pgferry is shutting down")]
    ShuttingDown,
    #[error(
        "user \"{0}\" is not allowed to use the admin console (not in admin_users or stats_users)"
    )]
    NotAdmin(String),
    #[error("terminating connection due to administrator command")]
    Killed,
    #[error("no primary for database \"{database}\" within failover_timeout (waited {} ms)", waited.as_millis())]
    FailoverTimeout {
        database: String,
        waited: std::time::Duration,
    },
}

/// What the client is told.
pub struct WireError {
    pub severity: Severity,
    pub code: String,
    pub message: String,
}

impl ClientError {
    /// The ErrorResponse for this error, or None when the client is gone.
    /// Login-phase errors are FATAL (the connection closes); callers decide
    /// the severity for errors during a session.
    pub fn to_wire(&self) -> Option<WireError> {
        let fatal = |code: &str, message: String| WireError {
            severity: Severity::Fatal,
            code: code.to_owned(),
            message,
        };
        Some(match self {
            ClientError::Io(_) | ClientError::Closed | ClientError::LoginTimeout => return None,
            ClientError::Startup(StartupError::UnsupportedProtocol { .. }) => {
                fatal(sqlstate::FEATURE_NOT_SUPPORTED, self.to_string())
            }
            ClientError::Startup(_) | ClientError::Frame(FrameError::BadLength(_)) => {
                fatal(sqlstate::PROTOCOL_VIOLATION, self.to_string())
            }
            ClientError::Frame(FrameError::TooLarge { .. }) => {
                fatal(sqlstate::PROGRAM_LIMIT_EXCEEDED, self.to_string())
            }
            ClientError::UnexpectedMessage(_) | ClientError::Protocol(_) => {
                fatal(sqlstate::PROTOCOL_VIOLATION, self.to_string())
            }
            // Same message for an unknown user and a wrong password: no user
            // enumeration. The reason stays in our logs only.
            ClientError::AuthFailed { user, .. } => fatal(
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            ),
            ClientError::UnknownRole(_)
            | ClientError::TlsRequired
            | ClientError::HbaRejected { .. }
            | ClientError::CertAuthFailed(_) => {
                fatal(sqlstate::INVALID_AUTHORIZATION, self.to_string())
            }
            ClientError::UnknownDatabase(_) => {
                fatal(sqlstate::INVALID_CATALOG_NAME, self.to_string())
            }
            ClientError::TooManyClients => fatal(sqlstate::TOO_MANY_CONNECTIONS, self.to_string()),
            ClientError::BadParameter(_) => fatal(sqlstate::PROTOCOL_VIOLATION, self.to_string()),
            ClientError::Server(ServerError::Rejected {
                severity,
                code,
                message,
            }) => WireError {
                severity: if severity == "ERROR" {
                    Severity::Error
                } else {
                    Severity::Fatal
                },
                code: code.clone(),
                message: message.clone(),
            },
            ClientError::Server(e) => fatal(
                sqlstate::CONNECTION_FAILURE,
                format!("pgferry: {}", server_summary(e)),
            ),
            ClientError::Pool(PoolError::WaitTimeout { .. }) => fatal(
                sqlstate::QUERY_CANCELED,
                "pgferry: query_wait_timeout: no server connection became available".to_owned(),
            ),
            ClientError::Pool(PoolError::Server(e)) => {
                return ClientError::Server(clone_server_error(e)).to_wire();
            }
            ClientError::Pool(PoolError::Closed) => fatal(
                sqlstate::ADMIN_SHUTDOWN,
                "pgferry: pool is closed".to_owned(),
            ),
            ClientError::Topology(e) => {
                fatal(sqlstate::CONNECTION_FAILURE, format!("pgferry: {e}"))
            }
            ClientError::NoReplica(_) => {
                fatal(sqlstate::CANNOT_CONNECT_NOW, format!("pgferry: {self}"))
            }
            ClientError::NotAdmin(_) => fatal(sqlstate::INSUFFICIENT_PRIVILEGE, self.to_string()),
            ClientError::FailoverTimeout { .. } => {
                fatal(sqlstate::CANNOT_CONNECT_NOW, format!("pgferry: {self}"))
            }
            ClientError::IdleInTransaction => fatal(
                sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                format!("pgferry: {self}"),
            ),
            ClientError::ShuttingDown => {
                fatal(sqlstate::ADMIN_SHUTDOWN, format!("pgferry: {self}"))
            }
            ClientError::IdleTimeout => {
                fatal(sqlstate::IDLE_SESSION_TIMEOUT, format!("pgferry: {self}"))
            }
            ClientError::NoServer => {
                fatal(sqlstate::CONNECTION_FAILURE, format!("pgferry: {self}"))
            }
            ClientError::Killed => fatal(sqlstate::ADMIN_SHUTDOWN, self.to_string()),
        })
    }

    /// The kind counted in the error metrics.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Pool(PoolError::WaitTimeout { .. }) => ErrorKind::WaitTimeout,
            ClientError::FailoverTimeout { .. } => ErrorKind::FailoverTimeout,
            ClientError::NoServer
            | ClientError::NoReplica(_)
            | ClientError::Server(_)
            | ClientError::Pool(_)
            | ClientError::Topology(_) => ErrorKind::NoServer,
            ClientError::Startup(_)
            | ClientError::Frame(_)
            | ClientError::UnexpectedMessage(_)
            | ClientError::Protocol(_) => ErrorKind::Protocol,
            ClientError::AuthFailed { .. }
            | ClientError::UnknownRole(_)
            | ClientError::UnknownDatabase(_)
            | ClientError::TooManyClients
            | ClientError::BadParameter(_)
            | ClientError::NotAdmin(_)
            | ClientError::TlsRequired
            | ClientError::HbaRejected { .. }
            | ClientError::CertAuthFailed(_)
            | ClientError::LoginTimeout => ErrorKind::Login,
            ClientError::Killed | ClientError::ShuttingDown => ErrorKind::Killed,
            ClientError::IdleInTransaction | ClientError::IdleTimeout => ErrorKind::IdleTimeout,
            ClientError::Io(_) | ClientError::Closed => ErrorKind::Other,
        }
    }
}

/// Server-side failures are summarised without internal detail such as the
/// configured password method.
fn server_summary(e: &ServerError) -> String {
    match e {
        ServerError::Auth { user, .. } => format!("server login failed for user \"{user}\""),
        other => other.to_string(),
    }
}

fn clone_server_error(e: &ServerError) -> ServerError {
    match e {
        ServerError::Rejected {
            severity,
            code,
            message,
        } => ServerError::Rejected {
            severity: severity.clone(),
            code: code.clone(),
            message: message.clone(),
        },
        other => ServerError::Protocol(server_summary(other)),
    }
}
