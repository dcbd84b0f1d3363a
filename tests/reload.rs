//! Hot reload: RELOAD on the console and SIGHUP re-read the config and apply
//! it without dropping clients; an invalid file is rejected with every
//! problem and the running config keeps serving.

mod common;
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use support::*;

/// The test's config: `size` as the default pool size, `extra_db` appended.
fn text(c: &Cluster, port: u16, size: usize, rl_password: &str, extra: &str) -> String {
    config(
        c,
        "transaction",
        size,
        "admin_users = [\"app\"]\nauth_method = \"scram-sha-256\"",
    )
    .replace("{listen}", &format!("127.0.0.1:{port}"))
        + &format!("\n[[users]]\nname = \"rl_user\"\npassword = \"{rl_password}\"\n{extra}")
}

/// Moves the `[[users]]` entry appended last in front of the databases
/// (TOML: tables after `[databases.app]` would belong to it otherwise).
fn ordered(t: String) -> String {
    let (head, tail) = t.split_once("[databases.app]").expect("databases table");
    let (db_body, users) = match tail.split_once("\n[[users]]\nname = \"rl_user\"") {
        Some((db, rest)) => (
            db.to_owned(),
            format!("[[users]]\nname = \"rl_user\"{rest}"),
        ),
        None => (tail.to_owned(), String::new()),
    };
    // Extra databases were appended after the rl_user entry; keep them last.
    let (user_part, extra_dbs) = match users.split_once("\n[databases.") {
        Some((u, d)) => (u.to_owned(), format!("\n[databases.{d}")),
        None => (users, String::new()),
    };
    format!("{head}{user_part}\n[databases.app]{db_body}{extra_dbs}")
}

async fn admin(p: &Proxy) -> tokio_postgres::Client {
    connect(&p.url("app", "secret", "pgferry")).await
}

/// Runs transactions in a loop on 4 clients until stopped; counts errors.
fn workload(p: &Proxy, stop: Arc<AtomicBool>, errors: Arc<AtomicU64>, done: Arc<AtomicU64>) {
    for _ in 0..4 {
        let url = p.url("app", "secret", "app");
        let (stop, errors, done) = (stop.clone(), errors.clone(), done.clone());
        tokio::spawn(async move {
            let c = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                match c
                    .batch_execute("BEGIN; SELECT pg_sleep(0.01); COMMIT")
                    .await
                {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("workload error: {e:?}");
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_database_changes_a_password_and_shrinks_a_pool_under_load() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "DROP ROLE IF EXISTS rl_user; CREATE ROLE rl_user LOGIN PASSWORD 'one'; GRANT CONNECT ON DATABASE app TO rl_user",
    );
    let port = free_port();
    let p = Proxy::start(&ordered(text(c, port, 4, "one", "")));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    workload(&p, stop.clone(), errors.clone(), done.clone());
    let old_login = connect(&p.url("rl_user", "one", "app")).await;
    one(&old_login, "SELECT 1").await;
    assert!(try_connect(&p.url("app", "secret", "app2")).await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // New password in Postgres and in the config; a second database; a
    // smaller pool.
    app_sql(c, 0, "ALTER ROLE rl_user PASSWORD 'two'");
    let db2 = format!(
        "\n[databases.app2]\nhosts = {}\ndbname = \"app\"\n",
        c.hosts_toml()
    );
    std::fs::write(&p.config_path, ordered(text(c, port, 2, "two", &db2))).unwrap();
    let a = admin(&p).await;
    a.simple_query("RELOAD").await.expect("RELOAD");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let two = connect(&p.url("rl_user", "two", "app")).await;
    one(&two, "SELECT 1").await;
    let err = try_connect(&p.url("rl_user", "one", "app"))
        .await
        .expect_err("old password");
    assert_eq!(code(&err), "28P01");
    let c2 = connect(&p.url("app", "secret", "app2")).await;
    assert_eq!(
        one(&c2, "SELECT current_database()::text")
            .await
            .get::<_, String>(0),
        "app"
    );
    // The client that logged in before keeps working.
    one(&old_login, "SELECT 1").await;
    // The pool shrinks to 2 as connections come back.
    let rows = a.simple_query("SHOW POOLS").await.unwrap();
    drop(rows);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no client saw an error");
    assert!(done.load(Ordering::Relaxed) > 20);
    let servers = app_sql(
        c,
        0,
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = 'app' AND application_name <> 'pgferry monitor' AND backend_type = 'client backend'",
    );
    let servers: i64 = servers.parse().unwrap();
    // Pool of 2 for app, plus app2's one connection.
    assert!(servers <= 3, "{servers} server connections for app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_is_rejected_and_the_old_config_keeps_serving() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "DROP ROLE IF EXISTS rl_other; CREATE ROLE rl_other LOGIN PASSWORD 'one'",
    );
    let port = free_port();
    let p = Proxy::start(&ordered(text(c, port, 4, "one", "")));
    let a = admin(&p).await;
    std::fs::write(
        &p.config_path,
        "[proxy]\ndefault_pool_size = 0\nquery_wait_timeout = \"soon\"\n",
    )
    .unwrap();
    let err = a.simple_query("RELOAD").await.expect_err("invalid file");
    assert_eq!(code(&err), "F0000", "{err:?}");
    let message = err.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("default_pool_size"), "{message}");
    assert!(message.contains("query_wait_timeout"), "{message}");
    // Still serving with the old config.
    let app = connect(&p.url("app", "secret", "app")).await;
    one(&app, "SELECT 1").await;
    assert!(p.log().contains("config reload rejected"));

    // SIGHUP applies a valid file: a new database appears.
    let db2 = format!(
        "\n[databases.hup]\nhosts = {}\ndbname = \"app\"\n",
        c.hosts_toml()
    );
    std::fs::write(&p.config_path, ordered(text(c, port, 4, "one", &db2))).unwrap();
    p.signal("HUP");
    let mut ok = false;
    for _ in 0..50 {
        if try_connect(&p.url("app", "secret", "hup")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "database added by SIGHUP:\n{}", p.log());
    // Removing it again: new clients get 3D000, a connected one carries on.
    let stays = connect(&p.url("app", "secret", "hup")).await;
    std::fs::write(&p.config_path, ordered(text(c, port, 4, "one", ""))).unwrap();
    a.simple_query("RELOAD").await.expect("RELOAD");
    let err = try_connect(&p.url("app", "secret", "hup"))
        .await
        .expect_err("removed");
    assert_eq!(code(&err), "3D000");
    one(&stays, "SELECT 1").await;
}
