//! Logging in to Postgres with what a client proved, not with a password.
//!
//! When pgferry knows only a user's SCRAM secret, it cannot run the client
//! side of SCRAM from a password. But a client that logs in to pgferry with
//! SCRAM reveals its ClientKey (ClientProof XOR ClientSignature, see
//! [`super::scram::ScramServer::client_key`]), and the ClientKey is all the
//! client side needs: StoredKey = H(ClientKey), ClientSignature =
//! HMAC(StoredKey, AuthMessage), ClientProof = ClientKey XOR ClientSignature
//! (RFC 5802 section 3). The salted password is only needed to derive the
//! ClientKey, so the salt and iteration count Postgres sends must be those of
//! the secret the key was verified against: they are when the secret was
//! copied from `pg_authid`.
//!
//! [`PassThrough`] is the per-user slot shared by client authentication
//! (which fills it) and the user's server connection pools (which read it).
//! md5 needs no key: the stored `md5...` hash answers the md5 challenge.

use std::fmt;
use std::sync::Mutex;

use base64::{engine::general_purpose::STANDARD, Engine as _};

use super::secret::ScramSecret;
use super::{constant_time_eq, hmac_sha256, sha256, AuthError};

/// A ClientKey together with the secret it was verified against.
#[derive(Clone)]
pub struct ScramKey {
    pub client_key: [u8; 32],
    pub secret: ScramSecret,
}

/// The ClientKey is a password equivalent: never printed.
impl fmt::Debug for ScramKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKey")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// Per-user credentials for server connections that are learned at run time.
#[derive(Default)]
pub struct PassThrough {
    inner: Mutex<Known>,
}

#[derive(Default, Clone)]
struct Known {
    md5: Option<String>,
    scram: Option<ScramKey>,
}

impl fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.known();
        f.debug_struct("PassThrough")
            .field("md5", &k.md5.as_ref().map(|_| "<redacted>"))
            .field("scram_key", &k.scram.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PassThrough {
    fn known(&self) -> Known {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Known)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Remembers the ClientKey of a successful client SCRAM login. The latest
    /// one wins, so a changed password (a new secret) replaces the old key.
    pub fn set_scram_key(&self, client_key: [u8; 32], secret: ScramSecret) {
        self.update(|k| k.scram = Some(ScramKey { client_key, secret }));
    }

    pub fn scram_key(&self) -> Option<ScramKey> {
        self.known().scram
    }

    /// The user's current `md5...` hash (from auth_file or auth_query).
    pub fn set_md5(&self, hash: Option<String>) {
        self.update(|k| k.md5 = hash);
    }

    pub fn md5(&self) -> Option<String> {
        self.known().md5
    }
}

/// The client side of SCRAM-SHA-256 (no channel binding) driven by a
/// ClientKey. Sans-IO: feed it the server's messages, send what it returns.
pub struct ScramKeyClient {
    key: ScramKey,
    client_nonce: String,
    state: ClientState,
}

enum ClientState {
    Start,
    SentFirst,
    /// Waiting for server-final; holds the expected ServerSignature.
    SentFinal([u8; 32]),
    Done,
}

impl fmt::Debug for ScramKeyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeyClient").finish_non_exhaustive()
    }
}

impl ScramKeyClient {
    pub fn new(key: ScramKey, client_nonce: String) -> ScramKeyClient {
        ScramKeyClient {
            key,
            client_nonce,
            state: ClientState::Start,
        }
    }

    pub fn with_random_nonce(key: ScramKey) -> ScramKeyClient {
        let bytes: [u8; 18] = rand::random();
        ScramKeyClient::new(key, STANDARD.encode(bytes))
    }

    fn first_bare(&self) -> String {
        // Postgres takes the user from the startup packet and ignores n=.
        format!("n=,r={}", self.client_nonce)
    }

    /// client-first-message: the SASLInitialResponse data.
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// Takes server-first-message and returns client-final-message.
    pub fn server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(AuthError::OutOfOrder);
        }
        self.state = ClientState::Done;
        let text = std::str::from_utf8(data)
            .map_err(|_| AuthError::Malformed("server-first-message is not UTF-8"))?;
        let mut parts = text.split(',');
        let nonce = attr(parts.next(), 'r')?;
        let salt = attr(parts.next(), 's')?;
        let iterations = attr(parts.next(), 'i')?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(AuthError::NonceMismatch);
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| AuthError::Malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| AuthError::Malformed("bad iteration count"))?;
        let secret = &self.key.secret;
        if salt != secret.salt || iterations != secret.iterations {
            return Err(AuthError::BadSecret(
                "the server's salt or iteration count differs from the stored secret \
                 (the password was changed, or the secret was not copied from this server)"
                    .to_owned(),
            ));
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare());
        let stored_key = sha256(&self.key.client_key);
        let signature = hmac_sha256(&stored_key, &[auth_message.as_bytes()]);
        let mut proof = [0u8; 32];
        for ((p, k), s) in proof.iter_mut().zip(self.key.client_key).zip(signature) {
            *p = k ^ s;
        }
        let server_signature = hmac_sha256(&secret.server_key, &[auth_message.as_bytes()]);
        self.state = ClientState::SentFinal(server_signature);
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final-message (the server's proof that it knows the
    /// secret too).
    pub fn server_final(&mut self, data: &[u8]) -> Result<(), AuthError> {
        let ClientState::SentFinal(expected) =
            std::mem::replace(&mut self.state, ClientState::Done)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let text = std::str::from_utf8(data)
            .map_err(|_| AuthError::Malformed("server-final-message is not UTF-8"))?;
        if text.starts_with("e=") {
            return Err(AuthError::Malformed(
                "server-final-message reports an error",
            ));
        }
        let v = attr(text.split(',').next(), 'v')?;
        let got = STANDARD
            .decode(v)
            .map_err(|_| AuthError::Malformed("server signature is not base64"))?;
        if constant_time_eq(&got, &expected) {
            Ok(())
        } else {
            Err(AuthError::InvalidProof)
        }
    }
}

fn attr(part: Option<&str>, name: char) -> Result<&str, AuthError> {
    part.and_then(|p| p.strip_prefix(name))
        .and_then(|p| p.strip_prefix('='))
        .ok_or(AuthError::Malformed("missing attribute in server message"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramServer;
    use postgres_protocol::authentication::sasl::ScramSha256;

    /// Recovers a ClientKey the way pgferry does: a real client (with the
    /// password) logs in to our SCRAM server.
    fn key_from_login(password: &str, secret: &ScramSecret) -> [u8; 32] {
        let mut server = ScramServer::with_random_nonce(secret.clone());
        let mut client = ScramSha256::new(
            password.as_bytes(),
            postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
        );
        let first = server
            .client_first("SCRAM-SHA-256", client.message())
            .unwrap();
        client.update(&first).unwrap();
        let fin = server.client_final(client.message()).unwrap();
        client.finish(&fin).unwrap();
        server.client_key().unwrap()
    }

    #[test]
    fn key_client_logs_in_to_a_scram_server() {
        let secret = ScramSecret::generate("s3cret");
        let key = ScramKey {
            client_key: key_from_login("s3cret", &secret),
            secret: secret.clone(),
        };
        // The "server" here stands in for Postgres holding the same secret.
        let mut pg = ScramServer::with_random_nonce(secret);
        let mut c = ScramKeyClient::with_random_nonce(key);
        let first = pg.client_first("SCRAM-SHA-256", &c.client_first()).unwrap();
        let fin = c.server_first(&first).unwrap();
        let server_final = pg.client_final(&fin).unwrap();
        c.server_final(&server_final).unwrap();
    }

    #[test]
    fn wrong_key_or_forged_server_fails() {
        let secret = ScramSecret::generate("s3cret");
        let key = ScramKey {
            client_key: [9u8; 32],
            secret: secret.clone(),
        };
        let mut pg = ScramServer::with_random_nonce(secret.clone());
        let mut c = ScramKeyClient::with_random_nonce(key);
        let first = pg.client_first("SCRAM-SHA-256", &c.client_first()).unwrap();
        let fin = c.server_first(&first).unwrap();
        assert_eq!(pg.client_final(&fin), Err(AuthError::InvalidProof));

        // A server that does not know the secret cannot produce v=.
        let good = ScramKey {
            client_key: key_from_login("s3cret", &secret),
            secret: secret.clone(),
        };
        let mut pg = ScramServer::with_random_nonce(secret);
        let mut c = ScramKeyClient::with_random_nonce(good);
        let first = pg.client_first("SCRAM-SHA-256", &c.client_first()).unwrap();
        c.server_first(&first).unwrap();
        let forged = format!("v={}", STANDARD.encode([0u8; 32]));
        assert_eq!(
            c.server_final(forged.as_bytes()),
            Err(AuthError::InvalidProof)
        );
    }

    #[test]
    fn other_salt_is_refused_before_sending_a_proof() {
        let secret = ScramSecret::generate("pw");
        let other = ScramSecret::generate("pw");
        let mut pg = ScramServer::with_random_nonce(other);
        let mut c = ScramKeyClient::with_random_nonce(ScramKey {
            client_key: key_from_login("pw", &secret),
            secret,
        });
        let first = pg.client_first("SCRAM-SHA-256", &c.client_first()).unwrap();
        assert!(matches!(
            c.server_first(&first),
            Err(AuthError::BadSecret(_))
        ));
    }

    #[test]
    fn bad_server_messages_are_errors() {
        let secret = ScramSecret::generate("pw");
        let key = ScramKey {
            client_key: [1u8; 32],
            secret,
        };
        for msg in [
            &b""[..],
            b"r=",
            b"x=abc,s=c2FsdA==,i=4096",
            b"r=NOTOURS,s=c2FsdA==,i=4096",
            b"\xff\xfe",
        ] {
            let mut c = ScramKeyClient::new(key.clone(), "abc".into());
            c.client_first();
            assert!(c.server_first(msg).is_err(), "{msg:?}");
        }
        let mut c = ScramKeyClient::new(key, "abc".into());
        assert_eq!(c.server_first(b"r=abcd"), Err(AuthError::OutOfOrder));
        assert_eq!(c.server_final(b"v=x"), Err(AuthError::OutOfOrder));
    }

    #[test]
    fn debug_redacts() {
        let p = PassThrough::default();
        p.set_scram_key([0xab; 32], ScramSecret::generate("x"));
        p.set_md5(Some("md5ffffffffffffffffffffffffffffffff".into()));
        let dbg = format!("{p:?} {:?}", p.scram_key());
        assert!(!dbg.contains("ffff"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}"); // 0xab as a decimal byte
        assert!(!dbg.contains("ab, ab"), "{dbg}");
    }
}
