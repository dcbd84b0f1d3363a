//! Read-only views over the bodies of the few messages pgferry inspects. Each
//! borrows from its frame and fails cleanly on malformed input.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("malformed {0} message")]
pub struct Malformed(pub &'static str);

fn cstr<'a>(buf: &'a [u8], what: &'static str) -> Result<(&'a str, &'a [u8]), Malformed> {
    let nul = buf.iter().position(|&b| b == 0).ok_or(Malformed(what))?;
    let s = std::str::from_utf8(&buf[..nul]).map_err(|_| Malformed(what))?;
    Ok((s, &buf[nul + 1..]))
}

/// ErrorResponse / NoticeResponse fields pgferry cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    pub severity: &'a str,
    pub code: &'a str,
    pub message: &'a str,
}

impl<'a> ErrorFields<'a> {
    pub fn parse(mut body: &'a [u8]) -> Result<ErrorFields<'a>, Malformed> {
        let mut out = ErrorFields::default();
        loop {
            let (&kind, rest) = body.split_first().ok_or(Malformed("ErrorResponse"))?;
            if kind == 0 {
                return Ok(out);
            }
            let (value, rest) = cstr(rest, "ErrorResponse")?;
            match kind {
                b'V' => out.severity = value,
                b'S' if out.severity.is_empty() => out.severity = value,
                b'C' => out.code = value,
                b'M' => out.message = value,
                _ => {}
            }
            body = rest;
        }
    }
}

/// ParameterStatus: name and value.
pub fn parameter_status(body: &[u8]) -> Result<(&str, &str), Malformed> {
    let (name, rest) = cstr(body, "ParameterStatus")?;
    let (value, _) = cstr(rest, "ParameterStatus")?;
    Ok((name, value))
}

/// BackendKeyData: process id and secret key.
pub fn backend_key_data(body: &[u8]) -> Result<(u32, u32), Malformed> {
    if body.len() != 8 {
        return Err(Malformed("BackendKeyData"));
    }
    let pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let key = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    Ok((pid, key))
}

/// Query: the SQL text (without its terminating NUL).
pub fn query_text(body: &[u8]) -> Result<&str, Malformed> {
    cstr(body, "Query").map(|(s, _)| s)
}

/// An Authentication request from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    Ok,
    Cleartext,
    Md5 { salt: [u8; 4] },
    Sasl { mechanisms: Vec<&'a str> },
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    Other(u32),
}

pub fn auth_request(body: &[u8]) -> Result<AuthRequest<'_>, Malformed> {
    if body.len() < 4 {
        return Err(Malformed("Authentication"));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let salt: [u8; 4] = rest
                .try_into()
                .map_err(|_| Malformed("AuthenticationMD5Password"))?;
            AuthRequest::Md5 { salt }
        }
        10 => {
            let mut mechanisms = Vec::new();
            let mut rest = rest;
            loop {
                let (m, r) = cstr(rest, "AuthenticationSASL")?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
                rest = r;
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(rest),
        12 => AuthRequest::SaslFinal(rest),
        other => AuthRequest::Other(other),
    })
}

/// A client's password-family message ('p') in one of its three shapes,
/// which only the authentication state tells apart.
pub fn sasl_initial_response(body: &[u8]) -> Result<(&str, &[u8]), Malformed> {
    let (mechanism, rest) = cstr(body, "SASLInitialResponse")?;
    if rest.len() < 4 {
        return Err(Malformed("SASLInitialResponse"));
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    if len == -1 {
        return Ok((mechanism, &[]));
    }
    if len < 0 || len as usize != data.len() {
        return Err(Malformed("SASLInitialResponse"));
    }
    Ok((mechanism, data))
}

/// PasswordMessage (cleartext or md5): the NUL-terminated string.
pub fn password(body: &[u8]) -> Result<&[u8], Malformed> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(Malformed("PasswordMessage"))?;
    Ok(&body[..nul])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_fields() {
        let e = ErrorFields::parse(b"SERROR\0VERROR\0C57P01\0Mbye\0\0").unwrap();
        assert_eq!(e.code, "57P01");
        assert_eq!(e.message, "bye");
        assert!(ErrorFields::parse(b"SERROR").is_err());
        assert!(ErrorFields::parse(b"").is_err());
    }

    #[test]
    fn auth_requests() {
        assert_eq!(auth_request(&[0, 0, 0, 0]).unwrap(), AuthRequest::Ok);
        assert_eq!(
            auth_request(&[0, 0, 0, 5, 1, 2, 3, 4]).unwrap(),
            AuthRequest::Md5 { salt: [1, 2, 3, 4] }
        );
        assert!(auth_request(&[0, 0, 0, 5, 1]).is_err());
        let sasl = auth_request(b"\0\0\0\x0aSCRAM-SHA-256\0\0").unwrap();
        assert_eq!(
            sasl,
            AuthRequest::Sasl {
                mechanisms: vec!["SCRAM-SHA-256"]
            }
        );
        assert!(auth_request(b"\0\0").is_err());
    }

    #[test]
    fn sasl_initial() {
        assert_eq!(
            sasl_initial_response(b"M\0\0\0\0\x02ab").unwrap(),
            ("M", &b"ab"[..])
        );
        assert!(sasl_initial_response(b"M\0\0\0\0\x09ab").is_err());
        assert!(sasl_initial_response(b"M\0\xff\xff\xff\xfe").is_err());
    }
}
