//! Statistics and observability: per-connection counters folded into
//! per-pool atomics, registries of live client and server connections, the
//! histograms behind the latency metrics, and the small HTTP server for
//! `/metrics` and the health endpoints.
//!
//! A leaf module: it knows nothing about clients, pools or topology. What
//! the endpoints show is supplied by the caller (see [`http::Endpoints`]).

pub mod clock;
pub mod histogram;
pub mod http;
pub mod registry;
pub mod stats;

pub use histogram::{LocalHistogram, SharedHistogram};
pub use registry::{ClientEntry, ClientState, Registered, Registry, ServerEntry, ServerState};
pub use stats::{ConnCounters, ErrorCounts, ErrorKind, PoolStats};
