//! A minimal HTTP/1.1 server for `GET /metrics`, `GET /health/live` and
//! `GET /health/ready`. One request per connection (`Connection: close`),
//! bounded request size, a read timeout and a cap on concurrent
//! connections: a scraper or a load balancer's health check needs no more,
//! and nothing a peer sends can hold memory or a task for long.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests larger than this (request line + headers) are refused.
const MAX_REQUEST: usize = 8 * 1024;
/// The whole request must arrive within this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;

/// What the endpoints report; supplied by the application.
pub trait Endpoints: Send + Sync + 'static {
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
    /// Ok when ready for traffic, else why not.
    fn ready(&self) -> Result<(), String>;
}

/// Serves until `shutdown`. Cancel safety: runs as its own task.
pub async fn serve(
    listener: TcpListener,
    endpoints: Arc<dyn Endpoints>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap the connection is simply closed.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let endpoints = endpoints.clone();
        tracker.spawn(async move {
            handle(stream, endpoints.as_ref()).await;
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, endpoints: &dyn Endpoints) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => respond(&head, endpoints),
        Ok(Err(status)) => plain(status, status_text(status)),
        Err(_) => plain(408, "request timeout\n"),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the end of the headers; Err(status) for a bad request.
async fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            return String::from_utf8(buf).map_err(|_| 400);
        }
        if buf.len() > MAX_REQUEST {
            return Err(431);
        }
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The response for a request head (request line and headers).
pub fn respond(head: &str, endpoints: &dyn Endpoints) -> Vec<u8> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return plain(400, "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return plain(505, "HTTP/1.x only\n");
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return plain(405, "method not allowed\n");
    }
    let path = target.split('?').next().unwrap_or("");
    let mut r = match path {
        "/metrics" => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &endpoints.metrics(),
        ),
        "/health/live" => plain(200, "live\n"),
        "/health/ready" => match endpoints.ready() {
            Ok(()) => plain(200, "ready\n"),
            Err(why) => plain(503, &format!("not ready: {why}\n")),
        },
        _ => plain(404, "not found\n"),
    };
    if head_only {
        if let Some(end) = find_end(&r) {
            r.truncate(end + 4);
        }
    }
    r
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn plain(status: u16, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        status_text(status),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(bool);
    impl Endpoints for Fake {
        fn metrics(&self) -> String {
            "pgferry_up 1\n".to_owned()
        }
        fn ready(&self) -> Result<(), String> {
            if self.0 {
                Ok(())
            } else {
                Err("no primary for app".to_owned())
            }
        }
    }

    fn text(r: Vec<u8>) -> String {
        String::from_utf8(r).unwrap()
    }

    #[test]
    fn routes() {
        let up = Fake(true);
        let m = text(respond("GET /metrics HTTP/1.1\r\nHost: x", &up));
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.contains("Connection: close\r\n"));
        assert!(m.ends_with("\r\n\r\npgferry_up 1\n"));
        assert!(text(respond("GET /health/live HTTP/1.0", &up)).starts_with("HTTP/1.1 200"));
        assert!(text(respond("GET /health/ready HTTP/1.1", &up)).starts_with("HTTP/1.1 200"));
        let down = text(respond("GET /health/ready?x=1 HTTP/1.1", &Fake(false)));
        assert!(down.starts_with("HTTP/1.1 503") && down.contains("no primary for app"));
        assert!(text(respond("GET /nope HTTP/1.1", &up)).starts_with("HTTP/1.1 404"));
        assert!(text(respond("POST /metrics HTTP/1.1", &up)).starts_with("HTTP/1.1 405"));
        assert!(text(respond("GET /metrics SPDY/3", &up)).starts_with("HTTP/1.1 505"));
        assert!(text(respond("garbage", &up)).starts_with("HTTP/1.1 400"));
        let head = text(respond("HEAD /metrics HTTP/1.1", &up));
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[tokio::test]
    async fn oversized_request_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        tokio::spawn(serve(listener, Arc::new(Fake(true)), stop.clone(), tracker));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let junk = vec![b'a'; MAX_REQUEST + 2048];
        let _ = s.write_all(&junk).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
        stop.cancel();
    }
}
