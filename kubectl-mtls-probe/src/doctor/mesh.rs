//! Mesh-level rules: exactly one Kyma Istio CR, Ready, with the egress gateway enabled when
//! origination is configured; the egress gateway Deployment Available; at most one mesh-wide
//! Telemetry (Istio honours only one: analyzer IST0160), and a Telemetry for the egress gateway
//! that repeats its access-log providers; at most one Sidecar without a
//! workloadSelector per namespace (analyzer IST0111).

use kube::ResourceExt;

use super::{Finding, RuleId, Severity, Snapshot};
use shared::cluster::detect::deployment_available;
use shared::gateway::GatewayRole;
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::egress::kept_access_logging;

/// Whether some DestinationRule originates MUTUAL TLS with a credential (the client side).
fn originates(s: &Snapshot) -> bool {
    s.destination_rules.iter().any(|dr| {
        dr.spec.traffic_policy.as_ref().is_some_and(|p| {
            p.tls
                .iter()
                .chain(p.port_level_settings.iter().filter_map(|l| l.tls.as_ref()))
                .any(|t| t.mode == "MUTUAL" && t.credential_name.is_some())
        })
    })
}

/// Runs the mesh rules.
pub fn check(s: &Snapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    if s.istios.len() > 1 {
        let names: Vec<String> = s
            .istios
            .iter()
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        findings.push(Finding::new(
            RuleId::IstioCrCount,
            Severity::Error,
            format!("istio {}", names.join(", ")),
            format!(
                "{} Istio CRs: Kyma reconciles only the oldest, the others go to Warning",
                names.len()
            ),
            "delete the extra Istio CRs",
        ));
    }
    for cr in &s.istios {
        let object = format!(
            "istio {}/{}",
            cr.namespace().unwrap_or_default(),
            cr.name_any()
        );
        let state = cr.status.as_ref().and_then(|st| st.state.clone());
        if let Some(state) = state.filter(|st| st != "Ready") {
            let why = cr
                .status
                .as_ref()
                .and_then(|st| st.description.clone())
                .unwrap_or_default();
            findings.push(Finding::new(
                RuleId::IstioCrNotReady,
                Severity::Warning,
                &object,
                format!("state {state}{}", if why.is_empty() { String::new() } else { format!(": {why}") }),
                "see `kubectl get istio -A -o yaml` (status.conditions) and the istio operator's logs",
            ));
        }
        let enabled = cr
            .spec
            .components
            .as_ref()
            .and_then(|c| c.egress_gateway.as_ref())
            .and_then(|e| e.enabled)
            == Some(true);
        if !enabled && originates(s) {
            findings.push(Finding::new(
                RuleId::EgressGatewayDisabled,
                Severity::Error,
                &object,
                "spec.components.egressGateway.enabled is not true, but a DestinationRule originates mutual TLS at the egress gateway",
                "kubectl mtls-egress enable --host HOST (sets only that field)",
            ));
        }
    }
    let egress = s.gateway(GatewayRole::Egress);
    let (gateway_ns, gateway_name) = (egress.namespace.as_str(), egress.name.as_str());
    for d in &s.deployments {
        if d.namespace().as_deref() == Some(gateway_ns)
            && d.name_any() == gateway_name
            && !deployment_available(d)
        {
            findings.push(Finding::new(
                RuleId::EgressGatewayUnavailable,
                Severity::Error,
                format!("deployment {gateway_ns}/{gateway_name}"),
                "not Available: no egress gateway pod is ready to originate mTLS",
                format!("kubectl -n {gateway_ns} describe deployment {gateway_name}"),
            ));
        }
    }
    let mesh_wide: Vec<String> = s
        .telemetries
        .iter()
        .filter(|t| t.namespace().as_deref() == Some(ISTIO_NAMESPACE) && t.spec.selector.is_none())
        .map(|t| t.name_any())
        .collect();
    if mesh_wide.len() > 1 {
        findings.push(Finding::new(
            RuleId::TelemetryMeshWideDuplicate,
            Severity::Error,
            format!("telemetry {ISTIO_NAMESPACE}/{}", mesh_wide.join(", ")),
            format!("{} mesh-wide Telemetries (no selector) in {ISTIO_NAMESPACE}: Istio honours only one (IST0160)", mesh_wide.len()),
            "merge them into one; scope access logs to the egress gateway with a selector (kubectl mtls-egress enable does)",
        ));
    }
    // A Telemetry for the egress gateway replaces the mesh-wide providers there (istio/istio
    // `pilot/pkg/model/telemetry.go`, mergeLogs): it has to repeat them.
    let kept: Vec<String> = kept_access_logging(&s.telemetries, &[])
        .iter()
        .flat_map(|e| e.providers.iter().map(|p| p.name.clone()))
        .collect();
    for t in s.telemetries.iter().filter(|t| {
        t.namespace().as_deref() == Some(gateway_ns)
            && !t.spec.access_logging.is_empty()
            && t.spec.selector.as_ref().is_some_and(|sel| {
                !sel.match_labels.is_empty()
                    && sel
                        .match_labels
                        .iter()
                        .all(|(k, v)| egress.selector.get(k) == Some(v.as_str()))
            })
    }) {
        let named: Vec<&str> = t
            .spec
            .access_logging
            .iter()
            .flat_map(|e| e.providers.iter().map(|p| p.name.as_str()))
            .collect();
        let dropped: Vec<&str> = kept
            .iter()
            .map(String::as_str)
            .filter(|k| !named.contains(k))
            .collect();
        if !dropped.is_empty() {
            findings.push(Finding::new(
                RuleId::TelemetryProvidersDropped,
                Severity::Warning,
                format!("telemetry {gateway_ns}/{}", t.name_any()),
                format!("it selects the egress gateway and names its own access-log providers, which replace the mesh-wide ones there: {} no longer get(s) the gateway's logs", dropped.join(", ")),
                "list the mesh-wide providers in it too (kubectl mtls-egress enable does)",
            ));
        }
    }
    let mut by_namespace: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for sidecar in s.sidecars.iter().filter(|sc| sc.spec.namespace_wide()) {
        by_namespace
            .entry(sidecar.namespace().unwrap_or_default())
            .or_default()
            .push(sidecar.name_any());
    }
    for (ns, mut names) in by_namespace.into_iter().filter(|(_, n)| n.len() > 1) {
        names.sort();
        findings.push(Finding::new(
            RuleId::SidecarNamespaceWideDuplicate,
            Severity::Error,
            format!("sidecar {ns}/{}", names.join(", ")),
            format!("{} Sidecars without a workloadSelector in {ns}: which one a pod gets is undefined (IST0111), so a REGISTRY_ONLY policy may or may not apply", names.len()),
            "keep one: move what the others set (e.g. outboundTrafficPolicy REGISTRY_ONLY) into it and delete them",
        ));
    }
    findings
}
