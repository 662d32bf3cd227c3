//! Lockdown rules: in a namespace whose NetworkPolicies isolate egress, every pod must still reach
//! DNS over UDP **and** TCP (large answers are retried over TCP) and istiod on 15012 (without it
//! the sidecar never becomes ready: istio/istio#35569); with Kyma's `networkPoliciesEnabled`, pods
//! that call through the egress gateway need the `to-egressgateway` label (kyma-project/istio
//! `docs/user/00-50-network-policies.md`). Judged by the same evaluator as
//! `kubectl mtls-lockdown explain`.

use super::{Finding, RuleId, Severity, Snapshot};
use shared::netpol::matrix::{Verdict, matrix, well_known};

/// The pod label Kyma's egress gateway policy admits.
pub(crate) const KYMA_EGRESS_LABEL: (&str, &str) =
    ("networking.kyma-project.io/to-egressgateway", "allowed");

/// Runs the lockdown rules over the snapshot's pods and policies.
pub fn check(s: &Snapshot) -> Vec<Finding> {
    let inventory = &s.inventory;
    let mut findings = Vec::new();
    let isolated: Vec<usize> = (0..inventory.pods().len())
        .filter(|&i| {
            inventory
                .policies_in(&inventory.pods()[i].namespace)
                .next()
                .is_some()
        })
        .collect();
    if !isolated.is_empty() {
        let columns: Vec<_> = well_known(inventory)
            .into_iter()
            .filter(|c| matches!(c.name.as_str(), "DNS/UDP" | "DNS/TCP" | "ISTIOD"))
            .collect();
        let m = matrix(inventory, &isolated, columns);
        for row in &m.rows {
            for (column, cell) in m.columns.iter().zip(&row.cells) {
                let Some(verdict) = cell else { continue };
                if *verdict == Verdict::Allowed {
                    continue;
                }
                let (id, fix) = if column.name == "ISTIOD" {
                    (
                        RuleId::LockdownIstiod,
                        "allow TCP 15012 to istio: pilot pods in istio-system (kubectl mtls-lockdown apply does)",
                    )
                } else {
                    (
                        RuleId::LockdownDns,
                        "allow DNS on UDP and TCP 53 (and 8053 to CoreDNS pods) — kubectl mtls-lockdown apply does",
                    )
                };
                findings.push(Finding::new(
                    id,
                    Severity::Error,
                    format!("pod {}", row.pod),
                    format!(
                        "{} to {} is {}",
                        column.name,
                        column.destination,
                        verdict.as_str()
                    ),
                    fix,
                ));
            }
        }
    }
    let kyma_policies = s
        .istios
        .iter()
        .any(|cr| cr.spec.network_policies_enabled == Some(true));
    if kyma_policies {
        let client_namespaces: Vec<String> = s
            .service_entries
            .iter()
            .filter_map(kube::ResourceExt::namespace)
            .collect();
        for pod in inventory.pods() {
            let labelled = pod
                .labels
                .get(KYMA_EGRESS_LABEL.0)
                .is_some_and(|v| v == KYMA_EGRESS_LABEL.1);
            if client_namespaces.contains(&pod.namespace) && !labelled {
                findings.push(Finding::new(
                    RuleId::KymaEgressLabel,
                    Severity::Error,
                    format!("pod {}/{}", pod.namespace, pod.name),
                    "Kyma's networkPoliciesEnabled is on and the pod lacks networking.kyma-project.io/to-egressgateway=allowed: the egress gateway will not accept its traffic",
                    "label the pod template (kubectl mtls-lockdown apply --label-pods does)",
                ));
            }
        }
    }
    findings
}
