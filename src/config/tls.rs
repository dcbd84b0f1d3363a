//! The `[tls]` table: TLS towards clients and towards Postgres.
//!
//! Only the shape and the file checks live here; loading the PEM files into
//! rustls configs is `crate::tls`'s job (it can fail on a corrupt file, which
//! surfaces at startup or on reload).

use std::path::{Path, PathBuf};

use super::walk::{Keyword, Walker};

/// `[tls]`. Field docs give the TOML key's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `client_mode`: "prefer" when a certificate and key are configured, else "disable".
    pub client_mode: ClientTlsMode,
    /// `client_cert_file`: PEM certificate chain pgferry presents to clients.
    pub client_cert_file: Option<PathBuf>,
    /// `client_key_file`: PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// `client_ca_file`: PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// `client_verify`: "verify-ca" when `client_ca_file` is set, else "none".
    pub client_verify: ClientVerify,
    /// `server_mode`, default "disable".
    pub server_mode: ServerTlsMode,
    /// `server_ca_file`: PEM CA certificates for verify-ca / verify-full.
    pub server_ca_file: Option<PathBuf>,
    /// `server_cert_file`: PEM client certificate pgferry presents to Postgres.
    pub server_cert_file: Option<PathBuf>,
    /// `server_key_file`: PEM private key of `server_cert_file`.
    pub server_key_file: Option<PathBuf>,
}

/// Whether clients may or must use TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientTlsMode {
    /// SSLRequest is answered 'N'.
    #[default]
    Disable,
    /// TLS when the client asks (same as `Prefer`; both spellings as in PgBouncer).
    Allow,
    Prefer,
    /// Plaintext StartupMessages are refused with 28000.
    Require,
}

impl ClientTlsMode {
    pub fn enabled(self) -> bool {
        self != ClientTlsMode::Disable
    }
}

impl Keyword for ClientTlsMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("disable", ClientTlsMode::Disable),
        ("allow", ClientTlsMode::Allow),
        ("prefer", ClientTlsMode::Prefer),
        ("require", ClientTlsMode::Require),
    ];
}

/// How client certificates are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientVerify {
    /// No certificate required; one that is presented must chain to
    /// `client_ca_file` when that is set (hba `method = "cert"` needs one).
    #[default]
    None,
    /// A certificate chaining to `client_ca_file` is required.
    VerifyCa,
    /// As VerifyCa, and the certificate's CN must equal the user name.
    VerifyFull,
}

impl Keyword for ClientVerify {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("none", ClientVerify::None),
        ("verify-ca", ClientVerify::VerifyCa),
        ("verify-full", ClientVerify::VerifyFull),
    ];
}

/// TLS towards Postgres, named like libpq's sslmode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServerTlsMode {
    #[default]
    Disable,
    /// TLS if the server agrees, else plaintext.
    Prefer,
    /// TLS, any certificate (handshake signatures are still checked).
    Require,
    /// TLS, certificate chain checked against `server_ca_file`.
    VerifyCa,
    /// As VerifyCa, and the certificate must name the host from `hosts`.
    VerifyFull,
}

impl Keyword for ServerTlsMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("disable", ServerTlsMode::Disable),
        ("prefer", ServerTlsMode::Prefer),
        ("require", ServerTlsMode::Require),
        ("verify-ca", ServerTlsMode::VerifyCa),
        ("verify-full", ServerTlsMode::VerifyFull),
    ];
}

pub(super) fn tls(mut w: Walker<'_>) -> TlsConfig {
    let file = |w: &mut Walker<'_>, key: &'static str| {
        let path = w.string(key).map(PathBuf::from)?;
        match file_problem(&path) {
            Some(problem) => {
                w.report(key, problem);
                None
            }
            None => Some(path),
        }
    };
    // Whether the keys are there at all: a missing file is reported once, as such.
    let cert_given = w.peek("client_cert_file").is_some();
    let key_given = w.peek("client_key_file").is_some();
    let mode: Option<ClientTlsMode> = w.keyword("client_mode");
    let client_cert_file = file(&mut w, "client_cert_file");
    let client_key_file = file(&mut w, "client_key_file");
    let client_ca_file = file(&mut w, "client_ca_file");
    let verify: Option<ClientVerify> = w.keyword("client_verify");
    let server_mode = w.keyword("server_mode").unwrap_or_default();
    let server_ca_file = file(&mut w, "server_ca_file");
    let server_cert_file = file(&mut w, "server_cert_file");
    let server_key_file = file(&mut w, "server_key_file");

    let client_mode = mode.unwrap_or(if cert_given && key_given {
        ClientTlsMode::Prefer
    } else {
        ClientTlsMode::Disable
    });
    if client_mode.enabled() && !(cert_given && key_given) {
        w.report(
            "client_mode",
            "TLS for clients needs client_cert_file and client_key_file",
        );
    }
    if cert_given != key_given {
        w.report(
            "client_key_file",
            "client_cert_file and client_key_file go together",
        );
    }
    let client_verify = verify.unwrap_or(if client_ca_file.is_some() {
        ClientVerify::VerifyCa
    } else {
        ClientVerify::None
    });
    if client_verify != ClientVerify::None && client_ca_file.is_none() {
        w.report(
            "client_verify",
            "verifying client certificates needs client_ca_file",
        );
    }
    if matches!(
        server_mode,
        ServerTlsMode::VerifyCa | ServerTlsMode::VerifyFull
    ) && server_ca_file.is_none()
    {
        w.report(
            "server_mode",
            "verify-ca and verify-full need server_ca_file",
        );
    }
    if server_cert_file.is_some() != server_key_file.is_some() {
        w.report(
            "server_key_file",
            "server_cert_file and server_key_file go together",
        );
    }
    w.finish();
    TlsConfig {
        client_mode,
        client_cert_file,
        client_key_file,
        client_ca_file,
        client_verify,
        server_mode,
        server_ca_file,
        server_cert_file,
        server_key_file,
    }
}

fn file_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some(format!("{} is not a file", path.display())),
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ClientTlsMode, Config, ConfigError, ServerTlsMode};

    const BASE: &str = "[[users]]\nname = \"app\"\n[databases.app]\nhosts = [\"127.0.0.1\"]\n";

    fn problems(extra: &str) -> Vec<String> {
        match Config::parse(&format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.to_string()).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_follow_the_files() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.tls.client_mode, ClientTlsMode::Disable);
        assert_eq!(c.tls.server_mode, ServerTlsMode::Disable);
        let file = std::env::current_exe().unwrap();
        let f = file.display();
        let c = Config::parse(&format!(
            "{BASE}[tls]\nclient_cert_file = \"{f}\"\nclient_key_file = \"{f}\"\n"
        ))
        .unwrap();
        assert_eq!(c.tls.client_mode, ClientTlsMode::Prefer);
    }

    #[test]
    fn problems_are_reported_with_their_keys() {
        let p = problems("[tls]\nclient_mode = \"require\"\n");
        assert!(
            p[0].starts_with("tls.client_mode: TLS for clients needs"),
            "{p:?}"
        );
        let p = problems("[tls]\nclient_cert_file = \"/nonexistent/x.crt\"\n");
        assert!(
            p.iter()
                .any(|p| p.starts_with("tls.client_cert_file: cannot read /nonexistent/x.crt")),
            "{p:?}"
        );
        let p = problems("[tls]\nclient_verify = \"verify-full\"\n");
        assert!(p[0].starts_with("tls.client_verify:"), "{p:?}");
        let p = problems("[tls]\nserver_mode = \"verify-full\"\n");
        assert!(p[0].starts_with("tls.server_mode:"), "{p:?}");
        let p = problems("[tls]\nserver_mode = \"sometimes\"\n");
        assert!(p[0].contains("expected one of"), "{p:?}");
        let p = problems(
            "[[hba]]\ndatabase = \"all\"\nuser = \"all\"\naddress = \"10.0.0.0/33\"\nmethod = \"cert\"\n",
        );
        assert!(p.iter().any(|p| p.starts_with("hba[0].address:")), "{p:?}");
        assert!(p.iter().any(|p| p.starts_with("hba[0].method:")), "{p:?}");
        let p = problems("[[hba]]\ndatabase = \"all\"\nmethod = \"trust\"\n");
        assert!(
            p.iter().any(|p| p == "hba[0].user: missing required key"),
            "{p:?}"
        );
    }
}
