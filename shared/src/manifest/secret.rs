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

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use serde::Serialize;

use super::{ManifestError, check_object_name, labels};
use crate::pki::CredentialPem;

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
}
