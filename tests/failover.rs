//! Failover continuity against real clusters (each test has its own): idle
//! clients survive primary loss, work in the gap waits, work in flight gets
//! one clean error, old primaries are fenced, restarts are absorbed.

mod common;
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use support::*;

const FAST: &str = "health_interval = \"200ms\"\nhealth_suspect_interval = \"100ms\"\nhealth_timeout = \"1s\"\nhealth_down_after = 2\nhealth_up_after = 2\nserver_connect_timeout = \"2s\"";

fn ferry(c: &Cluster, extra: &str) -> Proxy {
    Proxy::start(&config(c, "transaction", 10, &format!("{FAST}\n{extra}")))
}

fn setup_table(c: &Cluster) {
    app_sql(c, 0, "CREATE TABLE fo (id serial primary key, who text); GRANT ALL ON fo TO app; GRANT ALL ON SEQUENCE fo_id_seq TO app");
}

/// Kills the primary now and promotes node 1 after `delay`, in the background.
fn kill_and_promote(c: &Cluster, delay: Duration) -> std::thread::JoinHandle<Instant> {
    c.node(0, "kill");
    let dir = c.dir.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let out =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pgcluster"))
                .args(["node", &dir.to_string_lossy(), "1", "promote"])
                .output()
                .expect("run pgcluster promote");
        assert!(
            out.status.success(),
            "promote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Instant::now()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_survive_primary_loss_and_write_to_the_new_primary() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "admin_users = [\"app\"]");
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(connect(&p.url("app", "secret", "app")).await);
    }
    for cl in &clients {
        cl.batch_execute("INSERT INTO fo (who) VALUES ('before')")
            .await
            .unwrap();
    }
    let promoted = kill_and_promote(&c, Duration::from_secs(2));
    promoted.join().expect("promotion");
    // Every client writes on its existing connection, on the new primary.
    let results = futures_util::future::join_all(clients.iter().map(|cl| async move {
        let row = try_one(
            cl,
            "INSERT INTO fo (who) VALUES ('after') RETURNING inet_server_port()",
        )
        .await?;
        Ok::<_, tokio_postgres::Error>(row.get::<_, i32>(0))
    }))
    .await;
    for (i, r) in results.into_iter().enumerate() {
        let port =
            r.unwrap_or_else(|e| panic!("client {i} failed after failover: {e:?}\n{}", p.log()));
        assert_eq!(
            port as u16,
            c.port(1),
            "client {i} must write to the promoted node"
        );
    }
    assert_eq!(
        app_sql(&c, 1, "SELECT count(*) FROM fo WHERE who = 'after'"),
        "50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_the_gap_wait_and_succeed_after_promotion() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "");
    let clients = futures_util::future::join_all(
        (0..10).map(|_| connect_owned(p.url("app", "secret", "app"))),
    )
    .await;
    let promoted = kill_and_promote(&c, Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // These writes arrive in the gap: they must wait, then succeed.
    let started = Instant::now();
    let results = futures_util::future::join_all(clients.iter().map(|cl| async move {
        cl.batch_execute("INSERT INTO fo (who) VALUES ('gap')")
            .await
    }))
    .await;
    let promoted_at = promoted.join().expect("promotion");
    for r in results {
        r.unwrap_or_else(|e| panic!("a write in the gap failed: {e:?}\n{}", p.log()));
    }
    let done = Instant::now();
    assert!(
        started.elapsed() > Duration::from_millis(1000),
        "writes cannot have succeeded before the promotion"
    );
    assert!(
        done.saturating_duration_since(promoted_at) < Duration::from_secs(3),
        "held writes took {:?} after promotion",
        done.saturating_duration_since(promoted_at)
    );
    assert_eq!(
        app_sql(&c, 1, "SELECT count(*) FROM fo WHERE who = 'gap'"),
        "10"
    );
}

async fn connect_owned(url: String) -> tokio_postgres::Client {
    connect(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_in_flight_gets_one_40001_and_the_connection_carries_on() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "");
    let client = connect(&p.url("app", "secret", "app")).await;
    client
        .batch_execute("BEGIN; INSERT INTO fo (who) VALUES ('lost')")
        .await
        .unwrap();
    let promoted = kill_and_promote(&c, Duration::from_secs(2));
    let err = client
        .batch_execute("INSERT INTO fo (who) VALUES ('lost too')")
        .await
        .expect_err("the transaction's node is gone");
    assert_eq!(code(&err), "40001", "{err:?}");
    // pgferry answers the ROLLBACK; the connection is fine.
    client
        .batch_execute("ROLLBACK")
        .await
        .expect("ROLLBACK answered by pgferry");
    promoted.join().unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO fo (who) VALUES ('retried'); COMMIT")
        .await
        .expect("the next transaction commits on the new primary");
    assert_eq!(
        app_sql(&c, 1, "SELECT count(*) FROM fo WHERE who = 'retried'"),
        "1"
    );
    assert_eq!(
        app_sql(&c, 1, "SELECT count(*) FROM fo WHERE who LIKE 'lost%'"),
        "0"
    );

    // A query running when the primary dies: same story.
    let c2 = Cluster::start();
    setup_table(&c2);
    let p2 = ferry(&c2, "");
    let client = connect(&p2.url("app", "secret", "app")).await;
    client.batch_execute("BEGIN").await.unwrap();
    let sleeper = client.batch_execute("INSERT INTO fo (who) SELECT 'slow' FROM pg_sleep(10)");
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        kill_and_promote(&c2, Duration::from_secs(1))
    };
    let (res, promoted) = tokio::join!(sleeper, killer);
    assert_eq!(code(&res.expect_err("in-flight statement")), "40001");
    // COMMIT of the failed transaction reports ROLLBACK, as Postgres does.
    client
        .batch_execute("COMMIT")
        .await
        .expect("COMMIT answered by pgferry");
    promoted.join().unwrap();
    client
        .batch_execute("INSERT INTO fo (who) VALUES ('next')")
        .await
        .expect("next statement works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_restarted_without_demotion_gets_no_traffic() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "");
    let client = connect(&p.url("app", "secret", "app")).await;
    kill_and_promote(&c, Duration::from_secs(1)).join().unwrap();
    let port = one(
        &client,
        "INSERT INTO fo (who) VALUES ('new') RETURNING inet_server_port()",
    )
    .await;
    assert_eq!(port.get::<_, i32>(0) as u16, c.port(1));
    // The old primary comes back as a primary on the old timeline.
    c.node(0, "start");
    assert_eq!(
        c.psql(0, "SELECT pg_is_in_recovery()"),
        "f",
        "node 0 is a (stale) primary again"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..30 {
        let row = one(
            &client,
            "INSERT INTO fo (who) VALUES ('fenced?') RETURNING inet_server_port()",
        )
        .await;
        assert_eq!(
            row.get::<_, i32>(0) as u16,
            c.port(1),
            "writes must never reach the fenced old primary"
        );
    }
    let on_old = c.psql(0, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND application_name <> 'pgferry monitor'");
    assert_eq!(
        on_old, "0",
        "no client server connections to the old primary"
    );
    assert!(p.log().contains("fenced"), "the fencing must be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_of_the_primary_closes_no_client_connection() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "");
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..20 {
        let (stop, commits, errors) = (stop.clone(), commits.clone(), errors.clone());
        let url = p.url("app", "secret", "app");
        workers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                let tx = format!("BEGIN; INSERT INTO fo (who) VALUES ('w{w}'); COMMIT");
                match client.batch_execute(&tx).await {
                    Ok(()) => {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(code(&e));
                        // A failed transaction is ended; pgferry answers.
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                }
                assert!(
                    !client.is_closed(),
                    "worker {w}: pgferry must not close the client connection"
                );
            }
            assert!(!client.is_closed());
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = commits.load(Ordering::Relaxed);
    c.node(0, "restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let after = commits.load(Ordering::Relaxed);
    assert!(
        after > before + 20,
        "workers must keep committing after the restart ({before} -> {after})"
    );
    let errors = errors.lock().unwrap().clone();
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|c| c.as_str() != "40001" && c.as_str() != "08007")
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 40001 and 08007 are acceptable, got {unexpected:?}\n{}",
        p.log()
    );
    let unknown = errors.iter().filter(|c| c.as_str() == "08007").count();
    assert!(unknown <= 20, "too many 08007 ({unknown})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_with_retries_rides_through_a_primary_restart() {
    let c = Cluster::start();
    let init = std::process::Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port(0).to_string(),
            "-U",
            "app",
            "-i",
            "-s",
            "1",
            "-q",
            "app",
        ])
        .env("PGPASSWORD", "secret")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let p = ferry(&c, "");
    let port = p.port.to_string();
    let bench = std::thread::spawn(move || {
        std::process::Command::new("/usr/lib/postgresql/15/bin/pgbench")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "app",
                "-n",
                "-c",
                "20",
                "-j",
                "2",
                "-T",
                "8",
                "--max-tries=10",
                "app",
            ])
            .env("PGPASSWORD", "secret")
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_secs(2));
    c.node(0, "restart");
    let out = bench.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("pgbench across a primary restart through pgferry:\n{text}");
    // pgbench retries 40001 itself; a COMMIT caught in flight gets 08007,
    // which it does not retry and ends that client. At most a few of those.
    let aborted: Vec<&str> = text.lines().filter(|l| l.contains("aborted")).collect();
    assert!(
        aborted.len() <= 3,
        "too many pgbench clients ended:\n{text}"
    );
    for line in &aborted {
        assert!(
            !line.contains("server closed") && !line.contains("connection"),
            "a client was disconnected rather than told: {line}\n{text}"
        );
    }
    let processed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|r| r.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(processed > 100, "pgbench made too little progress:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_primary_waiting_clients_time_out_and_keep_their_connections() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "failover_timeout = \"2s\"");
    let client = connect(&p.url("app", "secret", "app")).await;
    client
        .batch_execute("INSERT INTO fo (who) VALUES ('x')")
        .await
        .unwrap();
    c.node(0, "kill");
    let started = Instant::now();
    let err = client
        .batch_execute("INSERT INTO fo (who) VALUES ('y')")
        .await
        .expect_err("no primary");
    let waited = started.elapsed();
    assert_eq!(code(&err), "57P03", "{err:?}");
    assert!(
        waited >= Duration::from_millis(1800) && waited < Duration::from_secs(8),
        "waited {waited:?}"
    );
    assert!(!client.is_closed(), "the client keeps its connection");
    // Reads may still use replicas meanwhile (a client that has not written:
    // read-your-writes would rightly hold this one's reads for the primary).
    let reader = connect(&p.url("app", "secret", "app")).await;
    let r = one(&reader, "/* pgferry:replica */ SELECT pg_is_in_recovery()").await;
    assert!(r.get::<_, bool>(0));
    // Once the primary is back, the same connection writes again.
    c.node(0, "start");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .batch_execute("INSERT INTO fo (who) VALUES ('z')")
            .await
        {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "primary never usable again: {e:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restart_under_read_load_is_invisible() {
    let c = Cluster::start();
    let p = ferry(&c, "route = \"auto\"\nread_your_writes = false");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..6 {
        let (stop, done) = (stop.clone(), done.clone());
        let url = p.url("app", "secret", "app");
        readers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                try_one(&client, "SELECT count(*) FROM pg_class")
                    .await
                    .expect("reads must not fail during a replica restart");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    c.node(1, "restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    assert!(done.load(Ordering::Relaxed) > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_open_transactions_holds_new_work_and_resume_releases_it() {
    let c = Cluster::start();
    setup_table(&c);
    let p = ferry(&c, "admin_users = [\"app\"]\npause_timeout = \"10s\"");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    let worker = connect(&p.url("app", "secret", "app")).await;
    let other = connect(&p.url("app", "secret", "app")).await;

    worker
        .batch_execute("BEGIN; INSERT INTO fo (who) VALUES ('paused')")
        .await
        .unwrap();
    let started = Instant::now();
    let pause = admin.simple_query("PAUSE app");
    let commit = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        worker
            .batch_execute("COMMIT")
            .await
            .expect("the open transaction finishes");
        Instant::now()
    };
    let (paused, committed_at) = tokio::join!(pause, commit);
    paused.expect("PAUSE");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "PAUSE must wait for the open transaction"
    );
    assert!(Instant::now() >= committed_at);

    // New work is held while paused...
    let held = tokio::spawn(async move {
        let t = Instant::now();
        other
            .batch_execute("INSERT INTO fo (who) VALUES ('after resume')")
            .await
            .expect("held, not failed");
        t.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!held.is_finished(), "work must be held during PAUSE");
    // ...and released by RESUME.
    admin.simple_query("RESUME app").await.expect("RESUME");
    let waited = held.await.unwrap();
    assert!(waited >= Duration::from_millis(600), "held for {waited:?}");

    // The rest of the console.
    admin.simple_query("RECONNECT").await.expect("RECONNECT");
    let rows = admin.simple_query("SHOW NODES").await.unwrap();
    let nodes = rows
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(nodes, 3);
    let err = admin.simple_query("RESUME").await.expect_err("not paused");
    assert_eq!(code(&err), "55000");
    let err = admin
        .simple_query("DROP DATABASE app")
        .await
        .expect_err("not an admin command");
    assert_eq!(code(&err), "42601");
    admin
        .simple_query("SHOW VERSION")
        .await
        .expect("console still usable after errors");
    one(&worker, "SELECT 1").await;
    // Only admin_users get in; the alias works too.
    let e = try_connect(&p.url("md5user", "md5pass", "pgferry"))
        .await
        .expect_err("not an admin");
    assert_eq!(code(&e), "42501");
    connect(&p.url("app", "secret", "pgbouncer")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_clients_move_to_a_new_server_connection_with_their_state() {
    let c = Cluster::start();
    let p = Proxy::start(&config(&c, "session", 5, FAST));
    let url = format!("{} application_name=sess-a", p.url("app", "secret", "app"));
    let a = connect(&url).await;
    a.batch_execute("SET search_path = pg_catalog, public; SET statement_timeout = 4321")
        .await
        .unwrap();
    let b = connect(&p.url("app", "secret", "app")).await;
    b.batch_execute("CREATE TEMP TABLE tt (v int)")
        .await
        .unwrap();
    let pid_before = one(&a, "SELECT pg_backend_pid()").await.get::<_, i32>(0);

    c.node(0, "restart");

    // The idle client notices nothing: its next statement runs on a new
    // server connection with its settings.
    let row = one(&a, "SELECT current_setting('search_path'), current_setting('statement_timeout'), current_setting('application_name'), pg_backend_pid()").await;
    assert_eq!(row.get::<_, String>(0), "pg_catalog, public");
    assert_eq!(row.get::<_, String>(1), "4321ms");
    assert_eq!(row.get::<_, String>(2), "sess-a");
    assert_ne!(row.get::<_, i32>(3), pid_before, "a new server connection");
    // A client with a temporary table gets one clear error, then carries on.
    let err = b
        .batch_execute("SELECT * FROM tt")
        .await
        .expect_err("temp table state is gone");
    assert_eq!(code(&err), "08006");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("temporary tables"),
        "{err:?}"
    );
    assert_eq!(one(&b, "SELECT 7").await.get::<_, i32>(0), 7);
    assert!(!a.is_closed() && !b.is_closed());
}
