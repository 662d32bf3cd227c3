//! Pure builders of the Kubernetes objects the plugins emit. No I/O: inputs in, typed objects out,
//! so every manifest is snapshot-tested and schema-checked without a cluster.
//!
//! - [`host`]: object names and labels derived from a host.
//! - [`expose`]: the target side: MUTUAL Gateway plus APIRule or VirtualService (`kubectl mtls-egress expose`).
//! - [`egress`]: the client side: egress routing and mTLS origination (`kubectl mtls-egress enable`).
//! - [`lockdown`]: the lockdown NetworkPolicy and REGISTRY_ONLY Sidecar (`kubectl mtls-lockdown`).
//! - [`secret`]: the Istio credential Secrets of stages 2 and 3 (`kubectl mtls-certs secret`).
//! - [`credential_state`]: what a credential Secret on a cluster holds now (expiry, trust bundle).

pub mod credential_state;
pub mod egress;
pub mod expose;
pub mod host;
pub mod lockdown;
pub mod secret;

use std::collections::BTreeMap;

/// The label every object we create carries, so later commands find (and only delete) ours.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`], also our server-side-apply field manager.
pub const MANAGER: &str = "kubectl-mtls";
/// The label that says which part of the procedure an object belongs to.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Istio's root namespace: istiod and the gateways run there, and a gateway resolves a
/// `credentialName` there.
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// Why a manifest cannot be built from the given inputs. `Display` is one line with a hint.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not a valid Kubernetes object name (RFC 1123 subdomain).
    #[error(
        "{name:?} is not a valid object name ({reason}): use lowercase letters, digits, '-' and '.'"
    )]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A credential Secret named `…-cacert`: Istio reads such a name as the CA half of another Secret.
    #[error(
        "secret name {0:?} ends in \"-cacert\": Istio treats <name>-cacert as the CA part of secret <name>, so this credential would be misread; choose another --name"
    )]
    CacertSuffix(String),
    /// Options that cannot be combined; the message says why.
    #[error("{0}")]
    Incompatible(String),
    /// A value (e.g. `--service NAME:PORT`) that is not valid; the message says why.
    #[error("{0}")]
    BadValue(String),
}

/// Labels for an object we manage, with its component.
pub fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT_LABEL.to_string(), component.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
    ])
}

/// Checks an object name as Kubernetes does for most kinds (RFC 1123 subdomain, ≤ 253).
pub fn check_object_name(name: &str) -> Result<(), ManifestError> {
    let bad = |reason: &str| ManifestError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each dot-separated part must have 1 to 63 characters"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(
                "only lowercase letters, digits, '-' and '.' are allowed",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("must start and end with a letter or digit"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for ok in ["kyma-mtls-certs", "a", "a.b-c", "x1"] {
            assert!(check_object_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", &"a".repeat(254)] {
            assert!(check_object_name(bad).is_err(), "{bad}");
        }
    }
}
