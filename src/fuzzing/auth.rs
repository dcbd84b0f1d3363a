//! Fuzz entry point for authentication: the SCRAM server exchange, the
//! ClientKey pass-through client, `pg_authid` secrets and `userlist.txt`.

use std::sync::OnceLock;

use sha2::Sha256;

use super::split2;
use crate::auth::passthrough::{ScramKey, ScramKeyClient};
use crate::auth::scram::{ScramServer, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::auth::secret::ScramSecret;
use crate::auth::{hmac_sha256, sha256, userlist, AuthError};

/// The fixed credentials of the fuzzed exchanges. The seed corpus holds a
/// valid exchange for them (`fuzz/seeds/scram/`), so the fuzzer starts from
/// inputs that reach proof verification.
pub const PASSWORD: &str = "pencil";
pub const SALT: &[u8] = b"pgferry-fuzz-salt";
pub const ITERATIONS: u32 = 4096;
pub const SERVER_NONCE: &str = "pgferryFuzzServerNonce";
/// Stands in for the `tls-server-end-point` hash of a TLS connection.
pub const BINDING: &[u8] = &[0x42; 32];

struct Fixture {
    secret: ScramSecret,
    client_key: [u8; 32],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(PASSWORD.as_bytes(), SALT, ITERATIONS, &mut salted);
        Fixture {
            secret: ScramSecret::from_password(PASSWORD, SALT, ITERATIONS),
            client_key: hmac_sha256(&salted, &[b"Client Key"]),
        }
    })
}

/// `data[0] % 5` picks what is fuzzed and `data[0] / 5` its options; the
/// rest is the input (two messages separated by `0xFF` for exchanges).
pub fn scram(data: &[u8]) {
    run(data);
}

/// Whether the input made an exchange succeed (the valid seeds must, or the
/// fuzzer would start far from the proof checks).
pub(super) fn run(data: &[u8]) -> bool {
    let Some((&sel, rest)) = data.split_first() else {
        return false;
    };
    let opts = sel / 5;
    match sel % 5 {
        0 => server_exchange(opts, rest),
        1 => honest_exchange(opts, rest),
        2 => passthrough_client(rest),
        3 => secret(rest),
        _ => userlist(rest),
    }
}

/// The server fed arbitrary client-first and client-final messages.
fn server_exchange(opts: u8, data: &[u8]) -> bool {
    let (first, fin) = split2(data);
    let binding = (opts & 1 == 1).then(|| BINDING.to_vec());
    let mechanism = match (opts >> 1) % 3 {
        0 => SCRAM_SHA_256,
        1 => SCRAM_SHA_256_PLUS,
        _ => "SCRAM-SHA-1",
    };
    let mut server = ScramServer::new(fixture().secret.clone(), SERVER_NONCE.to_owned())
        .with_channel_binding(binding);
    match server.client_first(mechanism, first) {
        Ok(reply) => {
            let reply = String::from_utf8(reply).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                reply.starts_with("r=") && reply.ends_with(",i=4096"),
                "{reply}"
            );
            assert!(reply.contains(SERVER_NONCE));
        }
        Err(_) => {
            assert_eq!(server.client_final(fin), Err(AuthError::OutOfOrder));
            assert_eq!(server.client_key(), None);
            return false;
        }
    }
    assert_eq!(server.client_key(), None);
    match server.client_final(fin) {
        Ok(reply) => {
            assert!(reply.starts_with(b"v="));
            let key = server.client_key().unwrap_or_else(|| panic!("no key"));
            assert_eq!(sha256(&key), fixture().secret.stored_key);
            assert_eq!(key, fixture().client_key);
        }
        Err(_) => assert_eq!(server.client_key(), None),
    }
    // Whatever happened, the exchange is over.
    let key = server.client_key();
    assert_eq!(server.client_final(fin), Err(AuthError::OutOfOrder));
    assert_eq!(
        server.client_first(mechanism, first),
        Err(AuthError::OutOfOrder)
    );
    assert_eq!(server.client_key(), key);
    key.is_some()
}

/// A correct client (the pass-through client holding the right ClientKey)
/// with a fuzzed nonce against the server: it must succeed exactly when the
/// nonce is valid, and both sides must agree.
fn honest_exchange(opts: u8, nonce: &[u8]) -> bool {
    // A ',' would end the nonce attribute early: the server would take
    // the part before it (and what follows as an extension), a
    // disagreement the real client never creates (its nonce is base64).
    let Some(nonce) = std::str::from_utf8(nonce).ok().filter(|n| !n.contains(',')) else {
        return false;
    };
    let key = ScramKey {
        client_key: fixture().client_key,
        secret: fixture().secret.clone(),
    };
    let mut client = ScramKeyClient::new(key, nonce.to_owned());
    let binding = (opts & 1 == 1).then(|| BINDING.to_vec());
    let mut server = ScramServer::new(fixture().secret.clone(), SERVER_NONCE.to_owned())
        .with_channel_binding(binding);
    let valid = !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    let first = client.client_first();
    let server_first = match server.client_first(SCRAM_SHA_256, &first) {
        Ok(m) => m,
        Err(e) => {
            assert!(!valid || first.len() > 4096, "valid nonce refused: {e}");
            return false;
        }
    };
    assert!(valid, "invalid nonce {nonce:?} accepted");
    let fin = client
        .server_first(&server_first)
        .unwrap_or_else(|e| panic!("client refused server-first: {e}"));
    let verdict = server.client_final(&fin);
    if fin.len() > 4096 {
        assert!(verdict.is_err());
        return false;
    }
    let server_final = verdict.unwrap_or_else(|e| panic!("server refused proof: {e}"));
    client
        .server_final(&server_final)
        .unwrap_or_else(|e| panic!("client refused server signature: {e}"));
    assert_eq!(server.client_key(), Some(fixture().client_key));
    true
}

/// The pass-through client fed arbitrary server-first and server-final.
fn passthrough_client(data: &[u8]) -> bool {
    let (server_first, server_final) = split2(data);
    let key = ScramKey {
        client_key: fixture().client_key,
        secret: fixture().secret.clone(),
    };
    let mut client = ScramKeyClient::new(key, "fuzzClientNonce".to_owned());
    assert!(client.server_final(server_final).is_err());
    let first = client.client_first();
    assert!(first.starts_with(b"n,,n=,r=fuzzClientNonce"));
    let verified = match client.server_first(server_first) {
        Ok(fin) => {
            assert!(fin.starts_with(b"c=biws,r=fuzzClientNonce"));
            client.server_final(server_final).is_ok()
        }
        Err(_) => {
            assert_eq!(
                client.server_final(server_final),
                Err(AuthError::OutOfOrder)
            );
            false
        }
    };
    assert_eq!(
        client.server_final(server_final),
        Err(AuthError::OutOfOrder)
    );
    verified
}

/// `pg_authid` secrets round-trip through their text form.
fn secret(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(s) = ScramSecret::parse(text) else {
        return false;
    };
    assert!(s.iterations > 0 && !s.salt.is_empty());
    assert_eq!(ScramSecret::parse(&s.to_string_secret()).as_ref(), Ok(&s));
    s == fixture().secret
}

/// `userlist.txt`: every line is either an entry, skipped, or reported.
fn userlist(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let list = userlist::parse(&text);
    let lines = text.lines().count();
    assert!(list.entries.len() + list.bad_lines.len() <= lines);
    assert!(list.entries.iter().all(|e| !e.name.is_empty()));
    assert!(list.bad_lines.windows(2).all(|w| w[0].line < w[1].line));
    assert!(list.bad_lines.iter().all(|b| (1..=lines).contains(&b.line)));
    !list.entries.is_empty()
}
