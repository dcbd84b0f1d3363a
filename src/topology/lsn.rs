//! WAL positions as Postgres prints them (`pg_lsn`, "X/Y" in hex).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid LSN {text:?}: expected two hex numbers of at most 8 digits, like \"16/B374D848\"")]
pub struct LsnError {
    text: String,
}

/// Parses "X/Y" into `X << 32 | Y`, the 64-bit byte position the server
/// means. Strict about the form Postgres prints (1..=8 hex digits on each
/// side) because anything else means we misread the row.
pub fn parse_lsn(text: &str) -> Result<u64, LsnError> {
    let bad = || LsnError {
        text: text.to_owned(),
    };
    let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
    let half = |s: &str| -> Result<u64, LsnError> {
        if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u64::from_str_radix(s, 16).map_err(|_| bad())
    };
    Ok(half(hi)? << 32 | half(lo)?)
}

/// The "X/Y" form, for logs.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_postgres_prints() {
        assert_eq!(parse_lsn("0/0"), Ok(0));
        assert_eq!(parse_lsn("0/4000000"), Ok(0x0400_0000));
        assert_eq!(parse_lsn("16/B374D848"), Ok(0x16_B374_D848));
        assert_eq!(parse_lsn("16/b374d848"), Ok(0x16_B374_D848));
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Ok(u64::MAX));
    }

    #[test]
    fn rejects_anything_else_without_panicking() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "x/0",
            "0/-1",
            "+1/0",
            "1 /0",
            "123456789/0",
            "0/123456789",
            "0/ 1",
            "é/0",
        ] {
            assert!(parse_lsn(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn formats_back() {
        for lsn in [0, 0x0400_0000, 0x16_B374_D848, u64::MAX] {
            assert_eq!(parse_lsn(&format_lsn(lsn)), Ok(lsn));
        }
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
    }
}
