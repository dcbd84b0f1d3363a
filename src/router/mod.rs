//! Routing: pure decisions, no I/O. Which route a batch wants (`decide`),
//! which replica takes it (`choose`), and the read-only classifier behind
//! `auto` (`classify`).

pub mod choose;
pub mod classify;
pub mod decide;

pub use choose::{pick, Candidate};
pub use decide::{decide, BatchFacts, Want};
