//! Fuzz entry points for the wire format: startup packets, frame headers,
//! message views and the prepared-statement frame helpers.

use crate::client::prepared;
use crate::protocol::frame::{self as framing, HEADER_LEN};
use crate::protocol::startup::{self as first, StartupPacket, MAX_STARTUP_LEN, PROTOCOL_3_0};
use crate::protocol::views::{self, AuthRequest, ErrorFields};

/// `data` is what a client sends first. A decoded packet must re-encode to
/// exactly the bytes it was decoded from; "need more" must really mean the
/// buffer is shorter than the declared length.
pub fn startup(data: &[u8]) {
    match first::parse(data) {
        Ok(Some((packet, used))) => {
            assert!((8..=MAX_STARTUP_LEN).contains(&used), "used {used}");
            assert!(used <= data.len(), "used {used} of {}", data.len());
            assert_eq!(encode_startup(&packet), &data[..used], "{packet:?}");
            if let StartupPacket::Startup { params, .. } = &packet {
                for (name, value) in params {
                    assert!(!name.is_empty());
                    if name == "options" {
                        options(value);
                    }
                }
            }
        }
        Ok(None) => {
            if let Some(len) = data.get(..4) {
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                assert!(usize::try_from(len).is_ok_and(|l| l > data.len()));
            }
        }
        Err(_) => {}
    }
    options(&String::from_utf8_lossy(data));
}

/// The libpq `options` parameter: every setting has a name without `-`.
fn options(text: &str) {
    if let Ok(settings) = first::parse_options(text) {
        for (name, _) in settings {
            assert!(!name.contains('-'), "{name:?}");
        }
    }
}

fn encode_startup(packet: &StartupPacket) -> Vec<u8> {
    let (code, body): (u32, Vec<u8>) = match packet {
        StartupPacket::SslRequest => (80_877_103, Vec::new()),
        StartupPacket::GssEncRequest => (80_877_104, Vec::new()),
        StartupPacket::Cancel { pid, secret } => {
            let mut b = pid.to_be_bytes().to_vec();
            b.extend_from_slice(&secret.to_be_bytes());
            (80_877_102, b)
        }
        StartupPacket::Startup { minor, params } => {
            let mut b = Vec::new();
            for (name, value) in params {
                for s in [name, value] {
                    b.extend_from_slice(s.as_bytes());
                    b.push(0);
                }
            }
            b.push(0);
            (PROTOCOL_3_0 | u32::from(*minor), b)
        }
    };
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Walks `data[1..]` frame by frame as the pumps do, with a message size
/// limit chosen by `data[0]`; every complete frame is also fed to the views.
pub fn frame(data: &[u8]) {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let max = match sel % 4 {
        0 => 4 + usize::from(sel >> 2),
        1 => 8192,
        2 => i32::MAX as usize,
        _ => usize::MAX,
    };
    let mut at = 0;
    while let Some(rest) = buf.get(at..) {
        let header = framing::header(rest, max);
        let message = framing::message(rest, max);
        match header {
            Ok(None) => {
                assert!(rest.len() < HEADER_LEN);
                assert_eq!(message, Ok(None));
                break;
            }
            Err(e) => {
                assert_eq!(message, Err(e));
                break;
            }
            Ok(Some(h)) => {
                let declared = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                assert_eq!(Ok(h.body_len + 4), usize::try_from(declared));
                assert!(h.body_len + 4 <= max);
                assert_eq!(h.total_len(), h.body_len + HEADER_LEN);
                assert_eq!(h.tag, rest[0]);
                match message {
                    Ok(Some((tag, body))) => {
                        assert!(h.total_len() <= rest.len());
                        assert_eq!(tag, h.tag);
                        assert_eq!(body, &rest[HEADER_LEN..h.total_len()]);
                        view_all(tag, body);
                        at += h.total_len();
                    }
                    Ok(None) => {
                        assert!(h.total_len() > rest.len());
                        break;
                    }
                    Err(e) => panic!("header parsed but message failed: {e}"),
                }
            }
        }
    }
    assert!(at <= buf.len());
}

/// `data[0]` is a tag and the rest a message body: every view, and every
/// prepared-statement helper on the framed message.
pub fn views(data: &[u8]) {
    if let Some((&tag, body)) = data.split_first() {
        view_all(tag, body);
    }
}

fn view_all(tag: u8, body: &[u8]) {
    check_views(body);
    check_prepared(tag, body);
}

fn check_views(body: &[u8]) {
    if let Ok(e) = ErrorFields::parse(body) {
        assert!(body.contains(&0));
        for s in [e.severity, e.code, e.message] {
            assert!(!s.contains('\0'));
        }
    }
    if let Ok((name, value)) = views::parameter_status(body) {
        assert!(name.len() + value.len() + 2 <= body.len());
        assert!(!name.contains('\0') && !value.contains('\0'));
    }
    assert_eq!(views::backend_key_data(body).is_ok(), body.len() == 8);
    if let Ok(q) = views::query_text(body) {
        assert_eq!(
            body.get(..=q.len()),
            Some([q.as_bytes(), b"\0"].concat().as_slice())
        );
    }
    if let Ok(req) = views::auth_request(body) {
        let rest = &body[4..];
        match req {
            AuthRequest::Md5 { salt } => assert_eq!(rest, salt),
            AuthRequest::Sasl { mechanisms } => {
                let listed: usize = mechanisms.iter().map(|m| m.len() + 1).sum();
                assert!(listed < rest.len());
                assert!(mechanisms
                    .iter()
                    .all(|m| !m.is_empty() && !m.contains('\0')));
            }
            AuthRequest::SaslContinue(d) | AuthRequest::SaslFinal(d) => assert_eq!(d, rest),
            AuthRequest::Ok | AuthRequest::Cleartext | AuthRequest::Other(_) => {}
        }
    }
    if let Ok((mechanism, d)) = views::sasl_initial_response(body) {
        assert!(!mechanism.contains('\0'));
        assert!(mechanism.len() + 5 + d.len() <= body.len());
        assert!(body.ends_with(d));
    }
    if let Ok(p) = views::password(body) {
        assert!(p.len() < body.len() && !p.contains(&0));
    }
}

/// The frame helpers of `client::prepared` on `tag` + length + `body`:
/// everything they build must be a well-formed frame.
fn check_prepared(tag: u8, body: &[u8]) {
    let Ok(len) = u32::try_from(body.len() + 4) else {
        return;
    };
    let mut msg = vec![tag];
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(body);

    if let Some(name) = prepared::parse_name(&msg) {
        assert!(!name.contains('\0'));
    }
    if let Some(p) = prepared::share(&msg) {
        assert_eq!(well_framed(&p.parse), b'P');
        assert_eq!(prepared::parse_name(&p.parse), Some(p.server_name.as_str()));
        assert!(p.server_name.starts_with("pgf_") && p.server_name.len() == 20);
    }
    if let Some(name) = prepared::bind_statement(&msg) {
        assert!(!name.contains('\0'));
        let rewritten = prepared::rewrite_bind(&msg, "pgf_00000000000000ff");
        let rewritten = rewritten.unwrap_or_else(|| panic!("Bind with a name, not rewritten"));
        assert_eq!(well_framed(&rewritten), b'B');
        assert_eq!(
            prepared::bind_statement(&rewritten),
            Some("pgf_00000000000000ff")
        );
    }
    if let Some((_, name)) = prepared::target(&msg) {
        assert!(!name.contains('\0'));
        assert_eq!(well_framed(&prepared::statement_message(b'C', name)), b'C');
    }
    if let Some(out) = prepared::rewrite_deallocate(&msg) {
        assert_eq!(well_framed(&out), tag);
    }
    if let Some(name) = prepared::deallocate_name(&String::from_utf8_lossy(body)) {
        assert!(!name.is_empty());
    }
}

/// The tag of `msg` after checking that it is exactly one frame.
fn well_framed(msg: &[u8]) -> u8 {
    match framing::message(msg, usize::MAX) {
        Ok(Some((tag, body))) => {
            assert_eq!(body.len() + HEADER_LEN, msg.len(), "trailing bytes");
            tag
        }
        other => panic!("not a frame: {other:?}"),
    }
}
