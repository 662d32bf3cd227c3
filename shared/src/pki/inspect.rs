//! What `inspect` shows of a certificate: a [`CertSummary`] with the fields people check by hand
//! with `openssl x509 -text` (subject, SANs, issuer, serial, validity, key, usages, fingerprint).

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;
use serde::Serialize;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::cert::Certificate;

/// The facts about one certificate, as `inspect` prints them (and `-o json` serializes them).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    /// Subject DN, e.g. `CN=httpbin.example.com`.
    pub subject: String,
    /// Subject alternative names, e.g. `DNS:httpbin.example.com`.
    pub sans: Vec<String>,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number in hex, colon-separated.
    pub serial: String,
    /// X.509 version (3 for anything we make).
    pub version: u32,
    /// Start of validity (RFC 3339, UTC).
    pub not_before: String,
    /// End of validity (RFC 3339, UTC).
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    /// Key algorithm and size, e.g. `ECDSA P-256`, `RSA 2048`.
    pub key: String,
    /// Whether this is a CA certificate.
    pub is_ca: bool,
    /// Key usages, e.g. `digitalSignature`.
    pub key_usage: Vec<String>,
    /// Extended key usages, e.g. `serverAuth`.
    pub extended_key_usage: Vec<String>,
    /// SHA-256 of the DER certificate, lowercase hex (the XFCC `Hash=` value).
    pub sha256: String,
    #[serde(skip)]
    expires: OffsetDateTime,
}

impl CertSummary {
    /// How close it is to its end as of `now`, with the `--expiry-warning` threshold `warning`.
    pub fn expiry(&self, now: OffsetDateTime, warning: ::time::Duration) -> super::Expiry {
        super::Expiry::of(self.expires, now, warning)
    }

    /// The days-left cell as of `now`: `12`, or `EXPIRED 3 days ago`.
    pub fn days_left_cell(&self, now: OffsetDateTime) -> String {
        super::describe_days_left(self.expires, now)
    }
}

/// Formats a time as RFC 3339 in UTC, second precision.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Summarizes `cert` as of `now`.
pub fn summarize(cert: &Certificate, now: OffsetDateTime) -> CertSummary {
    let x = cert.x509();
    let not_before = x.validity().not_before.to_datetime();
    let not_after = x.validity().not_after.to_datetime();
    let sans = x
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.iter().map(general_name).collect())
        .unwrap_or_default();
    let key_usage = x
        .key_usage()
        .ok()
        .flatten()
        .map(|ku| {
            let ku = ku.value;
            [
                (ku.digital_signature(), "digitalSignature"),
                (ku.non_repudiation(), "nonRepudiation"),
                (ku.key_encipherment(), "keyEncipherment"),
                (ku.data_encipherment(), "dataEncipherment"),
                (ku.key_agreement(), "keyAgreement"),
                (ku.key_cert_sign(), "keyCertSign"),
                (ku.crl_sign(), "cRLSign"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_string())
            .collect()
        })
        .unwrap_or_default();
    let extended_key_usage = x
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|eku| {
            let e = eku.value;
            let mut v: Vec<String> = [
                (e.any, "any"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_string())
            .collect();
            v.extend(e.other.iter().map(|o| o.to_id_string()));
            v
        })
        .unwrap_or_default();
    CertSummary {
        subject: x.subject().to_string(),
        sans,
        issuer: x.issuer().to_string(),
        serial: x.raw_serial_as_string(),
        version: x.version().0 + 1,
        not_before: format_time(not_before),
        not_after: format_time(not_after),
        days_left: super::expiry::days_left(not_after, now),
        key: describe_spki(x.public_key().raw),
        is_ca: x.is_ca(),
        key_usage,
        extended_key_usage,
        sha256: sha256_hex(cert.der()),
        expires: not_after,
    }
}

fn general_name(g: &GeneralName<'_>) -> String {
    match g {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::IPAddress(ip) => match ip.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap())
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap())
            ),
            _ => "IP:?".into(),
        },
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        other => other.to_string(),
    }
}

/// Describes a DER `SubjectPublicKeyInfo`: `ECDSA P-256`, `ECDSA P-384`, `RSA 2048`, `Ed25519`.
pub fn describe_spki(spki_der: &[u8]) -> String {
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
        return "unknown".into();
    };
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve.map(|o| o.to_id_string()).as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA ({other})"),
                None => "ECDSA".into(),
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "Ed25519".into(),
        _ => format!("unknown ({})", spki.algorithm.algorithm.to_id_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::DnsName;
    use crate::pki::{Bundle, BundleRequest, KeyType};

    #[test]
    fn summary_reports_what_openssl_would() {
        let now = OffsetDateTime::now_utc();
        let b = Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse("httpbin.example.com").unwrap(),
                client: DnsName::parse("client.example.com").unwrap(),
                days: 10,
                key_type: KeyType::EcdsaP256,
                ca_name: Some("Partner CA".into()),
            },
            now,
        )
        .unwrap();
        let s = summarize(&b.server.cert, now);
        assert_eq!(s.subject, "CN=httpbin.example.com");
        assert_eq!(s.issuer, "CN=Partner CA");
        assert_eq!(s.sans, ["DNS:httpbin.example.com"]);
        assert_eq!(s.version, 3);
        assert!((9..=10).contains(&s.days_left), "{}", s.days_left);
        assert_eq!(s.key, "ECDSA P-256");
        assert_eq!(s.key_usage, ["digitalSignature"]);
        assert_eq!(s.extended_key_usage, ["serverAuth"]);
        assert!(!s.is_ca);
        assert_eq!(s.sha256.len(), 64);
        assert_eq!(s.sha256, sha256_hex(b.server.cert.der()));
        let ca = summarize(&b.ca.cert, now);
        assert!(ca.is_ca);
        assert_eq!(ca.key_usage, ["keyCertSign", "cRLSign"]);
        // 10 days later the server certificate has expired.
        let later = summarize(&b.server.cert, now + ::time::Duration::days(11));
        assert!(later.days_left < 0);
    }
}
