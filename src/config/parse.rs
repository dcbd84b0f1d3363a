//! Parsers for the string forms used in the config: durations, byte sizes, addresses, passwords.
//!
//! Each returns a message ready to follow the key path in a `Problem`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{HostAddr, Password};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a duration such as "500ms", "30s", "1.5s", "2m", "1h" or "1d".
///
/// The unit is required: a bare "30" would leave the reader guessing between seconds and
/// milliseconds, which is a classic source of pooler misconfiguration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?} (use e.g. \"500ms\", \"30s\", \"2m\")");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = t.split_at(split);
    let unit_nanos: u128 = match unit.trim_start() {
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let malformed =
        whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.contains('.');
    if malformed {
        return Err(invalid());
    }
    let too_large = || format!("duration {s:?} is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    // Exact decimal arithmetic, so "1.1s" is 1100ms and not 1099.999...ms. Digits beyond the
    // 18th cannot matter at nanosecond resolution and would overflow the scale.
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for digit in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(numerator * unit_nanos / denominator))
        .ok_or_else(too_large)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_large())?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| too_large())?;
    Ok(Duration::new(secs, subsec))
}

/// Parses a byte size: a plain number of bytes, or a number with a unit.
///
/// Units follow postgresql.conf, where kB, MB, GB and TB are powers of 1024; the IEC spellings
/// (KiB, MiB, ...) mean the same, and units are case-insensitive so "16mb" is not a trap.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {s:?} (use e.g. 1048576, \"512kB\", \"16MB\", \"1GB\")");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(invalid());
    }
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(invalid()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses the listen address. Only "localhost" is accepted as a name: binding needs an
/// address, and resolving arbitrary names at startup would make the bound address depend on DNS.
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        if let Some(port) = parse_port(port) {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    Err(format!(
        "invalid listen address {s:?} (use e.g. \"127.0.0.1:6432\", \"0.0.0.0:6432\", \
         \"[::1]:6432\" or \"localhost:6432\")"
    ))
}

fn parse_port(s: &str) -> Option<u16> {
    // `u16::from_str` accepts a leading '+', which is not a port anyone means to write.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a server address: "host:port" or "host" (port 5432), where host is an IPv4 address,
/// a bracketed IPv6 address, or a DNS name.
pub(crate) fn parse_host(s: &str) -> Result<HostAddr, String> {
    const DEFAULT_PORT: u16 = 5432;
    if s.is_empty() {
        return Err("empty host address".to_owned());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid host {s:?}: missing \"]\" after the IPv6 address"))?;
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("invalid IPv6 address {inner:?}"))?;
        let port =
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("invalid host {s:?}: expected \":port\" after \"]\"")
                })?),
            };
        // Normalised so that "[::1]" and "[0::1]" count as the same host.
        (ip.to_string(), port)
    } else {
        let (name, port) = match s.split_once(':') {
            None => (s, None),
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "invalid host {s:?}: write IPv6 addresses in brackets, e.g. \"[::1]:5432\""
                ))
            }
            Some((name, port)) => (name, Some(port)),
        };
        check_host_name(name)?;
        // DNS names are case-insensitive; lowercase so duplicates are caught.
        (name.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_port(p)
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("invalid port {p:?}"))?,
    };
    Ok(HostAddr { host, port })
}

fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".to_owned());
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    // All-numeric dotted names are a mistyped IPv4 address, not a DNS name.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("invalid IPv4 address {name:?}"));
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!("invalid host name {name:?}"))
    }
}

impl Password {
    /// Classifies a `password` value. Only a value that claims to be a SCRAM secret can fail:
    /// a malformed one would otherwise be silently treated as a (very odd) plaintext password.
    ///
    /// Error messages never include the value.
    pub fn parse(s: &str) -> Result<Password, String> {
        if let Some(hex) = s.strip_prefix("md5") {
            if hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Ok(Password::Md5(s.to_owned()));
            }
        }
        if let Some(rest) = s.strip_prefix("SCRAM-SHA-256$") {
            check_scram(rest)?;
            return Ok(Password::Scram(s.to_owned()));
        }
        Ok(Password::Plain(s.to_owned()))
    }
}

/// Checks the shape of a SCRAM secret as stored in `pg_authid.rolpassword`, after its
/// "SCRAM-SHA-256$" prefix: `<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5803).
fn check_scram(rest: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "malformed SCRAM secret: {why} (expected \
             SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
        )
    };
    let (params, keys) = rest
        .split_once('$')
        .ok_or_else(|| bad("missing \"$\" before the keys"))?;
    let (iterations, salt) = params
        .split_once(':')
        .ok_or_else(|| bad("missing \":\" between iteration count and salt"))?;
    let (stored_key, server_key) = keys
        .split_once(':')
        .ok_or_else(|| bad("missing \":\" between StoredKey and ServerKey"))?;
    let iterations_ok = !iterations.is_empty()
        && iterations.bytes().all(|b| b.is_ascii_digit())
        && iterations.parse::<u32>().is_ok_and(|n| n > 0);
    if !iterations_ok {
        return Err(bad("iteration count must be a positive integer"));
    }
    if base64_decoded_len(salt).is_none_or(|n| n == 0) {
        return Err(bad("salt is not valid base64"));
    }
    // SHA-256 digests are 32 bytes; anything else cannot verify a SCRAM-SHA-256 proof.
    if base64_decoded_len(stored_key) != Some(32) {
        return Err(bad("StoredKey is not a base64-encoded 32-byte digest"));
    }
    if base64_decoded_len(server_key) != Some(32) {
        return Err(bad("ServerKey is not a base64-encoded 32-byte digest"));
    }
    Ok(())
}

/// The decoded length of padded standard base64, or `None` if `s` is not valid base64.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let body = &bytes[..bytes.len() - padding];
    if !body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    Some(bytes.len() / 4 * 3 - padding)
}
