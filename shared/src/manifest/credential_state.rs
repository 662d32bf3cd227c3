//! What a credential Secret on a cluster holds now, for the commands that watch certificates run
//! out (`kubectl mtls-certs inspect --managed`, `kubectl mtls-egress status`, and `doctor`'s
//! expiry rule through the same [`Expiry`]): the side it serves, the leaf's hosts, subject, issuer
//! and end of validity, and each CA its trust bundle holds (more than one during a CA rotation).
//!
//! Whether a bundle holds the CA of the certificate it must accept is a question across two
//! clusters (the target's `cacert` must hold the CLIENT's CA); `doctor` answers it when it reads
//! both sides.

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::secret::{Layout, Side};
use super::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use crate::pki::{Certificate, Expiry, days_left, describe_days_left, sha256_hex};

/// The label selector of every Secret we manage (credential Secrets carry it with a component
/// label saying their side).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER}")
}

/// One certificate of a credential: the leaf, or a CA of the trust bundle.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertState {
    /// Subject DN.
    pub subject: String,
    /// End of validity (RFC 3339, UTC).
    pub not_after: String,
    /// Whole days left as of reading ([`days_left`]; negative once expired).
    pub days_left: i64,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
    #[serde(skip)]
    expires: OffsetDateTime,
}

impl CertState {
    fn of(cert: &Certificate, now: OffsetDateTime) -> Self {
        let x = cert.x509();
        let expires = x.validity().not_after.to_datetime();
        Self {
            subject: x.subject().to_string(),
            not_after: crate::pki::format_time(expires),
            days_left: days_left(expires, now),
            sha256: sha256_hex(cert.der()),
            expires,
        }
    }

    /// The first 12 hex digits of the fingerprint, as tables show it: `sha256:1a2b3c4d5e6f`.
    pub fn short_fingerprint(&self) -> String {
        format!("sha256:{}", &self.sha256[..12.min(self.sha256.len())])
    }

    /// How close it is to its end, as of `now`, with the `--expiry-warning` threshold `warning`.
    pub fn expiry(&self, now: OffsetDateTime, warning: Duration) -> Expiry {
        Expiry::of(self.expires, now, warning)
    }

    /// The days-left cell as of `now`: `12`, or `EXPIRED 3 days ago`.
    pub fn days_left_cell(&self, now: OffsetDateTime) -> String {
        describe_days_left(self.expires, now)
    }
}

/// What one credential Secret holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialState {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The side it serves: its component label, else its layout (`cert` → target, `tls.crt` →
    /// client); `None` when it has neither.
    pub side: Option<Side>,
    /// The leaf's DNS names (for a target credential, the hosts it serves).
    pub hosts: Vec<String>,
    /// The leaf certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertState>,
    /// Who signed the leaf (its issuer DN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The data key of the trust bundle: `cacert` (target) or `ca.crt` (client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_bundle_key: Option<String>,
    /// Each CA certificate of the trust bundle, in file order.
    pub trust_bundle: Vec<CertState>,
    /// Why (part of) the Secret could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A certificate in use that runs out within the threshold, or has run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryNotice {
    /// Past its end (an error: the peer refuses it) rather than soon.
    pub expired: bool,
    /// One line: `secret NS/NAME: certificate CN=… (hosts …) expires in 5 days (2026-…)`.
    pub message: String,
}

impl CredentialState {
    /// Reads `secret` as of `now`. Never fails: what cannot be read is said in [`Self::error`].
    pub fn read(secret: &Secret, now: OffsetDateTime) -> Self {
        let meta = &secret.metadata;
        let labels = meta.labels.as_ref();
        let data = secret.data.clone().unwrap_or_default();
        let layout = Layout::detect(data.keys().map(String::as_str));
        let side = match labels
            .and_then(|l| l.get(COMPONENT_LABEL))
            .map(String::as_str)
        {
            Some(c) if c == Side::Target.component() => Some(Side::Target),
            Some(c) if c == Side::Client.component() => Some(Side::Client),
            _ => layout.map(|l| match l {
                Layout::Generic => Side::Target,
                Layout::Tls => Side::Client,
            }),
        };
        let mut state = Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            side,
            hosts: Vec::new(),
            certificate: None,
            issuer: None,
            trust_bundle_key: None,
            trust_bundle: Vec::new(),
            error: None,
        };
        let Some(layout) = layout else {
            state.error = Some("holds neither cert nor tls.crt".into());
            return state;
        };
        let [cert_key, _, ca_key] = layout.keys();
        let parse = |key: &str| {
            let text = data.get(key).map(|b| String::from_utf8_lossy(&b.0));
            match text {
                Some(text) => Certificate::parse_chain(&text, key).map_err(|e| e.to_string()),
                None => Err(format!("no {key}")),
            }
        };
        let mut errors = Vec::new();
        match parse(cert_key) {
            Ok(chain) => {
                let leaf = &chain[0];
                state.hosts = leaf.dns_sans();
                state.issuer = Some(leaf.x509().issuer().to_string());
                state.certificate = Some(CertState::of(leaf, now));
            }
            Err(e) => errors.push(e),
        }
        state.trust_bundle_key = Some(ca_key.to_string());
        match parse(ca_key) {
            Ok(cas) => state.trust_bundle = cas.iter().map(|c| CertState::of(c, now)).collect(),
            Err(e) => errors.push(e),
        }
        if !errors.is_empty() {
            state.error = Some(errors.join("; "));
        }
        state
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The certificates of this Secret that are expired or run out within `warning` as of `now`:
    /// the leaf (peers refuse it) and each CA of the trust bundle (this gateway then refuses
    /// every peer that CA signed).
    pub fn expiry_notices(&self, now: OffsetDateTime, warning: Duration) -> Vec<ExpiryNotice> {
        let leaf = self.certificate.iter().map(|c| {
            let hosts = match self.hosts.as_slice() {
                [] => String::new(),
                hosts => format!(" for {}", hosts.join(", ")),
            };
            (c, format!("certificate {}{hosts}", c.subject))
        });
        let key = self.trust_bundle_key.as_deref().unwrap_or("trust bundle");
        let cas = self.trust_bundle.iter().map(|c| {
            (
                c,
                format!("CA {} ({}) in {key}", c.subject, c.short_fingerprint()),
            )
        });
        leaf.chain(cas)
            .filter_map(|(c, what)| {
                let expired = match c.expiry(now, warning) {
                    Expiry::Valid => return None,
                    Expiry::Soon => false,
                    Expiry::Expired => true,
                };
                let when = match expired {
                    false => format!("expires in {} days", c.days_left),
                    true => c.days_left_cell(now),
                };
                Some(ExpiryNotice {
                    expired,
                    message: format!("secret {}: {what} {when} ({})", self.id(), c.not_after),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::secret::credential_secret;
    use crate::names::DnsName;
    use crate::pki::{Bundle, BundleRequest, CredentialPem, DEFAULT_EXPIRY_WARNING, KeyType};

    /// Now, to the second, as certificates carry it: days left come out whole.
    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
    }

    /// A bundle valid for `days` from `issued` (in the past for an expired one).
    fn bundle(domain: &str, ca: &str, days: u32, issued: OffsetDateTime) -> Bundle {
        Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse(domain).unwrap(),
                client: DnsName::parse(&format!("caller.{domain}")).unwrap(),
                days,
                key_type: KeyType::EcdsaP256,
                ca_name: Some(ca.into()),
            },
            issued,
        )
        .unwrap()
    }

    fn target_secret(b: &Bundle, bundle_pem: String) -> Secret {
        let pem = CredentialPem {
            chain: b.server.cert.to_pem(),
            key: b.server.key.to_pem(),
            ca: bundle_pem,
        };
        credential_secret(Side::Target, "kyma-mtls-certs", "istio-system", &pem).unwrap()
    }

    #[test]
    fn leaf_and_bundle_are_read_with_days_left_and_notices() {
        let now = now();
        let soon = bundle("soon.example.com", "Soon CA", 10, now);
        let long = bundle("long.example.com", "Long CA", 400, now);
        let expired = bundle("old.example.com", "Old CA", 30, now - Duration::days(40));

        // 400 days, one CA: no notice.
        let s = CredentialState::read(&target_secret(&long, long.ca.cert.to_pem()), now);
        assert_eq!(s.error, None);
        assert_eq!(s.side, Some(Side::Target));
        assert_eq!(s.hosts, ["long.example.com"]);
        assert_eq!(s.issuer.as_deref(), Some("CN=Long CA"));
        let leaf = s.certificate.as_ref().unwrap();
        assert_eq!(leaf.subject, "CN=long.example.com");
        assert_eq!(leaf.days_left, 400);
        assert_eq!(s.trust_bundle_key.as_deref(), Some("cacert"));
        assert_eq!(s.trust_bundle.len(), 1);
        assert_eq!(s.trust_bundle[0].sha256, sha256_hex(long.ca.cert.der()));
        assert!(s.expiry_notices(now, DEFAULT_EXPIRY_WARNING).is_empty());

        // 10 days: the leaf and its CA are both within 30 days; not within 7.
        let s = CredentialState::read(&target_secret(&soon, soon.ca.cert.to_pem()), now);
        assert_eq!(s.certificate.as_ref().unwrap().days_left, 10);
        let notices = s.expiry_notices(now, DEFAULT_EXPIRY_WARNING);
        let lines: Vec<&str> = notices.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("secret istio-system/kyma-mtls-certs: certificate CN=soon.example.com for soon.example.com expires in 10 days ("), "{}", lines[0]);
        assert!(
            lines[1].starts_with(&format!(
                "secret istio-system/kyma-mtls-certs: CA CN=Soon CA ({}) in cacert expires in 10 days (",
                s.trust_bundle[0].short_fingerprint()
            )),
            "{}",
            lines[1]
        );
        assert!(notices.iter().all(|n| !n.expired));
        assert!(s.expiry_notices(now, Duration::days(7)).is_empty());

        // Expired 10 days ago: errors, whatever the threshold.
        let s = CredentialState::read(&target_secret(&expired, expired.ca.cert.to_pem()), now);
        assert_eq!(s.certificate.as_ref().unwrap().days_left, -10);
        let notices = s.expiry_notices(now, Duration::ZERO);
        assert_eq!(notices.len(), 2);
        assert!(notices.iter().all(|n| n.expired));
        assert!(
            notices[0].message.contains("EXPIRED 10 days ago"),
            "{notices:?}"
        );
    }

    #[test]
    fn a_bundle_with_two_cas_lists_both_in_order() {
        let now = now();
        let old = bundle("rot.example.com", "Old CA", 20, now);
        let new = bundle("rot.example.com", "New CA", 400, now);
        let both = format!("{}{}", old.ca.cert.to_pem(), new.ca.cert.to_pem());
        let s = CredentialState::read(&target_secret(&new, both), now);
        assert_eq!(s.error, None);
        let cas: Vec<(&str, &str)> = s
            .trust_bundle
            .iter()
            .map(|c| (c.subject.as_str(), c.sha256.as_str()))
            .collect();
        let (old_fp, new_fp) = (sha256_hex(old.ca.cert.der()), sha256_hex(new.ca.cert.der()));
        assert_eq!(
            cas,
            [
                ("CN=Old CA", old_fp.as_str()),
                ("CN=New CA", new_fp.as_str())
            ]
        );
        assert_eq!(
            s.trust_bundle[1].short_fingerprint(),
            format!("sha256:{}", &new_fp[..12])
        );
        // Only the old CA, still in the bundle, runs out within 30 days.
        let notices = s.expiry_notices(now, DEFAULT_EXPIRY_WARNING);
        assert_eq!(notices.len(), 1, "{notices:?}");
        let old_ca = format!(
            "CA CN=Old CA (sha256:{}) in cacert expires in 20 days",
            &old_fp[..12]
        );
        assert!(notices[0].message.contains(&old_ca), "{notices:?}");
    }

    #[test]
    fn side_comes_from_the_label_else_the_layout_and_broken_secrets_say_why() {
        let now = now();
        let b = bundle("c.example.com", "C CA", 30, now);
        let pem = CredentialPem {
            chain: b.client.cert.to_pem(),
            key: b.client.key.to_pem(),
            ca: b.ca.cert.to_pem(),
        };
        let mut client = credential_secret(Side::Client, "cc", "egress", &pem).unwrap();
        let s = CredentialState::read(&client, now);
        assert_eq!((s.side, s.id().as_str()), (Some(Side::Client), "egress/cc"));
        assert_eq!(s.trust_bundle_key.as_deref(), Some("ca.crt"));
        assert_eq!(s.hosts, ["caller.c.example.com"]);
        client.metadata.labels = None;
        assert_eq!(CredentialState::read(&client, now).side, Some(Side::Client));
        client.data.as_mut().unwrap().remove("ca.crt");
        let s = CredentialState::read(&client, now);
        assert_eq!(s.error.as_deref(), Some("no ca.crt"));
        assert!(s.certificate.is_some(), "the leaf is still shown");
        client.data.as_mut().unwrap().clear();
        let s = CredentialState::read(&client, now);
        assert_eq!(
            (s.side, s.error.as_deref()),
            (None, Some("holds neither cert nor tls.crt"))
        );
        assert!(s.expiry_notices(now, DEFAULT_EXPIRY_WARNING).is_empty());
    }
}
