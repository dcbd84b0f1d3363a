//! Where user secrets come from (auth_file, auth_query), logging in to
//! Postgres without a plaintext password (SCRAM ClientKey and md5
//! pass-through), and the failed-login delay per client address.

mod common;
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use support::*;

/// A config whose only `[[users]]` entry is `app` (the monitor), plus `users`
/// (extra `[[users]]` tables) and `extra` lines in `[proxy]`.
fn config_with(c: &Cluster, mode: &str, extra: &str, users: &str) -> String {
    format!(
        r#"[proxy]
listen = "{{listen}}"
pool_mode = "{mode}"
default_pool_size = 4
{extra}

[log]
level = "debug"

[[users]]
name = "app"
password = "secret"
{users}

[databases.app]
hosts = {hosts}
"#,
        hosts = c.hosts_toml()
    )
}

/// (Re)creates a login role with a SCRAM password and returns its
/// `pg_authid.rolpassword`.
fn scram_role(c: &Cluster, name: &str, password: &str) -> String {
    c.psql(
        0,
        &format!(
            "DROP ROLE IF EXISTS {name}; SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {name} LOGIN PASSWORD '{password}'; GRANT ALL ON DATABASE app TO {name}"
        ),
    );
    let secret = rolpassword(c, name);
    assert!(secret.starts_with("SCRAM-SHA-256$"), "{secret}");
    secret
}

fn rolpassword(c: &Cluster, name: &str) -> String {
    c.psql(
        0,
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{name}'"),
    )
}

async fn current_user(client: &tokio_postgres::Client) -> String {
    one(client, "SELECT current_user::text").await.get(0)
}

async fn assert_28p01(url: &str, user: &str) {
    let e = try_connect(url).await.expect_err("login must fail");
    let db = e.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "28P01", "{db:?}");
    assert_eq!(
        db.message(),
        format!("password authentication failed for user \"{user}\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_file_users_log_in_with_plaintext_md5_and_scram_secrets() {
    let c = shared_cluster();
    scram_role(c, "af_plain", "plain pw");
    let scram_secret = scram_role(c, "af_scram", "scram-pw");
    let md5_hash = rolpassword(c, "md5user");
    assert!(md5_hash.starts_with("md5"), "{md5_hash}");

    // auth_file is read at start, so the file must exist first: write it
    // next to where the proxy's config will go.
    let dir = std::env::temp_dir().join(format!("pgferry-authfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("userlist.txt");
    std::fs::write(
        &path,
        format!(
            "; users for pgferry\n\
             # another comment \"x\" \"y\"\n\
             \"af_plain\" \"plain pw\"\n\
             this line is junk with a \"leaked-looking\" value\n\
             \"af_scram\" \"{scram_secret}\"\n\
             \"md5user\" \"{md5_hash}\"\n\
             \"app\" \"not-the-config-password\"\n"
        ),
    )
    .unwrap();
    let p = Proxy::start(&config_with(
        c,
        "transaction",
        &format!("auth_method = \"md5\"\nauth_file = \"{}\"", path.display()),
        "",
    ));

    for (user, pw) in [
        ("af_plain", "plain pw"),
        ("af_scram", "scram-pw"),
        ("md5user", "md5pass"),
    ] {
        let client = connect(&p.url(user, pw, "app")).await;
        assert_eq!(current_user(&client).await, user);
        assert_28p01(&p.url(user, "wrong", "app"), user).await;
    }
    // [[users]] wins over the file's entry of the same name.
    let app = connect(&p.url("app", "secret", "app")).await;
    assert_eq!(current_user(&app).await, "app");
    assert_28p01(&p.url("app", "not-the-config-password", "app"), "app").await;

    let log = p.log();
    assert!(
        log.contains("line=4"),
        "bad line is reported by number:\n{log}"
    );
    for secret in ["leaked-looking", "plain pw", "scram-pw", &md5_hash[3..]] {
        assert!(!log.contains(secret), "log leaked {secret:?}:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_secret_only_user_is_passed_through_to_several_server_connections() {
    let c = shared_cluster();
    let secret = scram_role(c, "pt_user", "pass-through pw");
    let users = format!("\n[[users]]\nname = \"pt_user\"\npassword = \"{secret}\"\n");
    let p = Proxy::start(&config_with(c, "transaction", "", &users));

    // Several clients with overlapping transactions need several server
    // connections, each logged in with the first client's ClientKey.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&p.url("pt_user", "pass-through pw", "app")).await);
    }
    for cl in &clients {
        cl.batch_execute("BEGIN").await.expect("BEGIN");
    }
    let mut pids = HashSet::new();
    for cl in &clients {
        let pid: i32 = one(cl, "SELECT pg_backend_pid()").await.get(0);
        assert_eq!(current_user(cl).await, "pt_user");
        pids.insert(pid);
    }
    for cl in &clients {
        cl.batch_execute("COMMIT").await.expect("COMMIT");
    }
    assert!(
        pids.len() >= 2,
        "expected several server connections, got {pids:?}"
    );
    for _ in 0..20 {
        let v: i32 = one(&clients[0], "SELECT 41 + 1").await.get(0);
        assert_eq!(v, 42);
    }
    assert_28p01(&p.url("pt_user", "wrong", "app"), "pt_user").await;
    assert!(!p.log().contains("pass-through pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_key_yet_server_login_fails_clearly() {
    // With trust, no client ever proves a ClientKey, so pgferry has nothing
    // to log in to Postgres with for a SCRAM-secret-only user.
    let c = shared_cluster();
    let secret = scram_role(c, "pt_nokey", "nokey pw");
    let users = format!("\n[[users]]\nname = \"pt_nokey\"\npassword = \"{secret}\"\n");
    let p = Proxy::start(&config_with(
        c,
        "transaction",
        "auth_method = \"trust\"",
        &users,
    ));
    let e = try_connect(&p.url("pt_nokey", "unused", "app"))
        .await
        .expect_err("no credentials for the server yet");
    let db = e.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "08006", "{db:?}");
    assert!(db.message().contains("server login failed"), "{db:?}");
    assert!(
        p.log()
            .contains("no client of it has logged in with SCRAM yet"),
        "{}",
        p.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_finds_postgres_users_and_caches_them_for_the_ttl() {
    let c = shared_cluster();
    c.psql(
        0,
        "DROP ROLE IF EXISTS pgferry_auth; \
         CREATE ROLE pgferry_auth LOGIN SUPERUSER PASSWORD 'auth-pw'",
    );
    scram_role(c, "aq_user", "first-pw");
    let users = "\n[[users]]\nname = \"pgferry_auth\"\npassword = \"auth-pw\"\n";
    let p = Proxy::start(&config_with(
        c,
        "transaction",
        "auth_user = \"pgferry_auth\"\nauth_cache_ttl = \"3s\"",
        users,
    ));

    let client = connect(&p.url("aq_user", "first-pw", "app")).await;
    assert_eq!(current_user(&client).await, "aq_user");
    // Wrong password, and a user Postgres does not have: the same error.
    assert_28p01(&p.url("aq_user", "nope", "app"), "aq_user").await;
    assert_28p01(&p.url("aq_ghost", "nope", "app"), "aq_ghost").await;
    // A name with quotes goes in as a parameter, not into the SQL.
    assert_28p01(&p.url("x' OR '1'='1", "nope", "app"), "x' OR '1'='1").await;

    // The new password is not seen while the old answer is cached...
    c.psql(0, "ALTER ROLE aq_user PASSWORD 'second-pw'");
    assert_28p01(&p.url("aq_user", "second-pw", "app"), "aq_user").await;
    // ...and is once it expires; the old one stops working.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let client = connect(&p.url("aq_user", "second-pw", "app")).await;
    assert_eq!(current_user(&client).await, "aq_user");
    assert_28p01(&p.url("aq_user", "first-pw", "app"), "aq_user").await;
    // Queries run over server connections logged in with the new key.
    for _ in 0..5 {
        let v: i32 = one(&client, "SELECT 7").await.get(0);
        assert_eq!(v, 7);
    }
    let log = p.log();
    for secret in ["first-pw", "second-pw", "auth-pw"] {
        assert!(!log.contains(secret), "log leaked {secret:?}");
    }
}

/// Logs in from `source` (a loopback address) with tokio-postgres over a
/// socket bound to it; returns whether it succeeded and how long it took.
async fn login_from(source: [u8; 4], port: u16, password: &str) -> (bool, Duration) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let started = Instant::now();
    let stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect to pgferry");
    let mut config = tokio_postgres::Config::new();
    config.user("app").password(password).dbname("app");
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        config.connect_raw(stream, tokio_postgres::NoTls),
    )
    .await
    .expect("login finishes");
    let ok = match result {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            drop(client);
            true
        }
        Err(e) => {
            let code = e.as_db_error().map(|d| d.code().code().to_owned());
            assert_eq!(code.as_deref(), Some("28P01"), "{e:?}");
            false
        }
    };
    (ok, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_down_per_address_only() {
    let c = shared_cluster();
    let p = Proxy::start(&config_with(
        c,
        "transaction",
        "auth_failure_delay = \"400ms\"\nauth_failure_max_delay = \"2s\"",
        "",
    ));
    let local = [127, 0, 0, 1];
    let other = [127, 0, 0, 2];
    let mut times = Vec::new();
    for _ in 0..6 {
        let (ok, t) = login_from(local, p.port, "wrong").await;
        assert!(!ok);
        times.push(t);
    }
    // Free failures, then 400, 800, 1600 ms.
    for t in &times[..3] {
        assert!(*t < Duration::from_millis(350), "{times:?}");
    }
    assert!(times[3] >= Duration::from_millis(400), "{times:?}");
    assert!(times[4] >= Duration::from_millis(800), "{times:?}");
    assert!(times[5] >= Duration::from_millis(1600), "{times:?}");

    // While 127.0.0.1 waits out its (capped, 2 s) delay, 127.0.0.2 is not slowed.
    let slow = tokio::spawn(login_from(local, p.port, "wrong"));
    let (ok, t) = login_from(other, p.port, "secret").await;
    assert!(ok);
    assert!(t < Duration::from_millis(900), "other address took {t:?}");
    let (ok, t) = login_from(other, p.port, "wrong").await;
    assert!(!ok);
    assert!(
        t < Duration::from_millis(350),
        "other address failure took {t:?}"
    );
    assert!(!slow.is_finished(), "127.0.0.1 should still be waiting");
    let (ok, t) = slow.await.unwrap();
    assert!(!ok);
    assert!(t >= Duration::from_secs(2), "capped delay, took {t:?}");

    // A success resets the address.
    let (ok, _) = login_from(local, p.port, "secret").await;
    assert!(ok);
    let (ok, t) = login_from(local, p.port, "wrong").await;
    assert!(!ok);
    assert!(t < Duration::from_millis(350), "after a success took {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_auth_query_fails_without_leaking_its_details() {
    let c = shared_cluster();
    let p = Proxy::start(&config_with(
        c,
        "transaction",
        "auth_user = \"app\"\nauth_query = \"SELECT a, b FROM no_such_secret_table WHERE a = $1\"",
        "",
    ));
    let e = try_connect(&p.url("someone", "pw", "app"))
        .await
        .expect_err("lookup fails");
    let db = e.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "08006", "{db:?}");
    assert!(!db.message().contains("no_such_secret_table"), "{db:?}");
    assert!(
        p.log().contains("no_such_secret_table"),
        "details are logged"
    );
    // Configured users are not affected.
    let app = connect(&p.url("app", "secret", "app")).await;
    assert_eq!(current_user(&app).await, "app");
}
