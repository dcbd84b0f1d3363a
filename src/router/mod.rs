//! Routing: pure decisions, no I/O. Which route a batch wants (`decide`),
//! which replica takes it (`choose`), the read-only classifier behind
//! `auto` (`classify`), and a per-thread memo of what it said about recent
//! extended-protocol texts (`memo`).

pub mod choose;
pub mod classify;
pub mod decide;
pub mod memo;

pub use choose::{pick, Candidate};
pub use decide::{decide, BatchFacts, Want};
