//! The application side: accepting connections, the startup handshake,
//! authentication, and the session loop that drives forwarding.

mod admin_console;
mod auth;
mod batch;
pub mod cancel;
mod error;
mod handshake;
mod io;
pub mod kill;
mod listener;
mod login;
mod lookup;
pub(crate) mod prepared;
mod pump;
pub mod ratelimit;
mod refuse;
pub(crate) mod replay;
mod route;
mod session;
mod spare;

pub use error::ClientError;
pub use kill::KillSwitch;
pub use listener::serve;
