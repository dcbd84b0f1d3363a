//! Limits: max_db_connections / max_user_connections (with eviction of idle
//! connections), reserve pool, server_lifetime, server_idle_timeout,
//! client_idle_timeout, idle_transaction_timeout and query_timeout. Each
//! client over a limit is refused or disconnected alone.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use support::*;

/// A query that sleeps and reports how many of its kind run at that moment
/// (on the primary), tagged so the count sees only this test's queries.
fn probe(tag: &str) -> String {
    format!(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{tag}%' AND state = 'active' AND pid <> pg_backend_pid()) + 1 AS n, pg_sleep(0.3)::text"
    )
}

async fn most_concurrent(urls: Vec<String>, tag: &str) -> i64 {
    let mut tasks = Vec::new();
    for url in urls {
        let sql = probe(tag);
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await;
            one(&c, &sql).await.get::<_, i64>(0)
        }));
    }
    let mut most = 0;
    for t in tasks {
        most = most.max(t.await.expect("query task"));
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_db_connections_caps_all_users_together_and_evicts_idle_ones() {
    let c = shared_cluster();
    let p = Proxy::start(&config(
        c,
        "transaction",
        5,
        "max_db_connections = 2\nquery_wait_timeout = \"5s\"",
    ));
    let mut urls = Vec::new();
    for _ in 0..3 {
        urls.push(p.url("app", "secret", "app"));
        urls.push(p.url("md5user", "md5pass", "app"));
    }
    let most = most_concurrent(urls, "dblimit_tag").await;
    assert!(most <= 2, "{most} server connections ran at once (limit 2)");
    assert!(most >= 1);

    // app's two connections now sit idle; md5user needs one: an idle one
    // of app's is closed to make room instead of waiting for it.
    let b = connect(&p.url("md5user", "md5pass", "app")).await;
    let started = Instant::now();
    one(&b, "SELECT 1").await;
    one(&b, "SELECT 1").await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_user_connections_caps_one_user() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 5, "max_user_connections = 1"));
    let urls = (0..3).map(|_| p.url("md5user", "md5pass", "app")).collect();
    assert_eq!(most_concurrent(urls, "userlimit_tag").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_pool_opens_for_clients_that_waited() {
    let c = shared_cluster();
    let p = Proxy::start(&config(
        c,
        "transaction",
        1,
        "reserve_pool_size = 1\nreserve_pool_timeout = \"200ms\"",
    ));
    let started = Instant::now();
    let urls = (0..2).map(|_| p.url("md5user", "md5pass", "app")).collect();
    let most = most_concurrent(urls, "reserve_tag").await;
    assert_eq!(most, 2, "the second client got a reserve connection");
    assert!(started.elapsed() < Duration::from_secs(3));
}

async fn server_pid(client: &tokio_postgres::Client) -> i32 {
    one(client, "SELECT pg_backend_pid()").await.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifetime_and_idle_timeout_close_old_connections() {
    let c = shared_cluster();
    let p = Proxy::start(&config(
        c,
        "transaction",
        1,
        "server_lifetime = \"1s\"\nserver_idle_timeout = \"1s\"",
    ));
    let a = connect(&p.url("md5user", "md5pass", "app")).await;
    let first = server_pid(&a).await;
    assert_eq!(server_pid(&a).await, first, "reused while young");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let left = app_sql(
        c,
        0,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {first}"),
    );
    assert_eq!(
        left, "0",
        "the idle connection was closed by server_idle_timeout"
    );
    let second = server_pid(&a).await;
    assert_ne!(second, first);

    // server_lifetime: a busy connection is replaced once it is too old.
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut pid = second;
    while Instant::now() < deadline && pid == second {
        pid = server_pid(&a).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(pid, second, "an old connection is not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_idle_timeout_disconnects_only_the_idle_client() {
    let c = shared_cluster();
    let p = Proxy::start(&config(
        c,
        "transaction",
        2,
        "auth_method = \"trust\"\nclient_idle_timeout = \"1s\"",
    ));
    let mut idle = raw_login_trust(p.port).await;
    let busy = connect(&p.url("app", "secret", "app")).await;
    for _ in 0..6 {
        one(&busy, "SELECT 1").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        idle.error_code(Duration::from_secs(3)).await.as_deref(),
        Some("57P05")
    );
    assert!(idle.closed(Duration::from_secs(2)).await);
    one(&busy, "SELECT 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_timeout_rolls_back_and_disconnects() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "DROP TABLE IF EXISTS idle_tx; CREATE TABLE idle_tx (v int); GRANT ALL ON idle_tx TO app",
    );
    let p = Proxy::start(&config(
        c,
        "transaction",
        1,
        "auth_method = \"trust\"\nidle_transaction_timeout = \"1s\"",
    ));
    let mut r = raw_login_trust(p.port).await;
    r.send(&message(b'Q', b"BEGIN; INSERT INTO idle_tx VALUES (1)\0"))
        .await;
    loop {
        let (tag, body) = r.recv(Duration::from_secs(5)).await.expect("reply");
        if tag == b'Z' {
            assert_eq!(body, b"T");
            break;
        }
    }
    assert_eq!(
        r.error_code(Duration::from_secs(4)).await.as_deref(),
        Some("25P03")
    );
    // The pool of one is free again, and the insert was rolled back.
    let other = connect(&p.url("app", "secret", "app")).await;
    let n: i64 = one(&other, "SELECT count(*) FROM idle_tx").await.get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_cancels_the_query_and_keeps_the_client() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "query_timeout = \"500ms\""));
    let a = connect(&p.url("app", "secret", "app")).await;
    let started = Instant::now();
    let err = a
        .batch_execute("SELECT pg_sleep(10)")
        .await
        .expect_err("cancelled");
    assert_eq!(code(&err), "57014", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    one(&a, "SELECT 1").await;
}
