//! The two facts pgferry reads from a DER certificate, with a minimal,
//! bounds-checked DER walker (no full X.509 parser needed):
//!
//! * the hash for `tls-server-end-point` channel binding (RFC 5929 section
//!   4.1: the signature algorithm's hash, but SHA-256 for MD5 and SHA-1),
//! * the subject's common name, for `cert` authentication.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xA0;

/// One TLV: its tag, its contents, and the bytes after it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, body, rest) if t == tag => Some((body, rest)),
        _ => None,
    }
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
fn parts(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, _) = expect(cert, SEQUENCE)?;
    let (tbs, rest) = expect(body, SEQUENCE)?;
    let (alg, _) = expect(rest, SEQUENCE)?;
    let (oid, _) = expect(alg, OID)?;
    Some((tbs, oid))
}

/// sha*WithRSAEncryption: 1.2.840.113549.1.1.x
const RSA_PREFIX: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
/// ecdsa-with-SHA*: 1.2.840.10045.4.3.x
const ECDSA_PREFIX: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03];
/// ecdsa-with-SHA1: 1.2.840.10045.4.1
const ECDSA_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01];

/// The `tls-server-end-point` channel-binding data of a certificate, or
/// `None` when its signature algorithm has no single hash (Ed25519, RSA-PSS):
/// Postgres cannot bind to such a certificate either.
pub fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, oid) = parts(cert)?;
    let sha256 = || Sha256::digest(cert).to_vec();
    if oid == ECDSA_SHA1 {
        return Some(sha256());
    }
    if let Some(x) = oid.strip_prefix(RSA_PREFIX) {
        return match x {
            [4] | [5] | [11] => Some(sha256()),
            [12] => Some(Sha384::digest(cert).to_vec()),
            [13] => Some(Sha512::digest(cert).to_vec()),
            [14] => Some(Sha224::digest(cert).to_vec()),
            _ => None,
        };
    }
    if let Some(x) = oid.strip_prefix(ECDSA_PREFIX) {
        return match x {
            [1] => Some(Sha224::digest(cert).to_vec()),
            [2] => Some(sha256()),
            [3] => Some(Sha384::digest(cert).to_vec()),
            [4] => Some(Sha512::digest(cert).to_vec()),
            _ => None,
        };
    }
    None
}

/// id-at-commonName: 2.5.4.3
const CN: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's first common name, if it is a string.
pub fn subject_cn(cert: &[u8]) -> Option<String> {
    let (tbs, _) = parts(cert)?;
    let mut rest = tbs;
    if tbs.first() == Some(&CONTEXT_0) {
        rest = tlv(rest)?.2; // version
    }
    rest = tlv(rest)?.2; // serialNumber
    rest = expect(rest, SEQUENCE)?.1; // signature
    rest = expect(rest, SEQUENCE)?.1; // issuer
    rest = expect(rest, SEQUENCE)?.1; // validity
    let (mut rdns, _) = expect(rest, SEQUENCE)?; // subject
    while !rdns.is_empty() {
        let (set, next) = expect(rdns, SET)?;
        rdns = next;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, next) = expect(atvs, SEQUENCE)?;
            atvs = next;
            let (oid, value) = expect(atv, OID)?;
            if oid == CN {
                let (_, text, _) = tlv(value)?;
                return std::str::from_utf8(text).ok().map(str::to_owned);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "pgferry tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn end_point_hash_follows_the_signature_hash() {
        let p256 = cert(&rcgen::PKCS_ECDSA_P256_SHA256, "a");
        assert_eq!(end_point_hash(&p256), Some(Sha256::digest(&p256).to_vec()));
        let p384 = cert(&rcgen::PKCS_ECDSA_P384_SHA384, "a");
        assert_eq!(end_point_hash(&p384), Some(Sha384::digest(&p384).to_vec()));
        // Ed25519 signs without a separate hash: no channel binding.
        assert_eq!(end_point_hash(&cert(&rcgen::PKCS_ED25519, "a")), None);
    }

    #[test]
    fn subject_cn_is_found_among_other_attributes() {
        let der = cert(&rcgen::PKCS_ECDSA_P256_SHA256, "app user");
        assert_eq!(subject_cn(&der).as_deref(), Some("app user"));
        // A truncated certificate is refused, not misread.
        assert_eq!(subject_cn(&der[..der.len() / 2]), None);
    }

    #[test]
    fn garbage_is_none() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x05, 1],
        ] {
            assert_eq!(end_point_hash(input), None);
            assert_eq!(subject_cn(input), None);
        }
    }
}
