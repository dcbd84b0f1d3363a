//! Read routing against a real primary + 2 streaming replicas: where auto,
//! hinted and session-routed statements land, lag exclusion, a replica
//! stopping under load, and read-your-writes.

mod common;
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use support::*;

/// Fast health checks so tests see topology changes quickly.
const FAST: &str = "health_interval = \"200ms\"\nhealth_suspect_interval = \"100ms\"\nhealth_timeout = \"1s\"\nhealth_down_after = 2\nhealth_up_after = 2";

fn routed(c: &Cluster, route: &str, extra: &str) -> String {
    config(
        c,
        "transaction",
        4,
        &format!("{FAST}\nroute = \"{route}\"\n{extra}"),
    )
}

async fn port_of(client: &tokio_postgres::Client, sql: &str) -> u16 {
    one(client, sql).await.get::<_, i32>(0) as u16
}

/// Runs `sql` (returning inet_server_port()) until it lands on a replica,
/// which happens once the monitor has seen the replicas (a round or two).
async fn wait_for_replica(c: &Cluster, client: &tokio_postgres::Client, sql: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let port = port_of(client, sql).await;
        if c.replica_ports.contains(&port) {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} never reached a replica (last port {port})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sends_reads_to_replicas_and_writes_to_the_primary() {
    let c = shared_cluster();
    app_sql(
        c,
        0,
        "CREATE TABLE IF NOT EXISTS routed (v int); GRANT ALL ON routed TO app",
    );
    let p = Proxy::start(&routed(c, "auto", "read_your_writes = false"));
    let client = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(c, &client, "SELECT inet_server_port()").await;
    let mut seen = HashSet::new();
    for _ in 0..40 {
        let row = one(&client, "SELECT inet_server_port(), pg_is_in_recovery()").await;
        assert!(
            row.get::<_, bool>(1),
            "a read-only SELECT must run on a replica"
        );
        seen.insert(row.get::<_, i32>(0) as u16);
    }
    assert!(seen.iter().all(|p| c.replica_ports.contains(p)));
    // Writes, locking reads, sequences and data-modifying CTEs go to the primary.
    for sql in [
        "INSERT INTO routed VALUES (1) RETURNING inet_server_port()",
        "SELECT inet_server_port() FROM (SELECT 1) s FOR UPDATE",
        "WITH d AS (DELETE FROM routed WHERE v = -1 RETURNING v) SELECT inet_server_port()",
        "SELECT inet_server_port(), set_config('pgferry_test.x', '1', true)",
    ] {
        assert_eq!(
            port_of(&client, sql).await,
            c.port(0),
            "{sql} must run on the primary"
        );
    }
    // Unnamed extended-protocol statements are routed too.
    let rows = client
        .query_typed("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap();
    assert!(rows[0].get::<_, bool>(0));
}

/// The router remembers what it said about an extended-protocol text that a
/// client repeats (`router::memo`); a reload that changes the function policy
/// must not be hidden by that memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_function_policy_reroutes_a_repeated_statement() {
    let c = shared_cluster();
    let deny_lower = "route_deny_functions = [\"lower\"]";
    let p = Proxy::start(&routed(
        c,
        "auto",
        &format!("read_your_writes = false\nadmin_users = [\"app\"]\n{deny_lower}"),
    ));
    let client = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(c, &client, "SELECT inet_server_port()").await;
    // Unnamed Parse/Bind/Execute, the same text every time.
    async fn port(client: &tokio_postgres::Client) -> u16 {
        let rows = client
            .query_typed("SELECT inet_server_port(), lower('A')", &[])
            .await
            .expect("query");
        rows[0].get::<_, i32>(0) as u16
    }
    for _ in 0..5 {
        assert_eq!(port(&client).await, c.port(0), "lower() is denied: primary");
    }
    let text = std::fs::read_to_string(&p.config_path).expect("config");
    std::fs::write(
        &p.config_path,
        text.replace(deny_lower, "route_deny_functions = [\"nextval\"]"),
    )
    .expect("write config");
    let admin = connect(&p.url("app", "secret", "pgferry")).await;
    admin.simple_query("RELOAD").await.expect("RELOAD");
    // Settings are read again at the next request of each session.
    for _ in 0..5 {
        let at = port(&client).await;
        assert!(
            c.replica_ports.contains(&at),
            "lower() is allowed after the reload: a replica, not {at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_stays_on_the_node_of_its_first_statement() {
    let c = shared_cluster();
    let p = Proxy::start(&routed(c, "auto", "read_your_writes = false"));
    let client = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(c, &client, "SELECT inet_server_port()").await;

    client.batch_execute("BEGIN").await.unwrap();
    let first = port_of(&client, "SELECT inet_server_port()").await;
    assert_eq!(first, c.port(0), "BEGIN (read write) starts on the primary");
    for _ in 0..5 {
        assert_eq!(port_of(&client, "SELECT inet_server_port()").await, first);
    }
    client.batch_execute("COMMIT").await.unwrap();

    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let first = port_of(&client, "SELECT inet_server_port()").await;
    assert!(
        c.replica_ports.contains(&first),
        "BEGIN READ ONLY may use a replica"
    );
    for _ in 0..5 {
        assert_eq!(
            port_of(&client, "SELECT inet_server_port()").await,
            first,
            "same node for the whole transaction"
        );
    }
    client.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_and_the_session_setting_choose_the_route() {
    let c = shared_cluster();
    let p = Proxy::start(&routed(c, "primary", "read_your_writes = false"));
    let client = connect(&p.url("app", "secret", "app")).await;
    // The database default is primary...
    assert_eq!(
        port_of(&client, "SELECT inet_server_port()").await,
        c.port(0)
    );
    // ...a hint overrides it...
    wait_for_replica(
        c,
        &client,
        "/* pgferry:replica */ SELECT inet_server_port()",
    )
    .await;
    // ...and so does the session setting, which pgferry answers itself.
    client
        .batch_execute("SET pgferry.route = 'replica'")
        .await
        .unwrap();
    let shown = client.simple_query("SHOW pgferry.route").await.unwrap();
    let value = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("replica"));
    let rows = client.query_typed("SHOW pgferry.route", &[]).await.unwrap();
    assert_eq!(
        rows[0].get::<_, String>(0),
        "replica",
        "SHOW through the extended protocol"
    );
    assert!(c
        .replica_ports
        .contains(&port_of(&client, "SELECT inet_server_port()").await));
    // A hint still wins over the session setting.
    assert_eq!(
        port_of(&client, "/* pgferry:primary */ SELECT inet_server_port()").await,
        c.port(0)
    );
    client.batch_execute("RESET pgferry.route").await.unwrap();
    assert_eq!(
        port_of(&client, "SELECT inet_server_port()").await,
        c.port(0)
    );
    // Bad values are refused and change nothing.
    let err = client
        .batch_execute("SET pgferry.route = 'sideways'")
        .await
        .expect_err("bad value");
    assert_eq!(code(&err), "22023");
    // Postgres never saw the setting.
    let on_server = one(
        &client,
        "SELECT coalesce(current_setting('pgferry.route', true), '<unset>')",
    )
    .await;
    assert_eq!(on_server.get::<_, String>(0), "<unset>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_can_be_chosen_at_connect_time() {
    let c = shared_cluster();
    let p = Proxy::start(&routed(
        c,
        "primary",
        "auth_method = \"trust\"\nread_your_writes = false",
    ));
    // Through options, as a plain DATABASE_URL can.
    let url = format!(
        "{} options='-c pgferry.route=replica'",
        p.url("app", "secret", "app")
    );
    let client = connect(&url).await;
    wait_for_replica(c, &client, "SELECT inet_server_port()").await;
    // As a startup parameter of its own.
    let mut r = Raw::connect(p.port).await;
    r.send(&startup_packet(&[
        ("user", "app"),
        ("database", "app"),
        ("pgferry.route", "replica"),
    ]))
    .await;
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        assert_ne!(tag, b'E', "login failed: {}", field(&body, b'M'));
        if tag == b'Z' {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        r.send(&message(b'Q', b"SELECT pg_is_in_recovery()\0"))
            .await;
        let mut value = None;
        while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
            match tag {
                b'D' => value = Some(body[6]),
                b'Z' => break,
                b'E' => panic!("query failed: {}", field(&body, b'M')),
                _ => {}
            }
        }
        if value == Some(b't') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "startup parameter pgferry.route=replica never routed to a replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An invalid value is refused at login.
    let bad = format!(
        "{} options='-c pgferry.route=nowhere'",
        p.url("app", "secret", "app")
    );
    assert!(try_connect(&bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_is_excluded_and_comes_back() {
    let c = Cluster::start();
    app_sql(
        &c,
        0,
        "CREATE TABLE lagtest (v int); GRANT ALL ON lagtest TO app",
    );
    let p = Proxy::start(&routed(
        &c,
        "auto",
        "read_your_writes = false\nmax_replica_lag = \"500ms\"",
    ));
    let client = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(&c, &client, "SELECT inet_server_port()").await;

    let paused = c.port(1);
    c.psql(1, "SELECT pg_wal_replay_pause()");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = c.url(0, "app", "secret", "app");
        tokio::spawn(async move {
            let w = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                w.batch_execute("INSERT INTO lagtest VALUES (1)")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Within a few probe intervals, reads stop going to the paused replica.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..40 {
        assert_ne!(
            port_of(&client, "SELECT inet_server_port()").await,
            paused,
            "paused replica must be excluded"
        );
    }
    c.psql(1, "SELECT pg_wal_replay_resume()");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if port_of(&client, "SELECT inet_server_port()").await == paused {
            break;
        }
        assert!(Instant::now() < deadline, "resumed replica never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_replica_under_read_load_causes_no_client_errors() {
    let c = Cluster::start();
    let p = Proxy::start(&routed(&c, "auto", "read_your_writes = false"));
    let probe = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(&c, &probe, "SELECT inet_server_port()").await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let ports: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..6 {
        let (stop, done, ports) = (stop.clone(), done.clone(), ports.clone());
        let url = p.url("app", "secret", "app");
        readers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            while !stop.load(Ordering::Relaxed) {
                let row = try_one(&client, "SELECT inet_server_port(), pg_sleep(0.01)::text")
                    .await
                    .expect("a read must never fail while a replica stops");
                ports
                    .lock()
                    .unwrap()
                    .push((Instant::now(), row.get::<_, i32>(0) as u16));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.node(2, "stop");
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader saw an error");
    }
    let late_on_stopped = ports
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, port)| *at > stopped_at + Duration::from_millis(500) && *port == c.port(2))
        .count();
    assert_eq!(late_on_stopped, 0, "the stopped replica must get no reads");
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "readers made too little progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_holds_with_a_delayed_replica() {
    let c = Cluster::start_with(&["--set", "recovery_min_apply_delay=1500ms"]);
    app_sql(
        &c,
        0,
        "CREATE TABLE ryw (id int primary key); GRANT ALL ON ryw TO app",
    );
    // Lag limits wide enough that the delayed replicas stay eligible: only
    // read-your-writes keeps the reads below correct.
    let extra = "max_replica_lag = \"60s\"";
    let p = Proxy::start(&routed(&c, "auto", extra));
    let client = connect(&p.url("app", "secret", "app")).await;
    wait_for_replica(&c, &client, "SELECT inet_server_port()").await;
    for i in 0..60 {
        client
            .batch_execute(&format!("INSERT INTO ryw VALUES ({i})"))
            .await
            .unwrap();
        let row = one(&client, &format!("SELECT count(*) FROM ryw WHERE id = {i}")).await;
        assert_eq!(
            row.get::<_, i64>(0),
            1,
            "read after write {i} must see the write"
        );
    }
    // Once the replicas have replayed, reads use them again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for_replica(&c, &client, "SELECT inet_server_port()").await;

    // The same loop without read-your-writes does read stale data, so the
    // check above can fail.
    let p2 = Proxy::start(&routed(
        &c,
        "auto",
        &format!("{extra}\nread_your_writes = false"),
    ));
    let client2 = connect(&p2.url("app", "secret", "app")).await;
    wait_for_replica(&c, &client2, "SELECT inet_server_port()").await;
    let mut stale = 0;
    for i in 100..120 {
        client2
            .batch_execute(&format!("INSERT INTO ryw VALUES ({i})"))
            .await
            .unwrap();
        let row = one(
            &client2,
            &format!("SELECT count(*) FROM ryw WHERE id = {i}"),
        )
        .await;
        if row.get::<_, i64>(0) == 0 {
            stale += 1;
        }
    }
    assert!(
        stale > 0,
        "without read_your_writes a delayed replica should serve stale reads"
    );
}
