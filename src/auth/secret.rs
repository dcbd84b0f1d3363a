//! SCRAM-SHA-256 secrets in the form Postgres stores them in `pg_authid`:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use sha2::Sha256;

use super::{hmac_sha256, sha256, AuthError};

/// Iteration count Postgres uses by default (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Salt length Postgres generates (`SCRAM_DEFAULT_SALT_LEN`).
pub const DEFAULT_SALT_LEN: usize = 16;

const PREFIX: &str = "SCRAM-SHA-256";

/// What the server needs to verify a SCRAM-SHA-256 login without knowing the
/// password.
///
/// `PartialEq` is a plain (not constant-time) comparison, meant for config
/// reloads and tests, not for checking credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

/// The keys are password equivalents for SCRAM (the StoredKey plus a sniffed
/// exchange is enough to log in elsewhere), so they never reach logs.
impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl ScramSecret {
    /// Parses the `pg_authid.rolpassword` form. The input must be exact (no
    /// surrounding whitespace); errors describe the defect, never the secret.
    pub fn parse(s: &str) -> Result<ScramSecret, AuthError> {
        let bad = |what: &str| AuthError::BadSecret(what.to_owned());
        let (scheme, rest) = s.split_once('$').ok_or_else(|| {
            bad("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
        })?;
        if scheme != PREFIX {
            return Err(bad("not a SCRAM-SHA-256 secret"));
        }
        let (params, keys) = rest
            .split_once('$')
            .ok_or_else(|| bad("missing '$' before the keys"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or_else(|| bad("missing ':' between iterations and salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| bad("missing ':' between StoredKey and ServerKey"))?;

        // u32::from_str would also accept a leading '+'; Postgres writes digits only.
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("iteration count is not a number"));
        }
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| bad("iteration count out of range"))?;
        if iterations == 0 {
            return Err(bad("iteration count must be positive"));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| bad("salt is not valid base64"))?;
        if salt.is_empty() {
            return Err(bad("salt is empty"));
        }
        Ok(ScramSecret {
            iterations,
            salt,
            stored_key: decode_key(stored_key, "StoredKey")?,
            server_key: decode_key(server_key, "ServerKey")?,
        })
    }

    /// Derives the secret for `password` (RFC 5802 section 3).
    ///
    /// Postgres SASLpreps the password first. ASCII passwords are unchanged by
    /// SASLprep (or, if they contain control characters, rejected by it, in
    /// which case Postgres falls back to the raw bytes), so raw bytes are exact
    /// for them. Non-ASCII passwords are also used as raw UTF-8: this matches
    /// Postgres whenever the password is already NFKC-normalized and free of
    /// characters SASLprep maps (non-ASCII spaces, soft hyphens, ...), which is
    /// the case for ordinary text typed in NFC.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let mut salted_password = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted_password);
        let client_key = hmac_sha256(&salted_password, &[b"Client Key"]);
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted_password, &[b"Server Key"]),
        }
    }

    /// A fresh secret with a random 16-byte salt and 4096 iterations, the same
    /// parameters Postgres uses by default.
    pub fn generate(password: &str) -> ScramSecret {
        let salt: [u8; DEFAULT_SALT_LEN] = rand::random();
        ScramSecret::from_password(password, &salt, DEFAULT_ITERATIONS)
    }

    /// A stand-in secret for a user that does not exist (or has no usable
    /// secret).
    ///
    /// Refusing such users right away would tell an attacker which user names
    /// are valid. Instead the proxy runs the whole exchange against this
    /// secret and fails at the proof, as for a wrong password. The salt is
    /// derived from `username` with the proxy-private `key`, so repeated
    /// attempts for the same name see the same salt, just as they would for a
    /// real user; it has the length and iteration count of a real default
    /// secret. (If real secrets use another iteration count, set
    /// `iterations` on the result to match.) The keys are HMAC outputs under
    /// `key`: no password can produce them, so the proof never verifies.
    pub fn mock(username: &str, key: &[u8; 32]) -> ScramSecret {
        let salt_full = hmac_sha256(key, &[b"pgferry mock salt\0", username.as_bytes()]);
        let salt: Vec<u8> = salt_full.iter().copied().take(DEFAULT_SALT_LEN).collect();
        ScramSecret {
            iterations: DEFAULT_ITERATIONS,
            salt,
            stored_key: hmac_sha256(key, &[b"pgferry mock stored key\0", username.as_bytes()]),
            server_key: hmac_sha256(key, &[b"pgferry mock server key\0", username.as_bytes()]),
        }
    }

    /// The `pg_authid` form; `parse(&s.to_string_secret()) == Ok(s)`.
    pub fn to_string_secret(&self) -> String {
        format!(
            "{PREFIX}${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key),
        )
    }
}

fn decode_key(b64: &str, name: &str) -> Result<[u8; 32], AuthError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| AuthError::BadSecret(format!("{name} is not valid base64")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| AuthError::BadSecret(format!("{name} must be 32 bytes")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

    #[test]
    fn round_trip() {
        let s = ScramSecret::from_password("pencil", &STANDARD.decode(RFC_SALT).unwrap(), 4096);
        let text = s.to_string_secret();
        assert!(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(ScramSecret::parse(&text).unwrap(), s);

        let g = ScramSecret::generate("pw");
        assert_eq!(g.salt.len(), 16);
        assert_eq!(g.iterations, 4096);
        assert_eq!(ScramSecret::parse(&g.to_string_secret()).unwrap(), g);
        assert_ne!(ScramSecret::generate("pw").salt, g.salt);
    }

    #[test]
    fn matches_postgres_protocol_secrets() {
        // postgres-protocol implements full SASLprep, so this also checks the
        // claim that NFC text needs no normalization.
        for pw in [
            "hunter2",
            "correct horse battery staple",
            "pässwörd",
            "パスワード",
        ] {
            let theirs =
                ScramSecret::parse(&postgres_protocol::password::scram_sha_256(pw.as_bytes()))
                    .unwrap();
            let ours = ScramSecret::from_password(pw, &theirs.salt, theirs.iterations);
            assert_eq!(ours, theirs, "password {pw:?}");
        }
    }

    #[test]
    fn parse_rejects_malformed() {
        let good = ScramSecret::generate("x").to_string_secret();
        let (head, keys) = good.rsplit_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let salt = good.split(['$', ':']).nth(2).unwrap();
        let cases = [
            String::new(),
            "md5abcdef".into(),
            "SCRAM-SHA-256".into(),
            "SCRAM-SHA-256$".into(),
            "SCRAM-SHA-256$4096".into(),
            "SCRAM-SHA-256$4096:c2FsdA==".into(),
            "SCRAM-SHA-256$4096:c2FsdA==$".into(),
            format!("SCRAM-SHA-256$4096:c2FsdA==${stored}"),
            format!("SCRAM-SHA-1$4096:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$0:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$+4096:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$-1:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$99999999999:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$:{salt}${stored}:{server}"),
            format!("SCRAM-SHA-256$4096:${stored}:{server}"),
            format!("SCRAM-SHA-256$4096:!!!${stored}:{server}"),
            format!("{head}$!!!!:{server}"),
            format!("{head}${stored}:"),
            format!("{head}${stored}:{server}:extra"),
            format!("{head}${stored}:{server}$extra"),
            format!("{head}$c2hvcnQ=:{server}"),
            format!("{head}${stored}:{}", STANDARD.encode([0u8; 33])),
            format!("{good}\n"),
            format!(" {good}"),
        ];
        for case in &cases {
            assert!(
                matches!(ScramSecret::parse(case), Err(AuthError::BadSecret(_))),
                "accepted {case:?}"
            );
        }
        // Every truncation of a good secret fails cleanly.
        for i in 0..good.len() {
            assert!(ScramSecret::parse(&good[..i]).is_err());
        }
    }

    #[test]
    fn parse_never_panics_on_random_input() {
        let alphabet = b"SCRAM-SHA-256$:0123456789+/=abcXYZ\0\xff";
        for _ in 0..20_000 {
            let len = rand::random::<usize>() % 120;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rand::random::<usize>() % alphabet.len()])
                .collect();
            let _ = ScramSecret::parse(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let s = ScramSecret::generate("pw");
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "ScramSecret { iterations: 4096, salt_len: 16, .. }");
        assert!(!dbg.contains(&STANDARD.encode(s.stored_key)));
    }

    #[test]
    fn mock_is_deterministic_per_user() {
        let key = [7u8; 32];
        let a1 = ScramSecret::mock("alice", &key);
        let a2 = ScramSecret::mock("alice", &key);
        let b = ScramSecret::mock("bob", &key);
        assert_eq!(a1, a2);
        assert_eq!(a1.salt.len(), DEFAULT_SALT_LEN);
        assert_eq!(a1.iterations, DEFAULT_ITERATIONS);
        assert_ne!(a1.salt, b.salt);
        assert_ne!(a1.stored_key, b.stored_key);
        assert_ne!(ScramSecret::mock("alice", &[8u8; 32]).salt, a1.salt);
        // Looks like any other secret on the wire and in storage.
        assert_eq!(ScramSecret::parse(&a1.to_string_secret()).unwrap(), a1);
    }
}
