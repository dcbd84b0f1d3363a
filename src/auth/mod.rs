//! Client authentication for pgferry: SCRAM-SHA-256 (server side), the legacy
//! Postgres md5 scheme, and the SCRAM secrets stored in `pg_authid`.
//!
//! Everything in here parses bytes sent by untrusted network peers, so every
//! parse is bounds-checked and reports a typed [`AuthError`] instead of
//! panicking. Nothing here does I/O; the proxy moves the bytes.

use hmac::{digest::KeyInit, Hmac, Mac};
use sha2::{Digest, Sha256};

pub mod cache;
pub mod md5;
pub mod passthrough;
pub mod scram;
pub mod secret;
pub mod userlist;

/// Why an authentication exchange failed.
///
/// The messages never echo peer input or secret material, so they are safe to
/// log and, for the client-facing ones, to send back in an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The peer's message does not follow the SCRAM grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client picked a SASL mechanism we did not offer.
    #[error("unsupported SASL authentication mechanism")]
    UnsupportedMechanism,
    /// The client asked for channel binding (SCRAM-SHA-256-PLUS / `p=`) on
    /// a connection without TLS.
    #[error("SCRAM channel binding is not supported")]
    ChannelBindingNotSupported,
    /// The client said (`y`) it would bind but thinks the server cannot,
    /// although SCRAM-SHA-256-PLUS was offered: a possible downgrade.
    #[error("SCRAM channel binding negotiation error: the client supports channel binding but thinks the server does not")]
    ChannelBindingDowngrade,
    /// The `c=` attribute of client-final does not match the gs2 header sent
    /// in client-first.
    #[error("SCRAM channel binding data does not match the client-first-message")]
    ChannelBindingMismatch,
    /// The `r=` attribute of client-final is not the nonce the server issued.
    #[error("SCRAM nonce does not match")]
    NonceMismatch,
    /// Wrong password (or unknown user, see [`secret::ScramSecret::mock`]).
    #[error("password authentication failed")]
    InvalidProof,
    /// A stored secret could not be parsed. The text describes the problem,
    /// never the secret itself.
    #[error("invalid SCRAM secret: {0}")]
    BadSecret(String),
    /// A message arrived in a state that does not expect it.
    #[error("SCRAM message out of order")]
    OutOfOrder,
}

/// HMAC-SHA-256 over the concatenation of `parts`.
///
/// `Hmac::new_from_slice` returns a `Result` only because the trait is shared
/// with fixed-key MACs; to stay free of `expect` we build the block-sized key
/// ourselves, exactly as RFC 2104 defines it (hash keys longer than the block,
/// zero-pad shorter ones), and use the infallible constructor.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        let digest: [u8; 32] = Sha256::digest(key).into();
        copy_prefix(&mut block, &digest);
    } else {
        copy_prefix(&mut block, key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Copies as much of `src` as fits into the front of `dst`.
fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Equality whose running time depends only on the lengths, so a peer timing
/// our answers learns nothing about how many leading bytes it got right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231() {
        // RFC 4231 test case 2 (short key) and case 6 (key longer than a block).
        let out = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = [0xaau8; 131];
        let out = hmac_sha256(
            &key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex(&out),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
