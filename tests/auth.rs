//! Client authentication and the startup handshake through pgferry.

mod common;
mod support;

use std::time::Duration;

use common::*;
use support::*;

fn with_method(c: &Cluster, method: &str) -> String {
    config(c, "transaction", 2, &format!("auth_method = \"{method}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_accepts_the_right_password_and_refuses_others_alike() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "scram-sha-256"));
    let ok = connect(&p.url("app", "secret", "app")).await;
    assert_eq!(
        one(&ok, "SELECT current_user::text")
            .await
            .get::<_, String>(0),
        "app"
    );

    let wrong = try_connect(&p.url("app", "nope", "app"))
        .await
        .expect_err("wrong password");
    let unknown = try_connect(&p.url("ghost", "secret", "app"))
        .await
        .expect_err("unknown user");
    for (e, user) in [(&wrong, "app"), (&unknown, "ghost")] {
        let db = e.as_db_error().expect("an ErrorResponse");
        assert_eq!(db.code().code(), "28P01");
        assert_eq!(
            db.message(),
            format!("password authentication failed for user \"{user}\"")
        );
        assert_eq!(db.severity(), "FATAL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_accepts_the_right_password_and_refuses_others_alike() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "md5"));
    for (user, pw) in [("app", "secret"), ("md5user", "md5pass")] {
        let ok = connect(&p.url(user, pw, "app")).await;
        assert_eq!(
            one(&ok, "SELECT current_user::text")
                .await
                .get::<_, String>(0),
            user
        );
    }
    let wrong = try_connect(&p.url("app", "nope", "app"))
        .await
        .expect_err("wrong password");
    let unknown = try_connect(&p.url("ghost", "x", "app"))
        .await
        .expect_err("unknown user");
    assert_eq!(code(&wrong), "28P01");
    assert_eq!(code(&unknown), "28P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_secret_and_md5_hash_in_config_verify_clients() {
    let c = shared_cluster();
    // The md5 hash of "md5pass" for md5user, and the server's own SCRAM
    // secret for app (pgferry verifies the client with it; the server side
    // still uses a plaintext password through a second user entry).
    let md5 = c.psql(
        0,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'md5user'",
    );
    assert!(md5.starts_with("md5"), "{md5}");
    let cfg =
        with_method(c, "md5").replace("password = \"md5pass\"", &format!("password = \"{md5}\""));
    let p = Proxy::start(&cfg);
    let ok = connect(&p.url("md5user", "md5pass", "app")).await;
    assert_eq!(one(&ok, "SELECT 1").await.get::<_, i32>(0), 1);
    let e = try_connect(&p.url("md5user", "wrong", "app"))
        .await
        .expect_err("wrong password");
    assert_eq!(code(&e), "28P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_lets_known_users_in_and_refuses_unknown_roles() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "trust"));
    let ok = connect(&p.url("app", "anything", "app")).await;
    assert_eq!(
        one(&ok, "SELECT current_user::text")
            .await
            .get::<_, String>(0),
        "app"
    );
    let e = try_connect(&p.url("ghost", "x", "app"))
        .await
        .expect_err("unknown role");
    assert_eq!(code(&e), "28000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_3d000() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "scram-sha-256"));
    let e = try_connect(&p.url("app", "secret", "nosuchdb"))
        .await
        .expect_err("unknown database");
    assert_eq!(code(&e), "3D000");
    // A wrong password is still reported as such, whatever the database.
    let e = try_connect(&p.url("app", "bad", "nosuchdb"))
        .await
        .expect_err("bad password");
    assert_eq!(code(&e), "28P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gss_requests_are_declined_then_startup_proceeds() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "trust"));
    let mut r = Raw::connect(p.port).await;
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&80_877_103u32.to_be_bytes());
    r.send(&ssl).await;
    assert_eq!(r.recv_byte().await, Some(b'N'));
    let mut gss = 8u32.to_be_bytes().to_vec();
    gss.extend_from_slice(&80_877_104u32.to_be_bytes());
    r.send(&gss).await;
    assert_eq!(r.recv_byte().await, Some(b'N'));
    r.send(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await;
    let mut saw_ready = false;
    while let Some((tag, _)) = r.recv(Duration::from_secs(10)).await {
        if tag == b'Z' {
            saw_ready = true;
            break;
        }
        assert_ne!(tag, b'E', "login after declined SSL must work");
    }
    assert!(saw_ready);
    r.send(&message(b'Q', b"SELECT 1\0")).await;
    let mut got_row = false;
    while let Some((tag, _)) = r.recv(Duration::from_secs(10)).await {
        match tag {
            b'D' => got_row = true,
            b'Z' => break,
            _ => {}
        }
    }
    assert!(got_row);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_pipelined_after_ssl_request_is_refused() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "trust"));
    let mut r = Raw::connect(p.port).await;
    let mut bytes = 8u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&80_877_103u32.to_be_bytes());
    bytes.extend_from_slice(&startup_packet(&[("user", "app"), ("database", "app")]));
    r.send(&bytes).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_is_negotiated_down_to_3_0() {
    let c = shared_cluster();
    let p = Proxy::start(&with_method(c, "trust"));
    let mut r = Raw::connect(p.port).await;
    let mut pkt = startup_packet(&[
        ("user", "app"),
        ("database", "app"),
        ("_pq_.test_option", "1"),
    ]);
    pkt[4..8].copy_from_slice(&((3u32 << 16) | 2).to_be_bytes());
    r.send(&pkt).await;
    let (tag, body) = r.recv(Duration::from_secs(5)).await.expect("a reply");
    assert_eq!(tag, b'v', "NegotiateProtocolVersion expected");
    assert_eq!(&body[..4], &0u32.to_be_bytes());
    assert_eq!(&body[4..8], &1u32.to_be_bytes());
    loop {
        let (tag, _) = r
            .recv(Duration::from_secs(10))
            .await
            .expect("login continues");
        assert_ne!(tag, b'E');
        if tag == b'Z' {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_conn_refuses_the_extra_client_with_53300() {
    let c = shared_cluster();
    let p = Proxy::start(&config(c, "transaction", 2, "max_client_conn = 2"));
    let a = connect(&p.url("app", "secret", "app")).await;
    let b = connect(&p.url("app", "secret", "app")).await;
    let e = try_connect(&p.url("app", "secret", "app"))
        .await
        .expect_err("third client");
    assert_eq!(code(&e), "53300");
    assert_eq!(one(&a, "SELECT 1").await.get::<_, i32>(0), 1);
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c3 = connect(&p.url("app", "secret", "app")).await;
    assert_eq!(one(&c3, "SELECT 3").await.get::<_, i32>(0), 3);
}
