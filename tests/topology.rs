//! Continuous health checking against real clusters, through the library:
//! build the state from a config, start the monitors, read snapshots.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgferry::config::Config;
use pgferry::state::State;
use pgferry::topology::{Health, NodeRole, Snapshot, Topology, TopologyError};
use support::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Monitors for one cluster's database `app`, stopped (and checked to stop)
/// by [`Monitored::stop`].
struct Monitored {
    state: State,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Monitored {
    /// `extra` goes into `[proxy]`.
    fn start(c: &Cluster, extra: &str) -> Monitored {
        Monitored::start_hosts(&c.hosts_toml(), extra)
    }

    fn start_hosts(hosts: &str, extra: &str) -> Monitored {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("pgferry=debug")
            .try_init();
        let text = format!(
            r#"[proxy]
listen = "127.0.0.1:{port}"
{extra}

[[users]]
name = "app"
password = "secret"

[databases.app]
hosts = {hosts}
"#,
            port = free_port(),
        );
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let state = State::build(config).unwrap();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        for db in state.databases().values() {
            db.topology.spawn_monitor(&tracker, shutdown.clone());
        }
        Monitored {
            state,
            tracker,
            shutdown,
        }
    }

    fn topology(&self) -> Arc<Topology> {
        self.state.databases()["app"].topology.clone()
    }

    /// Polls the snapshot until `done` holds; panics with `expected` and the
    /// last snapshot after `within`.
    async fn wait_for(
        &self,
        within: Duration,
        expected: &str,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Arc<Snapshot> {
        let deadline = Instant::now() + within;
        loop {
            let s = self.topology().snapshot();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("expected within {within:?}: {expected}\nlast snapshot: {s:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        assert!(
            tokio::time::timeout(Duration::from_secs(3), self.tracker.wait())
                .await
                .is_ok(),
            "monitor tasks must end promptly once shutdown fires"
        );
    }
}

fn eligible(s: &Snapshot) -> Vec<usize> {
    s.eligible_replicas().collect()
}

fn all_up_with_roles(s: &Snapshot) -> bool {
    s.primary == Some(0)
        && s.nodes.iter().all(|n| n.health == Health::Up)
        && s.nodes[0].role == Some(NodeRole::Primary)
        && s.nodes[1..]
            .iter()
            .all(|n| n.role == Some(NodeRole::Replica))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_primary_and_replicas_with_positions_and_no_lag() {
    let c = shared_cluster();
    let m = Monitored::start(c, "");
    // The first caller does not fail just because no round has finished.
    let started = Instant::now();
    let primary = m.topology().primary().await;
    assert_eq!(
        primary.as_ref().ok(),
        Some(&0),
        "primary() right after start must wait for the first round and return node 0, got {primary:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let s = m
        .wait_for(
            Duration::from_secs(2),
            "node 0 primary, nodes 1 and 2 replicas, all up, replicas eligible",
            |s| all_up_with_roles(s) && eligible(s) == [1, 2],
        )
        .await;
    assert!(s.round >= 1 && s.taken_at.is_some());
    let primary_lsn = s.primary_lsn.expect("primary LSN known");
    assert_eq!(s.nodes[0].lsn, Some(primary_lsn));
    for (i, n) in s.nodes.iter().enumerate() {
        // The monitor user is unprivileged: the replicas' timeline comes
        // from pg_control_checkpoint(), the primary's from pg_walfile_name().
        assert_eq!(n.timeline, Some(1), "node {i} timeline: {n:#?}");
        assert!(
            n.last_probe.is_some() && n.last_error.is_none(),
            "node {i}: {n:#?}"
        );
    }
    for i in [1, 2] {
        let n = &s.nodes[i];
        assert!(
            n.lsn.is_some() && n.receive_lsn.is_some(),
            "replica {i} positions: {n:#?}"
        );
        let bytes = n.lag_bytes.expect("byte lag known");
        assert!(
            bytes < 1 << 20,
            "replica {i} lags {bytes} bytes on an idle cluster"
        );
        let lag = n.lag.expect("time lag known");
        assert!(
            lag <= Duration::from_millis(300),
            "replica {i} lags {lag:?} on an idle cluster"
        );
        assert!(!n.lag_excluded);
    }
    assert!(s.nodes[0].lag.is_none() && s.nodes[0].lag_bytes.is_none());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_paused_replay_is_excluded_then_readmitted() {
    // Own cluster: pausing replay would disturb other tests' replicas.
    let c = Cluster::start();
    let m = Monitored::start(
        &c,
        "health_interval = \"200ms\"\nmax_replica_lag = \"300ms\"",
    );
    let primary = connect(&c.url(0, "postgres", "postgres", "app")).await;
    primary
        .batch_execute(
            "CREATE TABLE lag_probe (id serial primary key, at timestamptz default now())",
        )
        .await
        .expect("create table");
    m.wait_for(Duration::from_secs(3), "both replicas eligible", |s| {
        all_up_with_roles(s) && eligible(s) == [1, 2]
    })
    .await;

    // Continuous writes, so that a paused replica falls behind.
    let writing = CancellationToken::new();
    let writer = tokio::spawn({
        let writing = writing.clone();
        async move {
            while !writing.is_cancelled() {
                primary
                    .batch_execute("INSERT INTO lag_probe DEFAULT VALUES")
                    .await
                    .expect("insert on the primary");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    c.psql(1, "SELECT pg_wal_replay_pause()");
    let paused_at = Instant::now();
    let s = m
        .wait_for(
            Duration::from_secs(3),
            "replica 1 lag-excluded after its replay pauses",
            |s| s.nodes[1].lag_excluded,
        )
        .await;
    assert!(
        s.nodes[1]
            .lag
            .is_some_and(|l| l > Duration::from_millis(300)),
        "excluded for time lag over 300ms: {:#?}",
        s.nodes[1]
    );
    assert!(s.nodes[1].lag_bytes.is_some_and(|b| b > 0));
    assert_eq!(
        eligible(&s),
        [2],
        "replica 2 keeps replaying and stays eligible"
    );
    eprintln!(
        "replica 1 excluded {:?} after pausing replay",
        paused_at.elapsed()
    );

    // It stays out while paused, and replica 2 stays in.
    let round = s.round;
    let s = m
        .wait_for(Duration::from_secs(3), "three more rounds", |s| {
            s.round >= round + 3
        })
        .await;
    assert_eq!(eligible(&s), [2], "while replica 1 is paused: {s:#?}");

    c.psql(1, "SELECT pg_wal_replay_resume()");
    let s = m
        .wait_for(
            Duration::from_secs(3),
            "replica 1 re-included after replay resumes",
            |s| !s.nodes[1].lag_excluded,
        )
        .await;
    assert_eq!(eligible(&s), [1, 2]);
    writing.cancel();
    writer.await.expect("writer task");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_goes_suspect_then_down_and_comes_back_up() {
    let c = Cluster::start();
    let m = Monitored::start(&c, "health_interval = \"200ms\"");
    m.wait_for(Duration::from_secs(3), "all nodes up", all_up_with_roles)
        .await;

    c.node(2, "stop");
    // Record every health the node passes through.
    let mut seen = vec![Health::Up];
    let s = m
        .wait_for(
            Duration::from_secs(5),
            "replica 2 down after it stops",
            |s| {
                let h = s.nodes[2].health;
                if seen.last() != Some(&h) {
                    seen.push(h);
                }
                h == Health::Down
            },
        )
        .await;
    assert_eq!(
        seen,
        [Health::Up, Health::Suspect, Health::Down],
        "a stopped replica must go up -> suspect -> down"
    );
    assert_eq!(eligible(&s), [1]);
    assert_eq!(s.primary, Some(0));
    assert!(s.nodes[2].last_error.is_some(), "{:#?}", s.nodes[2]);
    assert_eq!(
        s.nodes[2].role,
        Some(NodeRole::Replica),
        "last known role kept"
    );

    c.node(2, "start");
    let s = m
        .wait_for(
            Duration::from_secs(15),
            "replica 2 up again after it starts",
            |s| s.nodes[2].health == Health::Up,
        )
        .await;
    assert!(s.nodes[2].last_error.is_none());
    m.wait_for(Duration::from_secs(5), "replica 2 eligible again", |s| {
        eligible(s) == [1, 2]
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_failure_counts_at_once_and_probes_bring_the_node_back() {
    let c = shared_cluster();
    let m = Monitored::start(c, "");
    m.wait_for(Duration::from_secs(3), "all nodes up", |s| {
        all_up_with_roles(s) && eligible(s) == [1, 2]
    })
    .await;

    m.topology().report_failure(1);
    let s = m.topology().snapshot();
    assert_eq!(
        s.nodes[1].health,
        Health::Suspect,
        "a report must make the node suspect immediately: {:#?}",
        s.nodes[1]
    );
    assert_eq!(eligible(&s), [2], "a suspect replica gets no new work");
    // health_interval is 1s; the report switches to the 200ms suspect
    // interval, and two good probes (health_up_after) bring it back.
    let reported = Instant::now();
    m.wait_for(Duration::from_secs(2), "replica 1 up again", |s| {
        s.nodes[1].health == Health::Up
    })
    .await;
    assert!(
        reported.elapsed() < Duration::from_millis(1500),
        "recovery must run at the suspect interval, took {:?}",
        reported.elapsed()
    );

    // A session that saw the primary fail gets an answer from a fresh round.
    let before = m.topology().snapshot().round;
    m.topology().report_failure(0);
    let primary = m.topology().primary().await;
    assert_eq!(primary.as_ref().ok(), Some(&0), "got {primary:?}");
    let after = m.topology().snapshot().round;
    assert!(
        after > before,
        "primary() after a report on the primary must wait for a new round ({before} -> {after})"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reachable_host_means_no_primary_within_the_timeout() {
    // Free ports that nothing listens on.
    let hosts = format!(
        "[\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
        free_port(),
        free_port()
    );
    let m = Monitored::start_hosts(&hosts, "health_timeout = \"300ms\"");
    let started = Instant::now();
    let result = m.topology().primary().await;
    let took = started.elapsed();
    match &result {
        Err(TopologyError::NoPrimary { detail, .. }) => assert!(
            detail.contains("could not connect"),
            "the error must say why: {detail}"
        ),
        other => panic!("expected NoPrimary, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "primary() must give up in bounded time, took {took:?}"
    );
    let s = m.topology().snapshot();
    assert!(
        s.nodes
            .iter()
            .all(|n| n.health != Health::Up && n.last_error.is_some()),
        "{s:#?}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pg_control_checkpoint_replica_timelines_are_unknown_but_probes_work() {
    // Own cluster: the REVOKE replicates to every node.
    let c = Cluster::start();
    let admin = connect(&c.url(0, "postgres", "postgres", "app")).await;
    admin
        .batch_execute("REVOKE EXECUTE ON FUNCTION pg_control_checkpoint() FROM PUBLIC")
        .await
        .expect("revoke");
    let m = Monitored::start(&c, "health_interval = \"200ms\"");
    let s = m
        .wait_for(
            Duration::from_secs(5),
            "all up; primary timeline 1 from pg_walfile_name(), replica timelines unknown",
            |s| {
                all_up_with_roles(s)
                    && s.nodes[0].timeline == Some(1)
                    && s.nodes[1..].iter().all(|n| n.timeline.is_none())
            },
        )
        .await;
    assert_eq!(eligible(&s), [1, 2]);
    assert!(s.nodes.iter().all(|n| n.last_error.is_none()), "{s:#?}");
    let round = s.round;
    let s = m
        .wait_for(Duration::from_secs(3), "two more rounds", |s| {
            s.round >= round + 2
        })
        .await;
    assert!(
        s.nodes.iter().all(|n| n.health == Health::Up),
        "the fallback query keeps working: {s:#?}"
    );
    m.stop().await;
}
