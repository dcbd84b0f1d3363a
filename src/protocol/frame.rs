//! Framing of regular (tagged) messages: one tag byte and a 4-byte big-endian
//! length that counts itself but not the tag.

use thiserror::Error;

pub const HEADER_LEN: usize = 5;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// A parsed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: u8,
    /// Length of the body (excluding tag and length field).
    pub body_len: usize,
}

impl Header {
    /// Total bytes of the message on the wire.
    pub fn total_len(&self) -> usize {
        self.body_len + HEADER_LEN
    }
}

/// Reads a header from the start of `buf`. `Ok(None)` means fewer than five
/// bytes are available. `max` bounds the whole message length.
pub fn header(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength(i64::from(len)));
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(Header {
        tag: buf[0],
        body_len: len - 4,
    }))
}

/// Returns the complete message at the start of `buf` as `(tag, body)`, or
/// `Ok(None)` when more bytes are needed.
pub fn message(buf: &[u8], max: usize) -> Result<Option<(u8, &[u8])>, FrameError> {
    match header(buf, max)? {
        Some(h) if buf.len() >= h.total_len() => Ok(Some((h.tag, &buf[HEADER_LEN..h.total_len()]))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_five_bytes() {
        assert_eq!(header(b"Q\0\0\0", 100), Ok(None));
    }

    #[test]
    fn parses_header_and_message() {
        let buf = b"Q\0\0\0\x09abcd\0rest";
        let h = header(buf, 100).unwrap().unwrap();
        assert_eq!(h.tag, b'Q');
        assert_eq!(h.body_len, 5);
        assert_eq!(message(buf, 100).unwrap(), Some((b'Q', &b"abcd\0"[..])));
        assert_eq!(message(&buf[..8], 100).unwrap(), None);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(header(b"Q\0\0\0\x03", 100), Err(FrameError::BadLength(3)));
        assert_eq!(
            header(b"Q\xff\xff\xff\xff", 100),
            Err(FrameError::BadLength(-1))
        );
        assert!(matches!(
            header(b"Q\x40\0\0\0", 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
