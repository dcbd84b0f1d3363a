//! Named prepared statements shared across server connections.
//!
//! A client's statement names map to server-side names derived from the
//! statement text and parameter types, so clients preparing the same
//! statement share it on every server connection. A server connection that
//! lacks a statement gets it prepared just before use (its ParseComplete is
//! hidden from the client); each connection keeps at most
//! `max_prepared_statements`, closing the least recently prepared.
//!
//! With `cache_unnamed_statements` a client's unnamed statement is kept the
//! same way, under the name its text and types give it: a repeated
//! Parse/Bind/Execute of the same text then skips Postgres' parse and, once
//! the plan is cached, its planning too.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::frame;
use crate::router::classify::is_space;

/// A client's view: its statement name → the shared statement.
#[derive(Debug, Default)]
pub struct ClientStatements {
    map: HashMap<String, Arc<Prepared>>,
    /// With `cache_unnamed_statements`: the client's unnamed statement, as a
    /// shared one (gone, like on Postgres, at the next simple Query).
    unnamed: Option<Arc<Prepared>>,
    /// Unnamed statements parsed lately, so a text the client repeats costs
    /// no allocation.
    recent: Vec<Arc<Prepared>>,
}

/// Unnamed statements remembered per client for reuse.
const RECENT_UNNAMED: usize = 16;

#[derive(Debug)]
pub struct Prepared {
    pub server_name: String,
    /// A complete Parse message under `server_name`.
    pub parse: Bytes,
}

impl Prepared {
    /// The Parse body after the statement name: text, NUL, parameter types.
    fn text_and_types(&self) -> &[u8] {
        self.parse
            .get(frame::HEADER_LEN + self.server_name.len() + 1..)
            .unwrap_or_default()
    }
}

impl ClientStatements {
    /// No statements, named or unnamed, and none remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.unnamed.is_none() && self.recent.is_empty()
    }

    /// The statement `name` stands for ("" is the unnamed one, when cached).
    pub fn get(&self, name: &str) -> Option<&Arc<Prepared>> {
        if name.is_empty() {
            return self.unnamed.as_ref();
        }
        self.map.get(name)
    }

    /// A Parse of the unnamed statement (`frame_bytes`), kept as a shared
    /// statement; None if malformed.
    pub fn parse_unnamed(&mut self, frame_bytes: &[u8]) -> Option<Arc<Prepared>> {
        let body = frame_bytes.get(frame::HEADER_LEN..)?;
        let (_, rest) = cstr(body)?;
        let p = match self.recent.iter().position(|p| p.text_and_types() == rest) {
            Some(i) => self.recent[i].clone(),
            None => {
                let p = Arc::new(share(frame_bytes)?);
                if self.recent.len() >= RECENT_UNNAMED {
                    self.recent.remove(0);
                }
                self.recent.push(p.clone());
                p
            }
        };
        self.unnamed = Some(p.clone());
        Some(p)
    }

    /// The unnamed statement is gone (a simple Query, or its Close).
    pub fn forget_unnamed(&mut self) {
        self.unnamed = None;
    }

    pub fn insert(&mut self, name: &str, p: Arc<Prepared>) {
        self.map.insert(name.to_owned(), p);
    }

    pub fn remove(&mut self, name: &str) {
        self.map.remove(name);
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.unnamed = None;
    }
}

/// FNV-1a: stable, fast, good enough to key statements (a collision needs
/// the same 64-bit hash for different text *and* types).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    Some((&b[..nul], &b[nul + 1..]))
}

/// One frontend message: `tag`, the length, then what `body` writes.
pub(super) fn framed(tag: u8, body: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_u32(0);
    body(&mut out);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    out
}

/// A Parse frame's statement name, or None if malformed.
pub fn parse_name(frame_bytes: &[u8]) -> Option<&str> {
    let body = frame_bytes.get(frame::HEADER_LEN..)?;
    std::str::from_utf8(cstr(body)?.0).ok()
}

/// The shared form of a client's Parse: its server name and the Parse
/// message that prepares it under that name.
pub fn share(frame_bytes: &[u8]) -> Option<Prepared> {
    let body = frame_bytes.get(frame::HEADER_LEN..)?;
    let (_, rest) = cstr(body)?;
    let (query, types) = cstr(rest)?;
    let server_name = format!("pgf_{:016x}", fnv1a(&[query, types]));
    let parse = framed(b'P', |o| {
        o.put_slice(server_name.as_bytes());
        o.put_u8(0);
        o.put_slice(rest);
    });
    Some(Prepared {
        server_name,
        parse: parse.freeze(),
    })
}

/// Bind: the statement name it uses.
pub fn bind_statement(frame_bytes: &[u8]) -> Option<&str> {
    let body = frame_bytes.get(frame::HEADER_LEN..)?;
    let (_, rest) = cstr(body)?;
    std::str::from_utf8(cstr(rest)?.0).ok()
}

/// Bind with its statement name replaced.
#[cfg(any(test, feature = "fuzzing", feature = "bench-internals"))]
pub fn rewrite_bind(frame_bytes: &[u8], statement: &str) -> Option<BytesMut> {
    let body = frame_bytes.get(frame::HEADER_LEN..)?;
    let (portal, rest) = cstr(body)?;
    let (_, params) = cstr(rest)?;
    Some(framed(b'B', |o| {
        o.put_slice(portal);
        o.put_u8(0);
        o.put_slice(statement.as_bytes());
        o.put_u8(0);
        o.put_slice(params);
    }))
}

/// Appends `frame_bytes` (a Bind) to `out` with its statement name
/// replaced, without an intermediate buffer. False (and nothing written) if
/// the Bind is malformed.
pub fn write_bind(out: &mut BytesMut, frame_bytes: &[u8], statement: &str) -> bool {
    let Some(body) = frame_bytes.get(frame::HEADER_LEN..) else {
        return false;
    };
    let Some((portal, rest)) = cstr(body) else {
        return false;
    };
    let Some((_, params)) = cstr(rest) else {
        return false;
    };
    let len = 4 + portal.len() + 1 + statement.len() + 1 + params.len();
    let Ok(len) = u32::try_from(len) else {
        return false;
    };
    out.reserve(1 + len as usize);
    out.put_u8(b'B');
    out.put_u32(len);
    out.put_slice(portal);
    out.put_u8(0);
    out.put_slice(statement.as_bytes());
    out.put_u8(0);
    out.put_slice(params);
    true
}

/// Describe / Close: ('S' or 'P', name).
pub fn target(frame_bytes: &[u8]) -> Option<(u8, &str)> {
    let body = frame_bytes.get(frame::HEADER_LEN..)?;
    let (&kind, rest) = body.split_first()?;
    Some((kind, std::str::from_utf8(cstr(rest)?.0).ok()?))
}

/// A Describe or Close of statement `name`.
pub fn statement_message(tag: u8, name: &str) -> BytesMut {
    framed(tag, |o| {
        o.put_u8(b'S');
        o.put_slice(name.as_bytes());
        o.put_u8(0);
    })
}

/// A Parse of an empty unnamed statement: what goes to the server in place
/// of a client's unnamed Parse whose shared statement the connection has
/// already. Postgres answers it with the ParseComplete the client expects at
/// the cost of parsing nothing.
pub const EMPTY_UNNAMED_PARSE: &[u8] = b"P\0\0\0\x08\0\0\0\0";

/// A statement name no client can have: closing it is a harmless no-op on
/// the server that still yields the CloseComplete the client expects.
pub const CLOSED_PLACEHOLDER: &str = "pgferry_closed";

/// Whether `sql` starts (after ASCII whitespace, which is all Postgres
/// skips) with the word DEALLOCATE: the cheap test before
/// [`deallocate_name`].
pub fn starts_deallocate(sql: &[u8]) -> bool {
    let start = sql.iter().position(|&b| !is_space(b)).unwrap_or(sql.len());
    sql.get(start..start + 10)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"deallocate"))
}

/// The statement name of a SQL `DEALLOCATE [PREPARE] name` (not `ALL`), as
/// Postgres resolves it: unquoted names fold to lower case, quoted ones keep
/// their case. None for anything else.
pub fn deallocate_name(sql: &str) -> Option<String> {
    let s = sql.trim_start();
    let rest = strip_keyword(s, "deallocate")?;
    let rest = strip_keyword(rest, "prepare").unwrap_or(rest);
    let rest = rest.trim_end().trim_end_matches(';').trim_end();
    let name = if let Some(quoted) = rest.strip_prefix('"') {
        let inner = quoted.strip_suffix('"')?;
        if inner.is_empty() || inner.replace("\"\"", "").contains('"') {
            return None;
        }
        inner.replace("\"\"", "\"")
    } else {
        let ok = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            && !rest.starts_with(|c: char| c.is_ascii_digit() || c == '$');
        if !ok || rest.eq_ignore_ascii_case("all") {
            return None;
        }
        rest.to_lowercase()
    };
    Some(name)
}

/// `word` (case-insensitive) followed by whitespace at the start of `s`.
fn strip_keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let rest = &s[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(|c: char| c.is_ascii_whitespace()))
        .then(|| rest.trim_start())
}

/// A statement name no client can have, prepared by pgferry just before a
/// client's `DEALLOCATE` of one of its shared statements is rewritten to
/// deallocate it instead: the client gets Postgres' own reply and the shared
/// statement stays for others.
pub const DEALLOCATE_PLACEHOLDER: &str = "pgferry_deallocated";

/// The Parse that creates [`DEALLOCATE_PLACEHOLDER`].
pub fn placeholder_parse() -> BytesMut {
    named_placeholder_parse(DEALLOCATE_PLACEHOLDER)
}

/// A Parse of a trivial statement under `name`.
pub fn named_placeholder_parse(name: &str) -> BytesMut {
    framed(b'P', |o| {
        o.put_slice(name.as_bytes());
        o.put_slice(b"\0SELECT 1\0");
        o.put_i16(0);
    })
}

/// `msg` (a Query, or a Parse of a DEALLOCATE) with its statement text
/// replaced by a DEALLOCATE of the placeholder.
pub fn rewrite_deallocate(msg: &[u8]) -> Option<BytesMut> {
    let text = format!("DEALLOCATE {DEALLOCATE_PLACEHOLDER}");
    let (&t, rest) = msg.split_first()?;
    let body = rest.get(4..)?;
    match t {
        b'Q' => Some(framed(b'Q', |o| {
            o.put_slice(text.as_bytes());
            o.put_u8(0);
        })),
        b'P' => {
            let (name, rest) = cstr(body)?;
            let (_, types) = cstr(rest)?;
            Some(framed(b'P', |o| {
                o.put_slice(name);
                o.put_u8(0);
                o.put_slice(text.as_bytes());
                o.put_u8(0);
                o.put_slice(types);
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_frame(name: &str, query: &str) -> Vec<u8> {
        framed(b'P', |o| {
            o.put_slice(name.as_bytes());
            o.put_u8(0);
            o.put_slice(query.as_bytes());
            o.put_u8(0);
            o.put_i16(1);
            o.put_u32(23);
        })
        .to_vec()
    }

    #[test]
    fn same_text_and_types_share_a_name() {
        let a = share(&parse_frame("s1", "SELECT $1")).unwrap();
        let b = share(&parse_frame("other", "SELECT $1")).unwrap();
        let c = share(&parse_frame("s1", "SELECT $1 + 1")).unwrap();
        assert_eq!(a.server_name, b.server_name);
        assert_ne!(a.server_name, c.server_name);
        assert_eq!(parse_name(&a.parse), Some(a.server_name.as_str()));
        assert_eq!(parse_name(&parse_frame("s1", "x")), Some("s1"));
    }

    #[test]
    fn bind_and_targets_rewrite() {
        let bind = framed(b'B', |o| {
            o.put_slice(b"portal\0stmt\0");
            o.put_slice(&[0, 0, 0, 0, 0, 0]);
        });
        assert_eq!(bind_statement(&bind), Some("stmt"));
        let r = rewrite_bind(&bind, "pgf_1").unwrap();
        assert_eq!(bind_statement(&r), Some("pgf_1"));
        let mut direct = BytesMut::new();
        assert!(write_bind(&mut direct, &bind, "pgf_1"));
        assert_eq!(direct, r, "same bytes without the intermediate buffer");
        assert!(!write_bind(&mut direct, b"B\0\0\0\x05", "x"));
        assert_eq!(&r[r.len() - 6..], &[0, 0, 0, 0, 0, 0]);
        let d = statement_message(b'D', "x");
        assert_eq!(target(&d), Some((b'S', "x")));
        assert_eq!(bind_statement(b"B\0\0\0\x05"), None);
    }

    #[test]
    fn deallocate_names_fold_like_postgres() {
        assert_eq!(deallocate_name("DEALLOCATE s0"), Some("s0".into()));
        assert_eq!(
            deallocate_name("  deallocate prepare S_1 ;"),
            Some("s_1".into())
        );
        assert_eq!(
            deallocate_name("DEALLOCATE \"Mixed\"\"q\""),
            Some("Mixed\"q".into())
        );
        assert_eq!(deallocate_name("DEALLOCATE ALL"), None);
        assert_eq!(deallocate_name("DEALLOCATE PREPARE all"), None);
        assert_eq!(deallocate_name("DEALLOCATE a; SELECT 1"), None);
        assert_eq!(deallocate_name("DEALLOCATEx"), None);
        assert_eq!(deallocate_name("DEALLOCATE"), None);
        assert_eq!(deallocate_name("SELECT 1"), None);
        for (sql, starts) in [
            ("DEALLOCATE s0", true),
            (" \t\ndeallocate prepare x", true),
            ("DEALLOCATE", true),
            ("DEALLOCAT", false),
            ("SELECT 1", false),
            ("", false),
        ] {
            assert_eq!(starts_deallocate(sql.as_bytes()), starts, "{sql:?}");
            if !starts {
                assert_eq!(deallocate_name(sql), None, "{sql:?}");
            }
        }
        let q = framed(b'Q', |o| o.put_slice(b"DEALLOCATE s0\0"));
        let r = rewrite_deallocate(&q).unwrap();
        assert_eq!(&r[5..], b"DEALLOCATE pgferry_deallocated\0");
        assert_eq!(
            parse_name(&placeholder_parse()),
            Some(DEALLOCATE_PLACEHOLDER)
        );
    }
}
