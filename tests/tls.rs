//! TLS on both sides, SCRAM-SHA-256-PLUS, certificate reload and `[[hba]]`
//! rules, with certificates made by rcgen and real psql / Postgres.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A CA and certificates it signed, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("pgferry-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("pgferry test CA {name}"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes `<stem>.crt` / `<stem>.key` for `cn` with the given SANs.
    fn issue(&self, stem: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.path(&format!("{stem}.crt")),
            self.path(&format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        set_mode(&k, 0o600);
        (c, k)
    }
}

fn db_msg(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Postgres refuses a key file not owned by the user it runs as.
fn give_to_postgres(paths: &[&Path]) {
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !is_root {
        return;
    }
    for p in paths {
        let st = Command::new("chown")
            .arg("postgres:postgres")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

fn tls_config(c: &Cluster, proxy_extra: &str, tls: &str) -> String {
    format!(
        "{}\n[tls]\n{tls}\n",
        config(c, "transaction", 2, proxy_extra)
    )
}

fn client_tls(pki: &Pki, mode: &str) -> String {
    format!(
        "client_mode = \"{mode}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
        pki.path("server.crt").display(),
        pki.path("server.key").display()
    )
}

/// Runs psql with `conninfo` and `sql`; returns (success, stdout + stderr).
fn psql(conninfo: &str, password: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .arg(conninfo)
        .args([
            "-XAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "\\conninfo",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn rustls_client(ca: &Path, alpn: Option<&[u8]>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if let Some(a) = alpn {
        cfg.alpn_protocols = vec![a.to_vec()];
    }
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// TLS to pgferry: via SSLRequest, or direct (Postgres 17 style).
async fn tls_connect(
    port: u16,
    ca: &Path,
    alpn: Option<&[u8]>,
    direct: bool,
) -> std::io::Result<Tls> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    if !direct {
        tcp.write_all(&SSL_REQUEST).await?;
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await?;
        assert_eq!(b[0], b'S', "pgferry should accept SSLRequest");
    }
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        rustls_client(ca, alpn).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

async fn recv<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    let read = async {
        s.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.checked_sub(4)?];
        s.read_exact(&mut body).await.ok()?;
        Some((head[0], body))
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}

/// Reads until ReadyForQuery; returns the first DataRow's first column or
/// the SQLSTATE of an error ("E:<code>").
async fn until_ready<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut result = String::new();
    while let Some((tag, body)) = recv(s).await {
        match tag {
            b'D' if result.is_empty() => {
                let len = u32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
                result = String::from_utf8_lossy(&body[6..6 + len]).into_owned();
            }
            b'E' => return format!("E:{}", field(&body, b'C')),
            b'Z' => return result,
            _ => {}
        }
    }
    "closed".to_owned()
}

async fn query<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, sql: &str) -> String {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    s.write_all(&message(b'Q', &body)).await.unwrap();
    s.flush().await.unwrap();
    until_ready(s).await
}

/// Logs in as trustuser (auth_method = trust) over an established stream.
async fn trust_login<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
    s.write_all(&startup_packet(&[
        ("user", "trustuser"),
        ("database", "app"),
    ]))
    .await
    .unwrap();
    s.flush().await.unwrap();
    until_ready(s).await
}

#[test]
fn psql_with_channel_binding_and_verify_full() {
    let c = shared_cluster();
    let pki = Pki::new("psql");
    pki.issue("server", "localhost", &["localhost", "127.0.0.1"]);
    let p = Proxy::start(&tls_config(c, "", &client_tls(&pki, "require")));
    let base = format!("host=127.0.0.1 port={} user=app dbname=app", p.port);

    let (ok, out) = psql(
        &format!("{base} sslmode=require channel_binding=require"),
        "secret",
        "SELECT 'through ' || current_user",
    );
    assert!(
        ok,
        "psql with channel_binding=require failed:\n{out}\n{}",
        p.log()
    );
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.contains("through app"), "{out}");

    let (ok, out) = psql(
        &format!(
            "{base} sslmode=verify-full sslrootcert={} channel_binding=require",
            pki.path("ca.crt").display()
        ),
        "secret",
        "SELECT 42",
    );
    assert!(ok, "psql verify-full failed:\n{out}");
    assert!(out.contains("42"), "{out}");

    // A wrong password still fails over TLS with channel binding.
    let (ok, out) = psql(
        &format!("{base} sslmode=require channel_binding=require"),
        "wrong",
        "SELECT 1",
    );
    assert!(!ok, "wrong password accepted:\n{out}");
    assert!(out.contains("password authentication failed"), "{out}");

    // Plaintext is refused under client_mode = require.
    let (ok, out) = psql(&format!("{base} sslmode=disable"), "secret", "SELECT 1");
    assert!(!ok && out.contains("TLS is required"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_plaintext_and_pipelined_bytes() {
    let c = shared_cluster();
    let pki = Pki::new("raw");
    pki.issue("server", "localhost", &["localhost"]);
    let p = Proxy::start(&tls_config(c, "", &client_tls(&pki, "require")));

    let mut r = Raw::connect(p.port).await;
    r.send(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("28000")
    );

    // A StartupMessage pipelined behind the SSLRequest is refused before
    // any 'S' is sent (it would be taken as encrypted otherwise).
    let mut r = Raw::connect(p.port).await;
    let mut bytes = SSL_REQUEST.to_vec();
    bytes.extend(startup_packet(&[("user", "app"), ("database", "app")]));
    r.send(&bytes).await;
    assert_eq!(
        r.error_code(Duration::from_secs(5)).await.as_deref(),
        Some("08P01")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_needs_alpn_and_cancel_works_over_tls() {
    let c = shared_cluster();
    let pki = Pki::new("direct");
    pki.issue("server", "localhost", &["localhost"]);
    let p = Proxy::start(&tls_config(
        c,
        "auth_method = \"trust\"",
        &client_tls(&pki, "prefer"),
    ));
    let ca = pki.path("ca.crt");

    let mut s = tls_connect(p.port, &ca, Some(b"postgresql"), true)
        .await
        .expect("direct TLS with ALPN postgresql");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    assert_eq!(trust_login(&mut s).await, "");
    assert_eq!(query(&mut s, "SELECT 'direct'").await, "direct");
    // Large messages both ways: many TLS records, partial writes, flushes.
    let big = query(&mut s, "SELECT repeat('x', 4000000)").await;
    assert_eq!(big.len(), 4_000_000);
    let sql = format!("SELECT length('{}')", "y".repeat(3_000_000));
    assert_eq!(query(&mut s, &sql).await, "3000000");

    // Without ALPN the direct connection is dropped.
    let refused = match tls_connect(p.port, &ca, None, true).await {
        Err(_) => true,
        Ok(mut s) => trust_login(&mut s).await == "closed",
    };
    assert!(refused, "direct TLS without ALPN must be refused");

    // SSLRequest-negotiated TLS, then a cancel request sent over TLS too.
    let mut s = tls_connect(p.port, &ca, None, false).await.unwrap();
    s.write_all(&startup_packet(&[
        ("user", "trustuser"),
        ("database", "app"),
    ]))
    .await
    .unwrap();
    s.flush().await.unwrap();
    let mut key = None;
    while let Some((tag, body)) = recv(&mut s).await {
        if tag == b'K' {
            key = Some(body);
        }
        if tag == b'Z' {
            break;
        }
    }
    let key = key.expect("BackendKeyData");
    let mut q = b"SELECT pg_sleep(30)".to_vec();
    q.push(0);
    s.write_all(&message(b'Q', &q)).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cancel = tls_connect(p.port, &ca, None, false).await.unwrap();
    let mut req = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    req.extend_from_slice(&key);
    cancel.write_all(&req).await.unwrap();
    cancel.flush().await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(until_ready(&mut s).await, "E:57014");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_certificates_and_keeps_established_sessions() {
    let c = shared_cluster();
    let pki = Pki::new("reload");
    pki.issue("server", "first", &["localhost"]);
    let text = tls_config(c, "auth_method = \"trust\"", &client_tls(&pki, "prefer"))
        .replace("{listen}", "127.0.0.1:0");
    let cfg = pgferry::config::Config::parse(&text).unwrap();
    let app = pgferry::app::App::start(cfg).await.unwrap();
    let port = app.local_addr.port();
    let ca = pki.path("ca.crt");
    let first = std::fs::read(pki.path("server.crt")).unwrap();

    let mut old = tls_connect(port, &ca, None, false).await.unwrap();
    assert_eq!(trust_login(&mut old).await, "");
    assert_eq!(query(&mut old, "SELECT 'before'").await, "before");

    pki.issue("server", "second", &["localhost"]);
    let second = std::fs::read(pki.path("server.crt")).unwrap();
    assert_ne!(first, second);
    app.state.tls.reload(&app.state.config().tls).unwrap();

    let new = tls_connect(port, &ca, None, false).await.unwrap();
    let seen = new.get_ref().1.peer_certificates().unwrap()[0].clone();
    let want = CertificateDer::from_pem_slice(&second).unwrap();
    assert_eq!(
        seen, want,
        "a new handshake must see the reloaded certificate"
    );
    // The session opened before the reload carries on.
    assert_eq!(query(&mut old, "SELECT 'after'").await, "after");

    // A broken file keeps the old certificates.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    assert!(app.state.tls.reload(&app.state.config().tls).is_err());
    let again = tls_connect(port, &ca, None, false).await.unwrap();
    assert_eq!(again.get_ref().1.peer_certificates().unwrap()[0], want);
    app.stop().await;
}

/// Starts a 1-node cluster with ssl = on and a certificate for `sans`.
fn ssl_cluster(pki: &Pki, sans: &[&str]) -> Cluster {
    let (crt, key) = pki.issue("pg", "postgres", sans);
    give_to_postgres(&[&crt, &key]);
    Cluster::start_with(&[
        "--replicas",
        "0",
        "--set",
        "ssl=on",
        "--set",
        &format!("ssl_cert_file='{}'", crt.display()),
        "--set",
        &format!("ssl_key_file='{}'", key.display()),
    ])
}

fn server_tls(c: &Cluster, mode: &str, ca: &Path, host: &str) -> String {
    // A node that fails TLS is never found primary: give up quickly.
    let cfg = tls_config(
        c,
        "failover_timeout = \"2s\"",
        &format!(
            "server_mode = \"{mode}\"\nserver_ca_file = \"{}\"",
            ca.display()
        ),
    );
    cfg.replace(&c.hosts_toml(), &format!("[\"{host}:{}\"]", c.port(0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_tls_modes() {
    let pki = Pki::new("server");
    let other = Pki::new("other");
    let c = ssl_cluster(&pki, &["127.0.0.1"]);
    let ca = pki.path("ca.crt");
    let sql = "SELECT ssl::text || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    for (mode, ca, host) in [
        ("require", other.path("ca.crt"), "127.0.0.1"),
        ("verify-ca", ca.clone(), "localhost"),
        ("verify-full", ca.clone(), "127.0.0.1"),
    ] {
        let p = Proxy::start(&server_tls(&c, mode, &ca, host));
        let client = connect(&p.url("app", "secret", "app")).await;
        let row: String = one(&client, sql).await.get(0);
        assert!(row.starts_with("true TLS"), "{mode}: {row}");
        drop(client);
    }

    // Verification failures: another CA, or a name the certificate lacks.
    for (mode, ca, host) in [
        ("verify-ca", other.path("ca.crt"), "127.0.0.1"),
        ("verify-full", ca.clone(), "localhost"),
    ] {
        let p = Proxy::start(&server_tls(&c, mode, &ca, host));
        let err = try_connect(&p.url("app", "secret", "app"))
            .await
            .expect_err("verification must fail");
        assert!(!code(&err).is_empty(), "{mode}: {err}");
        assert!(p.log().contains("TLS with server"), "{mode}:\n{}", p.log());
    }

    // Over TLS Postgres offers SCRAM-SHA-256-PLUS and pgferry binds to it.
    let p = Proxy::start(&server_tls(&c, "verify-full", &ca, "127.0.0.1"));
    let client = connect(&p.url("app", "secret", "app")).await;
    let row: String = one(&client, "SELECT 'bound'").await.get(0);
    assert_eq!(row, "bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hba_rules_choose_methods_and_refuse() {
    let c = shared_cluster();
    let pki = Pki::new("hba");
    pki.issue("server", "localhost", &["localhost"]);
    let rules = r#"
[[hba]]
database = "app"
user = "md5user"
address = "127.0.0.1/32"
method = "reject"

[[hba]]
database = "all"
user = "app"
address = "127.0.0.0/8"
tls = true
method = "scram-sha-256"

[[hba]]
database = "app"
user = "clearuser"
address = "127.0.0.0/8"
tls = false
method = "password"

[[hba]]
database = "all"
user = "trustuser"
address = "::1/128"
method = "trust"
"#;
    let p = Proxy::start(&format!(
        "{}{rules}",
        tls_config(c, "", &client_tls(&pki, "prefer"))
    ));

    let err = try_connect(&p.url("md5user", "md5pass", "app"))
        .await
        .expect_err("reject rule");
    assert_eq!(code(&err), "28000", "{err}");
    assert!(db_msg(&err).contains("rejects"), "{err:?}");

    // app only over TLS: plaintext finds no rule.
    let err = try_connect(&p.url("app", "secret", "app"))
        .await
        .expect_err("tls-only rule");
    assert_eq!(code(&err), "28000");
    let msg = db_msg(&err);
    assert!(
        msg.contains("no pgferry hba entry")
            && msg.contains("\"app\"")
            && msg.contains("127.0.0.1"),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
    let (ok, out) = psql(
        &format!(
            "host=127.0.0.1 port={} user=app dbname=app sslmode=require",
            p.port
        ),
        "secret",
        "SELECT 'tls ok'",
    );
    assert!(ok && out.contains("tls ok"), "{out}");

    // Cleartext password for clearuser, plaintext only.
    let ok = connect(&p.url("clearuser", "clearpass", "app")).await;
    let row: String = one(&ok, "SELECT current_user::text").await.get(0);
    assert_eq!(row, "clearuser");
    let err = try_connect(&p.url("clearuser", "nope", "app"))
        .await
        .expect_err("wrong cleartext password");
    assert_eq!(code(&err), "28P01");
    let (ok, out) = psql(
        &format!(
            "host=127.0.0.1 port={} user=clearuser dbname=app sslmode=require",
            p.port
        ),
        "clearpass",
        "SELECT 1",
    );
    assert!(!ok && out.contains("no pgferry hba entry"), "{out}");

    // trustuser only from ::1; from 127.0.0.1 nothing matches.
    let err = try_connect(&p.url("trustuser", "x", "app"))
        .await
        .expect_err("no rule");
    assert_eq!(code(&err), "28000");
}

#[test]
fn cert_method_checks_the_client_certificate() {
    let c = shared_cluster();
    let pki = Pki::new("cert");
    pki.issue("server", "localhost", &["localhost"]);
    let (app_crt, app_key) = pki.issue("app-client", "app", &[]);
    let (other_crt, other_key) = pki.issue("other-client", "somebody", &[]);
    let tls = format!(
        "{}\nclient_ca_file = \"{}\"\nclient_verify = \"none\"",
        client_tls(&pki, "require"),
        pki.path("ca.crt").display()
    );
    let rules =
        "\n[[hba]]\ndatabase = \"all\"\nuser = \"app\"\naddress = \"all\"\nmethod = \"cert\"\n";
    let p = Proxy::start(&format!("{}{rules}", tls_config(c, "", &tls)));
    let base = format!(
        "host=127.0.0.1 port={} user=app dbname=app sslmode=require",
        p.port
    );

    let (ok, out) = psql(
        &format!(
            "{base} sslcert={} sslkey={}",
            app_crt.display(),
            app_key.display()
        ),
        "",
        "SELECT 'by cert'",
    );
    assert!(ok && out.contains("by cert"), "{out}\n{}", p.log());

    for extra in [
        format!(
            "sslcert={} sslkey={}",
            other_crt.display(),
            other_key.display()
        ),
        "sslcert=/nonexistent sslkey=/nonexistent".to_owned(),
    ] {
        let (ok, out) = psql(&format!("{base} {extra}"), "", "SELECT 1");
        assert!(
            !ok && out.contains("certificate authentication failed"),
            "{extra}: {out}"
        );
    }
}
