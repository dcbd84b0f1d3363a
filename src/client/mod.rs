//! The application side: accepting connections, the startup handshake,
//! authentication, and the session loop that drives forwarding.

mod auth;
pub mod cancel;
mod error;
mod handshake;
mod io;
mod listener;
mod login;
mod pump;
mod session;

pub use error::ClientError;
pub use listener::serve;
