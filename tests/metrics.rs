//! /metrics after a known workload, the health endpoints with the primary
//! up and stopped, and the real prometheus-pgbouncer-exporter (Debian)
//! scraping pgferry's admin console.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use support::*;

fn metrics_config(c: &Cluster, port: u16) -> String {
    config(
        c,
        "transaction",
        4,
        &format!(
            "admin_users = [\"app\"]\nstats_users = [\"md5user\"]\nmetrics_listen = \"127.0.0.1:{port}\""
        ),
    )
}

/// GET `path`: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    try_get(port, path).expect("connect to the metrics port")
}

/// Like `get`; None while nothing listens on `port` yet.
fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    Some((status, body))
}

/// The value of the series `name{labels...}` whose labels include all of `want`.
fn value(body: &str, name: &str, want: &[&str]) -> Option<f64> {
    body.lines().find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        (n == name && want.iter().all(|w| labels.contains(w))).then(|| v.parse().ok())?
    })
}

fn sum(body: &str, name: &str, want: &[&str]) -> f64 {
    body.lines()
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && want.iter().all(|w| labels.contains(w))).then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

async fn wait_status(port: u16, path: &str, want: u16, within: Duration) -> (u16, String) {
    let end = Instant::now() + within;
    loop {
        // The metrics listener may start a moment after the client one.
        let r = try_get(port, path).unwrap_or((0, String::new()));
        if r.0 == want || Instant::now() > end {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_count_a_known_workload() {
    let c = shared_cluster();
    let port = free_port();
    let p = Proxy::start(&metrics_config(c, port));
    let (status, _) = wait_status(port, "/health/ready", 200, Duration::from_secs(20)).await;
    assert_eq!(status, 200);
    let clients: Vec<_> = futures_util::future::join_all(
        (0..2).map(|_| connect_owned(p.url("app", "secret", "app"))),
    )
    .await;
    let n = 25;
    for cl in &clients {
        for i in 0..n {
            cl.batch_execute(&format!("BEGIN; SELECT {i}; COMMIT"))
                .await
                .unwrap();
        }
    }
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    let app = ["database=\"app\"", "user=\"app\""];
    assert!(
        sum(&body, "pgferry_transactions_total", &app) >= (2 * n) as f64,
        "{body}"
    );
    assert!(sum(&body, "pgferry_queries_total", &app) >= (2 * n) as f64);
    assert!(sum(&body, "pgferry_received_bytes_total", &app) > 0.0);
    assert!(sum(&body, "pgferry_sent_bytes_total", &app) > 0.0);
    assert!(sum(&body, "pgferry_query_duration_seconds_count", &app) >= (2 * n) as f64);
    assert!(sum(&body, "pgferry_transaction_duration_seconds_count", &app) >= (2 * n) as f64);
    let connected = sum(&body, "pgferry_client_connections", &app);
    assert_eq!(connected, 2.0, "{body}");
    assert!(sum(&body, "pgferry_server_connections", &["state=\"idle\""]) >= 1.0);
    assert!(value(&body, "pgferry_node_role", &["role=\"primary\""]).is_some());
    assert_eq!(
        sum(&body, "pgferry_node_role", &["role=\"primary\""]),
        1.0,
        "{body}"
    );
    assert!(body.contains("pgferry_failover_hold_seconds_bucket"));
    assert!(body.contains("pgferry_client_errors_total{database=\"app\",kind=\"wait_timeout\"} 0"));
    assert_eq!(get(port, "/health/live").0, 200);
    assert_eq!(get(port, "/nope").0, 404);
}

async fn connect_owned(url: String) -> tokio_postgres::Client {
    connect(&url).await
}

#[tokio::test]
async fn ready_turns_503_when_the_primary_stops() {
    let c = Cluster::start_with(&["--replicas", "1"]);
    let port = free_port();
    let p = Proxy::start(&metrics_config(&c, port));
    let (status, body) = wait_status(port, "/health/ready", 200, Duration::from_secs(20)).await;
    assert_eq!(status, 200, "{body}");
    c.node(0, "stop");
    let (status, body) = wait_status(port, "/health/ready", 503, Duration::from_secs(30)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("app"), "{body}");
    assert_eq!(get(port, "/health/live").0, 200);
    drop(p);
}

/// The Debian package's exporter (scripts/install-deps installs it) reads
/// SHOW LISTS / STATS / POOLS / DATABASES from pgferry's console.
#[tokio::test]
async fn prometheus_pgbouncer_exporter_scrapes_the_console() {
    let exporter = "/usr/bin/prometheus-pgbouncer-exporter";
    assert!(
        std::path::Path::new(exporter).exists(),
        "{exporter} is missing: run scripts/install-deps (apt-get install prometheus-pgbouncer-exporter)"
    );
    let c = shared_cluster();
    let p = Proxy::start(&metrics_config(c, free_port()));
    let worker = connect(&p.url("app", "secret", "app")).await;
    worker.batch_execute("SELECT 1").await.unwrap();
    let pg_port = p.url("app", "secret", "app");
    let pg_port: u16 = pg_port
        .split("port=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no port in {pg_port}"));
    let port = free_port();
    let mut child = Command::new(exporter)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--pgbouncer-host",
            "127.0.0.1",
            "--pgbouncer-port",
            &pg_port.to_string(),
        ])
        .args(["--pgbouncer-user", "md5user"])
        .env("PGPASSWORD", "md5pass")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the exporter");
    let end = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.contains("pgbouncer_") {
                break out;
            }
        }
        if Instant::now() > end || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the exporter served no pgbouncer metrics; its stderr:\n{err}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    for want in [
        "pgbouncer_active_clients{database=\"app\",user=\"app\"} 1.0",
        "pgbouncer_waiting_clients{database=\"app\",user=\"app\"} 0.0",
        "pgbouncer_requests_total{database=\"app\"}",
        "pgbouncer_received_bytes_total{database=\"app\"}",
        "pgbouncer_pool_size{database=\"app\"} 4.0",
        "pgbouncer_databases 1.0",
    ] {
        assert!(
            body.contains(want),
            "exporter output lacks {want:?}:\n{body}"
        );
    }
}
