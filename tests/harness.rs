//! Checks of the test infrastructure itself (scripts/pgcluster + tests/support),
//! talking to PostgreSQL directly, without pgferry.

mod support;

use support::*;

#[test]
fn shared_cluster_has_a_primary_and_two_streaming_replicas() {
    let c = shared_cluster();
    assert_eq!(c.replica_ports.len(), 2);
    assert_eq!(c.psql(0, "SELECT pg_is_in_recovery()"), "f");
    for n in 1..=2 {
        assert_eq!(c.psql(n, "SELECT pg_is_in_recovery()"), "t", "node {n}");
        assert_eq!(c.psql(n, "SHOW cluster_name"), format!("node{n}"));
    }
    assert_eq!(
        c.psql(
            0,
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        ),
        "2"
    );
    let hosts = c.hosts_toml();
    assert_eq!(
        hosts,
        format!(
            "[\"127.0.0.1:{}\",\"127.0.0.1:{}\",\"127.0.0.1:{}\"]",
            c.port(0),
            c.port(1),
            c.port(2)
        )
    );
    assert!(c.dir.join("cluster.env").exists());
}

#[tokio::test]
async fn test_users_authenticate_with_their_methods() {
    let c = shared_cluster();
    let users = [
        ("app", "secret", "SCRAM-SHA-256$"),
        ("md5user", "md5pass", "md5"),
        ("clearuser", "clearpass", "SCRAM-SHA-256$"),
        ("trustuser", "", ""),
    ];
    for (user, password, stored_prefix) in users {
        for node in 0..=2 {
            let client = connect(&c.url(node, user, password, "app")).await;
            let row = client
                .query_one("SELECT current_user::text, current_database()::text", &[])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), user);
            assert_eq!(row.get::<_, String>(1), "app");
        }
        let stored = c.psql(
            0,
            &format!("SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{user}'"),
        );
        assert!(
            stored.starts_with(stored_prefix),
            "{user}: stored password {stored:?} should start with {stored_prefix:?}"
        );
    }
    for (user, bad) in [("app", "nope"), ("md5user", "nope"), ("clearuser", "nope")] {
        let err = try_connect(&c.url(0, user, bad, "app"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} with a wrong password must be refused"));
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("28P01"),
            "{user}: {err:?}"
        );
    }
}

#[tokio::test]
async fn writes_on_the_primary_reach_the_replicas() {
    let c = shared_cluster();
    let primary = connect(&c.url(0, "app", "secret", "app")).await;
    primary
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS harness_repl (id int primary key);
             INSERT INTO harness_repl VALUES (7) ON CONFLICT DO NOTHING;",
        )
        .await
        .unwrap();
    for node in 1..=2 {
        let replica = connect(&c.url(node, "app", "secret", "app")).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seen = replica
                .query_opt("SELECT id FROM harness_repl WHERE id = 7", &[])
                .await
                .map(|r| r.is_some())
                .unwrap_or(false);
            if seen {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "row not replicated to node {node}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[test]
fn own_cluster_fails_over_and_is_removed_on_drop() {
    let c = Cluster::start_with(&["--replicas", "2"]);
    c.node(0, "kill");
    c.node(1, "promote");
    assert_eq!(c.psql(1, "SELECT pg_is_in_recovery()"), "f");
    c.node(2, "follow 1");
    c.psql(
        1,
        "CREATE TABLE after_failover (x int); INSERT INTO after_failover VALUES (1)",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = c.psql(
            2,
            "SELECT count(*) FROM pg_class WHERE relname = 'after_failover'",
        );
        if n == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node2 did not follow node1"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.node(0, "start");
    assert_eq!(c.psql(0, "SELECT pg_is_in_recovery()"), "f");
    let dir = c.dir.clone();
    drop(c);
    assert!(!dir.exists(), "{} should be removed", dir.display());
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    // Each port is bound as soon as it is handed out (and held): a port is
    // only free at the moment it is picked, and clusters of the tests
    // running alongside take ports of their own in the same range.
    //
    // A bind may fail for a moment: a process the tests running alongside are
    // spawning holds a copy of free_port's probe socket between its fork and
    // its exec (close-on-exec). A port really taken stays taken for the whole
    // second.
    let bind = |p: u16| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match std::net::TcpListener::bind(("127.0.0.1", p)) {
                Ok(l) => return l,
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("port {p} from free_port is not bindable: {e}")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    };
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..20 {
        let p = free_port();
        held.push(bind(p));
        ports.push(p);
    }
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len());
    // pgcluster (which starts the servers, in other processes) picks from a
    // window of its own, below ours: a cluster starting beside this test
    // cannot take a port it was handed.
    let lowest = sorted[0];
    for _ in 0..10 {
        let out = run_pgcluster(&["free-port"]);
        let p: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(
            p < lowest,
            "pgcluster picked {p}, free_port handed out {lowest}"
        );
    }
}
