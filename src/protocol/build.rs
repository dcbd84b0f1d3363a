//! Builders for the messages pgferry writes itself. Each appends one complete
//! message to a `BytesMut`, patching the length afterwards.

use bytes::{BufMut, BytesMut};

use super::TxStatus;

/// Writes `tag`, a length placeholder, runs `body`, then patches the length.
fn framed(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_u32(0);
    body(buf);
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &str) {
    // A NUL inside a string would split the field; strip it rather than
    // produce a frame the peer misparses.
    buf.extend(s.bytes().filter(|&b| b != 0));
    buf.put_u8(0);
}

/// Severity of an ErrorResponse pgferry generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

pub fn error_response(buf: &mut BytesMut, severity: Severity, code: &str, message: &str) {
    framed(buf, b'E', |b| {
        b.put_u8(b'S');
        cstr(b, severity.as_str());
        b.put_u8(b'V');
        cstr(b, severity.as_str());
        b.put_u8(b'C');
        cstr(b, code);
        b.put_u8(b'M');
        cstr(b, message);
        b.put_u8(0);
    });
}

pub fn notice_response(buf: &mut BytesMut, code: &str, message: &str) {
    framed(buf, b'N', |b| {
        b.put_u8(b'S');
        cstr(b, "NOTICE");
        b.put_u8(b'V');
        cstr(b, "NOTICE");
        b.put_u8(b'C');
        cstr(b, code);
        b.put_u8(b'M');
        cstr(b, message);
        b.put_u8(0);
    });
}

pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    framed(buf, b'Z', |b| b.put_u8(status.as_byte()));
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    framed(buf, b'S', |b| {
        cstr(b, name);
        cstr(b, value);
    });
}

pub fn backend_key_data(buf: &mut BytesMut, pid: u32, secret: u32) {
    framed(buf, b'K', |b| {
        b.put_u32(pid);
        b.put_u32(secret);
    });
}

pub fn auth_ok(buf: &mut BytesMut) {
    framed(buf, b'R', |b| b.put_u32(0));
}

pub fn auth_cleartext(buf: &mut BytesMut) {
    framed(buf, b'R', |b| b.put_u32(3));
}

pub fn auth_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    framed(buf, b'R', |b| {
        b.put_u32(5);
        b.put_slice(&salt);
    });
}

pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    framed(buf, b'R', |b| {
        b.put_u32(10);
        for m in mechanisms {
            cstr(b, m);
        }
        b.put_u8(0);
    });
}

pub fn auth_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    framed(buf, b'R', |b| {
        b.put_u32(11);
        b.put_slice(data);
    });
}

pub fn auth_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    framed(buf, b'R', |b| {
        b.put_u32(12);
        b.put_slice(data);
    });
}

/// NegotiateProtocolVersion: the newest minor version we speak and the
/// startup options we did not recognise.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: u32, unrecognized: &[&str]) {
    framed(buf, b'v', |b| {
        b.put_u32(minor);
        b.put_u32(unrecognized.len() as u32);
        for o in unrecognized {
            cstr(b, o);
        }
    });
}

pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    framed(buf, b'C', |b| cstr(b, tag));
}

pub fn empty_query_response(buf: &mut BytesMut) {
    framed(buf, b'I', |_| {});
}

// ---- frontend messages pgferry sends to servers ----

pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) {
    let at = buf.len();
    buf.put_u32(0);
    buf.put_u32(super::startup::PROTOCOL_3_0);
    for (k, v) in params {
        cstr(buf, k);
        cstr(buf, v);
    }
    buf.put_u8(0);
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_u32(8);
    buf.put_u32(80_877_103);
}

pub fn cancel_request(buf: &mut BytesMut, pid: u32, secret: u32) {
    buf.put_u32(16);
    buf.put_u32(80_877_102);
    buf.put_u32(pid);
    buf.put_u32(secret);
}

pub fn query(buf: &mut BytesMut, sql: &str) {
    framed(buf, b'Q', |b| cstr(b, sql));
}

pub fn password_message(buf: &mut BytesMut, password: &[u8]) {
    framed(buf, b'p', |b| {
        b.put_slice(password);
        b.put_u8(0);
    });
}

pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
    framed(buf, b'p', |b| {
        cstr(b, mechanism);
        b.put_i32(data.len() as i32);
        b.put_slice(data);
    });
}

pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) {
    framed(buf, b'p', |b| b.put_slice(data));
}

/// Parse + Bind + Execute + Sync of `sql` with text parameters, unnamed
/// statement and portal, text results: a parameterized query in one round
/// trip. A parameter is sent as a value, never spliced into the SQL.
pub fn extended_query(buf: &mut BytesMut, sql: &str, params: &[&str]) {
    framed(buf, b'P', |b| {
        cstr(b, "");
        cstr(b, sql);
        b.put_i16(0);
    });
    framed(buf, b'B', |b| {
        cstr(b, "");
        cstr(b, "");
        b.put_i16(0);
        b.put_i16(params.len() as i16);
        for p in params {
            b.put_i32(p.len() as i32);
            b.put_slice(p.as_bytes());
        }
        b.put_i16(0);
    });
    framed(buf, b'E', |b| {
        cstr(b, "");
        b.put_i32(0);
    });
    framed(buf, b'S', |_| {});
}

pub fn terminate(buf: &mut BytesMut) {
    framed(buf, b'X', |_| {});
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{frame, views};

    #[test]
    fn error_round_trip() {
        let mut b = BytesMut::new();
        error_response(
            &mut b,
            Severity::Fatal,
            "28P01",
            "password authentication failed for user \"x\"",
        );
        let (tag, body) = frame::message(&b, 1 << 20).unwrap().unwrap();
        assert_eq!(tag, b'E');
        let e = views::ErrorFields::parse(body).unwrap();
        assert_eq!(e.code, "28P01");
        assert_eq!(e.severity, "FATAL");
        assert!(e.message.contains("password authentication failed"));
    }

    #[test]
    fn ready_and_params() {
        let mut b = BytesMut::new();
        ready_for_query(&mut b, TxStatus::Idle);
        assert_eq!(&b[..], b"Z\0\0\0\x05I");
        b.clear();
        parameter_status(&mut b, "a", "b");
        assert_eq!(&b[..], b"S\0\0\0\x08a\0b\0");
    }

    #[test]
    fn startup_round_trip() {
        let mut b = BytesMut::new();
        startup_message(&mut b, &[("user", "u"), ("database", "d")]);
        let (p, n) = crate::protocol::startup::parse(&b).unwrap().unwrap();
        assert_eq!(n, b.len());
        assert!(matches!(
            p,
            crate::protocol::startup::StartupPacket::Startup { .. }
        ));
    }
}
