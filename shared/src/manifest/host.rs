//! Object names and labels derived from a host, so several hosts coexist in one namespace and every
//! object made for a host can be found again (`disable`, `status`) by its label; and the
//! annotation that says which client namespace a host's objects in istio-system serve.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use crate::names::DnsName;

/// Label holding the host's [`slug`]; `disable --host` deletes by it.
pub const HOST_LABEL: &str = "kubectl-mtls/host";
/// Annotation holding the full host name (a label value cannot hold every DNS name).
pub const HOST_ANNOTATION: &str = "kubectl-mtls/host";

/// Annotation on a host's objects in istio-system (origination rule, AuthorizationPolicy): the
/// one client namespace they serve. A host is routed for one namespace per cluster; `enable`
/// refuses another namespace, and `disable` elsewhere leaves these objects alone.
pub const CLIENT_NAMESPACE_ANNOTATION: &str = "kubectl-mtls/client-namespace";

/// Longest slug: object names add a prefix of up to 15 characters and must stay ≤ 63.
const MAX_SLUG: usize = 47;

/// A label-safe, name-safe form of a host: `httpbin.example.com` → `httpbin-example-com`,
/// `*.example.com` → `wildcard-example-com`. Long hosts are cut and end in 8 hex digits of the
/// host's SHA-256, so distinct hosts keep distinct slugs.
pub fn slug(host: &DnsName) -> String {
    let plain = host.as_str().replacen('*', "wildcard", 1).replace('.', "-");
    if plain.len() <= MAX_SLUG {
        return plain;
    }
    let digest = crate::pki::sha256_hex(host.as_str().as_bytes());
    let keep = MAX_SLUG - 9;
    format!("{}-{}", plain[..keep].trim_end_matches('-'), &digest[..8])
}

/// Labels for an object made for `host`.
pub(crate) fn host_labels(component: &str, host: &DnsName) -> BTreeMap<String, String> {
    let mut labels = super::labels(component);
    labels.insert(HOST_LABEL.to_string(), slug(host));
    labels
}

/// The annotation recording the full host.
pub fn host_annotations(host: &DnsName) -> BTreeMap<String, String> {
    BTreeMap::from([(HOST_ANNOTATION.to_string(), host.to_string())])
}

/// `meta` with [`CLIENT_NAMESPACE_ANNOTATION`] set to `namespace`.
pub(crate) fn serving_namespace(mut meta: ObjectMeta, namespace: &str) -> ObjectMeta {
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(
            CLIENT_NAMESPACE_ANNOTATION.to_string(),
            namespace.to_string(),
        );
    meta
}

/// The label selector that finds what we made for `host`.
pub fn host_selector(host: &DnsName) -> String {
    format!(
        "{}={},{}={}",
        super::MANAGED_BY_LABEL,
        super::MANAGER,
        HOST_LABEL,
        slug(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_distinct_and_label_safe() {
        let h = |s: &str| DnsName::parse(s).unwrap();
        assert_eq!(slug(&h("httpbin.example.com")), "httpbin-example-com");
        assert_eq!(slug(&h("*.example.com")), "wildcard-example-com");
        let a = format!("{}.a.example.com", "x".repeat(60));
        let b = format!("{}.b.example.com", "x".repeat(60));
        let (sa, sb) = (slug(&h(&a)), slug(&h(&b)));
        assert_ne!(sa, sb);
        for s in [&sa, &sb] {
            assert!(s.len() <= MAX_SLUG, "{s}");
            assert!(crate::manifest::check_object_name(&format!("mtls-originate-{s}")).is_ok());
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
    }
}
