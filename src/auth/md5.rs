//! The legacy Postgres `md5` password scheme.
//!
//! `pg_authid` stores `"md5" + md5(password + username)`. For
//! AuthenticationMD5Password the server sends a 4-byte salt and the client
//! answers `"md5" + md5(<32 hex chars of the stored hash> + salt)`, so the
//! stored hash alone is enough to log in: treat it like a password.

use ::md5::{Digest, Md5};

use super::constant_time_eq;

const HEX: &[u8; 16] = b"0123456789abcdef";
/// Length of `"md5"` followed by 32 hex digits.
const HASH_LEN: usize = 35;

/// Lowercase hex MD5 digest of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    let mut out = String::with_capacity(32);
    for byte in digest {
        for nibble in [byte >> 4, byte & 0x0f] {
            if let Some(&c) = HEX.get(usize::from(nibble)) {
                out.push(char::from(c));
            }
        }
    }
    out
}

/// The `pg_authid` form: `"md5" + md5(password + user)`.
pub fn password_hash(user: &str, password: &str) -> String {
    let mut input = Vec::with_capacity(password.len().saturating_add(user.len()));
    input.extend_from_slice(password.as_bytes());
    input.extend_from_slice(user.as_bytes());
    format!("md5{}", md5_hex(&input))
}

/// What a client sends in reply to AuthenticationMD5Password with `salt`:
/// `"md5" + md5(hex part of password_hash + salt)`.
///
/// A `password_hash` without the `"md5"` prefix is taken to be the bare hex.
pub fn salted_response(password_hash: &str, salt: [u8; 4]) -> String {
    let hex = password_hash.strip_prefix("md5").unwrap_or(password_hash);
    let mut input = Vec::with_capacity(hex.len().saturating_add(salt.len()));
    input.extend_from_slice(hex.as_bytes());
    input.extend_from_slice(&salt);
    format!("md5{}", md5_hex(&input))
}

/// Checks a client's PasswordMessage payload against the stored hash.
///
/// One trailing NUL (the string terminator of PasswordMessage) is tolerated.
/// Returns false if the stored value is not a well-formed md5 hash, so a
/// plaintext or SCRAM secret can never be matched by accident. The comparison
/// is constant-time so response timing leaks nothing about the expected value.
#[must_use]
pub fn verify(password_hash: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    if !is_md5_hash(password_hash) {
        return false;
    }
    let response = client_response
        .strip_suffix(b"\0")
        .unwrap_or(client_response);
    let expected = salted_response(password_hash, salt);
    constant_time_eq(expected.as_bytes(), response)
}

/// True for `"md5"` followed by 32 lowercase hex digits, the only form
/// Postgres stores.
pub fn is_md5_hash(s: &str) -> bool {
    s.len() == HASH_LEN
        && s.strip_prefix("md5")
            .is_some_and(|hex| hex.bytes().all(|b| HEX.contains(&b)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let hash = password_hash("app", "secret");
        // md5("secretapp"), computed independently with md5sum.
        assert_eq!(hash, "md56a422f785c9e20873908ce25d1736ae2");
        assert_eq!(hash, postgres_protocol::password::md5(b"secret", "app"));
        // Computed independently with Python's hashlib.
        assert_eq!(
            salted_response(&hash, [1, 2, 3, 4]),
            "md5911f527656472583a006e7727877b33e"
        );
    }

    #[test]
    fn verify_consistent_with_salted_response() {
        let hash = password_hash("app", "secret");
        let salt = [0xde, 0xad, 0xbe, 0xef];
        let response = salted_response(&hash, salt);
        assert!(verify(&hash, salt, response.as_bytes()));
        let mut with_nul = response.clone().into_bytes();
        with_nul.push(0);
        assert!(verify(&hash, salt, &with_nul));

        assert!(!verify(&hash, [0, 0, 0, 0], response.as_bytes()));
        assert!(!verify(
            &password_hash("app", "wrong"),
            salt,
            response.as_bytes()
        ));
        assert!(!verify(
            &password_hash("other", "secret"),
            salt,
            response.as_bytes()
        ));
        assert!(!verify(&hash, salt, &response.as_bytes()[..34]));
        assert!(!verify(&hash, salt, b""));
        assert!(!verify(&hash, salt, b"md5"));
        assert!(!verify(&hash, salt, &[0xff; 35]));
        assert!(!verify(&hash, salt, response.to_uppercase().as_bytes()));
        // A malformed stored hash never verifies, even against its own response.
        for stored in [
            "",
            "md5",
            "secret",
            "MD56A422F785C9E20873908CE25D1736AE2",
            "md56a422f785c9e20873908ce25d1736ae",
        ] {
            assert!(!verify(
                stored,
                salt,
                salted_response(stored, salt).as_bytes()
            ));
        }
    }
}
