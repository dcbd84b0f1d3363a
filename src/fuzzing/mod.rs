//! Entry points of the cargo-fuzz targets in `fuzz/`, one per parser family.
//!
//! Each function takes arbitrary bytes, drives the real parsers with them
//! and asserts what must hold for *any* input: no panic, results that are
//! well-formed (lengths inside the buffer, re-encodings that match the
//! input, state machines that stay failed after an error). A failed
//! assertion is a bug, found by the fuzzer as a crash.
//!
//! They live in the library (behind the `fuzzing` feature, and in unit tests)
//! rather than in `fuzz/` so that the private helpers they reach stay private
//! and so that `cargo test --lib` replays the committed seed corpus and every
//! past crash input through exactly the same code (see `tests.rs`), without
//! cargo-fuzz or a nightly toolchain.

mod auth;
mod protocol;
mod sql;

pub use auth::scram;
pub use protocol::{frame, startup, views};
pub use sql::classify;

/// Splits `data` at the first `0xFF` byte (never part of valid UTF-8, so no
/// valid SCRAM or SQL text is cut): the input of a two-message exchange.
fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

#[cfg(test)]
mod tests;
