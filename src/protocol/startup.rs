//! The untagged packets a client may send first: StartupMessage, SSLRequest,
//! GSSENCRequest and CancelRequest.
//! <https://www.postgresql.org/docs/15/protocol-message-formats.html>

use thiserror::Error;

/// Postgres itself refuses startup packets longer than this.
pub const MAX_STARTUP_LEN: usize = 10_000;

pub const PROTOCOL_3_0: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StartupError {
    #[error("invalid startup packet length {0}")]
    BadLength(i64),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("invalid startup packet layout")]
    Malformed,
    #[error("invalid startup packet: {0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

/// A decoded first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: u32,
        secret: u32,
    },
    /// Protocol 3.x startup; `minor` is kept for NegotiateProtocolVersion.
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
}

/// Parses one packet from `buf`. Returns the packet and the bytes it used, or
/// `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(StartupPacket, usize)>, StartupError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_LEN {
        return Err(StartupError::BadLength(i64::from(len)));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[8..len];
    let packet = match code {
        SSL_REQUEST if body.is_empty() => StartupPacket::SslRequest,
        GSSENC_REQUEST if body.is_empty() => StartupPacket::GssEncRequest,
        CANCEL_REQUEST if body.len() == 8 => StartupPacket::Cancel {
            pid: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
            secret: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        },
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => return Err(StartupError::Malformed),
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            StartupPacket::Startup {
                minor,
                params: parse_params(body)?,
            }
        }
    };
    Ok(Some((packet, len)))
}

/// Parameters are NUL-terminated name/value pairs ended by an empty name.
fn parse_params(mut body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut params = Vec::new();
    loop {
        let (name, rest) = cstr(body)?;
        if name.is_empty() {
            if !rest.is_empty() {
                return Err(StartupError::Malformed);
            }
            return Ok(params);
        }
        let (value, rest) = cstr(rest)?;
        let name =
            std::str::from_utf8(name).map_err(|_| StartupError::NotUtf8("parameter name"))?;
        let value =
            std::str::from_utf8(value).map_err(|_| StartupError::NotUtf8("parameter value"))?;
        params.push((name.to_owned(), value.to_owned()));
        body = rest;
    }
}

fn cstr(buf: &[u8]) -> Result<(&[u8], &[u8]), StartupError> {
    let nul = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(StartupError::Malformed)?;
    Ok((&buf[..nul], &buf[nul + 1..]))
}

/// Splits a libpq `options` string into `-c name=value` / `--name=value`
/// settings. Backslash escapes a space, as in the server's own parser.
pub fn parse_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            c if c.is_ascii_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next()
                .ok_or_else(|| "option -c needs a name=value".to_owned())?
        } else if let Some(rest) = w.strip_prefix("--") {
            rest.to_owned()
        } else if let Some(rest) = w.strip_prefix("-c") {
            rest.to_owned()
        } else {
            return Err(format!(
                "unsupported command-line option \"{w}\" in options"
            ));
        };
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("option \"{setting}\" needs a value"))?;
        out.push((name.replace('-', "_"), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut v = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn startup_with_params() {
        let p = packet(PROTOCOL_3_0, b"user\0app\0database\0db\0\0");
        let (pkt, used) = parse(&p).unwrap().unwrap();
        assert_eq!(used, p.len());
        assert_eq!(
            pkt,
            StartupPacket::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "app".into()),
                    ("database".into(), "db".into())
                ]
            }
        );
    }

    #[test]
    fn special_requests() {
        assert_eq!(
            parse(&packet(SSL_REQUEST, b"")).unwrap().unwrap().0,
            StartupPacket::SslRequest
        );
        assert_eq!(
            parse(&packet(GSSENC_REQUEST, b"")).unwrap().unwrap().0,
            StartupPacket::GssEncRequest
        );
        let c = parse(&packet(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 0, 9]))
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(c, StartupPacket::Cancel { pid: 7, secret: 9 });
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(parse(&[0, 0]).unwrap(), None);
        assert!(parse(&packet(PROTOCOL_3_0, b"user\0app")).is_err());
        assert!(parse(&packet(PROTOCOL_3_0, b"user\0app\0\0junk")).is_err());
        assert!(matches!(
            parse(&packet(2 << 16, b"\0")),
            Err(StartupError::UnsupportedProtocol { major: 2, .. })
        ));
        assert!(parse(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(parse(&[0, 0, 0, 2]).is_err());
        assert!(parse(&packet(CANCEL_REQUEST, &[1, 2, 3])).is_err());
        let mut half = packet(PROTOCOL_3_0, b"user\0a\0\0");
        half.truncate(10);
        assert_eq!(parse(&half).unwrap(), None);
    }

    #[test]
    fn options_parsing() {
        let o =
            parse_options("-c search_path=a,b --statement-timeout=5s -cwork_mem=64kB -c x=a\\ b")
                .unwrap();
        assert_eq!(
            o,
            vec![
                ("search_path".into(), "a,b".into()),
                ("statement_timeout".into(), "5s".into()),
                ("work_mem".into(), "64kB".into()),
                ("x".into(), "a b".into()),
            ]
        );
        assert!(parse_options("-x").is_err());
        assert!(parse_options("-c").is_err());
    }
}
