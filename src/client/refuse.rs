//! `pin_policy = "error"` inside a transaction block: a statement that would
//! pin the client is replaced by one that makes the server raise the refusal
//! itself, so the server's transaction fails exactly as the client is told
//! (a later COMMIT rolls back, as after any error).

use bytes::{BufMut, BytesMut};

use super::prepared::framed;

use crate::config::PoolMode;
use crate::protocol::{frame, sqlstate, tag};

/// The message pgferry reports for state that would pin in `mode`.
pub fn message(reason: &str, mode: PoolMode) -> String {
    format!(
        "pgferry: {reason} would pin this client to one server connection, which pin_policy = \"error\" forbids in {mode} pooling mode"
    )
}

fn raise(message: &str) -> String {
    // Only static reasons and mode names reach here, but never let a quote
    // end the literal early.
    let message = message.replace('\'', "''");
    format!(
        "DO $pgferry$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = '{message}'; END$pgferry$",
        sqlstate::FEATURE_NOT_SUPPORTED
    )
}

/// A Query raising `message` with SQLSTATE 0A000, to replace a whole Query
/// `msg`. None if `msg` is not a Query.
pub fn query(msg: &[u8], message: &str) -> Option<BytesMut> {
    (msg.first() == Some(&tag::QUERY) && msg.len() >= frame::HEADER_LEN).then(|| {
        framed(tag::QUERY, |o| {
            o.put_slice(raise(message).as_bytes());
            o.put_u8(0);
        })
    })
}

/// Parse, Bind and Execute of an unnamed statement raising `message`, run
/// in place of a client's Parse: the client sees its Parse fail (and its
/// statement name stays free), and the server skips the rest of the batch.
pub fn parse(message: &str) -> [BytesMut; 3] {
    let parse = framed(tag::PARSE, |o| {
        o.put_u8(0);
        o.put_slice(raise(message).as_bytes());
        o.put_u8(0);
        o.put_i16(0);
    });
    let bind = framed(tag::BIND, |o| o.put_slice(&[0, 0, 0, 0, 0, 0, 0, 0]));
    let execute = framed(tag::EXECUTE, |o| o.put_slice(&[0, 0, 0, 0, 0]));
    [parse, bind, execute]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_well_framed() {
        let q = query(b"Q\0\0\0\x0eLISTEN x;\0", "it's no").unwrap();
        assert_eq!(
            frame::header(&q, usize::MAX).unwrap().unwrap().total_len(),
            q.len()
        );
        assert!(q.ends_with(b"$pgferry$\0"));
        assert!(std::str::from_utf8(&q).unwrap().contains("it''s no"));
        assert_eq!(query(b"B\0\0\0\x04", "no"), None);
        for m in parse("no") {
            assert_eq!(
                frame::header(&m, usize::MAX).unwrap().unwrap().total_len(),
                m.len()
            );
        }
    }
}
