//! Replays the committed seed corpus (`fuzz/seeds/<target>/`) and every
//! crash input the fuzzers found (`fuzz/regressions/<target>/`) through the
//! fuzz entry points, so plain `cargo test` keeps exercising them.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("startup", super::startup),
    ("frame", super::frame),
    ("views", super::views),
    ("scram", super::scram),
    ("classify", super::classify),
];

/// The files of `fuzz/<kind>/<target>/`, sorted; none if it does not exist.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn replay(kind: &str, min: usize) {
    for (name, run) in TARGETS {
        let files = inputs(kind, name);
        assert!(
            files.len() >= min,
            "expected at least {min} files in fuzz/{kind}/{name}, found {}",
            files.len()
        );
        for (path, data) in files {
            // A panic names the file, so the failing input is easy to find.
            eprintln!("replaying {path}");
            run(&data);
        }
    }
}

#[test]
fn seed_corpus_replays_cleanly() {
    replay("seeds", 3);
}

#[test]
fn crash_regressions_replay_cleanly() {
    replay("regressions", 0);
}

#[test]
fn empty_and_tiny_inputs() {
    for (_, run) in TARGETS {
        for data in [&b""[..], b"\0", b"\xff", b"\x01\xff", b"\x04\0\0\0\x08"] {
            run(data);
        }
    }
}

/// The valid SCRAM seeds must really succeed, or the fuzzer would start far
/// from the proof checks (and the seeds would drift from src/fuzzing/auth.rs).
#[test]
fn valid_scram_seeds_succeed() {
    let files = inputs("seeds", "scram");
    let mut valid = 0;
    for (path, data) in &files {
        let name = path.rsplit('/').next().unwrap();
        let expect = !name.contains("bad") && !name.contains("error");
        assert_eq!(super::auth::run(data), expect, "{path}");
        valid += usize::from(expect);
    }
    assert!(valid >= 5, "only {valid} valid SCRAM seeds");
}
