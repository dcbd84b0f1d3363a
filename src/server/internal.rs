//! Queries pgferry runs on a server connection for itself. Their results are
//! never shown to a client.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::rejected;
use super::{ServerConn, ServerError};
use crate::protocol::{build, frame, tag, views, TxStatus};
use crate::tls::Stream;

/// Internal traffic is small; anything bigger is a protocol error.
const MAX_INTERNAL_MESSAGE: usize = 16 << 20;

/// Reads one whole message. Cancel safety: not cancel-safe once bytes have
/// been read into `buf` for the next message; callers bound it with a timeout
/// and drop the connection on expiry.
pub(super) async fn read_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<(u8, BytesMut), ServerError> {
    loop {
        if let Some(h) = frame::header(buf, MAX_INTERNAL_MESSAGE)
            .map_err(|e| ServerError::Protocol(e.to_string()))?
        {
            if buf.len() >= h.total_len() {
                let mut msg = buf.split_to(h.total_len());
                msg.advance(frame::HEADER_LEN);
                return Ok((h.tag, msg));
            }
            buf.reserve(h.total_len() - buf.len());
        } else {
            buf.reserve(1024);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ServerError::Closed);
        }
    }
}

/// Runs `sql` with the simple protocol and returns the rows of its results
/// as text. ParameterStatus messages update the connection's parameters.
/// On error the connection is left idle (the server rolls back the implicit
/// transaction) and the server's error is returned.
pub async fn simple_query(
    conn: &mut ServerConn,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    let mut out = BytesMut::with_capacity(sql.len() + 8);
    build::query(&mut out, sql);
    let result = run(conn, &out).await;
    finish(conn, result)
}

/// Like [`simple_query`], with the extended protocol and `params` as text
/// parameters `$1`, `$2`, ... (values are never spliced into `sql`).
pub async fn extended_query(
    conn: &mut ServerConn,
    sql: &str,
    params: &[&str],
) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    let mut out = BytesMut::with_capacity(sql.len() + 64);
    build::extended_query(&mut out, sql, params);
    let result = run(conn, &out).await;
    finish(conn, result)
}

fn finish(
    conn: &mut ServerConn,
    result: Result<Vec<Vec<Option<String>>>, ServerError>,
) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    if matches!(
        result,
        Err(ServerError::Io(_) | ServerError::Closed | ServerError::Protocol(_))
    ) {
        conn.broken = true;
    }
    result
}

async fn run(conn: &mut ServerConn, out: &[u8]) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    conn.stream.write_all(out).await?;
    conn.stream.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (t, body) = read_message(&mut conn.stream, &mut buf).await?;
        match t {
            b'D' => rows.push(data_row(&body)?),
            tag::PARAMETER_STATUS => {
                let (k, v) = views::parameter_status(&body)
                    .map_err(|e| ServerError::Protocol(e.to_string()))?;
                conn.params.reported.set(k, v);
            }
            tag::ERROR_RESPONSE => error = Some(rejected(&body)),
            tag::READY_FOR_QUERY => {
                let status = body.first().copied().and_then(TxStatus::from_byte);
                conn.tx_status =
                    status.ok_or_else(|| ServerError::Protocol("bad ReadyForQuery".into()))?;
                if !buf.is_empty() {
                    return Err(ServerError::Protocol("data after ReadyForQuery".into()));
                }
                return match error {
                    Some(e) => Err(e),
                    None => Ok(rows),
                };
            }
            tag::COPY_IN_RESPONSE | tag::COPY_OUT_RESPONSE | tag::COPY_BOTH_RESPONSE => {
                return Err(ServerError::Protocol(
                    "COPY is not allowed in an internal query".into(),
                ));
            }
            _ => {}
        }
    }
}

fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, ServerError> {
    let bad = || ServerError::Protocol("malformed DataRow".into());
    let mut b = body;
    if b.len() < 2 {
        return Err(bad());
    }
    let n = b.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if b.len() < 4 {
            return Err(bad());
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if b.len() < len {
            return Err(bad());
        }
        row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
        b.advance(len);
    }
    Ok(row)
}
