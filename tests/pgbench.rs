//! pgbench through pgferry: sustained load with zero failed transactions.

mod common;
mod support;

use std::process::Command;

use common::*;
use support::*;

fn pgbench_bin() -> String {
    let pinned = "/usr/lib/postgresql/15/bin/pgbench";
    if std::path::Path::new(pinned).exists() {
        pinned.to_owned()
    } else {
        "pgbench".to_owned()
    }
}

/// Runs pgbench and returns (processed, failed), panicking with its output
/// when it exits non-zero.
fn pgbench(port: u16, args: &[&str]) -> (u64, u64) {
    let out = Command::new(pgbench_bin())
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "-n",
        ])
        .args(args)
        .arg("app")
        .env("PGPASSWORD", "secret")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    let num = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no '{prefix}' in pgbench output:\n{text}"))
    };
    let processed = num("number of transactions actually processed:");
    let failed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("number of failed transactions:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (processed, failed)
}

#[test]
fn pgbench_runs_clean_through_pgferry() {
    let c = shared_cluster();
    let init = Command::new(pgbench_bin())
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port(0).to_string(),
            "-U",
            "app",
            "-i",
            "-s",
            "2",
            "-q",
            "app",
        ])
        .env("PGPASSWORD", "secret")
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let tx = Proxy::start(&config(c, "transaction", 5, ""));
    for mode in ["simple", "extended"] {
        let (processed, failed) =
            pgbench(tx.port, &["-c", "50", "-j", "2", "-T", "10", "-M", mode]);
        assert_eq!(
            failed, 0,
            "transaction mode, -M {mode}: failed transactions"
        );
        assert!(
            processed > 100,
            "transaction mode, -M {mode}: only {processed} transactions"
        );
    }
    let (processed, failed) = pgbench(
        tx.port,
        &["-c", "20", "-j", "2", "-T", "5", "-S", "-M", "extended"],
    );
    assert_eq!(failed, 0);
    assert!(processed > 100);

    // Named prepared statements work in session mode.
    let session = Proxy::start(&config(c, "session", 10, ""));
    let (processed, failed) = pgbench(
        session.port,
        &["-c", "10", "-j", "2", "-T", "5", "-M", "prepared"],
    );
    assert_eq!(failed, 0, "session mode -M prepared");
    assert!(processed > 100);

    // Statement mode with the select-only script.
    let stmt = Proxy::start(&config(c, "statement", 5, ""));
    let (processed, failed) = pgbench(stmt.port, &["-c", "20", "-j", "2", "-T", "5", "-S"]);
    assert_eq!(failed, 0, "statement mode -S");
    assert!(processed > 100);
}
