//! The Postgres side: connecting and authenticating as a configured user,
//! the state of one server connection, and the internal queries pgferry runs
//! on it (parameter sync, reset, probes).

mod conn;
mod connect;
pub mod credentials;
mod error;
mod internal;
pub mod params;
mod statements;

pub use conn::{ServerConn, ServerStats};
pub use connect::{connect, send_cancel, ConnectSpec};
pub use error::ServerError;
pub use internal::{extended_query, simple_query};
pub use params::ParamSet;
pub use statements::ServerStatements;
