//! Shutdown: SIGTERM lets open transactions commit (and closes idle clients
//! with 57P01), shutdown_timeout bounds the wait, SIGINT exits at once.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use support::*;

async fn wait_exit(p: &mut Proxy, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if p.try_wait().is_some() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pgferry did not exit within {within:?}:\n{}", p.log());
}

fn fresh_table(c: &Cluster, name: &str) {
    app_sql(
        c,
        0,
        &format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (v int); GRANT ALL ON {name} TO app"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_open_transactions_commit() {
    let c = shared_cluster();
    fresh_table(c, "sigterm_tx");
    let mut p = Proxy::start(&config(c, "transaction", 4, "shutdown_timeout = \"20s\""));
    let a = connect(&p.url("app", "secret", "app")).await;
    let idle = connect(&p.url("app", "secret", "app")).await;
    one(&idle, "SELECT 1").await;
    a.batch_execute("BEGIN; INSERT INTO sigterm_tx VALUES (1)")
        .await
        .unwrap();

    p.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The idle client was closed; no new client gets in.
    let err = try_one(&idle, "SELECT 1").await.expect_err("closed");
    assert!(err.is_closed() || code(&err) == "57P01", "{err:?}");
    assert!(try_connect(&p.url("app", "secret", "app")).await.is_err());
    // The open transaction finishes.
    a.batch_execute("INSERT INTO sigterm_tx VALUES (2)")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    // ... and then the client is closed at its transaction boundary.
    assert!(try_one(&a, "SELECT 1").await.is_err());
    let took = wait_exit(&mut p, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10));
    assert_eq!(app_sql(c, 0, "SELECT count(*) FROM sigterm_tx"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_an_idle_session_mode_client_at_once() {
    // In session mode an idle client waits inside its held connection's
    // pump, which the drain must wake too.
    let c = shared_cluster();
    fresh_table(c, "sigterm_session");
    let mut p = Proxy::start(&config(c, "session", 4, "shutdown_timeout = \"20s\""));
    let busy = connect(&p.url("app", "secret", "app")).await;
    let idle = connect(&p.url("app", "secret", "app")).await;
    one(&idle, "SELECT 1").await;
    busy.batch_execute("BEGIN; INSERT INTO sigterm_session VALUES (1)")
        .await
        .unwrap();

    p.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = try_one(&idle, "SELECT 1").await.expect_err("closed");
    assert!(err.is_closed() || code(&err) == "57P01", "{err:?}");
    // pgferry is still up for the open transaction, which commits.
    busy.batch_execute("COMMIT").await.unwrap();
    wait_exit(&mut p, Duration::from_secs(10)).await;
    assert_eq!(app_sql(c, 0, "SELECT count(*) FROM sigterm_session"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_wait_and_sigint_is_immediate() {
    let c = shared_cluster();
    fresh_table(c, "sigterm_timeout");
    let mut p = Proxy::start(&config(c, "transaction", 4, "shutdown_timeout = \"1s\""));
    let a = connect(&p.url("app", "secret", "app")).await;
    a.batch_execute("BEGIN; INSERT INTO sigterm_timeout VALUES (1)")
        .await
        .unwrap();
    let started = Instant::now();
    p.signal("TERM");
    wait_exit(&mut p, Duration::from_secs(8)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the transaction"
    );
    // The transaction never committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app_sql(c, 0, "SELECT count(*) FROM sigterm_timeout"), "0");

    let mut p = Proxy::start(&config(c, "transaction", 4, "shutdown_timeout = \"30s\""));
    let b = connect(&p.url("app", "secret", "app")).await;
    b.batch_execute("BEGIN").await.unwrap();
    p.signal("INT");
    let took = wait_exit(&mut p, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "SIGINT took {took:?}");
}
