//! pgferry-specific test helpers on top of `support`: config builders and a
//! raw wire-protocol client for the tests that must misbehave on purpose.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Cluster;

/// A config with the cluster's users, one database `app` over all nodes,
/// and `extra` lines appended to `[proxy]`.
pub fn config(c: &Cluster, mode: &str, pool: usize, extra: &str) -> String {
    format!(
        r#"[proxy]
listen = "{{listen}}"
pool_mode = "{mode}"
default_pool_size = {pool}
{extra}

[log]
level = "debug"

[[users]]
name = "app"
password = "secret"

[[users]]
name = "md5user"
password = "md5pass"

[[users]]
name = "clearuser"
password = "clearpass"

[[users]]
name = "trustuser"
password = "trustpw"

[databases.app]
hosts = {hosts}
"#,
        hosts = c.hosts_toml()
    )
}

/// A raw frontend: sends bytes as told, reads backend messages.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to pgferry");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to pgferry");
    }

    /// Reads one tagged message; None on EOF or after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let msg: Vec<u8> = self.buf.drain(..len + 1).collect();
                    return Some((msg[0], msg[5..].to_vec()));
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads one raw byte (for the answer to SSLRequest).
    pub async fn recv_byte(&mut self) -> Option<u8> {
        if !self.buf.is_empty() {
            return Some(self.buf.remove(0));
        }
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut b)).await {
            Ok(Ok(1)) => Some(b[0]),
            _ => None,
        }
    }

    /// Reads until an ErrorResponse and returns its SQLSTATE, or None if the
    /// connection closed first.
    pub async fn error_code(&mut self, timeout: Duration) -> Option<String> {
        while let Some((tag, body)) = self.recv(timeout).await {
            if tag == b'E' {
                return Some(field(&body, b'C'));
            }
        }
        None
    }

    /// True once the peer has closed the connection (within `timeout`).
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A field of an ErrorResponse body.
pub fn field(body: &[u8], kind: u8) -> String {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let k = body[i];
        let end = body[i + 1..]
            .iter()
            .position(|&b| b == 0)
            .map(|p| i + 1 + p)
            .unwrap_or(body.len());
        if k == kind {
            return String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        }
        i = end + 1;
    }
    String::new()
}

pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// SQLSTATE of a tokio-postgres error, or "" when it has none.
pub fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// Logs in as a trust user through a raw connection (auth_method = trust)
/// and reads up to the first ReadyForQuery.
pub async fn raw_login_trust(port: u16) -> Raw {
    let mut r = Raw::connect(port).await;
    r.send(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await;
    while let Some((tag, _)) = r.recv(Duration::from_secs(10)).await {
        if tag == b'Z' {
            return r;
        }
    }
    panic!("no ReadyForQuery after trust login");
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs SQL as the superuser in database `app` on node `node` of `c`.
pub fn app_sql(c: &Cluster, node: usize, sql: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pgcluster");
    let out = std::process::Command::new(script)
        .args([
            "psql",
            &c.dir.to_string_lossy(),
            &node.to_string(),
            "-d",
            "app",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run pgcluster psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One row from `sql` via an unnamed statement (works in transaction mode
/// without named prepared statements). Panics if it fails.
pub async fn one(client: &tokio_postgres::Client, sql: &str) -> tokio_postgres::Row {
    match try_one(client, sql).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}: {e:?}"),
    }
}

pub async fn try_one(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
    let mut rows = client.query_typed(sql, &[]).await?;
    assert_eq!(rows.len(), 1, "{sql} must return one row");
    Ok(rows.remove(0))
}
