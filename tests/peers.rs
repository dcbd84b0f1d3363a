//! Several pgferry processes on one port (`so_reuseport`), and cancel
//! requests forwarded to the process that holds the client (`peer_id`,
//! `peer_listen`, `[peers]`), against the shared cluster.

mod common;
mod support;

use std::time::Duration;

use common::*;
use support::*;
use tokio_postgres::SimpleQueryMessage;

/// A process of the pair: trust logins, SO_REUSEPORT on `listen`, its own
/// `peer_listen` port, and the whole `[peers]` table.
fn peer_config(c: &Cluster, id: u16, own: u16, peers: &[(u16, u16)]) -> String {
    let extra = format!(
        "auth_method = \"trust\"\nadmin_users = [\"app\"]\nso_reuseport = true\n\
         peer_id = {id}\npeer_listen = \"127.0.0.1:{own}\""
    );
    let mut text = config(c, "transaction", 2, &extra);
    text.push_str("\n[peers]\n");
    for (id, port) in peers {
        text.push_str(&format!("{id} = \"127.0.0.1:{port}\"\n"));
    }
    text
}

/// Processes 1 and 2 on one shared port, and each one's own address.
fn start_pair() -> (Proxy, Proxy, u16, u16) {
    let c = shared_cluster();
    let (own_a, own_b) = (free_port(), free_port());
    let table = [(1, own_a), (2, own_b)];
    let a = Proxy::start(&peer_config(c, 1, own_a, &table));
    let b = Proxy::start(
        &peer_config(c, 2, own_b, &table).replace("{listen}", &format!("127.0.0.1:{}", a.port)),
    );
    (a, b, own_a, own_b)
}

fn cancel_packet(pid: u32, secret: u32) -> Vec<u8> {
    let mut pkt = 16u32.to_be_bytes().to_vec();
    pkt.extend_from_slice(&80_877_102u32.to_be_bytes());
    pkt.extend_from_slice(&pid.to_be_bytes());
    pkt.extend_from_slice(&secret.to_be_bytes());
    pkt
}

/// Logs in over a raw connection and returns it with its BackendKeyData.
async fn login_with_key(port: u16) -> (Raw, u32, u32) {
    let mut r = Raw::connect(port).await;
    r.send(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await;
    let mut key = None;
    while let Some((tag, body)) = r.recv(Duration::from_secs(10)).await {
        match tag {
            b'K' => {
                let pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let secret = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                key = Some((pid, secret));
            }
            b'Z' => break,
            _ => {}
        }
    }
    let (pid, secret) = key.expect("BackendKeyData before ReadyForQuery");
    (r, pid, secret)
}

/// Sends a CancelRequest to `port` and waits for pgferry to close it.
async fn send_cancel(port: u16, pid: u32, secret: u32) {
    let mut r = Raw::connect(port).await;
    r.send(&cancel_packet(pid, secret)).await;
    assert!(r.closed(Duration::from_secs(5)).await);
}

/// Reads the answer to a query up to ReadyForQuery: the SQLSTATE of its
/// error, or None when it completed.
async fn outcome(r: &mut Raw, timeout: Duration) -> Option<String> {
    let mut code = None;
    while let Some((tag, body)) = r.recv(timeout).await {
        match tag {
            b'E' => code = Some(field(&body, b'C')),
            b'Z' => return code,
            _ => {}
        }
    }
    panic!("no ReadyForQuery within {timeout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_on_one_port_forward_each_others_cancel_requests() {
    let (a, b, own_a, own_b) = start_pair();
    assert_eq!(b.port, a.port, "both processes listen on one port");

    // The kernel spreads clients of the shared port over both processes.
    for _ in 0..24 {
        let client = connect(&a.url("app", "", "app")).await;
        assert_eq!(one(&client, "SELECT 1").await.get::<_, i32>(0), 1);
    }
    let logins = |p: &Proxy| p.log().matches("client logged in").count();
    assert!(
        logins(&a) > 0 && logins(&b) > 0,
        "clients of the shared port reached both processes ({} and {})",
        logins(&a),
        logins(&b)
    );

    // A client of process 1 (on its own address): its key names process 1.
    let (mut x, pid, secret) = login_with_key(own_a).await;
    assert_eq!(pid >> 17, 1, "peer id in the cancel key: {pid:#x}");
    x.send(&message(b'Q', b"SELECT pg_sleep(30)\0")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its CancelRequest reaches process 2, which forwards it to process 1.
    send_cancel(own_b, pid, secret).await;
    assert_eq!(
        outcome(&mut x, Duration::from_secs(10)).await.as_deref(),
        Some("57014"),
        "the query is cancelled through the peer"
    );
    assert!(b.log().contains("forwarding a cancel request to its peer"));

    // A request marked as forwarded is never forwarded again (no circling),
    // and a wrong secret cancels nothing.
    x.send(&message(b'Q', b"SELECT pg_sleep(1.5)\0")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_cancel(own_b, pid | (1 << 31), secret).await;
    send_cancel(own_b, pid, secret.wrapping_add(1)).await;
    assert_eq!(outcome(&mut x, Duration::from_secs(10)).await, None);

    // Through the shared port, whichever process receives the request.
    for _ in 0..4 {
        let client = connect(&a.url("app", "", "app")).await;
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        });
        let err = client
            .simple_query("SELECT pg_sleep(30)")
            .await
            .expect_err("cancelled");
        assert_eq!(code(&err), "57014", "{err:?}");
        canceller.await.unwrap().expect("send cancel");
    }

    // SHOW PEERS lists the table and marks the process's own entry.
    let admin = connect(&conninfo(own_a, "app", "", "pgferry")).await;
    let rows: Vec<(String, String, String)> = admin
        .simple_query("SHOW PEERS")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get("peer_id").unwrap_or("").to_owned(),
                r.get("port").unwrap_or("").to_owned(),
                r.get("self").unwrap_or("").to_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1".to_owned(), own_a.to_string(), "true".to_owned()),
            ("2".to_owned(), own_b.to_string(), "false".to_owned()),
        ]
    );
}

/// A process that drains (SIGTERM) closes its socket on the shared port at
/// once: while it waits for its client's transaction, every new client of
/// the port is served by the other process, its own address refuses new
/// clients (57P01), and its client can still be cancelled through the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_process_leaves_the_shared_port_to_the_others() {
    let (a, b, own_a, own_b) = start_pair();
    // A client of process 1 inside a transaction keeps its drain going.
    let (mut busy, pid, secret) = login_with_key(own_a).await;
    busy.send(&message(b'Q', b"BEGIN\0")).await;
    assert_eq!(outcome(&mut busy, Duration::from_secs(5)).await, None);
    a.signal("TERM");
    for _ in 0..100 {
        if a.log().contains("shutdown: letting clients finish") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.log().contains("shutdown: letting clients finish"));
    let before = b.log().matches("client logged in").count();
    for _ in 0..20 {
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            try_connect(&a.url("app", "", "app")),
        )
        .await
        .expect("a new client of the shared port is answered")
        .expect("and logged in");
        assert_eq!(one(&client, "SELECT 1").await.get::<_, i32>(0), 1);
    }
    assert_eq!(
        b.log().matches("client logged in").count() - before,
        20,
        "process 2 served every new client"
    );
    // The draining process's own address takes cancel requests, not clients.
    let mut late = Raw::connect(own_a).await;
    late.send(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await;
    assert_eq!(
        late.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("57P01")
    );
    // Its client's statement is cancelled through the peer.
    busy.send(&message(b'Q', b"SELECT pg_sleep(30)\0")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_cancel(own_b, pid, secret).await;
    assert_eq!(
        outcome(&mut busy, Duration::from_secs(10)).await.as_deref(),
        Some("57014")
    );
    // Its transaction ends, and the drain closes it at that boundary.
    busy.send(&message(b'Q', b"ROLLBACK\0")).await;
    assert_eq!(outcome(&mut busy, Duration::from_secs(5)).await, None);
    assert!(busy.closed(Duration::from_secs(5)).await);
}
