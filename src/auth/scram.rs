//! SCRAM-SHA-256 server side (RFC 5802, RFC 7677) as a sans-IO state machine,
//! limited to what Postgres speaks:
//!
//! * channel binding only as `tls-server-end-point` (RFC 5929), and only
//!   when the caller supplies the binding data of the TLS connection
//!   ([`ScramServer::with_channel_binding`]); then the client may pick
//!   SCRAM-SHA-256-PLUS, and a `y` flag (a client that thinks we cannot bind)
//!   is refused as a downgrade, as Postgres does,
//! * no authorization identity (`a=`) and no mandatory extensions (`m=`),
//! * the user name in client-first-message is ignored, because Postgres
//!   authenticates the user named in the startup packet (libpq sends `n=`).
//!
//! The proxy feeds the payload of SASLInitialResponse to
//! [`ScramServer::client_first`] and sends the result in
//! AuthenticationSASLContinue, then feeds SASLResponse to
//! [`ScramServer::client_final`] and sends the result in
//! AuthenticationSASLFinal. Any error, including a call out of order, ends
//! the exchange for good (a finished exchange keeps its result); a new login
//! attempt needs a new `ScramServer`.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};

use super::secret::ScramSecret;
use super::{constant_time_eq, hmac_sha256, sha256, AuthError};

/// The SASL mechanism name to advertise in AuthenticationSASL.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The channel-binding variant, offered to TLS clients.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// Largest client message accepted. Real ones are ~100 bytes; the cap bounds
/// the memory and hashing work an unauthenticated peer can cause.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Raw server nonce length, as in Postgres (`SCRAM_RAW_NONCE_LEN`).
const RAW_NONCE_LEN: usize = 18;

/// Server side of one SCRAM-SHA-256 exchange.
pub struct ScramServer {
    secret: ScramSecret,
    server_nonce: String,
    /// `tls-server-end-point` data of this connection, if it is TLS.
    channel_binding: Option<Vec<u8>>,
    state: State,
}

/// The only channel-binding type Postgres (and pgferry) supports.
const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

enum State {
    WaitingClientFirst,
    WaitingClientFinal(Pending),
    /// `client_key` is `Some` only after a verified proof; `None` means the
    /// exchange failed or was abandoned.
    Done {
        client_key: Option<[u8; 32]>,
    },
}

/// What client-final verification needs from the first round trip.
struct Pending {
    gs2_header: String,
    /// Whether `c=` must carry the channel-binding data after the header.
    bound: bool,
    client_first_bare: String,
    server_first: String,
    /// client nonce + server nonce, which client-final must echo.
    nonce: String,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The recovered ClientKey is a password equivalent: never print it.
        let state = match &self.state {
            State::WaitingClientFirst => "WaitingClientFirst",
            State::WaitingClientFinal(_) => "WaitingClientFinal",
            State::Done {
                client_key: Some(_),
            } => "Done(success)",
            State::Done { client_key: None } => "Done(failed)",
        };
        f.debug_struct("ScramServer")
            .field("secret", &self.secret)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Starts an exchange with a caller-chosen server nonce (tests use fixed
    /// ones). The nonce must be non-empty printable ASCII without `,`;
    /// otherwise `client_first` fails.
    pub fn new(secret: ScramSecret, server_nonce: String) -> ScramServer {
        ScramServer {
            secret,
            server_nonce,
            channel_binding: None,
            state: State::WaitingClientFirst,
        }
    }

    /// Enables SCRAM-SHA-256-PLUS with the connection's
    /// `tls-server-end-point` data (the hash of pgferry's certificate).
    /// Advertise [`SCRAM_SHA_256_PLUS`] exactly when this is `Some`.
    pub fn with_channel_binding(mut self, data: Option<Vec<u8>>) -> ScramServer {
        self.channel_binding = data;
        self
    }

    /// Starts an exchange with 18 random bytes, base64-encoded, as the server
    /// nonce (what Postgres does).
    pub fn with_random_nonce(secret: ScramSecret) -> ScramServer {
        let raw: [u8; RAW_NONCE_LEN] = rand::random();
        ScramServer::new(secret, STANDARD.encode(raw))
    }

    /// Handles SASLInitialResponse: the chosen `mechanism` and the
    /// client-first-message. Returns the server-first-message.
    pub fn client_first(&mut self, mechanism: &str, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        match self.state {
            State::WaitingClientFirst => {}
            State::WaitingClientFinal(_) => {
                self.state = State::Done { client_key: None };
                return Err(AuthError::OutOfOrder);
            }
            State::Done { .. } => return Err(AuthError::OutOfOrder),
        }
        // From here on any error leaves the exchange failed: a peer gets one
        // attempt per exchange.
        self.state = State::Done { client_key: None };

        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if self.channel_binding.is_some() => true,
            SCRAM_SHA_256_PLUS => return Err(AuthError::ChannelBindingNotSupported),
            _ => return Err(AuthError::UnsupportedMechanism),
        };
        // Guards against a misused `new`: with an empty server nonce a client
        // could pass the nonce check by echoing only its own nonce.
        if !is_valid_nonce(&self.server_nonce) {
            return Err(AuthError::Malformed(
                "server nonce must be non-empty printable ASCII without ','",
            ));
        }
        let first = parse_client_first(message_text(data)?)?;
        check_binding_flag(first.flag, plus, self.channel_binding.is_some())?;

        let nonce = format!("{}{}", first.client_nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.secret.salt),
            self.secret.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::WaitingClientFinal(Pending {
            gs2_header: first.gs2_header.to_owned(),
            bound: plus,
            client_first_bare: first.bare.to_owned(),
            server_first,
            nonce,
        });
        Ok(reply)
    }

    /// Handles SASLResponse: the client-final-message. Checks the
    /// channel-binding attribute, the nonce and the proof; on success returns
    /// the server-final-message (`v=<ServerSignature>`).
    pub fn client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let pending = match std::mem::replace(&mut self.state, State::Done { client_key: None }) {
            State::WaitingClientFinal(pending) => pending,
            State::WaitingClientFirst => return Err(AuthError::OutOfOrder),
            done @ State::Done { .. } => {
                // Keep a finished exchange's result; the call is still wrong.
                self.state = done;
                return Err(AuthError::OutOfOrder);
            }
        };
        let fin = parse_client_final(message_text(data)?)?;

        // c= is base64(gs2 header ++ binding data); without channel binding
        // just the header (Postgres compares the base64 text, e.g. "biws"
        // for "n,,").
        let mut expected = pending.gs2_header.as_bytes().to_vec();
        if pending.bound {
            expected.extend_from_slice(self.channel_binding.as_deref().unwrap_or_default());
        }
        if !constant_time_eq(
            fin.channel_binding.as_bytes(),
            STANDARD.encode(&expected).as_bytes(),
        ) {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if fin.nonce != pending.nonce {
            return Err(AuthError::NonceMismatch);
        }

        let auth_message: [&[u8]; 5] = [
            pending.client_first_bare.as_bytes(),
            b",",
            pending.server_first.as_bytes(),
            b",",
            fin.without_proof.as_bytes(),
        ];
        let client_signature = hmac_sha256(&self.secret.stored_key, &auth_message);
        let mut client_key = [0u8; 32];
        for ((k, p), s) in client_key.iter_mut().zip(fin.proof).zip(client_signature) {
            *k = p ^ s;
        }
        if !constant_time_eq(&sha256(&client_key), &self.secret.stored_key) {
            return Err(AuthError::InvalidProof);
        }

        let server_signature = hmac_sha256(&self.secret.server_key, &auth_message);
        self.state = State::Done {
            client_key: Some(client_key),
        };
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }

    /// The ClientKey recovered from a verified proof (ClientProof XOR
    /// ClientSignature). With it the proxy can answer the real server's SCRAM
    /// challenge on the client's behalf without knowing the password.
    /// `None` until `client_final` has succeeded.
    pub fn client_key(&self) -> Option<[u8; 32]> {
        match self.state {
            State::Done { client_key } => client_key,
            _ => None,
        }
    }
}

/// Size-checks a client message and views it as text. SCRAM messages are
/// UTF-8 (RFC 5802 section 7) and Postgres reads them as C strings, so NUL
/// is refused as well.
fn message_text(data: &[u8]) -> Result<&str, AuthError> {
    if data.len() > MAX_MESSAGE_LEN {
        return Err(AuthError::Malformed("message too long"));
    }
    if data.is_empty() {
        return Err(AuthError::Malformed("empty message"));
    }
    if data.contains(&0) {
        return Err(AuthError::Malformed("message contains NUL"));
    }
    std::str::from_utf8(data).map_err(|_| AuthError::Malformed("message is not valid UTF-8"))
}

/// The gs2 channel-binding flag of client-first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gs2Flag<'a> {
    /// The client does not support channel binding.
    N,
    /// The client supports it but thinks the server does not.
    Y,
    /// The client binds with this type.
    P(&'a str),
}

/// The rules of Postgres' read_client_first_message: the mechanism decides
/// whether binding is in use, and the flag must agree with it.
fn check_binding_flag(flag: Gs2Flag<'_>, plus: bool, can_bind: bool) -> Result<(), AuthError> {
    match flag {
        Gs2Flag::P(_) if !can_bind => Err(AuthError::ChannelBindingNotSupported),
        Gs2Flag::P(_) if !plus => Err(AuthError::Malformed(
            "SCRAM-SHA-256 selected, but the message includes channel binding data",
        )),
        Gs2Flag::P(kind) if kind != TLS_SERVER_END_POINT => Err(AuthError::Malformed(
            "unsupported channel binding type (only tls-server-end-point)",
        )),
        Gs2Flag::P(_) => Ok(()),
        Gs2Flag::N | Gs2Flag::Y if plus => Err(AuthError::Malformed(
            "SCRAM-SHA-256-PLUS selected, but the message has no channel binding data",
        )),
        // We offered SCRAM-SHA-256-PLUS, yet the client says we cannot bind:
        // someone in between may have removed it from the offer.
        Gs2Flag::Y if can_bind => Err(AuthError::ChannelBindingDowngrade),
        Gs2Flag::N | Gs2Flag::Y => Ok(()),
    }
}

struct ClientFirst<'a> {
    flag: Gs2Flag<'a>,
    gs2_header: &'a str,
    bare: &'a str,
    client_nonce: &'a str,
}

/// `gs2-cbind-flag "," [authzid] "," ["m=" ... ","] "n=" user "," "r=" nonce ["," extensions]`
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, AuthError> {
    let (flag, rest) = text
        .split_once(',')
        .ok_or(AuthError::Malformed("missing gs2 header"))?;
    let gs2_flag = match flag {
        "n" => Gs2Flag::N,
        "y" => Gs2Flag::Y,
        _ => match flag.strip_prefix("p=") {
            Some(kind) => Gs2Flag::P(kind),
            None => return Err(AuthError::Malformed("invalid channel-binding flag")),
        },
    };
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(AuthError::Malformed("missing gs2 header"))?;
    if authzid.starts_with("a=") {
        return Err(AuthError::Malformed(
            "authorization identity is not supported",
        ));
    }
    if !authzid.is_empty() {
        return Err(AuthError::Malformed("invalid gs2 header"));
    }
    // flag, ',', empty authzid, ',' - all ASCII, so this is a char boundary.
    let gs2_header = text
        .get(..flag.len().saturating_add(2))
        .ok_or(AuthError::Malformed("invalid gs2 header"))?;

    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(AuthError::Malformed(
            "mandatory extensions are not supported",
        ));
    }
    // The user name is ignored (see module docs); it only has to be there.
    if !first.starts_with("n=") {
        return Err(AuthError::Malformed("expected user name attribute"));
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(AuthError::Malformed("expected nonce attribute"))?;
    if !is_valid_nonce(client_nonce) {
        return Err(AuthError::Malformed("invalid client nonce"));
    }
    for ext in attrs {
        check_extension(ext)?;
    }
    Ok(ClientFirst {
        flag: gs2_flag,
        gs2_header,
        bare,
        client_nonce,
    })
}

struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    without_proof: &'a str,
    proof: [u8; 32],
}

/// `"c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64`
fn parse_client_final(text: &str) -> Result<ClientFinal<'_>, AuthError> {
    // The proof must be last, and no value can contain ',' (RFC 5802
    // value-char), so the last comma separates it from the signed part.
    let (without_proof, last) = text
        .rsplit_once(',')
        .ok_or(AuthError::Malformed("missing proof"))?;
    let proof_b64 = last
        .strip_prefix("p=")
        .ok_or(AuthError::Malformed("proof must be the last attribute"))?;

    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(AuthError::Malformed("expected channel-binding attribute"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(AuthError::Malformed("expected nonce attribute"))?;
    for ext in attrs {
        if ext.starts_with("p=") {
            return Err(AuthError::Malformed("proof must be the last attribute"));
        }
        check_extension(ext)?;
    }

    let proof = STANDARD
        .decode(proof_b64)
        .map_err(|_| AuthError::Malformed("proof is not valid base64"))?;
    let proof = <[u8; 32]>::try_from(proof.as_slice())
        .map_err(|_| AuthError::Malformed("proof must be 32 bytes"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

/// RFC 5802 leaves room for optional extensions (`ALPHA "=" value`) after the
/// nonce; they carry nothing we act on and are skipped, but must be well-formed.
fn check_extension(attr: &str) -> Result<(), AuthError> {
    let mut bytes = attr.bytes();
    match (bytes.next(), bytes.next()) {
        (Some(name), Some(b'=')) if name.is_ascii_alphabetic() => Ok(()),
        _ => Err(AuthError::Malformed("invalid attribute")),
    }
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E, at least one character.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use rand::Rng;
    use sha2::Sha256;

    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FIRST: &[u8] = b"n,,n=,r=CNONCE";
    const NONCE: &str = "CNONCESNONCE";

    fn rfc_secret() -> ScramSecret {
        ScramSecret::from_password("pencil", &STANDARD.decode(RFC_SALT).unwrap(), 4096)
    }

    /// ClientKey the way a client derives it from the password.
    fn client_key_for(password: &str, secret: &ScramSecret) -> [u8; 32] {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.as_bytes(),
            &secret.salt,
            secret.iterations,
            &mut salted,
        );
        hmac_sha256(&salted, &[b"Client Key"])
    }

    /// A minimal client: the proof for `auth_message`, base64.
    fn proof_for(client_key: &[u8; 32], auth_message: &str) -> String {
        let signature = hmac_sha256(&sha256(client_key), &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        STANDARD.encode(proof)
    }

    /// A server that has answered CLIENT_FIRST with server nonce "SNONCE".
    fn waiting_final(secret: &ScramSecret) -> (ScramServer, String) {
        let mut server = ScramServer::new(secret.clone(), "SNONCE".into());
        let server_first = server.client_first(SCRAM_SHA_256, CLIENT_FIRST).unwrap();
        (server, String::from_utf8(server_first).unwrap())
    }

    /// A correctly signed client-final whose unsigned part is `without_proof`.
    fn signed_final(secret: &ScramSecret, server_first: &str, without_proof: &str) -> String {
        let key = client_key_for("pencil", secret);
        let auth_message = format!("n=,r=CNONCE,{server_first},{without_proof}");
        format!("{without_proof},p={}", proof_for(&key, &auth_message))
    }

    #[test]
    fn rfc7677_vector() {
        let secret = rfc_secret();
        let mut server = ScramServer::new(secret.clone(), RFC_SERVER_NONCE.into());
        let client_first = format!("n,,n=user,r={RFC_CLIENT_NONCE}");
        let server_first = server
            .client_first(SCRAM_SHA_256, client_first.as_bytes())
            .unwrap();
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert!(server.client_key().is_none());
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let server_final = server.client_final(client_final).unwrap();
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(server.client_key(), Some(client_key_for("pencil", &secret)));
        assert_eq!(
            server.client_final(client_final),
            Err(AuthError::OutOfOrder)
        );
        assert!(
            server.client_key().is_some(),
            "a finished exchange keeps its result"
        );
    }

    fn round_trip(
        password: &str,
        client_password: &str,
        cb: ChannelBinding,
    ) -> Result<ScramServer, AuthError> {
        let secret = ScramSecret::generate(password);
        let mut server = ScramServer::with_random_nonce(secret);
        let mut client = ScramSha256::new(client_password.as_bytes(), cb);
        let server_first = server.client_first(SCRAM_SHA_256, client.message())?;
        client.update(&server_first).unwrap();
        let server_final = server.client_final(client.message())?;
        client
            .finish(&server_final)
            .expect("client must accept the server signature");
        Ok(server)
    }

    fn plus_round_trip(
        server_cb: Option<Vec<u8>>,
        mechanism: &str,
        cb: ChannelBinding,
    ) -> Result<ScramServer, AuthError> {
        let secret = ScramSecret::generate("pw");
        let mut server = ScramServer::with_random_nonce(secret).with_channel_binding(server_cb);
        let mut client = ScramSha256::new(b"pw", cb);
        let server_first = server.client_first(mechanism, client.message())?;
        client.update(&server_first).unwrap();
        let server_final = server.client_final(client.message())?;
        client.finish(&server_final).unwrap();
        Ok(server)
    }

    #[test]
    fn channel_binding() {
        let data = vec![7u8; 32];
        let tls = || Some(data.clone());
        let bind = || ChannelBinding::tls_server_end_point(data.clone());
        // The right data with the PLUS mechanism succeeds.
        let ok = plus_round_trip(tls(), SCRAM_SHA_256_PLUS, bind()).unwrap();
        assert!(ok.client_key().is_some());
        // Other data (another certificate, a man in the middle) fails.
        let other = ChannelBinding::tls_server_end_point(vec![8u8; 32]);
        assert_eq!(
            plus_round_trip(tls(), SCRAM_SHA_256_PLUS, other).unwrap_err(),
            AuthError::ChannelBindingMismatch
        );
        // A TLS client may still skip binding with "n", not claim "y".
        plus_round_trip(tls(), SCRAM_SHA_256, ChannelBinding::unsupported()).unwrap();
        assert_eq!(
            plus_round_trip(tls(), SCRAM_SHA_256, ChannelBinding::unrequested()).unwrap_err(),
            AuthError::ChannelBindingDowngrade
        );
        // p= needs the PLUS mechanism, and PLUS needs p=.
        assert!(matches!(
            plus_round_trip(tls(), SCRAM_SHA_256, bind()).unwrap_err(),
            AuthError::Malformed(_)
        ));
        assert!(matches!(
            plus_round_trip(tls(), SCRAM_SHA_256_PLUS, ChannelBinding::unsupported()).unwrap_err(),
            AuthError::Malformed(_)
        ));
        // Without TLS there is nothing to bind to.
        assert_eq!(
            plus_round_trip(None, SCRAM_SHA_256_PLUS, bind()).unwrap_err(),
            AuthError::ChannelBindingNotSupported
        );
        assert_eq!(
            plus_round_trip(None, SCRAM_SHA_256, bind()).unwrap_err(),
            AuthError::ChannelBindingNotSupported
        );
        plus_round_trip(None, SCRAM_SHA_256, ChannelBinding::unrequested()).unwrap();
    }

    #[test]
    fn postgres_protocol_client_round_trip() {
        for cb in [ChannelBinding::unsupported(), ChannelBinding::unrequested()] {
            let server = round_trip("s3cret pw", "s3cret pw", cb).unwrap();
            let expected = client_key_for("s3cret pw", &server.secret);
            assert_eq!(server.client_key(), Some(expected));
        }
        let err = round_trip("s3cret pw", "wrong", ChannelBinding::unsupported()).unwrap_err();
        assert_eq!(err, AuthError::InvalidProof);
    }

    #[test]
    fn failed_proof_is_final() {
        let secret = rfc_secret();
        let (mut server, _) = waiting_final(&secret);
        let bad = format!("c=biws,r={NONCE},p={}", STANDARD.encode([0u8; 32]));
        assert_eq!(
            server.client_final(bad.as_bytes()),
            Err(AuthError::InvalidProof)
        );
        assert_eq!(server.client_key(), None);
        assert_eq!(
            server.client_final(bad.as_bytes()),
            Err(AuthError::OutOfOrder)
        );
        assert_eq!(
            server.client_first(SCRAM_SHA_256, CLIENT_FIRST),
            Err(AuthError::OutOfOrder)
        );
        assert!(format!("{server:?}").contains("Done(failed)"));
    }

    #[test]
    fn mock_secret_always_fails_at_proof() {
        let mut server = ScramServer::with_random_nonce(ScramSecret::mock("nobody", &[1; 32]));
        let mut client = ScramSha256::new(b"", ChannelBinding::unsupported());
        let server_first = server
            .client_first(SCRAM_SHA_256, client.message())
            .unwrap();
        client.update(&server_first).unwrap();
        assert_eq!(
            server.client_final(client.message()),
            Err(AuthError::InvalidProof)
        );
    }

    #[test]
    fn out_of_order() {
        let secret = rfc_secret();
        let mut server = ScramServer::new(secret.clone(), "SNONCE".into());
        // client_final first: the exchange is over.
        assert_eq!(server.client_final(b"c=biws"), Err(AuthError::OutOfOrder));
        assert_eq!(
            server.client_first(SCRAM_SHA_256, CLIENT_FIRST),
            Err(AuthError::OutOfOrder)
        );
        // A second client-first mid-exchange aborts it too.
        let mut server = ScramServer::new(secret.clone(), "SNONCE".into());
        server.client_first(SCRAM_SHA_256, CLIENT_FIRST).unwrap();
        assert_eq!(
            server.client_first(SCRAM_SHA_256, CLIENT_FIRST),
            Err(AuthError::OutOfOrder)
        );
        let (_, server_first) = waiting_final(&secret);
        let good = signed_final(&secret, &server_first, &format!("c=biws,r={NONCE}"));
        assert_eq!(
            server.client_final(good.as_bytes()),
            Err(AuthError::OutOfOrder)
        );
    }

    #[test]
    fn extensions_are_skipped() {
        let secret = rfc_secret();
        let mut server = ScramServer::new(secret.clone(), "SNONCE".into());
        let server_first = server
            .client_first(SCRAM_SHA_256, b"y,,n=someone,r=CNONCE,x=1,Z=")
            .unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        let without_proof = format!("c=eSws,r={NONCE},q=ext");
        let key = client_key_for("pencil", &secret);
        let auth_message = format!("n=someone,r=CNONCE,x=1,Z=,{server_first},{without_proof}");
        let fin = format!("{without_proof},p={}", proof_for(&key, &auth_message));
        assert!(server.client_final(fin.as_bytes()).is_ok());
        assert_eq!(server.client_key(), Some(key));
    }

    #[test]
    fn client_first_errors() {
        let secret = rfc_secret();
        let first = |mech: &str, data: &[u8]| {
            ScramServer::new(secret.clone(), "SNONCE".into()).client_first(mech, data)
        };
        let malformed =
            |data: &[u8]| matches!(first(SCRAM_SHA_256, data), Err(AuthError::Malformed(_)));

        assert_eq!(
            first("MD5", CLIENT_FIRST),
            Err(AuthError::UnsupportedMechanism)
        );
        assert_eq!(
            first("", CLIENT_FIRST),
            Err(AuthError::UnsupportedMechanism)
        );
        assert_eq!(
            first(SCRAM_SHA_256_PLUS, CLIENT_FIRST),
            Err(AuthError::ChannelBindingNotSupported)
        );
        assert_eq!(
            first(SCRAM_SHA_256, b"p=tls-server-end-point,,n=,r=CNONCE"),
            Err(AuthError::ChannelBindingNotSupported)
        );
        let mut huge = CLIENT_FIRST.to_vec();
        huge.resize(MAX_MESSAGE_LEN + 1, b'A');
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"garbage",
            b"x,,n=,r=CNONCE",
            b"nn,,n=,r=CNONCE",
            b"n,a=admin,n=,r=CNONCE",
            b"n,junk,n=,r=CNONCE",
            b"n,,m=ext,n=,r=CNONCE",
            b"n,,r=CNONCE",
            b"n,,n=",
            b"n,,n=,",
            b"n,,n=,r=",
            b"n,,n=,x=CNONCE",
            b"n,,n=,r=CNO NCE",
            b"n,,n=,r=CNONCE\x7f",
            "n,,n=,r=CNÖNCE".as_bytes(),
            b"n,,n=,r=CNONCE,",
            b"n,,n=,r=CNONCE,x",
            b"n,,n=,r=CNONCE,1=2",
            b"n,,n=,r=CNONCE,xy=2",
            b"n,,n=,r=CNONCE\0",
            b"n,,n=\xff\xfe,r=CNONCE",
            &huge,
        ];
        for case in cases {
            assert!(
                malformed(case),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
        assert!(first(SCRAM_SHA_256, &huge[..MAX_MESSAGE_LEN]).is_ok());
        // An unusable injected server nonce is refused rather than weakening the check.
        for nonce in ["", "a,b", "a b"] {
            let mut server = ScramServer::new(secret.clone(), nonce.into());
            assert!(matches!(
                server.client_first(SCRAM_SHA_256, CLIENT_FIRST),
                Err(AuthError::Malformed(_))
            ));
        }
    }

    #[test]
    fn client_final_errors() {
        let secret = rfc_secret();
        let (_, server_first) = waiting_final(&secret);
        let final_with = |data: &[u8]| waiting_final(&secret).0.client_final(data);
        let good = signed_final(&secret, &server_first, &format!("c=biws,r={NONCE}"));
        assert!(final_with(good.as_bytes()).is_ok());

        let proof = good.rsplit_once(",p=").unwrap().1.to_owned();
        assert_eq!(
            final_with(
                signed_final(&secret, &server_first, &format!("c=eSws,r={NONCE}")).as_bytes()
            ),
            Err(AuthError::ChannelBindingMismatch)
        );
        assert_eq!(
            final_with(format!("c=biws,r=CNONCESNONCX,p={proof}").as_bytes()),
            Err(AuthError::NonceMismatch)
        );
        assert_eq!(
            final_with(format!("c=biws,r=CNONCE,p={proof}").as_bytes()),
            Err(AuthError::NonceMismatch)
        );
        // Correct proof bytes, but the signed text differs.
        assert_eq!(
            final_with(format!("c=biws,r={NONCE},x=1,p={proof}").as_bytes()),
            Err(AuthError::InvalidProof)
        );

        let mut huge = good.clone().into_bytes();
        huge.resize(MAX_MESSAGE_LEN + 1, b'A');
        let mut non_utf8 = good.clone().into_bytes();
        non_utf8[3] = 0xff;
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"garbage".to_vec(),
            b"p=".to_vec(),
            format!("p={proof}").into_bytes(),
            format!("c=biws,p={proof}").into_bytes(),
            format!("r={NONCE},c=biws,p={proof}").into_bytes(),
            format!("c=biws,r={NONCE}").into_bytes(),
            format!("c=biws,r={NONCE},p=").into_bytes(),
            format!("c=biws,r={NONCE},p={proof},x=1").into_bytes(),
            format!("c=biws,r={NONCE},p={proof},p={proof}").into_bytes(),
            format!("c=biws,r={NONCE},{proof}").into_bytes(),
            format!("c=biws,r={NONCE},p={}", &proof[..40]).into_bytes(),
            format!("c=biws,r={NONCE},p={}", STANDARD.encode([0u8; 31])).into_bytes(),
            format!("c=biws,r={NONCE},p={}", STANDARD.encode([0u8; 33])).into_bytes(),
            format!("c=biws,r={NONCE},p=!!!!").into_bytes(),
            format!("c=biws,r={NONCE},,p={proof}").into_bytes(),
            format!("c=biws,r={NONCE},7=x,p={proof}").into_bytes(),
            format!("c=biws,r={NONCE},p={proof}\0").into_bytes(),
            non_utf8,
            huge,
        ];
        for case in &cases {
            assert!(
                matches!(final_with(case), Err(AuthError::Malformed(_))),
                "{:?} gave {:?}",
                String::from_utf8_lossy(case),
                final_with(case)
            );
        }
    }

    /// Random bytes and random mutations of valid messages: errors are fine,
    /// panics are not.
    #[test]
    fn random_input_never_panics() {
        let secret = rfc_secret();
        let (_, server_first) = waiting_final(&secret);
        let good_final = signed_final(&secret, &server_first, &format!("c=biws,r={NONCE}"));
        let mut rng = rand::thread_rng();
        let mut accepted = 0;
        for i in 0..20_000 {
            let random: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
            let first = if i % 2 == 0 {
                random.clone()
            } else {
                mutate(&mut rng, CLIENT_FIRST)
            };
            let mut server = ScramServer::new(secret.clone(), "SNONCE".into());
            let _ = server.client_first(SCRAM_SHA_256, &first);
            let _ = server.client_final(&random);

            let (mut server, _) = waiting_final(&secret);
            let fin = if i % 2 == 0 {
                random
            } else {
                mutate(&mut rng, good_final.as_bytes())
            };
            if server.client_final(&fin).is_ok() {
                accepted += 1;
            }
        }
        // Only unmodified messages (a mutation can be a no-op) may pass.
        assert!(accepted < 20_000);
    }

    fn mutate(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        for _ in 0..rng.gen_range(1..4) {
            let pos = rng.gen_range(0..=out.len());
            match rng.gen_range(0..4) {
                0 => out.truncate(pos),
                1 => out.insert(
                    pos,
                    *b",=prc\0\xff".get(rng.gen_range(0..8)).unwrap_or(&b'x'),
                ),
                2 if pos < out.len() => out[pos] = rng.gen(),
                _ if pos < out.len() => {
                    out.remove(pos);
                }
                _ => {}
            }
        }
        out
    }
}
