//! The Istio credential Secrets (stages 2 and 3), and how to read one back.
//!
//! The two sides need different layouts and — easy to mix up — different CAs (mixing them up gives
//! `CERTIFICATE_VERIFY_FAILED` or `TLSV1_ALERT_UNKNOWN_CA`, as in istio/istio#39166):
//! - **target** (`kyma-mtls-certs`, read by the ingress gateway through a Gateway's `credentialName`):
//!   `cert`/`key` = the server's chain and key, `cacert` = the CA that signed the **client** certificates.
//! - **client** (`client-credential`, read by the egress gateway through a DestinationRule's
//!   `credentialName`): `tls.crt`/`tls.key` = the client's chain and key, `ca.crt` = the CA that signed the
//!   **server** certificate.
//!
//! Both live in the gateways' namespace (`istio-system`): Istio resolves `credentialName` there.
//!
//! A credential Secret is one partner's identity, so writing one must not silently replace
//! another partner's: [`credential_clash`] compares the certificate a Secret already holds with
//! the one a plan would write (the callers refuse unless `--force`), and [`credential_references`]
//! finds the objects (DestinationRules, Gateways) that still name a Secret, so that removing a
//! host keeps a Secret another host uses.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use serde::Serialize;

use super::{ManifestError, check_object_name, labels};
use crate::pki::{Certificate, CredentialPem, sha256_hex};

/// Which side of the connection a credential Secret serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The target cluster's ingress gateway (server credential; verifies clients).
    Target,
    /// The client cluster's egress gateway (client credential; verifies the server).
    Client,
}

impl Side {
    /// The Secret name the rest of the tooling (and the tutorial) expects by default.
    pub fn default_name(self) -> &'static str {
        match self {
            Side::Target => "kyma-mtls-certs",
            Side::Client => "client-credential",
        }
    }

    /// The key layout this side is written with.
    pub fn layout(self) -> Layout {
        match self {
            Side::Target => Layout::Generic,
            Side::Client => Layout::Tls,
        }
    }

    /// The `app.kubernetes.io/component` label value.
    pub fn component(self) -> &'static str {
        match self {
            Side::Target => "target-credential",
            Side::Client => "client-credential",
        }
    }
}

/// One of the two key layouts Istio reads from a credential Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// `cert` / `key` / `cacert`.
    Generic,
    /// `tls.crt` / `tls.key` / `ca.crt`.
    Tls,
}

impl Layout {
    /// The data keys for certificate chain, private key and CA, in that order.
    pub fn keys(self) -> [&'static str; 3] {
        match self {
            Layout::Generic => ["cert", "key", "cacert"],
            Layout::Tls => ["tls.crt", "tls.key", "ca.crt"],
        }
    }

    /// Picks the layout whose certificate key is present (`cert` or `tls.crt`).
    pub fn detect<'a>(mut keys: impl Iterator<Item = &'a str>) -> Option<Self> {
        let keys: Vec<&str> = keys.by_ref().collect();
        [Layout::Generic, Layout::Tls]
            .into_iter()
            .find(|l| keys.contains(&l.keys()[0]))
    }
}

/// Builds the credential Secret for `side`, named `name`, in `namespace`.
pub fn credential_secret(
    side: Side,
    name: &str,
    namespace: &str,
    pem: &CredentialPem,
) -> Result<Secret, ManifestError> {
    check_object_name(name)?;
    if name.ends_with("-cacert") {
        return Err(ManifestError::CacertSuffix(name.to_string()));
    }
    let [cert_key, key_key, ca_key] = side.layout().keys();
    let data = BTreeMap::from([
        (
            cert_key.to_string(),
            ByteString(pem.chain.as_bytes().to_vec()),
        ),
        (key_key.to_string(), ByteString(pem.key.as_bytes().to_vec())),
        (ca_key.to_string(), ByteString(pem.ca.as_bytes().to_vec())),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels(side.component())),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Default::default()
    })
}

/// The leaf certificate a credential Secret holds, as the clash message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialCert {
    /// Subject DN, e.g. `CN=client.example.com`.
    pub subject: String,
    /// SHA-256 of the DER certificate, lowercase hex (as `inspect` and XFCC's `Hash=` show it).
    pub sha256: String,
}

impl std::fmt::Display for CredentialCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subject {}, sha256 {}", self.subject, self.sha256)
    }
}

/// The leaf (first) certificate of `secret`, in either of Istio's layouts (`cert` or `tls.crt`);
/// `None` when it holds no certificate that parses.
pub fn credential_cert(secret: &Secret) -> Option<CredentialCert> {
    let data = secret.data.as_ref()?;
    let layout = Layout::detect(data.keys().map(String::as_str))?;
    let text = std::str::from_utf8(&data.get(layout.keys()[0])?.0).ok()?;
    let leaf = Certificate::parse_chain(text, "secret")
        .ok()?
        .into_iter()
        .next()?;
    Some(CredentialCert {
        subject: leaf.x509().subject().to_string(),
        sha256: sha256_hex(leaf.der()),
    })
}

/// A credential Secret that exists and holds another certificate than the one a plan would
/// write into it: applying the plan would replace another partner's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialClash {
    /// `namespace/name` of the Secret.
    pub secret: String,
    /// What it holds now (`None`: no certificate that parses).
    pub existing: Option<CredentialCert>,
    /// Its data keys, to name what it holds when there is no certificate.
    pub existing_keys: Vec<String>,
    /// What the plan would write.
    pub planned: CredentialCert,
}

impl CredentialClash {
    /// What would be replaced: `secret NS/NAME holds another certificate (subject …, sha256 …)
    /// than the one to write (subject …, sha256 …)`.
    pub fn facts(&self) -> String {
        let holds = match &self.existing {
            Some(cert) => format!("holds another certificate ({cert})"),
            None => format!(
                "holds no certificate this tool can read (keys {:?})",
                self.existing_keys
            ),
        };
        format!(
            "secret {} {holds} than the one to write ({})",
            self.secret, self.planned
        )
    }

    /// The one line refusing the write, with `hint` (how to pick another name) and `--force`.
    pub fn message(&self, hint: &str) -> String {
        format!(
            "{}: it may be another partner's credential; {hint}, or pass --force to replace it",
            self.facts()
        )
    }
}

/// Compares the Secret that exists (`existing`) with the one a plan would write (`planned`, the
/// same name): `None` when writing it replaces nothing of value — the same certificate (a re-run,
/// or a renewed CA next to it) — or when the plan itself holds no certificate.
pub fn credential_clash(existing: &Secret, planned: &Secret) -> Option<CredentialClash> {
    let planned_cert = credential_cert(planned)?;
    let existing_cert = credential_cert(existing);
    if existing_cert.as_ref() == Some(&planned_cert) {
        return None;
    }
    let meta = &existing.metadata;
    Some(CredentialClash {
        secret: format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
        existing: existing_cert,
        existing_keys: existing
            .data
            .as_ref()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default(),
        planned: planned_cert,
    })
}

/// Every `credentialName` (and `credentialNames[]`, Istio's newer Gateway field) anywhere in an
/// Istio object's `spec`, e.g. a DestinationRule's `trafficPolicy.portLevelSettings[].tls` or a
/// Gateway's `servers[].tls`.
pub fn credential_references(spec: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("credentialName", serde_json::Value::String(name)) => {
                            found.push(name.clone())
                        }
                        ("credentialNames", serde_json::Value::Array(names)) => found
                            .extend(names.iter().filter_map(|n| n.as_str().map(str::to_string))),
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(spec, &mut found);
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> CredentialPem {
        CredentialPem {
            chain: "CHAIN".into(),
            key: "KEY".into(),
            ca: "CA".into(),
        }
    }

    #[test]
    fn layouts_follow_the_side() {
        let t = credential_secret(Side::Target, "kyma-mtls-certs", "istio-system", &pem()).unwrap();
        let keys: Vec<_> = t.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["cacert", "cert", "key"]);
        assert_eq!(t.data.as_ref().unwrap()["cacert"].0, b"CA");
        let c =
            credential_secret(Side::Client, "client-credential", "istio-system", &pem()).unwrap();
        let keys: Vec<_> = c.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(
            c.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "kubectl-mtls"
        );
    }

    #[test]
    fn refuses_cacert_suffix_and_bad_names() {
        assert!(matches!(
            credential_secret(Side::Client, "client-cacert", "istio-system", &pem()),
            Err(ManifestError::CacertSuffix(_))
        ));
        assert!(matches!(
            credential_secret(Side::Client, "Bad_Name", "istio-system", &pem()),
            Err(ManifestError::InvalidName { .. })
        ));
    }

    #[test]
    fn detects_layouts() {
        assert_eq!(
            Layout::detect(["cert", "key"].into_iter()),
            Some(Layout::Generic)
        );
        assert_eq!(
            Layout::detect(["ca.crt", "tls.crt"].into_iter()),
            Some(Layout::Tls)
        );
        assert_eq!(Layout::detect(["foo"].into_iter()), None);
    }

    fn bundle_pem(domain: &str, client: &str) -> CredentialPem {
        let bundle = crate::pki::Bundle::generate(
            &crate::pki::BundleRequest {
                domain: crate::names::DnsName::parse(domain).unwrap(),
                client: crate::names::DnsName::parse(client).unwrap(),
                days: 30,
                key_type: crate::pki::KeyType::EcdsaP256,
                ca_name: None,
            },
            ::time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        CredentialPem {
            chain: bundle.client.cert.to_pem(),
            key: "KEY".into(),
            ca: bundle.ca.cert.to_pem(),
        }
    }

    #[test]
    fn a_secret_holding_another_certificate_clashes_and_the_same_one_does_not() {
        let a = bundle_pem("a.example.com", "caller-a.example.com");
        let b = bundle_pem("b.example.com", "caller-b.example.com");
        let secret = |pem: &CredentialPem, side| {
            credential_secret(side, "client-credential", "istio-system", pem).unwrap()
        };
        let (first, second) = (secret(&a, Side::Client), secret(&b, Side::Client));
        // A re-run writes the same certificate: nothing replaced.
        assert_eq!(credential_clash(&first, &first), None);
        // A renewed CA next to the same client certificate is not another partner.
        let mut renewed = a.clone();
        renewed.ca = b.ca.clone();
        assert_eq!(
            credential_clash(&first, &secret(&renewed, Side::Client)),
            None
        );
        // Another partner's certificate: both sides named, fingerprints in full.
        let clash = credential_clash(&first, &second).unwrap();
        assert_eq!(clash.secret, "istio-system/client-credential");
        assert_eq!(
            clash.existing.as_ref().unwrap().subject,
            "CN=caller-a.example.com"
        );
        assert_eq!(clash.planned.subject, "CN=caller-b.example.com");
        let line = clash.message("choose another --name");
        assert_eq!(line.lines().count(), 1);
        for needle in [
            "secret istio-system/client-credential holds another certificate (subject CN=caller-a.example.com, sha256 ",
            "than the one to write (subject CN=caller-b.example.com, sha256 ",
            "choose another --name, or pass --force to replace it",
        ] {
            assert!(line.contains(needle), "{needle:?} not in {line}");
        }
        let fingerprints = [
            &clash.existing.as_ref().unwrap().sha256,
            &clash.planned.sha256,
        ];
        for f in fingerprints {
            assert_eq!(f.len(), 64);
            assert!(line.contains(f.as_str()));
        }
        assert_ne!(fingerprints[0], fingerprints[1]);
        // The layouts do not matter: a target-layout Secret with the same leaf is the same.
        assert_eq!(credential_clash(&secret(&a, Side::Target), &first), None);
        // Something that is not a credential at all is not silently replaced either.
        let mut foreign = first.clone();
        foreign.data = Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(b"x".to_vec()),
        )]));
        let clash = credential_clash(&foreign, &second).unwrap();
        assert_eq!(clash.existing, None);
        assert!(
            clash
                .message("h")
                .contains(r#"holds no certificate this tool can read (keys ["password"])"#),
            "{}",
            clash.message("h")
        );
        // The message never carries key material.
        assert!(!clash.message("h").contains("KEY"));
    }

    #[test]
    fn credential_references_are_found_wherever_istio_reads_them() {
        let rule = serde_json::json!({"host": "a.example.com", "trafficPolicy": {
            "tls": {"mode": "SIMPLE", "credentialName": "top"},
            "portLevelSettings": [{"port": {"number": 443},
                                   "tls": {"mode": "MUTUAL", "credentialName": "per-port"}}]},
            "subsets": [{"name": "s", "trafficPolicy": {"tls": {"credentialName": "subset"}}}]});
        assert_eq!(credential_references(&rule), ["per-port", "subset", "top"]);
        let gateway = serde_json::json!({"servers": [
            {"port": {"number": 443}, "hosts": ["a"], "tls": {"mode": "MUTUAL", "credentialName": "one"}},
            {"port": {"number": 8443}, "hosts": ["b"], "tls": {"credentialNames": ["two", "one"]}},
            {"port": {"number": 80}, "hosts": ["c"]}]});
        assert_eq!(credential_references(&gateway), ["one", "two"]);
        assert!(credential_references(&serde_json::json!({"host": "x"})).is_empty());
    }
}
