//! Making certificates: a self-signed CA ([`Authority::create`]), leaves signed by it
//! ([`Authority::issue`]), and the three-certificate bundle of the tutorial ([`Bundle::generate`]).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use super::PkiError;
use super::cert::Certificate;
use super::key::{KeyType, PrivateKey};
use crate::names::DnsName;

/// The longest validity `--days` accepts (ten years).
pub const MAX_DAYS: u32 = 3650;

/// Certificates start five minutes in the past, so a cluster whose clock is slightly behind the
/// workstation's does not reject them as "not yet valid".
const BACKDATE: Duration = Duration::minutes(5);

/// Checks a `--days` value.
pub fn check_days(days: u32) -> Result<u32, PkiError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(PkiError::Days(days))
    }
}

/// What a leaf certificate is for; decides its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// A TLS server (EKU serverAuth): the target workload's host name.
    Server,
    /// A TLS client (EKU clientAuth): the identity the egress gateway presents.
    Client,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Usage::Server => "server",
            Usage::Client => "client",
        })
    }
}

/// A certificate with its private key.
#[derive(Debug)]
pub struct Issued {
    /// The certificate.
    pub cert: Certificate,
    /// Its private key.
    pub key: PrivateKey,
}

/// A CA able to sign leaves: its certificate, key and validity.
pub struct Authority {
    /// The CA certificate.
    pub cert: Certificate,
    /// The CA's private key.
    pub key: PrivateKey,
    issuer: Issuer<'static, rcgen::KeyPair>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// A random serial: 16 bytes with the top bit clear, so the DER INTEGER is positive and
/// exactly 128 bits wide at most (RFC 5280 §4.1.2.2 allows up to 20 octets).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| PkiError::Crypto(format!("no randomness from the OS: {e}")))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01 << 6; // never zero, and always 127 significant bits
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, days: u32) {
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Crypto(format!("cannot {what}: {e}"))
}

impl Authority {
    /// A fresh self-signed CA named `common_name`, valid for `days` from `now`, with a new key.
    pub fn create(
        common_name: &str,
        days: u32,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?);
        validity(&mut params, now, check_days(days)?);
        let signed = params
            .self_signed(key.pair())
            .map_err(rcgen_err("sign the CA certificate"))?;
        let cert = Certificate::from_der(signed.der().to_vec(), "the new CA")?;
        let issuer = Issuer::new(params, clone_pair(&key)?);
        Ok(Self {
            not_after: now + Duration::days(i64::from(days)),
            cert,
            key,
            issuer,
        })
    }

    /// Loads an existing CA. Refuses a certificate that is not a CA, a key that does not match it,
    /// and a CA that is not valid at `now`.
    pub fn load(
        cert_pem: &str,
        cert_origin: &str,
        key: PrivateKey,
        key_origin: &str,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let chain = Certificate::parse_chain(cert_pem, cert_origin)?;
        let cert = chain
            .into_iter()
            .next()
            .expect("parse_chain returns at least one");
        if !cert.is_ca() {
            return Err(PkiError::NotCa {
                origin: cert_origin.to_string(),
            });
        }
        if cert.public_key_info() != key.public_key_info() {
            return Err(PkiError::KeyMismatch {
                key: key_origin.to_string(),
                cert: cert_origin.to_string(),
            });
        }
        let x509 = cert.x509();
        let validity = x509.validity();
        let not_before = validity.not_before.to_datetime();
        let not_after = validity.not_after.to_datetime();
        if now < not_before || now > not_after {
            return Err(PkiError::CaNotValid {
                origin: cert_origin.to_string(),
                not_before: super::inspect::format_time(not_before),
                not_after: super::inspect::format_time(not_after),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert.der().into(), clone_pair(&key)?)
            .map_err(rcgen_err("read the CA certificate"))?;
        drop(x509);
        Ok(Self {
            cert,
            key,
            issuer,
            not_after,
        })
    }

    /// Signs a leaf for `name` with `key`. Its validity is `days` from `now`, cut at the CA's own
    /// expiry (a leaf cannot outlive its CA); [`Issued::cert`] shows the actual dates.
    pub fn issue(
        &self,
        usage: Usage,
        name: &DnsName,
        days: u32,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.subject_alt_names = vec![SanType::DnsName(
            name.as_str()
                .try_into()
                .map_err(rcgen_err("encode the SAN"))?,
        )];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        self.sign_leaf(params, name.as_str(), days, key, now)
    }

    /// Signs a successor of `like` (renewal, or the same leaf under a new CA): the same subject,
    /// DNS and IP SANs and extended key usages, a fresh random serial, validity `days` from
    /// `now` (cut at the CA's expiry), with `key` (the old key kept, or a new one).
    pub fn reissue(
        &self,
        like: &Certificate,
        days: u32,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let x = like.x509();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for attr in x.subject().iter_attributes() {
            let (Some(arcs), Ok(value)) = (attr.attr_type().iter(), attr.as_str()) else {
                continue;
            };
            let arcs: Vec<u64> = arcs.collect();
            params
                .distinguished_name
                .push(DnType::from_oid(&arcs), value);
        }
        if let Ok(Some(san)) = x.subject_alternative_name() {
            for name in &san.value.general_names {
                params.subject_alt_names.push(match name {
                    GeneralName::DNSName(d) => {
                        SanType::DnsName((*d).try_into().map_err(rcgen_err("encode the SAN"))?)
                    }
                    GeneralName::IPAddress([a, b, c, d]) => {
                        SanType::IpAddress(std::net::Ipv4Addr::new(*a, *b, *c, *d).into())
                    }
                    GeneralName::IPAddress(bytes) => match <[u8; 16]>::try_from(*bytes) {
                        Ok(v6) => SanType::IpAddress(std::net::Ipv6Addr::from(v6).into()),
                        Err(_) => continue,
                    },
                    _ => continue,
                });
            }
        }
        if let Ok(Some(eku)) = x.extended_key_usage() {
            let e = &eku.value;
            for (on, purpose) in [
                (e.server_auth, ExtendedKeyUsagePurpose::ServerAuth),
                (e.client_auth, ExtendedKeyUsagePurpose::ClientAuth),
            ] {
                if on {
                    params.extended_key_usages.push(purpose);
                }
            }
        }
        let origin = x.subject().to_string();
        drop(x);
        self.sign_leaf(params, &origin, days, key, now)
    }

    fn sign_leaf(
        &self,
        mut params: CertificateParams,
        origin: &str,
        days: u32,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        params.is_ca = IsCa::ExplicitNoCa;
        // RFC 5480: an ECDSA key signs and never encrypts, so keyEncipherment only for RSA keys.
        params.key_usages = if key.describe().starts_with("RSA") {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        validity(&mut params, now, check_days(days)?);
        if params.not_after > self.not_after {
            params.not_after = self.not_after;
        }
        let signed = params
            .signed_by(key.pair(), &self.issuer)
            .map_err(rcgen_err("sign the certificate"))?;
        Ok(Issued {
            cert: Certificate::from_der(signed.der().to_vec(), origin)?,
            key,
        })
    }
}

/// rcgen's `Issuer` owns its key; ours stays with the [`Authority`] for writing to disk.
fn clone_pair(key: &PrivateKey) -> Result<rcgen::KeyPair, PkiError> {
    rcgen::KeyPair::try_from(key.pair().serialized_der())
        .map_err(|e| PkiError::Crypto(format!("cannot copy the CA key: {e}")))
}

/// The inputs of `kubectl mtls-certs gen`.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    /// The target's host name (server certificate SAN).
    pub domain: DnsName,
    /// The client identity (client certificate SAN).
    pub client: DnsName,
    /// Validity of all three certificates.
    pub days: u32,
    /// Key algorithm of all three keys.
    pub key_type: KeyType,
    /// The CA's common name; `None` gives `<domain> Root CA`.
    pub ca_name: Option<String>,
}

/// A CA, a server certificate and a client certificate: everything stage 1 produces.
#[derive(Debug)]
pub struct Bundle {
    /// The CA that signed both leaves.
    pub ca: Authority,
    /// The server certificate for the domain.
    pub server: Issued,
    /// The client certificate for the client identity.
    pub client: Issued,
}

impl Bundle {
    /// Validates the request and generates the bundle. The three keys are generated in parallel
    /// (RSA key generation dominates the run time).
    pub fn generate(req: &BundleRequest, now: OffsetDateTime) -> Result<Self, PkiError> {
        check_days(req.days)?;
        if req.domain == req.client {
            return Err(PkiError::SameName(req.domain.to_string()));
        }
        let [ca_key, server_key, client_key] = generate_keys(req.key_type)?;
        let ca_name = req
            .ca_name
            .clone()
            .unwrap_or_else(|| format!("{} Root CA", req.domain));
        let ca = Authority::create(&ca_name, req.days, ca_key, now)?;
        let server = ca.issue(Usage::Server, &req.domain, req.days, server_key, now)?;
        let client = ca.issue(Usage::Client, &req.client, req.days, client_key, now)?;
        Ok(Self { ca, server, client })
    }
}

fn generate_keys(key_type: KeyType) -> Result<[PrivateKey; 3], PkiError> {
    if !key_type.is_rsa() {
        return Ok([
            PrivateKey::generate(key_type)?,
            PrivateKey::generate(key_type)?,
            PrivateKey::generate(key_type)?,
        ]);
    }
    std::thread::scope(|s| {
        let handles = [(); 3].map(|()| s.spawn(move || PrivateKey::generate(key_type)));
        let [a, b, c] = handles.map(|h| h.join().expect("key generation does not panic"));
        Ok([a?, b?, c?])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::oid_registry::{self, Oid};
    use x509_parser::prelude::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn bundle(key_type: KeyType) -> Bundle {
        Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse("httpbin.example.com").unwrap(),
                client: DnsName::parse("client.example.com").unwrap(),
                days: 30,
                key_type,
                ca_name: None,
            },
            now(),
        )
        .unwrap()
    }

    fn ext<'a>(c: &'a X509Certificate<'a>, oid: &Oid) -> &'a X509Extension<'a> {
        c.get_extension_unique(oid)
            .unwrap()
            .unwrap_or_else(|| panic!("missing {oid}"))
    }

    #[test]
    fn ca_has_the_extensions_a_ca_needs() {
        let b = bundle(KeyType::EcdsaP256);
        let ca = b.ca.cert.x509();
        assert_eq!(ca.version(), X509Version::V3);
        assert_eq!(ca.subject().to_string(), "CN=httpbin.example.com Root CA");
        let bc = ext(&ca, &oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS);
        assert!(bc.critical);
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert!(matches!(
            ext(&ca, &oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER).parsed_extension(),
            ParsedExtension::SubjectKeyIdentifier(_)
        ));
        assert!(b.ca.cert.is_self_signed());
    }

    #[test]
    fn leaves_carry_san_eku_aki_and_positive_random_serials() {
        for kt in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let b = bundle(kt);
            let ca = b.ca.cert.x509();
            let ski = match ext(&ca, &oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
                .parsed_extension()
            {
                ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
                _ => unreachable!(),
            };
            for (leaf, name, server) in [
                (&b.server, "httpbin.example.com", true),
                (&b.client, "client.example.com", false),
            ] {
                let c = leaf.cert.x509();
                assert_eq!(c.version(), X509Version::V3);
                let sans: Vec<String> = c
                    .subject_alternative_name()
                    .unwrap()
                    .unwrap()
                    .value
                    .general_names
                    .iter()
                    .map(|g| g.to_string())
                    .collect();
                assert_eq!(sans, [format!("DNSName({name})")]);
                let eku = c.extended_key_usage().unwrap().unwrap().value;
                assert_eq!((eku.server_auth, eku.client_auth), (server, !server));
                let ku = c.key_usage().unwrap().unwrap().value;
                assert!(ku.digital_signature());
                assert_eq!(ku.key_encipherment(), kt.is_rsa(), "{kt}");
                assert!(!ku.key_cert_sign());
                assert!(!c.basic_constraints().unwrap().unwrap().value.ca);
                match ext(&c, &oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
                    .parsed_extension()
                {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        assert_eq!(aki.key_identifier.as_ref().unwrap().0, ski.as_slice())
                    }
                    other => panic!("{other:?}"),
                }
                let serial = c.raw_serial();
                assert!(serial[0] & 0x80 == 0, "positive");
                assert!(serial.len() <= 17 && serial.iter().any(|b| *b != 0));
                assert!(leaf.cert.is_signed_by(&b.ca.cert));
            }
            assert_ne!(
                b.server.cert.x509().raw_serial(),
                b.client.cert.x509().raw_serial()
            );
            assert!(
                b.server
                    .key
                    .describe()
                    .starts_with(if kt.is_rsa() { "RSA" } else { "ECDSA" })
            );
        }
    }

    #[test]
    fn validity_window_is_backdated_and_bounded_by_days() {
        let t = now();
        let b = bundle(KeyType::EcdsaP256);
        let v = b.server.cert.x509().validity().clone();
        let nb = v.not_before.to_datetime();
        let na = v.not_after.to_datetime();
        assert!(nb <= t && nb >= t - Duration::minutes(6), "{nb} vs {t}");
        let len = na - t;
        assert!(
            len <= Duration::days(30) + Duration::minutes(1)
                && len >= Duration::days(30) - Duration::minutes(1)
        );
    }

    #[test]
    fn refuses_bad_days_and_same_names() {
        for d in [0, MAX_DAYS + 1, u32::MAX] {
            assert!(matches!(check_days(d), Err(PkiError::Days(_))));
        }
        let name = DnsName::parse("a.example.com").unwrap();
        let err = Bundle::generate(
            &BundleRequest {
                domain: name.clone(),
                client: name,
                days: 1,
                key_type: KeyType::EcdsaP256,
                ca_name: None,
            },
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::SameName(_)));
    }

    #[test]
    fn reissue_keeps_subject_sans_and_usage_with_a_fresh_serial_from_any_ca() {
        let b = bundle(KeyType::EcdsaP256);
        let other = Authority::create(
            "Next CA",
            10,
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            now(),
        )
        .unwrap();
        for (ca, leaf) in [(&b.ca, &b.server), (&other, &b.client)] {
            let key = PrivateKey::from_pem(&leaf.key.to_pem(), "k").unwrap();
            let renewed = ca.reissue(&leaf.cert, 20, key, now()).unwrap();
            let (old, new) = (leaf.cert.x509(), renewed.cert.x509());
            assert_eq!(old.subject(), new.subject());
            assert_eq!(leaf.cert.dns_sans(), renewed.cert.dns_sans());
            let eku = |c: &X509Certificate<'_>| {
                let e = c.extended_key_usage().unwrap().unwrap().value.clone();
                (e.server_auth, e.client_auth)
            };
            assert_eq!(eku(&old), eku(&new));
            assert_ne!(old.raw_serial(), new.raw_serial());
            assert_eq!(renewed.cert.public_key_info(), leaf.cert.public_key_info());
            assert!(renewed.cert.is_signed_by(&ca.cert));
            let days = (new.validity().not_after.to_datetime() - now()).whole_days();
            assert!((9..=20).contains(&days), "{days}");
        }
    }

    #[test]
    fn load_refuses_leaf_mismatched_key_and_expired_ca_and_clamps_leaves() {
        let b = bundle(KeyType::EcdsaP256);
        let ca_pem = b.ca.cert.to_pem();
        let reload = |key: &PrivateKey, at| {
            Authority::load(
                &ca_pem,
                "ca.crt",
                PrivateKey::from_pem(&key.to_pem(), "k").unwrap(),
                "ca.key",
                at,
            )
        };
        assert!(matches!(
            reload(&b.server.key, now()),
            Err(PkiError::KeyMismatch { .. })
        ));
        assert!(matches!(
            reload(&b.ca.key, now() + Duration::days(31)),
            Err(PkiError::CaNotValid { .. })
        ));
        assert!(matches!(
            Authority::load(
                &b.server.cert.to_pem(),
                "server.crt",
                PrivateKey::from_pem(&b.server.key.to_pem(), "k").unwrap(),
                "server.key",
                now()
            ),
            Err(PkiError::NotCa { .. })
        ));
        let ca = reload(&b.ca.key, now()).unwrap();
        let leaf = ca
            .issue(
                Usage::Client,
                &DnsName::parse("other.example.com").unwrap(),
                365,
                PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
                now(),
            )
            .unwrap();
        assert!(leaf.cert.is_signed_by(&b.ca.cert));
        assert_eq!(
            leaf.cert.x509().validity().not_after.timestamp(),
            b.ca.cert.x509().validity().not_after.timestamp(),
            "a leaf cannot outlive its CA"
        );
    }
}
