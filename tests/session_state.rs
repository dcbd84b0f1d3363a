//! Session state in transaction mode: each client's SETs are its own on any
//! server connection, SET ROLE never leaks, and state that cannot move pins
//! the client until it is gone.

mod common;
mod support;

use std::time::Duration;

use common::*;
use support::*;

/// Two clients sharing one server connection.
fn one_server(c: &Cluster) -> Proxy {
    Proxy::start(&config(c, "transaction", 1, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_statements_follow_their_client_and_never_leak() {
    let c = shared_cluster();
    c.psql(
        0,
        "DO $$ BEGIN CREATE ROLE pgferry_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    );
    c.psql(0, "GRANT pgferry_reader TO app");
    let p = one_server(c);
    let a = connect(&p.url("app", "secret", "app")).await;
    let b = connect(&p.url("app", "secret", "app")).await;
    a.batch_execute("SET search_path = pg_catalog, public")
        .await
        .unwrap();
    a.batch_execute("SET statement_timeout = '7s'")
        .await
        .unwrap();
    a.batch_execute("SET ROLE pgferry_reader").await.unwrap();
    for _ in 0..3 {
        let ra = one(&a, "SELECT current_schemas(false)::text, current_setting('statement_timeout'), current_user::text").await;
        assert_eq!(ra.get::<_, String>(0), "{pg_catalog,public}");
        assert_eq!(ra.get::<_, String>(1), "7s");
        assert_eq!(ra.get::<_, String>(2), "pgferry_reader");
        let rb = one(&b, "SELECT current_schemas(false)::text, current_setting('statement_timeout'), current_user::text").await;
        assert_eq!(
            rb.get::<_, String>(0),
            "{public}",
            "search_path must not leak"
        );
        assert_eq!(
            rb.get::<_, String>(1),
            "0",
            "statement_timeout must not leak"
        );
        assert_eq!(rb.get::<_, String>(2), "app", "SET ROLE must never leak");
    }
    a.batch_execute("RESET ROLE; RESET search_path")
        .await
        .unwrap();
    let ra = one(&a, "SELECT current_schemas(false)::text, current_user::text, current_setting('statement_timeout')").await;
    assert_eq!(ra.get::<_, String>(0), "{public}");
    assert_eq!(ra.get::<_, String>(1), "app");
    assert_eq!(
        ra.get::<_, String>(2),
        "7s",
        "RESET of one parameter keeps the others"
    );
    a.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(
        one(&a, "SELECT current_setting('statement_timeout')")
            .await
            .get::<_, String>(0),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_tables_pin_the_client_until_discarded() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let a = connect(&p.url("app", "secret", "app")).await;
    let others: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| connect_url(p.url("app", "secret", "app"))))
            .await;
    a.batch_execute("CREATE TEMP TABLE scratch (v int); INSERT INTO scratch VALUES (1)")
        .await
        .unwrap();
    for _ in 0..5 {
        // Other clients keep the second server connection busy...
        futures_util::future::join_all(
            others
                .iter()
                .map(|o| o.batch_execute("SELECT pg_sleep(0.01)")),
        )
        .await;
        // ...and the pinned client still finds its temp table.
        assert_eq!(
            one(&a, "SELECT count(*) FROM scratch")
                .await
                .get::<_, i64>(0),
            1
        );
    }
    a.batch_execute("DISCARD ALL").await.unwrap();
    // Unpinned: the pool of 2 serves everyone again.
    futures_util::future::join_all(others.iter().map(|o| o.batch_execute("SELECT 1"))).await;
    assert!(
        p.log().contains("client pinned"),
        "the pin and its reason are logged"
    );
}

async fn connect_url(url: String) -> tokio_postgres::Client {
    connect(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_works_in_transaction_mode() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let (listener, mut connection) =
        tokio_postgres::connect(&p.url("app", "secret", "app"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut stream).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listener.batch_execute("LISTEN pgferry_chan").await.unwrap();
    let notifier = connect(&p.url("app", "secret", "app")).await;
    for i in 0..3 {
        notifier
            .batch_execute(&format!("NOTIFY pgferry_chan, 'hello {i}'"))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("notification arrives");
        assert_eq!(got.as_deref(), Some(format!("hello {i}").as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_prepared_statements_are_shared_across_server_connections() {
    let c = shared_cluster();
    // Five clients over two server connections, each preparing named
    // statements (tokio-postgres prepares every query()).
    let p = Proxy::start(&config(c, "transaction", 2, ""));
    let clients =
        futures_util::future::join_all((0..5).map(|_| connect_url(p.url("app", "secret", "app"))))
            .await;
    let work = clients.iter().enumerate().map(|(k, cl)| async move {
        let stmt = cl.prepare("SELECT $1::int * 10").await.unwrap();
        for i in 0..30 {
            let row = cl.query_one(&stmt, &[&(i + k as i32)]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), (i + k as i32) * 10);
            let row = cl
                .query_one("SELECT $1::text || 'x'", &[&format!("c{k}")])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), format!("c{k}x"));
        }
    });
    futures_util::future::join_all(work).await;
    // Nothing pinned: the pool of two served all five.
    assert!(
        !p.log().contains("client pinned"),
        "named statements must not pin"
    );
    // Statements were shared: far fewer server-side prepares than uses.
    let prepared: i64 = c
        .psql(0, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'")
        .parse()
        .unwrap();
    assert!(prepared >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_beyond_the_cap_are_evicted_and_prepared_again() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "max_prepared_statements = 2"));
    let a = connect(&p.url("app", "secret", "app")).await;
    let stmts = futures_util::future::join_all((0..5).map(|i| {
        let a = &a;
        async move { a.prepare(&format!("SELECT $1::int + {i}")).await.unwrap() }
    }))
    .await;
    for round in 0..3 {
        for (i, s) in stmts.iter().enumerate() {
            let row = a.query_one(s, &[&round]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), round + i as i32);
        }
    }
    // The server connection holds at most two of them.
    let held = one(
        &a,
        "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgf_%'",
    )
    .await;
    assert!(
        held.get::<_, i64>(0) <= 2,
        "cap exceeded: {}",
        held.get::<_, i64>(0)
    );
    // Closing a statement (dropping it) leaves others working.
    drop(stmts);
    let row = a.query_one("SELECT $1::int", &[&3]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_policy_error_refuses_state_that_would_pin() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, "pin_policy = \"error\""));
    let a = connect(&p.url("app", "secret", "app")).await;
    for sql in [
        "CREATE TEMP TABLE t_refused (v int)",
        "LISTEN refused_chan",
        "SELECT pg_advisory_lock(42)",
    ] {
        let err = a.batch_execute(sql).await.expect_err(sql);
        assert_eq!(code(&err), "0A000", "{sql}: {err:?}");
        assert!(err.as_db_error().unwrap().message().contains("pin_policy"));
    }
    // Inside a transaction block too: the statement fails as any error
    // would, the transaction is aborted, and nothing pins afterwards.
    a.batch_execute("BEGIN").await.unwrap();
    a.batch_execute("SELECT 1").await.unwrap();
    let err = a
        .batch_execute("SELECT pg_advisory_lock(43)")
        .await
        .expect_err("in a transaction");
    assert_eq!(code(&err), "0A000", "{err:?}");
    assert!(err.as_db_error().unwrap().message().contains("pin_policy"));
    let err = a.batch_execute("SELECT 2").await.expect_err("aborted");
    assert_eq!(code(&err), "25P02");
    a.batch_execute("COMMIT").await.unwrap();
    // Extended protocol: the prepared statement is refused at Execute.
    a.batch_execute("BEGIN").await.unwrap();
    let err = a
        .query("SELECT pg_try_advisory_lock($1)", &[&44i64])
        .await
        .expect_err("extended protocol in a block");
    assert_eq!(code(&err), "0A000", "{err:?}");
    a.batch_execute("ROLLBACK").await.unwrap();
    let held = app_sql(
        c,
        0,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
    );
    assert_eq!(held, "0", "the refused lock was never taken");
    // Named prepared statements are shared, not pinned: they work.
    let row = a.query_one("SELECT $1::int", &[&1]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    // Everything else works, and settings still follow the client.
    a.batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    assert_eq!(
        one(&a, "SELECT current_schemas(false)::text")
            .await
            .get::<_, String>(0),
        "{pg_catalog}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_all_and_discard_all_affect_only_their_client() {
    let c = shared_cluster();
    let p = one_server(c);
    let a = connect(&format!(
        "{} application_name=alpha",
        p.url("app", "secret", "app")
    ))
    .await;
    let b = connect(&format!(
        "{} application_name=beta",
        p.url("app", "secret", "app")
    ))
    .await;
    b.batch_execute("SET statement_timeout = '9s'")
        .await
        .unwrap();
    a.batch_execute("SET work_mem = '1MB'").await.unwrap();
    a.batch_execute("RESET ALL").await.unwrap();
    a.batch_execute("DISCARD ALL").await.unwrap();
    let ra = one(
        &a,
        "SELECT current_setting('application_name'), current_setting('work_mem')",
    )
    .await;
    assert_eq!(
        ra.get::<_, String>(0),
        "alpha",
        "startup parameters survive RESET ALL, as on Postgres"
    );
    assert_ne!(ra.get::<_, String>(1), "1MB");
    let rb = one(
        &b,
        "SELECT current_setting('application_name'), current_setting('statement_timeout')",
    )
    .await;
    assert_eq!(rb.get::<_, String>(0), "beta");
    assert_eq!(
        rb.get::<_, String>(1),
        "9s",
        "another client's settings are untouched"
    );
}

fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(sql.as_bytes());
    b.push(0);
    b.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &b)
}

fn bind_exec_sync(stmt: &str, params: &[&str]) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as u32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&0u16.to_be_bytes());
    let mut out = message(b'B', &b);
    out.extend_from_slice(&message(b'E', b"\0\0\0\0\0"));
    out.extend_from_slice(&message(b'S', b""));
    out
}

/// Reads to ReadyForQuery: (SQLSTATE of an error if any, data rows).
async fn until_ready(r: &mut Raw) -> (Option<String>, Vec<Vec<u8>>) {
    let mut err = None;
    let mut rows = Vec::new();
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        match tag {
            b'E' => err = Some(field(&body, b'C')),
            b'D' => rows.push(body),
            b'Z' => return (err, rows),
            _ => {}
        }
    }
    panic!("no ReadyForQuery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_or_a_stale_plan_does_not_break_a_shared_statement() {
    let c = shared_cluster();
    app_sql(c, 0, "DROP TABLE IF EXISTS stale_plan; CREATE TABLE stale_plan (a int); INSERT INTO stale_plan VALUES (1); GRANT ALL ON stale_plan TO app");
    let p = Proxy::start(&config(c, "transaction", 1, "auth_method = \"trust\""));
    let mut r = raw_login_trust(p.port).await;

    // Parse + Bind + Execute in one batch, where Execute fails: the statement
    // exists on the server even though its batch failed.
    let mut batch = parse_msg("s1", "SELECT 10 / $1::int");
    batch.extend_from_slice(&bind_exec_sync("s1", &["0"]));
    r.send(&batch).await;
    assert_eq!(until_ready(&mut r).await.0.as_deref(), Some("22012"));
    r.send(&bind_exec_sync("s1", &["5"])).await;
    let (err, rows) = until_ready(&mut r).await;
    assert_eq!(
        err, None,
        "reusing the statement after a failed batch must work"
    );
    assert_eq!(rows.len(), 1);

    // A schema change makes the cached plan stale: one error, then the
    // statement is prepared again and works.
    r.send(&parse_msg("s2", "SELECT * FROM stale_plan")).await;
    r.send(&message(b'S', b"")).await;
    assert_eq!(until_ready(&mut r).await.0, None);
    r.send(&bind_exec_sync("s2", &[])).await;
    assert_eq!(until_ready(&mut r).await.0, None);
    app_sql(c, 0, "ALTER TABLE stale_plan ADD COLUMN b int");
    r.send(&bind_exec_sync("s2", &[])).await;
    assert_eq!(
        until_ready(&mut r).await.0.as_deref(),
        Some("0A000"),
        "Postgres reports the stale plan once"
    );
    r.send(&bind_exec_sync("s2", &[])).await;
    let (err, rows) = until_ready(&mut r).await;
    assert_eq!(err, None, "the next use succeeds on a fresh prepare");
    assert_eq!(rows.len(), 1);
}

/// Simple-protocol Query message.
fn query_msg(sql: &str) -> Vec<u8> {
    let mut b = sql.as_bytes().to_vec();
    b.push(0);
    message(b'Q', &b)
}

/// Reads to ReadyForQuery: (error SQLSTATE, CommandComplete tags, status).
async fn tags_until_ready(r: &mut Raw) -> (Option<String>, Vec<String>, u8) {
    let mut err = None;
    let mut tags = Vec::new();
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        match tag {
            b'E' => err = Some(field(&body, b'C')),
            b'C' => tags.push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
            b'Z' => return (err, tags, body[0]),
            _ => {}
        }
    }
    panic!("no ReadyForQuery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_and_duplicate_parse_act_on_the_clients_own_statements() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "auth_method = \"trust\""));
    let mut a = raw_login_trust(p.port).await;
    let mut b = raw_login_trust(p.port).await;
    // Both clients prepare the same text: one shared server statement.
    for r in [&mut a, &mut b] {
        let mut m = parse_msg("Stmt", "SELECT 7");
        m.extend_from_slice(&message(b'S', b""));
        r.send(&m).await;
        assert_eq!(until_ready(r).await.0, None);
    }

    // A second Parse of a name in use fails as on Postgres, and the
    // statement keeps working.
    let mut m = parse_msg("Stmt", "SELECT 8");
    m.extend_from_slice(&message(b'S', b""));
    a.send(&m).await;
    assert_eq!(until_ready(&mut a).await.0.as_deref(), Some("42P05"));
    a.send(&bind_exec_sync("Stmt", &[])).await;
    let (err, rows) = until_ready(&mut a).await;
    assert_eq!((err, rows.len()), (None, 1), "the first statement survives");

    // DEALLOCATE inside a transaction (quoted: names are case-sensitive)
    // removes only a's statement.
    a.send(&query_msg("BEGIN")).await;
    assert_eq!(tags_until_ready(&mut a).await.2, b'T');
    a.send(&query_msg("DEALLOCATE \"Stmt\"")).await;
    let (err, tags, status) = tags_until_ready(&mut a).await;
    assert_eq!(
        (err, tags, status),
        (None, vec!["DEALLOCATE".to_owned()], b'T')
    );
    a.send(&query_msg("COMMIT")).await;
    assert_eq!(tags_until_ready(&mut a).await.0, None);
    a.send(&bind_exec_sync("Stmt", &[])).await;
    assert_eq!(
        until_ready(&mut a).await.0.as_deref(),
        Some("26000"),
        "a's statement is gone"
    );
    b.send(&bind_exec_sync("Stmt", &[])).await;
    let (err, rows) = until_ready(&mut b).await;
    assert_eq!((err, rows.len()), (None, 1), "b's statement is not");

    // At the start of a batch too, and DEALLOCATE of an unknown name is the
    // server's error.
    b.send(&query_msg("DEALLOCATE PREPARE \"Stmt\"")).await;
    let (err, tags, _) = tags_until_ready(&mut b).await;
    assert_eq!((err, tags), (None, vec!["DEALLOCATE".to_owned()]));
    b.send(&query_msg("DEALLOCATE \"Stmt\"")).await;
    assert_eq!(tags_until_ready(&mut b).await.0.as_deref(), Some("26000"));
    // The name can be prepared again.
    let mut m = parse_msg("Stmt", "SELECT 9");
    m.extend_from_slice(&bind_exec_sync("Stmt", &[]));
    b.send(&m).await;
    let (err, rows) = until_ready(&mut b).await;
    assert_eq!((err, rows.len()), (None, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_after_a_flushed_read_batch_runs_on_the_primary() {
    // asyncpg's copy_records_to_table: Parse + Describe + Flush (no Sync),
    // then a COPY FROM STDIN Query and its data.
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "DROP TABLE IF EXISTS flushed_copy; CREATE TABLE flushed_copy (a int, b text); GRANT ALL ON flushed_copy TO app",
    );
    let p = Proxy::start(&config(
        c,
        "transaction",
        2,
        "auth_method = \"trust\"\nroute = \"auto\"",
    ));
    let mut r = raw_login_trust(p.port).await;
    let mut m = parse_msg("s1", "SELECT * FROM flushed_copy LIMIT 1");
    m.extend_from_slice(&message(b'D', b"Ss1\0"));
    m.extend_from_slice(&message(b'H', b""));
    r.send(&m).await;
    loop {
        let (tag, _) = r.recv(Duration::from_secs(5)).await.expect("describe");
        if tag == b'T' {
            break;
        }
    }
    r.send(&query_msg("COPY flushed_copy FROM STDIN")).await;
    let (tag, _) = r.recv(Duration::from_secs(5)).await.expect("copy in");
    assert_eq!(tag, b'G', "CopyInResponse");
    let mut m = message(b'd', b"2\tb\n");
    m.extend_from_slice(&message(b'c', b""));
    r.send(&m).await;
    let (err, tags, _) = tags_until_ready(&mut r).await;
    assert_eq!((err, tags), (None, vec!["COPY 1".to_owned()]));
    assert_eq!(app_sql(c, 0, "SELECT count(*) FROM flushed_copy"), "1");
}

/// Reads to ReadyForQuery: every message tag, and the first column of
/// each data row as text.
async fn answers(r: &mut Raw) -> (String, Vec<String>) {
    let mut tags = String::new();
    let mut values = Vec::new();
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        tags.push(tag as char);
        match tag {
            b'D' => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                values.push(String::from_utf8_lossy(&body[6..6 + len as usize]).into_owned());
            }
            b'E' => values.push(field(&body, b'C')),
            b'Z' => return (tags, values),
            _ => {}
        }
    }
    panic!("no ReadyForQuery after {tags:?}");
}

fn unnamed_batch(sql: &str, param: &str) -> Vec<u8> {
    let mut m = parse_msg("", sql);
    m.extend_from_slice(&bind_exec_sync("", &[param]));
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_unnamed_statements_keeps_unnamed_statements_prepared() {
    let c = shared_cluster();
    let p = Proxy::start(&config(
        c,
        "transaction",
        1,
        "auth_method = \"trust\"\ncache_unnamed_statements = true",
    ));
    let mut a = raw_login_trust(p.port).await;
    let mut b = raw_login_trust(p.port).await;
    let sql = "SELECT $1::int + 1";
    // The first Parse prepares the statement on the (only) server
    // connection; later ones, from either client, find it there. The
    // client sees Postgres' answers in Postgres' order either way.
    for i in 0..4 {
        let r = if i % 2 == 0 { &mut a } else { &mut b };
        r.send(&unnamed_batch(sql, &i.to_string())).await;
        assert_eq!(
            answers(r).await,
            ("12DCZ".to_owned(), vec![(i + 1).to_string()]),
            "round {i}"
        );
    }
    // Pipelined batches: each ParseComplete in front of its own answers.
    let mut m = Vec::new();
    for i in 10..13 {
        m.extend_from_slice(&unnamed_batch(sql, &i.to_string()));
    }
    a.send(&m).await;
    for i in 10..13 {
        assert_eq!(
            answers(&mut a).await,
            ("12DCZ".to_owned(), vec![(i + 1).to_string()])
        );
    }
    // Errors at Bind and at Execute come after the ParseComplete, as on
    // Postgres, and the statement stays usable.
    a.send(&unnamed_batch(sql, "x")).await;
    assert_eq!(
        answers(&mut a).await,
        ("1EZ".to_owned(), vec!["22P02".to_owned()])
    );
    a.send(&unnamed_batch("SELECT 10 / $1::int", "0")).await;
    let (tags, codes) = answers(&mut a).await;
    assert!(tags.starts_with('1') && tags.ends_with("EZ"), "{tags}");
    assert_eq!(codes, vec!["22012".to_owned()]);
    a.send(&unnamed_batch("SELECT 10 / $1::int", "5")).await;
    assert_eq!(
        answers(&mut a).await,
        ("12DCZ".to_owned(), vec!["2".to_owned()])
    );

    // Parse then Flush: the client waits for its ParseComplete before the
    // rest (the server must send one: nothing else will follow yet).
    for _ in 0..2 {
        let mut m = parse_msg("", sql);
        m.extend_from_slice(&message(b'H', b""));
        a.send(&m).await;
        assert_eq!(
            a.recv(Duration::from_secs(10)).await.map(|m| m.0),
            Some(b'1')
        );
        a.send(&bind_exec_sync("", &["41"])).await;
        assert_eq!(
            answers(&mut a).await,
            ("2DCZ".to_owned(), vec!["42".to_owned()])
        );
    }
    // Describe of the unnamed statement, and Bind without a new Parse.
    let mut m = parse_msg("", "SELECT $1::int AS x");
    m.extend_from_slice(&message(b'D', b"S\0"));
    m.extend_from_slice(&message(b'S', b""));
    a.send(&m).await;
    assert_eq!(answers(&mut a).await.0, "1tTZ");
    a.send(&bind_exec_sync("", &["6"])).await;
    assert_eq!(
        answers(&mut a).await,
        ("2DCZ".to_owned(), vec!["6".to_owned()])
    );

    // On the server it is a shared named statement.
    a.send(&query_msg("BEGIN")).await;
    assert_eq!(tags_until_ready(&mut a).await.2, b'T');
    a.send(&unnamed_batch(sql, "1")).await;
    answers(&mut a).await;
    a.send(&query_msg(
        "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgf_%' AND statement = 'SELECT $1::int + 1'",
    ))
    .await;
    assert_eq!(answers(&mut a).await.1, vec!["1".to_owned()]);
    a.send(&query_msg("COMMIT")).await;
    tags_until_ready(&mut a).await;

    // A simple Query drops the unnamed statement, as on Postgres; so does
    // its Close.
    a.send(&unnamed_batch(sql, "1")).await;
    answers(&mut a).await;
    a.send(&query_msg("SELECT 1")).await;
    answers(&mut a).await;
    a.send(&bind_exec_sync("", &["1"])).await;
    assert_eq!(answers(&mut a).await.1, vec!["26000".to_owned()]);
    a.send(&unnamed_batch(sql, "1")).await;
    answers(&mut a).await;
    let mut m = message(b'C', b"S\0");
    m.extend_from_slice(&message(b'S', b""));
    a.send(&m).await;
    assert_eq!(answers(&mut a).await.0, "3Z");
    a.send(&bind_exec_sync("", &["1"])).await;
    assert_eq!(answers(&mut a).await.1, vec!["26000".to_owned()]);

    // A syntax error is Postgres' own, and the client carries on.
    let mut m = parse_msg("", "SELEC 1");
    m.extend_from_slice(&message(b'S', b""));
    a.send(&m).await;
    assert_eq!(
        answers(&mut a).await,
        ("EZ".to_owned(), vec!["42601".to_owned()])
    );
    a.send(&unnamed_batch(sql, "2")).await;
    assert_eq!(
        answers(&mut a).await,
        ("12DCZ".to_owned(), vec!["3".to_owned()])
    );

    // Turned off by a reload: the next unnamed Parse is the server's own
    // again, and the client's cached one is forgotten.
    p.reload_replacing(
        "cache_unnamed_statements = true",
        "cache_unnamed_statements = false",
    )
    .await;
    for i in 0..2 {
        a.send(&unnamed_batch(sql, &i.to_string())).await;
        assert_eq!(
            answers(&mut a).await,
            ("12DCZ".to_owned(), vec![(i + 1).to_string()]),
            "after the reload, round {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_stay_unnamed_by_default() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 1, "auth_method = \"trust\""));
    let mut a = raw_login_trust(p.port).await;
    a.send(&query_msg("BEGIN")).await;
    tags_until_ready(&mut a).await;
    for i in 0..3 {
        a.send(&unnamed_batch("SELECT $1::int + 1", &i.to_string()))
            .await;
        assert_eq!(
            answers(&mut a).await,
            ("12DCZ".to_owned(), vec![(i + 1).to_string()])
        );
    }
    a.send(&query_msg(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 1'",
    ))
    .await;
    assert_eq!(answers(&mut a).await.1, vec!["0".to_owned()]);
}

/// One step of the differential test below: bytes to send, and how many
/// ReadyForQuery end its answers.
fn random_step(next: &mut impl FnMut(usize) -> usize, has_unnamed: &mut bool) -> (Vec<u8>, usize) {
    // (No error that a generic plan would move from Bind to Execute: that
    // difference is documented, not tested.)
    const TEXTS: [&str; 3] = [
        "SELECT $1::int + 1",
        "SELECT 100 / ($1::int + 1)",
        "SELECT $1::int * 2 AS x",
    ];
    const PARAMS: [&str; 4] = ["1", "5", "0", "x"];
    let full = |next: &mut dyn FnMut(usize) -> usize| {
        let mut m = parse_msg("", TEXTS[next(TEXTS.len())]);
        if next(3) == 0 {
            m.extend_from_slice(&message(b'D', b"S\0"));
        }
        if next(4) == 0 {
            m.extend_from_slice(&message(b'H', b""));
        }
        m.extend_from_slice(&bind_exec_sync("", &[PARAMS[next(PARAMS.len())]]));
        m
    };
    match next(8) {
        0 if *has_unnamed => (bind_exec_sync("", &[PARAMS[next(PARAMS.len())]]), 1),
        1 => {
            *has_unnamed = false;
            (query_msg("SELECT 7"), 1)
        }
        2 => {
            // Pipelined batches in one write.
            *has_unnamed = true;
            let mut m = full(next);
            m.extend_from_slice(&full(next));
            m.extend_from_slice(&full(next));
            (m, 3)
        }
        3 => {
            *has_unnamed = true;
            let mut m = parse_msg("", TEXTS[next(TEXTS.len())]);
            m.extend_from_slice(&message(b'S', b""));
            (m, 1)
        }
        4 if *has_unnamed => {
            *has_unnamed = false;
            let mut m = message(b'C', b"S\0");
            m.extend_from_slice(&message(b'S', b""));
            (m, 1)
        }
        _ => {
            *has_unnamed = true;
            (full(next), 1)
        }
    }
}

/// Every message tag up to the `syncs`-th ReadyForQuery, data rows' first
/// column and errors' SQLSTATE inline.
async fn transcript(r: &mut Raw, syncs: usize) -> String {
    let mut out = String::new();
    let mut seen = 0;
    while seen < syncs {
        let Some((tag, body)) = r.recv(Duration::from_secs(10)).await else {
            panic!("no answer after {out:?}");
        };
        out.push(tag as char);
        match tag {
            b'D' => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                out.push_str(&format!(
                    "({})",
                    String::from_utf8_lossy(&body[6..6 + len as usize])
                ));
            }
            b'E' => out.push_str(&format!("({})", field(&body, b'C'))),
            b'Z' => seen += 1,
            _ => {}
        }
    }
    out
}

/// A raw session straight to Postgres (the cluster trusts `trustuser` on
/// 127.0.0.1).
async fn raw_direct(port: u16) -> Raw {
    let mut r = Raw::connect(port).await;
    r.send(&startup_packet(&[
        ("user", "trustuser"),
        ("database", "app"),
    ]))
    .await;
    while let Some((tag, _)) = r.recv(Duration::from_secs(10)).await {
        if tag == b'Z' {
            return r;
        }
    }
    panic!("no ReadyForQuery from Postgres");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_unnamed_statements_answer_as_postgres_does() {
    // The same random conversations through pgferry with the cache (two
    // clients sharing one server connection) and straight to Postgres (a
    // backend each, where a client's unnamed statement is its own): every
    // answer, in order, must be the same. (Without the cache, pgferry, like
    // any transaction pooler, loses a client's unnamed statement when
    // another client's work runs on the connection in between.)
    let c = shared_cluster();
    let on = Proxy::start(&config(
        c,
        "transaction",
        1,
        "auth_method = \"trust\"\ncache_unnamed_statements = true",
    ));
    let mut clients = [
        [raw_login_trust(on.port).await, raw_direct(c.port(0)).await],
        [raw_login_trust(on.port).await, raw_direct(c.port(0)).await],
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut has_unnamed = [false, false];
    for step in 0..400 {
        let who = next(2);
        let (bytes, syncs) = random_step(&mut next, &mut has_unnamed[who]);
        let [ferry, direct] = &mut clients[who];
        ferry.send(&bytes).await;
        direct.send(&bytes).await;
        let (a, b) = (
            transcript(ferry, syncs).await,
            transcript(direct, syncs).await,
        );
        assert_eq!(a, b, "step {step}, client {who}: through pgferry vs direct");
    }
    // The cache was used: the shared statements are on the server.
    let [ferry, _] = &mut clients[0];
    ferry
        .send(&query_msg(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgf_%'",
        ))
        .await;
    let t = transcript(ferry, 1).await;
    assert!(
        !t.contains("D(0)"),
        "no shared statement on the server: {t}"
    );
}
