//! pgferry: a Postgres connection-routing proxy with pooling.
//!
//! The module tree follows a connection's life: `client` accepts and
//! authenticates, `topology` knows which node is primary, `pool` lends
//! server connections, `server` speaks to Postgres, `protocol` holds the
//! sans-IO wire format. `app` wires them together.

#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod auth;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench;
pub mod client;
pub mod config;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod pool;
pub mod protocol;
pub mod reload;
pub mod router;
pub mod sched;
pub mod server;
pub mod state;
pub mod tls;
pub mod topology;
