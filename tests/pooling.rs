//! Pooling behaviour through pgferry against a real primary + 2 replicas:
//! transaction, session and statement modes, waiting, cancel, parameters,
//! COPY, streaming, and what happens to server connections when things go
//! wrong.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_postgres::types::Type;

fn app_url(p: &Proxy) -> String {
    p.url("app", "secret", "app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_share_a_pool_of_five_in_transaction_mode() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "CREATE TABLE IF NOT EXISTS hundred (client int, n int)",
    );
    app_sql(c, 0, "GRANT ALL ON hundred TO app");
    let p = Proxy::start(&config(c, "transaction", 5, ""));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = format!("{} application_name=hundred", app_url(&p));
        tasks.push(tokio::spawn(async move {
            let client = connect(&url).await;
            for n in 0..10 {
                let tx_sql = format!("BEGIN; INSERT INTO hundred VALUES ({i}, {n}); COMMIT;");
                client
                    .batch_execute(&tx_sql)
                    .await
                    .expect("transaction through pgferry");
                let rows = client
                    .query_typed(
                        "SELECT count(*) FROM hundred WHERE client = $1",
                        &[(&i, Type::INT4)],
                    )
                    .await
                    .unwrap();
                let row = &rows[0];
                let count: i64 = row.get(0);
                assert_eq!(count, n as i64 + 1, "client {i} sees its own rows");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let servers: i64 = c
        .psql(
            0,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hundred'",
        )
        .parse()
        .unwrap();
    assert!(
        servers <= 5,
        "pool of 5 must not open {servers} server connections"
    );
    assert_eq!(app_sql(c, 0, "SELECT count(*) FROM hundred"), "1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_primary_even_when_listed_last() {
    let c = shared_cluster();
    let hosts = format!(
        "[\"127.0.0.1:{}\", \"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
        c.port(2),
        c.port(1),
        c.port(0)
    );
    let cfg = config(c, "transaction", 2, "").replace(&c.hosts_toml(), &hosts);
    let p = Proxy::start(&cfg);
    let client = connect(&app_url(&p)).await;
    let row = one(&client, "SELECT pg_is_in_recovery(), inet_server_port()").await;
    assert!(!row.get::<_, bool>(0), "traffic must reach the primary");
    assert_eq!(row.get::<_, i32>(1), c.port(0) as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_set_and_resets_before_reuse() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "session", 1, ""));
    let a = connect(&app_url(&p)).await;
    a.batch_execute("SET search_path = pg_catalog, public; SET pgferry_test.x = 'mine'")
        .await
        .unwrap();
    for _ in 0..3 {
        let row = one(
            &a,
            "SELECT current_setting('search_path'), current_setting('pgferry_test.x')",
        )
        .await;
        assert_eq!(row.get::<_, String>(0), "pg_catalog, public");
        assert_eq!(row.get::<_, String>(1), "mine");
    }
    // Named prepared statements work in session mode.
    let stmt = a.prepare("SELECT $1::int + 1").await.unwrap();
    for i in 0..5 {
        assert_eq!(
            a.query_one(&stmt, &[&i]).await.unwrap().get::<_, i32>(0),
            i + 1
        );
    }
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The pool has one connection: the next client gets it, reset.
    let b = connect(&app_url(&p)).await;
    let row = one(&b, "SELECT current_setting('search_path'), coalesce(current_setting('pgferry_test.x', true), '')").await;
    assert_eq!(
        row.get::<_, String>(0),
        "\"$user\", public",
        "search_path must be reset"
    );
    assert_eq!(row.get::<_, String>(1), "", "custom setting must not leak");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_follow_each_client_across_server_connections() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, ""));
    let url_a = format!(
        "{} application_name=alpha options='-c TimeZone=Asia/Tokyo -c statement_timeout=1234'",
        app_url(&p)
    );
    let url_b = format!("{} application_name=beta", app_url(&p));
    let a = connect(&url_a).await;
    let b = connect(&url_b).await;
    for _ in 0..5 {
        let ra = one(&a, "SELECT current_setting('application_name'), current_setting('TimeZone'), current_setting('statement_timeout')").await;
        assert_eq!(ra.get::<_, String>(0), "alpha");
        assert_eq!(ra.get::<_, String>(1), "Asia/Tokyo");
        assert_eq!(ra.get::<_, String>(2), "1234ms");
        let rb = one(&b, "SELECT current_setting('application_name'), current_setting('TimeZone'), current_setting('statement_timeout')").await;
        assert_eq!(rb.get::<_, String>(0), "beta");
        assert_ne!(
            rb.get::<_, String>(1),
            "Asia/Tokyo",
            "TimeZone must not leak from alpha"
        );
        assert_eq!(
            rb.get::<_, String>(2),
            "0",
            "statement_timeout must not leak from alpha"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sees_the_usual_parameter_status_set() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, "auth_method = \"trust\""));
    let mut r = Raw::connect(p.port).await;
    r.send(&startup_packet(&[
        ("user", "app"),
        ("database", "app"),
        ("application_name", "rawtest"),
        ("DateStyle", "ISO, DMY"),
    ]))
    .await;
    let mut params = std::collections::HashMap::new();
    let mut got_key = false;
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        match tag {
            b'S' => {
                let mut parts = body.split(|&b| b == 0);
                let k = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                let v = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
                params.insert(k, v);
            }
            b'K' => got_key = body.len() == 8,
            b'Z' => break,
            b'E' => panic!("login failed: {}", field(&body, b'M')),
            _ => {}
        }
    }
    assert!(got_key, "BackendKeyData expected");
    for name in [
        "server_version",
        "server_encoding",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "integer_datetimes",
        "standard_conforming_strings",
        "application_name",
        "IntervalStyle",
        "is_superuser",
        "session_authorization",
    ] {
        assert!(
            params.contains_key(name),
            "missing ParameterStatus {name}: {params:?}"
        );
    }
    assert_eq!(params["application_name"], "rawtest");
    assert_eq!(params["DateStyle"], "ISO, DMY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_waits_in_line_then_times_out_keeping_the_connection() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "query_wait_timeout = \"1s\""));
    let holder = connect(&app_url(&p)).await;
    let waiter = connect(&app_url(&p)).await;
    holder.batch_execute("BEGIN").await.unwrap();

    // A short wait is served once the holder commits.
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.batch_execute("COMMIT").await.unwrap();
    };
    let (_, r) = tokio::join!(release, try_one(&waiter, "SELECT 1"));
    assert_eq!(r.expect("waiter served after commit").get::<_, i32>(0), 1);

    // A wait longer than query_wait_timeout fails with a clear error...
    holder.batch_execute("BEGIN").await.unwrap();
    let started = Instant::now();
    let err = try_one(&waiter, "SELECT 1")
        .await
        .expect_err("must time out");
    let waited = started.elapsed();
    assert_eq!(code(&err), "57014", "error: {err:?}");
    assert!(err
        .as_db_error()
        .unwrap()
        .message()
        .contains("query_wait_timeout"));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    // ...and the connection still works afterwards.
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(one(&waiter, "SELECT 2").await.get::<_, i32>(0), 2);
    // Extended-protocol batches time out cleanly too.
    holder.batch_execute("BEGIN").await.unwrap();
    let err = waiter
        .query_typed("SELECT $1::int", &[(&5i32, Type::INT4)])
        .await
        .expect_err("must time out");
    assert_eq!(code(&err), "57014");
    holder.batch_execute("COMMIT").await.unwrap();
    let rows = waiter
        .query_typed("SELECT $1::int", &[(&5i32, Type::INT4)])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_the_clients_query_quickly() {
    let c = shared_cluster();
    for mode in ["transaction", "session"] {
        let p = Proxy::start(&config(c, mode, 2, ""));
        let client = connect(&app_url(&p)).await;
        let other = connect(&app_url(&p)).await;
        let token = client.cancel_token();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token
                .cancel_query(tokio_postgres::NoTls)
                .await
                .expect("send cancel");
        });
        // The other client keeps working meanwhile.
        let busy = try_one(&other, "SELECT 42");
        let (sleep, busy) = tokio::join!(client.simple_query("SELECT pg_sleep(30)"), busy);
        assert_eq!(busy.unwrap().get::<_, i32>(0), 42);
        let err = sleep.expect_err("pg_sleep must be cancelled");
        assert_eq!(code(&err), "57014", "{mode}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{mode}: cancel took {:?}",
            started.elapsed()
        );
        canceller.await.unwrap();
        assert_eq!(one(&client, "SELECT 1").await.get::<_, i32>(0), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_wrong_keys_is_ignored() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let client = connect(&app_url(&p)).await;
    let run = client.simple_query("SELECT pg_sleep(1.5)");
    let bogus = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut r = Raw::connect(p.port).await;
        let mut pkt = 16u32.to_be_bytes().to_vec();
        pkt.extend_from_slice(&80_877_102u32.to_be_bytes());
        pkt.extend_from_slice(&1u32.to_be_bytes());
        pkt.extend_from_slice(&2u32.to_be_bytes());
        r.send(&pkt).await;
        assert!(r.closed(Duration::from_secs(2)).await);
    };
    let (res, _) = tokio::join!(run, bogus);
    res.expect("a cancel with unknown keys must not cancel anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_transaction_never_leaves_a_dirty_server_connection() {
    let c = shared_cluster();
    app_sql(c, 0, "CREATE TABLE IF NOT EXISTS dirty (v text)");
    app_sql(c, 0, "GRANT ALL ON dirty TO app");
    let p = Proxy::start(&config(c, "transaction", 1, ""));
    {
        let a = connect(&app_url(&p)).await;
        a.batch_execute("BEGIN; INSERT INTO dirty VALUES ('uncommitted')")
            .await
            .unwrap();
        // Dropping the client closes its socket without COMMIT.
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = connect(&app_url(&p)).await;
    let row = one(&b, "SELECT (SELECT count(*) FROM dirty WHERE v = 'uncommitted'), txid_current_if_assigned() IS NULL").await;
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "the abandoned transaction must have been rolled back"
    );
    assert!(
        row.get::<_, bool>(1),
        "the next client must not inherit an open transaction"
    );
    let idle_in_tx = c.psql(0, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'");
    assert_eq!(idle_in_tx, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_connections_are_discarded_not_handed_out() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 3, ""));
    let url = format!("{} application_name=deadconn", app_url(&p));
    let clients = futures_util::future::join_all((0..3).map(|_| connect(&url))).await;
    // Fill the pool with three idle server connections.
    futures_util::future::join_all(
        clients
            .iter()
            .map(|cl| cl.batch_execute("SELECT pg_sleep(0.2)")),
    )
    .await;
    let killed = c.psql(
        0,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'deadconn'",
    );
    assert_ne!(
        killed, "0",
        "expected pooled server connections to terminate"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for cl in &clients {
        let r = try_one(cl, "SELECT 7")
            .await
            .expect("a fresh server connection must be used");
        assert_eq!(r.get::<_, i32>(0), 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_mode_runs_statements_and_refuses_transaction_blocks() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "statement", 2, ""));
    let client = connect(&app_url(&p)).await;
    for i in 0..5 {
        let rows = client
            .query_typed("SELECT $1::int", &[(&i, Type::INT4)])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), i);
    }
    let err = client
        .batch_execute("BEGIN")
        .await
        .expect_err("BEGIN must be refused");
    assert_eq!(code(&err), "0A000");
    assert!(err
        .as_db_error()
        .unwrap()
        .message()
        .contains("statement pooling"));
    // The server was rolled back: the client is not in a transaction.
    let row = one(&client, "SELECT txid_current_if_assigned() IS NULL").await;
    assert!(row.get::<_, bool>(0));
    // A complete transaction in one simple query is fine.
    client
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_pipelines_through_transaction_mode() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let client = connect(&app_url(&p)).await;
    // tokio-postgres pipelines concurrent requests on one connection; each
    // query_typed is a self-contained Parse/Bind/Execute/Sync batch.
    let futs = (0..200).map(|i| {
        let client = &client;
        async move {
            (
                i,
                client
                    .query_typed("SELECT $1::int * 2", &[(&i, Type::INT4)])
                    .await,
            )
        }
    });
    for (i, r) in futures_util::future::join_all(futs).await {
        assert_eq!(r.unwrap()[0].get::<_, i32>(0), i * 2);
    }
    // Text parameters too.
    let futs = (0..100).map(|i| {
        let client = &client;
        async move {
            (
                i,
                client
                    .query_typed("SELECT $1::text", &[(&format!("v{i}"), Type::TEXT)])
                    .await,
            )
        }
    });
    for (i, r) in futures_util::future::join_all(futs).await {
        assert_eq!(r.unwrap()[0].get::<_, String>(0), format!("v{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_pass_through() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "CREATE TABLE IF NOT EXISTS copytest (id int, name text)",
    );
    app_sql(c, 0, "GRANT ALL ON copytest TO app");
    // Pool of one: tokio-postgres prepares COPY as a named statement, and
    // named statements across server connections are a later feature.
    let p = Proxy::start(&config(c, "transaction", 1, ""));
    let client = connect(&app_url(&p)).await;
    client.batch_execute("DELETE FROM copytest").await.unwrap();
    let sink = client.copy_in("COPY copytest FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    let mut data = String::new();
    for i in 0..20_000 {
        data.push_str(&format!("{i}\tname {i}\n"));
    }
    sink.send(bytes::Bytes::from(data.clone())).await.unwrap();
    let n = sink.finish().await.unwrap();
    assert_eq!(n, 20_000);
    let stream = client
        .copy_out("COPY (SELECT * FROM copytest ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(String::from_utf8(out).unwrap(), data);
    // A failing COPY leaves the connection usable.
    let err = client
        .batch_execute("COPY copytest FROM STDIN WITH (FORMAT bogus)")
        .await
        .expect_err("bad COPY");
    assert!(!code(&err).is_empty());
    assert_eq!(
        one(&client, "SELECT count(*) FROM copytest")
            .await
            .get::<_, i64>(0),
        20_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200mb_result_streams_without_growing_pgferry() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let client = connect(&app_url(&p)).await;
    one(&client, "SELECT 1").await;
    let before = rss_kib(p.pid());
    let pid = p.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let rows = client
        .query_raw(
            "SELECT repeat('x', 1000) FROM generate_series(1, 200000)",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    futures_util::pin_mut!(rows);
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await {
        bytes += row.unwrap().get::<_, &str>(0).len();
    }
    sampler.abort();
    assert_eq!(bytes, 200_000_000);
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "pgferry RSS grew by {growth} KiB while streaming 200 MB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_authentication_methods() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    for (user, password, server_method) in [
        ("app", "secret", "scram-sha-256"),
        ("md5user", "md5pass", "md5"),
        ("clearuser", "clearpass", "password"),
        ("trustuser", "trustpw", "trust"),
    ] {
        let client = connect(&p.url(user, password, "app")).await;
        let row = try_one(&client, "SELECT current_user::text")
            .await
            .unwrap_or_else(|e| panic!("{user} via server {server_method}: {e:?}\n{}", p.log()));
        assert_eq!(row.get::<_, String>(0), user);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_of_a_reported_parameter_follows_its_client_in_transaction_mode() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, ""));
    let a = connect(&app_url(&p)).await;
    let b = connect(&app_url(&p)).await;
    a.batch_execute("SET TimeZone = 'America/Denver'; SET application_name = 'client-a'")
        .await
        .unwrap();
    for _ in 0..3 {
        let rb = one(
            &b,
            "SELECT current_setting('TimeZone'), current_setting('application_name')",
        )
        .await;
        assert_ne!(
            rb.get::<_, String>(0),
            "America/Denver",
            "a's SET must not leak to b"
        );
        assert_ne!(rb.get::<_, String>(1), "client-a");
        let ra = one(
            &a,
            "SELECT current_setting('TimeZone'), current_setting('application_name')",
        )
        .await;
        assert_eq!(
            ra.get::<_, String>(0),
            "America/Denver",
            "a's SET must follow a"
        );
        assert_eq!(ra.get::<_, String>(1), "client-a");
    }
    // Parameters the server reports but nobody can SET (is_superuser after
    // SET ROLE) must not break later transactions.
    a.batch_execute("BEGIN; SET LOCAL ROLE app; COMMIT")
        .await
        .unwrap();
    assert_eq!(one(&a, "SELECT 1").await.get::<_, i32>(0), 1);
    assert_eq!(one(&b, "SELECT 2").await.get::<_, i32>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_valued_startup_option_keeps_its_list_meaning() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, ""));
    let url = format!("{} options='-c search_path=pg_catalog,public'", app_url(&p));
    let a = connect(&url).await;
    let b = connect(&app_url(&p)).await;
    for _ in 0..3 {
        // current_schemas lists the schemas in effect: a schema literally
        // named "pg_catalog,public" does not exist and would not appear.
        let ra = one(&a, "SELECT current_schemas(false)::text").await;
        assert_eq!(ra.get::<_, String>(0), "{pg_catalog,public}");
        let rb = one(&b, "SELECT current_schemas(false)::text").await;
        assert_eq!(rb.get::<_, String>(0), "{public}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_worker_runtime_serves_many_clients() {
    // workers = 1 runs pgferry on a single-threaded event loop.
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 3, "workers = 1"));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let url = p.url("app", "secret", "app");
        tasks.push(tokio::spawn(async move {
            let client = connect(&url).await;
            for j in 0..10 {
                let row = one(&client, &format!("SELECT {i} * 100 + {j}")).await;
                assert_eq!(row.get::<_, i32>(0), i * 100 + j);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_time_out_on_their_own_deadlines_in_a_busy_line() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "query_wait_timeout = \"10s\""));
    // (Logging in needs a server connection too: everyone first.)
    let holder = connect(&app_url(&p)).await;
    let a_client = connect(&app_url(&p)).await;
    let b = connect(&app_url(&p)).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect(&app_url(&p)).await);
    }
    holder.batch_execute("BEGIN").await.unwrap();

    // A waits first, with a 10 s deadline.
    let a = tokio::spawn(async move {
        let started = Instant::now();
        let r = try_one(&a_client, "SELECT 1").await;
        (r.map(|row| row.get::<_, i32>(0)).ok(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // B waits behind A with a 1 s deadline (after a reload): it times out
    // on its own deadline, not A's.
    p.reload_replacing(
        "query_wait_timeout = \"10s\"",
        "query_wait_timeout = \"1s\"",
    )
    .await;
    let started = Instant::now();
    let err = try_one(&b, "SELECT 1").await.expect_err("B must time out");
    let waited = started.elapsed();
    assert_eq!(code(&err), "57014");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "B waited {waited:?}"
    );

    // A is still in line and is served when the holder commits.
    holder.batch_execute("COMMIT").await.unwrap();
    let (got, waited) = a.await.unwrap();
    assert_eq!(got, Some(1), "A served after waiting {waited:?}");
    assert!(waited < Duration::from_secs(9), "A waited {waited:?}");

    // Twenty waiters at once all time out, and the pool serves afterwards.
    holder.batch_execute("BEGIN").await.unwrap();
    let started = Instant::now();
    let results =
        futures_util::future::join_all(clients.iter().map(|c| try_one(c, "SELECT 1"))).await;
    let waited = started.elapsed();
    for r in &results {
        assert_eq!(code(r.as_ref().expect_err("must time out")), "57014");
    }
    assert!(waited < Duration::from_secs(5), "the line took {waited:?}");
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(one(&b, "SELECT 2").await.get::<_, i32>(0), 2);
    for c in &clients {
        assert_eq!(one(c, "SELECT 3").await.get::<_, i32>(0), 3);
    }
}

/// Starts pgferry with `setting` in `[proxy]`, checks a client is served
/// (`SELECT select`), that field `field` (1-based, as in proc(5)) of
/// /proc/PID/task/TID/stat is `want` for every thread of the process, and
/// that the log has no `warning`.
async fn every_thread_has(setting: &str, select: i32, field: usize, want: i64, warning: &str) {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, setting));
    let client = connect(&p.url("app", "secret", "app")).await;
    let sql = format!("SELECT {select}");
    assert_eq!(one(&client, &sql).await.get::<_, i32>(0), select);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.pid())).expect("task dir");
    let mut threads = 0;
    for t in tasks {
        let stat = std::fs::read_to_string(t.expect("task").path().join("stat")).expect("stat");
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let value: i64 = rest
            .split(' ')
            .nth(field - 3)
            .and_then(|f| f.parse().ok())
            .expect("stat field");
        assert_eq!(value, want, "thread {stat}");
        threads += 1;
    }
    assert!(threads >= 1);
    assert!(!p.log().contains(warning), "{}", p.log());
}

/// `cpu_policy = "batch"`: every thread of the process runs under
/// SCHED_BATCH (policy 3, field 41 of /proc/PID/task/TID/stat), and clients
/// are served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_policy_batch_puts_every_thread_under_sched_batch() {
    every_thread_has(
        "cpu_policy = \"batch\"",
        41,
        41,
        3,
        "cannot set the CPU scheduling policy",
    )
    .await;
}

/// `nice = 19`: every thread of the process runs at nice 19 (field 19 of
/// /proc/PID/task/TID/stat; raising the value needs no privilege), and
/// clients are served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nice_applies_to_every_thread() {
    every_thread_has("nice = 19", 19, 19, 19, "cannot set the nice value").await;
}
