//! `[[hba]]` access rules in the spirit of pg_hba.conf: the first rule whose
//! database, user, address and TLS condition match a connection decides its
//! authentication method; no matching rule means the connection is refused.

use std::net::IpAddr;

use super::walk::{Keyword, Walker};

/// One `[[hba]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HbaRule {
    /// `database`: a name or "all".
    pub database: HbaName,
    /// `user`: a name or "all".
    pub user: HbaName,
    /// `address`: a CIDR block or "all".
    pub address: HbaAddress,
    /// `tls`: `Some(true)` only TLS connections (hostssl), `Some(false)` only
    /// plaintext ones (hostnossl), `None` both.
    pub tls: Option<bool>,
    pub method: HbaMethod,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HbaName {
    All,
    Name(String),
}

impl HbaName {
    fn matches(&self, name: &str) -> bool {
        match self {
            HbaName::All => true,
            HbaName::Name(n) => n == name,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HbaAddress {
    All,
    /// A network, with the host bits of `addr` cleared.
    Cidr {
        addr: IpAddr,
        prefix: u8,
    },
}

impl HbaAddress {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, prefix) = match self {
            HbaAddress::All => return true,
            HbaAddress::Cidr { addr, prefix } => (*addr, *prefix),
        };
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask_v4(u32::from(a), prefix) == mask_v4(u32::from(n), prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                mask_v6(u128::from(a), prefix) == mask_v6(u128::from(n), prefix)
            }
            _ => false,
        }
    }
}

fn mask_v4(a: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(a: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(prefix)))
    }
}

/// How a matched connection authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HbaMethod {
    ScramSha256,
    Md5,
    /// Cleartext password (only sensible over TLS).
    Password,
    Trust,
    Reject,
    /// A verified client certificate whose CN is the user name.
    Cert,
}

impl Keyword for HbaMethod {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("scram-sha-256", HbaMethod::ScramSha256),
        ("md5", HbaMethod::Md5),
        ("password", HbaMethod::Password),
        ("trust", HbaMethod::Trust),
        ("reject", HbaMethod::Reject),
        ("cert", HbaMethod::Cert),
    ];
}

/// What a rule is matched against.
#[derive(Clone, Copy, Debug)]
pub struct HbaRequest<'a> {
    pub database: &'a str,
    pub user: &'a str,
    pub address: IpAddr,
    pub tls: bool,
}

/// The method of the first rule matching `req`, or `None`: refuse.
pub fn hba_lookup(rules: &[HbaRule], req: &HbaRequest<'_>) -> Option<HbaMethod> {
    rules
        .iter()
        .find(|r| {
            r.database.matches(req.database)
                && r.user.matches(req.user)
                && r.address.contains(req.address)
                && r.tls.is_none_or(|t| t == req.tls)
        })
        .map(|r| r.method)
}

/// `can_verify_certs`: whether `[tls] client_ca_file` is set, which
/// `method = "cert"` needs.
pub(super) fn rules(tables: Vec<Walker<'_>>, can_verify_certs: bool) -> Vec<HbaRule> {
    let mut out = Vec::with_capacity(tables.len());
    for mut w in tables {
        let present = ["database", "user", "address", "method"].map(|k| w.require(k));
        let database = w.parsed("database", name);
        let user = w.parsed("user", name);
        let address = w.parsed("address", parse_address);
        let tls = w.bool("tls");
        let method = w.keyword("method");
        if method == Some(HbaMethod::Cert) && !can_verify_certs {
            w.report(
                "method",
                "\"cert\" needs [tls] client_ca_file to verify client certificates",
            );
        }
        w.finish();
        if let (true, Some(database), Some(user), Some(address), Some(method)) =
            (present.iter().all(|p| *p), database, user, address, method)
        {
            out.push(HbaRule {
                database,
                user,
                address,
                tls,
                method,
            });
        }
    }
    out
}

fn name(s: &str) -> Result<HbaName, String> {
    match s {
        "" => Err("must not be empty (use \"all\" for any)".to_owned()),
        "all" => Ok(HbaName::All),
        n => Ok(HbaName::Name(n.to_owned())),
    }
}

/// "all", or an address with a prefix length: "10.0.0.0/8", "::1/128".
pub fn parse_address(s: &str) -> Result<HbaAddress, String> {
    if s == "all" {
        return Ok(HbaAddress::All);
    }
    let bad = || format!("invalid address {s:?} (use a CIDR block like \"10.0.0.0/8\" or \"all\")");
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("prefix length {prefix} is larger than {max}"));
    }
    let addr = match ip {
        IpAddr::V4(a) => IpAddr::V4(mask_v4(u32::from(a), prefix).into()),
        IpAddr::V6(a) => IpAddr::V6(mask_v6(u128::from(a), prefix).into()),
    };
    Ok(HbaAddress::Cidr { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(db: &str, user: &str, addr: &str, tls: Option<bool>, m: HbaMethod) -> HbaRule {
        HbaRule {
            database: name(db).unwrap(),
            user: name(user).unwrap(),
            address: parse_address(addr).unwrap(),
            tls,
            method: m,
        }
    }

    fn req<'a>(db: &'a str, user: &'a str, ip: &str, tls: bool) -> HbaRequest<'a> {
        HbaRequest {
            database: db,
            user,
            address: ip.parse().unwrap(),
            tls,
        }
    }

    #[test]
    fn cidr_v4() {
        let a = parse_address("10.1.2.3/8").unwrap();
        assert_eq!(
            a,
            HbaAddress::Cidr {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        );
        assert!(a.contains("10.255.0.1".parse().unwrap()));
        assert!(!a.contains("11.0.0.1".parse().unwrap()));
        assert!(a.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
        let host = parse_address("127.0.0.1/32").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let any = parse_address("0.0.0.0/0").unwrap();
        assert!(any.contains("203.0.113.9".parse().unwrap()));
        assert!(!any.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn cidr_v6() {
        let a = parse_address("2001:db8::/32").unwrap();
        assert!(a.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!a.contains("2001:db9::1".parse().unwrap()));
        assert!(!a.contains("10.0.0.1".parse().unwrap()));
        let lo = parse_address("::1/128").unwrap();
        assert!(lo.contains("::1".parse().unwrap()));
        assert!(!lo.contains("::2".parse().unwrap()));
        assert!(parse_address("::/0")
            .unwrap()
            .contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn bad_addresses() {
        for s in [
            "",
            "10.0.0.0",
            "10.0.0.0/33",
            "::1/129",
            "host/8",
            "10.0.0.0/x",
        ] {
            assert!(parse_address(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn first_match_wins() {
        let rules = vec![
            rule("all", "mallory", "all", None, HbaMethod::Reject),
            rule("app", "all", "127.0.0.1/32", Some(true), HbaMethod::Cert),
            rule("app", "all", "127.0.0.0/8", Some(false), HbaMethod::Md5),
            rule("all", "all", "::1/128", None, HbaMethod::Trust),
            rule("all", "all", "10.0.0.0/8", None, HbaMethod::ScramSha256),
        ];
        let m = |r: HbaRequest<'_>| hba_lookup(&rules, &r);
        assert_eq!(
            m(req("app", "mallory", "127.0.0.1", true)),
            Some(HbaMethod::Reject)
        );
        assert_eq!(
            m(req("app", "bob", "127.0.0.1", true)),
            Some(HbaMethod::Cert)
        );
        assert_eq!(
            m(req("app", "bob", "127.0.0.1", false)),
            Some(HbaMethod::Md5)
        );
        // tls = false rules skip TLS connections; nothing else matches.
        assert_eq!(m(req("app", "bob", "127.0.0.5", true)), None);
        assert_eq!(m(req("other", "bob", "::1", true)), Some(HbaMethod::Trust));
        assert_eq!(
            m(req("other", "bob", "10.3.3.3", false)),
            Some(HbaMethod::ScramSha256)
        );
        assert_eq!(m(req("other", "bob", "192.168.1.1", false)), None);
        assert_eq!(hba_lookup(&[], &req("app", "bob", "10.0.0.1", false)), None);
    }
}
