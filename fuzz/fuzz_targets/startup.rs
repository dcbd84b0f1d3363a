//! See `pgferry::fuzzing::startup` for the input layout and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pgferry::fuzzing::startup(data));
