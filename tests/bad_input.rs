//! Malformed, oversized, truncated and silent clients: each gets an error or
//! a clean close, while a healthy client keeps working throughout.

mod common;
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use support::*;

/// A client running queries in a loop until told to stop; counts successes
/// and panics on any failure.
struct Healthy {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Healthy {
    async fn start(p: &Proxy) -> Healthy {
        let client = connect(&p.url("app", "secret", "app")).await;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let task = {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let row = try_one(&client, "SELECT 41 + 1")
                        .await
                        .expect("healthy client must never fail");
                    assert_eq!(row.get::<_, i32>(0), 42);
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        Healthy { stop, done, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("healthy client task");
        self.done.load(Ordering::Relaxed)
    }
}

fn proxy(c: &Cluster) -> Proxy {
    Proxy::start(&config(
        c,
        "transaction",
        4,
        "max_message_size = \"64kB\"\nclient_login_timeout = \"1s\"",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_startup_packets_get_errors_and_others_carry_on() {
    let c = shared_cluster();
    let p = proxy(c);
    let healthy = Healthy::start(&p).await;

    // Garbage: an impossible length.
    let mut r = Raw::connect(p.port).await;
    r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // Negative length.
    let mut r = Raw::connect(p.port).await;
    r.send(&[0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0]).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // A 1 GB length header: refused at once, nothing allocated.
    let mut r = Raw::connect(p.port).await;
    r.send(&[0x40, 0, 0, 0, 0, 3, 0, 0]).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // Protocol 2.0.
    let mut r = Raw::connect(p.port).await;
    let mut pkt = startup_packet(&[("user", "app")]);
    pkt[4..8].copy_from_slice(&(2u32 << 16).to_be_bytes());
    r.send(&pkt).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("0A000")
    );

    // Parameters without their terminator.
    let mut r = Raw::connect(p.port).await;
    let mut bad = 196_608u32.to_be_bytes().to_vec();
    bad.extend_from_slice(b"user\0app");
    let mut pkt = ((bad.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend_from_slice(&bad);
    r.send(&pkt).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // Truncated startup packet, then the client vanishes.
    let mut r = Raw::connect(p.port).await;
    r.send(&startup_packet(&[("user", "app"), ("database", "app")])[..10])
        .await;
    drop(r);

    // A client that opens a socket and says nothing is dropped after
    // client_login_timeout (1s here).
    let mut silent = Raw::connect(p.port).await;
    assert!(
        silent.closed(Duration::from_secs(4)).await,
        "silent client must be closed"
    );

    // Half a startup packet, then a stall: also dropped.
    let mut stall = Raw::connect(p.port).await;
    stall
        .send(&startup_packet(&[("user", "app"), ("database", "app")])[..12])
        .await;
    assert!(
        stall.closed(Duration::from_secs(4)).await,
        "stalled client must be closed"
    );

    // A client pipelining a query before authentication finished.
    let mut eager = Raw::connect(p.port).await;
    let mut bytes = startup_packet(&[("user", "app"), ("database", "app")]);
    bytes.extend_from_slice(&message(b'Q', b"SELECT 1\0"));
    eager.send(&bytes).await;
    // It gets the SASL request, then a protocol error for the Query.
    assert_eq!(
        eager.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    let done = healthy.finish().await;
    assert!(done > 50, "healthy client ran only {done} queries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_after_login_close_only_that_client() {
    let c = shared_cluster();
    let trust = Proxy::start(&config(
        c,
        "transaction",
        4,
        "auth_method = \"trust\"\nmax_message_size = \"64kB\"",
    ));
    let healthy = Healthy::start(&trust).await;

    // Oversized message: 54000 and close, nothing buffered.
    let mut r = raw_login_trust(trust.port).await;
    let mut huge = vec![b'Q'];
    huge.extend_from_slice(&(100_000u32).to_be_bytes());
    r.send(&huge).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("54000")
    );
    assert!(r.closed(Duration::from_secs(2)).await);

    // A 1 GB length in a regular message.
    let mut r = raw_login_trust(trust.port).await;
    r.send(&[b'Q', 0x40, 0, 0, 0]).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("54000")
    );

    // Negative length.
    let mut r = raw_login_trust(trust.port).await;
    r.send(&[b'Q', 0xff, 0xff, 0xff, 0xff]).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // A server-only message type sent by a client.
    let mut r = raw_login_trust(trust.port).await;
    r.send(&message(b'Z', b"I")).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );

    // Half a message, then the client goes quiet and later vanishes: the
    // server connection it started must not be reused dirty.
    let mut r = raw_login_trust(trust.port).await;
    let q = message(b'Q', b"SELECT 1\0");
    r.send(&q[..7]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(r);

    // A client that vanishes mid-query: its query is cancelled.
    let mut r = raw_login_trust(trust.port).await;
    r.send(&message(b'Q', b"SELECT pg_sleep(20) /* vanishing */\0"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(r);
    let mut still_running = String::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        still_running = c.psql(
            0,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%vanishing%' AND state = 'active' AND pid <> pg_backend_pid()",
        );
        if still_running == "0" {
            break;
        }
    }
    assert_eq!(
        still_running, "0",
        "the vanished client's query must be cancelled"
    );

    let done = healthy.finish().await;
    assert!(done > 20, "healthy client ran only {done} queries");
    // The proxy is still fully usable.
    let fresh = connect(&trust.url("app", "secret", "app")).await;
    assert_eq!(one(&fresh, "SELECT 5").await.get::<_, i32>(0), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_failed_logins_do_not_disturb_others() {
    let c = shared_cluster();
    // The default login timeout: the test's own SCRAM client is slow in a
    // debug build when a thousand run at once.
    let p = Proxy::start(&config(c, "transaction", 4, "auth_method = \"md5\""));
    let healthy = Healthy::start(&p).await;
    let rss_before = rss_kib(p.pid());
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let url = p.url(if i % 2 == 0 { "app" } else { "nobody" }, "wrong", "app");
        tasks.push(tokio::spawn(async move {
            try_connect(&url).await.map(|_| ()).map_err(|e| {
                if code(&e).is_empty() {
                    e.to_string()
                } else {
                    code(&e)
                }
            })
        }));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err("28P01".to_owned()));
    }
    let done = healthy.finish().await;
    assert!(done > 10, "healthy client ran only {done} queries");
    // No memory blow-up: a thousand refused logins leave little behind.
    let grown = rss_kib(p.pid()).saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
}
