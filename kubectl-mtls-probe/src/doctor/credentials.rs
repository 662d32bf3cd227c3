//! The credential Secrets that Gateways (server side, ingress) and origination DestinationRules
//! (client side, egress) name: present, readable, key matches, neither the certificate nor a CA of
//! the trust bundle expiring within `--expiry-warning`, right EKU, SAN covers
//! the host, and — when both clusters are in the snapshot — each side's CA signed the other side's
//! certificate (the two trust directions the tutorial hides by using one CA for both).

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use time::{Duration, OffsetDateTime};

use super::{Finding, RuleId, Severity, Snapshot};
use shared::gateway::GatewayRole;
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::secret::Layout;
use shared::names::DnsName;
use shared::pki::{Certificate, Expiry, PrivateKey, summarize};

/// A credential named by a Gateway (server) or a DestinationRule (client).
#[derive(Debug, Clone)]
struct Reference {
    secret: String,
    /// Where Istio looks for it: the namespace of the gateway pods that use it.
    namespace: String,
    server: bool,
    hosts: Vec<String>,
    by: String,
}

fn references(s: &Snapshot) -> Vec<Reference> {
    let mut refs = Vec::new();
    let egress = s.gateway(GatewayRole::Egress);
    let ingress = s.gateway(GatewayRole::Ingress);
    for gw in &s.gateways {
        // A Gateway's credential is read by the pods it selects: the egress gateway's when its
        // selector is (part of) theirs, else the ingress gateway's.
        let selects_egress = !gw.spec.selector.is_empty()
            && gw
                .spec
                .selector
                .iter()
                .all(|(k, v)| egress.selector.get(k) == Some(v.as_str()));
        let namespace = if selects_egress {
            egress.namespace.clone()
        } else {
            ingress.namespace.clone()
        };
        for server in &gw.spec.servers {
            if let Some(tls) = &server.tls
                && let Some(name) = &tls.credential_name
            {
                refs.push(Reference {
                    secret: name.clone(),
                    namespace: namespace.clone(),
                    server: true,
                    hosts: server.hosts.clone(),
                    by: format!(
                        "gateway {}/{}",
                        gw.namespace().unwrap_or_default(),
                        gw.name_any()
                    ),
                });
            }
        }
    }
    for dr in &s.destination_rules {
        let Some(policy) = &dr.spec.traffic_policy else {
            continue;
        };
        let tls = policy.tls.iter().chain(
            policy
                .port_level_settings
                .iter()
                .filter_map(|p| p.tls.as_ref()),
        );
        for tls in tls {
            if let Some(name) = &tls.credential_name {
                refs.push(Reference {
                    secret: name.clone(),
                    namespace: egress.namespace.clone(),
                    server: false,
                    hosts: vec![dr.spec.host.clone()],
                    by: format!(
                        "destinationrule {}/{}",
                        dr.namespace().unwrap_or_default(),
                        dr.name_any()
                    ),
                });
            }
        }
    }
    refs
}

/// A credential Secret, read.
struct Credential {
    chain: Vec<Certificate>,
    ca: Vec<Certificate>,
}

fn read(secret: &Secret, object: &str, findings: &mut Vec<Finding>) -> Option<Credential> {
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    let Some(layout) = Layout::detect(keys.iter().copied())
        .filter(|l| l.keys().iter().all(|k| data.contains_key(*k)))
    else {
        findings.push(Finding::new(
            RuleId::CredentialLayout,
            Severity::Error,
            object,
            format!("has keys {keys:?}, not cert/key/cacert or tls.crt/tls.key/ca.crt"),
            "recreate it with `kubectl mtls-certs secret target|client --dir DIR`",
        ));
        return None;
    };
    let [cert_key, key_key, ca_key] = layout.keys();
    let text = |k: &str| String::from_utf8_lossy(&data[k].0).into_owned();
    let unreadable = |what: &str, e: String| {
        Finding::new(
            RuleId::CredentialUnreadable,
            Severity::Error,
            object,
            format!("{what}: {e}"),
            "put PEM certificates and an unencrypted PEM key in it (`kubectl mtls-certs secret`)",
        )
    };
    let chain = match Certificate::parse_chain(&text(cert_key), cert_key) {
        Ok(c) => c,
        Err(e) => {
            findings.push(unreadable(cert_key, e.to_string()));
            return None;
        }
    };
    let ca = match Certificate::parse_chain(&text(ca_key), ca_key) {
        Ok(c) => c,
        Err(e) => {
            findings.push(unreadable(ca_key, e.to_string()));
            return None;
        }
    };
    match PrivateKey::from_pem(&text(key_key), key_key) {
        Ok(key) if key.public_key_info() != chain[0].public_key_info() => {
            findings.push(Finding::new(
                RuleId::CredentialKeyMismatch,
                Severity::Error,
                object,
                format!("{key_key} does not belong to the certificate in {cert_key}"),
                "put the key generated with that certificate into the Secret",
            ))
        }
        Ok(_) => {}
        Err(e) => findings.push(unreadable(key_key, e.to_string())),
    }
    Some(Credential { chain, ca })
}

/// Runs the credential rules.
pub fn check(s: &Snapshot, now: OffsetDateTime, warning: Duration) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut servers: Vec<(Vec<String>, Credential)> = Vec::new();
    let mut clients: Vec<(Vec<String>, Credential)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in references(s) {
        let ns = r.namespace.as_str();
        let object = format!("secret {ns}/{}", r.secret);
        if r.secret.ends_with("-cacert") {
            findings.push(Finding::new(
                RuleId::CredentialCacertName,
                Severity::Error,
                &r.by,
                format!("credentialName {:?} ends in -cacert: Istio reads <name>-cacert as the CA half of Secret <name>", r.secret),
                "rename the Secret and the credentialName (e.g. client-credential)",
            ));
        }
        if !s.secrets_supplied {
            continue;
        }
        let Some(secret) = s.secret(ns, &r.secret) else {
            findings.push(Finding::new(
                RuleId::CredentialMissing,
                Severity::Error,
                &r.by,
                format!("names credential {:?}, which is not in {ns} (Istio resolves credentialName in the gateway pods' namespace)", r.secret),
                format!(
                    "create it: kubectl mtls-certs secret {} --dir DIR --name {}{}",
                    if r.server { "target" } else { "client" },
                    r.secret,
                    if ns == ISTIO_NAMESPACE { String::new() } else { format!(" -n {ns}") }
                ),
            ));
            continue;
        };
        if !seen.insert((r.secret.clone(), r.server)) {
            continue;
        }
        let Some(cred) = read(secret, &object, &mut findings) else {
            continue;
        };
        let leaf = summarize(&cred.chain[0], now);
        let bundle = cred.ca.iter().map(|c| (c, RuleId::TrustBundleExpiry));
        for (cert, rule) in cred
            .chain
            .iter()
            .map(|c| (c, RuleId::CredentialExpiry))
            .chain(bundle)
        {
            let sum = summarize(cert, now);
            let what = match rule {
                RuleId::TrustBundleExpiry => format!("the CA {} in its trust bundle", sum.subject),
                _ => sum.subject.clone(),
            };
            let (severity, problem) = match sum.expiry(now, warning) {
                Expiry::Valid => continue,
                Expiry::Soon => (
                    Severity::Warning,
                    format!(
                        "{what} expires in {} days ({})",
                        sum.days_left, sum.not_after
                    ),
                ),
                Expiry::Expired => (
                    Severity::Error,
                    format!("{what} expired on {}", sum.not_after),
                ),
            };
            let renew = if r.server {
                "kubectl mtls-certs renew --dir DIR --server --target-context CONTEXT"
            } else {
                "kubectl mtls-certs renew --dir DIR --client --client-context CONTEXT"
            };
            let fix = match (rule, severity) {
                (RuleId::TrustBundleExpiry, _) => rule.rule().fix.to_string(),
                (_, Severity::Error) => {
                    format!("renew it and update the Secret in place: {renew}")
                }
                _ => format!("renew it before it expires: {renew}"),
            };
            findings.push(Finding::new(rule, severity, &object, problem, fix));
        }
        let (want, role) = if r.server {
            ("serverAuth", "server")
        } else {
            ("clientAuth", "client")
        };
        if !leaf
            .extended_key_usage
            .iter()
            .any(|u| u == want || u == "any")
        {
            findings.push(Finding::new(
                RuleId::CredentialEku,
                Severity::Error,
                &object,
                format!("the {role} certificate {} has no EKU {want} (it has {:?})", leaf.subject, leaf.extended_key_usage),
                format!("issue a {role} certificate: kubectl mtls-certs issue {role} --name HOST --ca-dir DIR"),
            ));
        }
        if r.server {
            let sans: Vec<DnsName> = leaf
                .sans
                .iter()
                .filter_map(|s| s.strip_prefix("DNS:"))
                .filter_map(|s| DnsName::parse(s).ok())
                .collect();
            for host in &r.hosts {
                let host = host.rsplit('/').next().unwrap_or(host);
                if host != "*" && !sans.iter().any(|san| san.covers(host)) {
                    findings.push(Finding::new(
                        RuleId::CredentialSan,
                        Severity::Error,
                        &object,
                        format!("the server certificate's SANs {:?} do not cover {host}, which {} serves", leaf.sans, r.by),
                        format!("issue a server certificate for {host}: kubectl mtls-certs issue server --name {host} --ca-dir DIR"),
                    ));
                }
            }
            servers.push((r.hosts.clone(), cred));
        } else {
            clients.push((r.hosts.clone(), cred));
        }
    }
    // Both directions, when both sides are in the snapshot: the target's CA bundle must have
    // signed the client certificate, and the client's CA bundle the server certificate.
    for (client_hosts, client) in &clients {
        for (server_hosts, server) in &servers {
            let same_host = client_hosts.iter().any(|c| {
                server_hosts.iter().any(|s| {
                    let s = s.rsplit('/').next().unwrap_or(s);
                    DnsName::parse(s).is_ok_and(|s| s.covers(c))
                })
            });
            if !same_host {
                continue;
            }
            let signs = |cas: &[Certificate], chain: &[Certificate]| {
                let top = chain.last().expect("a chain has a leaf");
                cas.iter().any(|ca| top.is_signed_by(ca))
            };
            if !signs(&server.ca, &client.chain) {
                findings.push(Finding::new(
                    RuleId::CaDirection,
                    Severity::Error,
                    "target credential (cacert)",
                    format!("the target's cacert did not sign the client certificate for {}: the ingress gateway will refuse it (TLSV1_ALERT_UNKNOWN_CA)", client_hosts.join(",")),
                    "put the CA that signed the CLIENT certificate into the target Secret's cacert",
                ));
            }
            if !signs(&client.ca, &server.chain) {
                findings.push(Finding::new(
                    RuleId::CaDirection,
                    Severity::Error,
                    "client credential (ca.crt)",
                    format!("the client's ca.crt did not sign the server certificate for {}: the egress gateway will refuse it (CERTIFICATE_VERIFY_FAILED)", client_hosts.join(",")),
                    "put the CA that signed the SERVER certificate into the client Secret's ca.crt",
                ));
            }
        }
    }
    findings
}
