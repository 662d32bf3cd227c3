//! Which DestinationRule the egress gateway really uses for a host: Istio's lookup and merge,
//! restated so `enable` refuses and `doctor` reports only a rule that takes the place of our
//! origination rule (istio/istio 1.30.3 `pilot/pkg/model/push_context.go`: `setDestinationRules`
//! and `destinationRule`; `pilot/pkg/model/destination_rule.go`: `mergeDestinationRule`;
//! `pilot/pkg/model/sidecar.go`: `SidecarScope.DestinationRule`).
//!
//! For a proxy in the root namespace (`istio-system`, where the egress gateway runs) Istio first
//! looks at the root namespace's *private* rules — `exportTo` exactly `["."]` or
//! `["istio-system"]`, or any rule with a `workloadSelector` (which Istio never exports) — and
//! an exact host there wins over every wildcard and over every other namespace. A gateway in
//! another namespace looks first at the rules of its own namespace that it can see. Our
//! origination rule is such an exact, private rule, so a rule in the client namespace, a
//! wildcard, or a rule exported elsewhere never replaces it. What does:
//!
//! - a rule of that first index for the **exact host with the same `exportTo`** that sorts
//!   before ours (older; Istio sorts rules with a `workloadSelector` first, then by creation
//!   time, name, namespace): the two are merged and the first one's `trafficPolicy` is kept;
//! - a rule there for the exact host with **another** `exportTo` that sorts after ours: the two
//!   stay apart and the gateway takes the last rule without a selector;
//! - a rule there with a **`workloadSelector`**: it sorts first and ours is merged into it. If
//!   the selector matches the gateway's pods and the rule has a `trafficPolicy`, that policy is
//!   used; if it does not match, the gateway is left with no rule for the host at all.
//!
//! [`effective_origination`] replays exactly these steps for the rules of one namespace.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::manifest::ISTIO_NAMESPACE;
use crate::names::DnsName;
use crate::resources::DestinationRule;

/// The egress gateway's pods, as the lookup sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayProxy {
    /// The namespace the gateway pods run in (their config namespace).
    pub namespace: String,
    /// The labels of its pods.
    pub labels: BTreeMap<String, String>,
}

impl GatewayProxy {
    /// The `istio-egressgateway` of istioctl and Kyma: `istio: egressgateway` in istio-system.
    pub fn default_egress() -> Self {
        Self {
            namespace: ISTIO_NAMESPACE.into(),
            labels: [
                ("app".to_string(), "istio-egressgateway".to_string()),
                ("istio".to_string(), "egressgateway".to_string()),
            ]
            .into(),
        }
    }
}

/// A rule that takes the place of our origination rule at the gateway, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowing {
    /// `namespace/name` of the rule.
    pub rule: String,
    /// Why Istio uses it (or nothing) instead of ours, in one clause.
    pub reason: String,
}

/// One rule as the lookup sees it.
struct Candidate<'a> {
    rule: &'a DestinationRule,
    ours: bool,
    created: Option<Timestamp>,
    export_to: BTreeSet<String>,
    selector: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Candidate<'a> {
    fn new(rule: &'a DestinationRule, ours: bool, created: Option<Timestamp>) -> Self {
        let selector = rule
            .spec
            .workload_selector
            .as_ref()
            .map(|s| &s.match_labels);
        Self {
            rule,
            ours,
            created,
            // Istio never exports a rule with a selector: its exportTo is ".".
            export_to: if selector.is_some() {
                [".".to_string()].into()
            } else {
                rule.spec.export_to.iter().cloned().collect()
            },
            selector,
        }
    }
}

/// A consolidated rule: the first rule and what was merged into it.
struct Consolidated {
    base: usize,
    export_to: BTreeSet<String>,
    policy_from: Option<usize>,
    merged: Vec<usize>,
}

/// Whether Istio's first lookup step for a proxy in `proxy_namespace` sees `rule` (a rule of that
/// namespace): the root namespace's private index, or the proxy namespace's own rules.
fn in_first_index(rule: &DestinationRule, proxy_namespace: &str) -> bool {
    if rule.spec.workload_selector.is_some() {
        return true;
    }
    let export_to = &rule.spec.export_to;
    if proxy_namespace == ISTIO_NAMESPACE {
        // `isPrivateOnly`: exactly "." or the namespace itself (an empty exportTo follows the
        // mesh default, "*" unless `defaultDestinationRuleExportTo` says otherwise).
        export_to.len() == 1 && (export_to[0] == "." || export_to[0] == proxy_namespace)
    } else {
        export_to.is_empty()
            || export_to
                .iter()
                .any(|e| e == "*" || e == "." || e == proxy_namespace)
    }
}

fn same_host(rule: &DestinationRule, host: &DnsName) -> bool {
    rule.spec
        .host
        .trim_end_matches('.')
        .eq_ignore_ascii_case(host.as_str())
}

/// Replays Istio's index, merge and selection for the exact-host rules of the gateway's
/// namespace: `Ok(())` when the gateway uses our origination rule's `trafficPolicy`, else the
/// rules that take its place. `ours` is our rule (its creation time `None` when it does not exist
/// yet: it will be the newest); `others` are the other rules of any namespace.
pub fn effective_origination(
    ours: &DestinationRule,
    ours_created: Option<Timestamp>,
    others: &[DestinationRule],
    host: &DnsName,
    gateway: &GatewayProxy,
) -> Result<(), Vec<Shadowing>> {
    let ns = gateway.namespace.as_str();
    let newest = Timestamp::MAX;
    let mut rules: Vec<Candidate> = vec![Candidate::new(ours, true, ours_created.or(Some(newest)))];
    rules.extend(
        others
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(ns))
            .filter(|r| same_host(r, host) && in_first_index(r, ns))
            .map(|r| {
                Candidate::new(
                    r,
                    false,
                    r.metadata.creation_timestamp.as_ref().map(|t| t.0),
                )
            }),
    );
    // `sortConfigBySelectorAndCreationTime`: selectors first, then creation time, name, namespace
    // (an unknown creation time, as in files, sorts as Go's zero time: first).
    rules.sort_by(|a, b| {
        b.selector
            .is_some()
            .cmp(&a.selector.is_some())
            .then(a.created.cmp(&b.created))
            .then(a.rule.name_any().cmp(&b.rule.name_any()))
    });
    // `mergeDestinationRule` with ENABLE_ENHANCED_DESTINATIONRULE_MERGE (on by default).
    let mut consolidated: Vec<Consolidated> = Vec::new();
    for (i, incoming) in rules.iter().enumerate() {
        if consolidated.is_empty() {
            consolidated.push(Consolidated {
                base: i,
                export_to: incoming.export_to.clone(),
                policy_from: incoming.rule.spec.traffic_policy.as_ref().map(|_| i),
                merged: vec![i],
            });
            continue;
        }
        let mut append_separately = true;
        for existing in consolidated.iter_mut() {
            if incoming.export_to == existing.export_to {
                append_separately = false;
            } else if !existing.export_to.is_empty()
                && incoming.export_to.is_superset(&existing.export_to)
            {
                append_separately = true;
            } else {
                append_separately = true;
                continue;
            }
            let base = &rules[existing.base];
            match (incoming.selector, base.selector) {
                (Some(a), Some(b)) if a != b => {
                    append_separately = true;
                    continue;
                }
                (None, None) | (Some(_), Some(_)) => append_separately = false,
                _ => {}
            }
            existing.merged.push(i);
            if existing.policy_from.is_none() && incoming.rule.spec.traffic_policy.is_some() {
                existing.policy_from = Some(i);
            }
        }
        if append_separately {
            consolidated.push(Consolidated {
                base: i,
                export_to: incoming.export_to.clone(),
                policy_from: incoming.rule.spec.traffic_policy.as_ref().map(|_| i),
                merged: vec![i],
            });
        }
    }
    // `SidecarScope.DestinationRule`: the first whose selector matches the proxy, else the last
    // one without a selector.
    let matches = |selector: &BTreeMap<String, String>| {
        selector
            .iter()
            .all(|(k, v)| gateway.labels.get(k) == Some(v))
    };
    let mut chosen = None;
    for (n, c) in consolidated.iter().enumerate() {
        match rules[c.base].selector {
            None => chosen = Some(n),
            Some(selector) if matches(selector) => {
                chosen = Some(n);
                break;
            }
            Some(_) => {}
        }
    }
    let ours_index = rules.iter().position(|r| r.ours).unwrap_or(0);
    let name = |i: usize| {
        let r = rules[i].rule;
        format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any())
    };
    let Some(chosen) = chosen.map(|n| &consolidated[n]) else {
        // Ours was merged into rules whose selectors do not match the gateway.
        let blamed = consolidated
            .iter()
            .filter(|c| c.merged.contains(&ours_index) && c.base != ours_index)
            .map(|c| Shadowing {
                rule: name(c.base),
                reason: format!(
                    "it has a workloadSelector, so Istio merges the origination rule into it, and its selector does not match the egress gateway's pods in {ns}: the gateway gets no DestinationRule for {host} at all"
                ),
            })
            .collect();
        return Err(blamed);
    };
    if chosen.policy_from == Some(ours_index) {
        return Ok(());
    }
    let winner = chosen.policy_from.unwrap_or(chosen.base);
    let w = &rules[winner];
    let reason = if w.selector.is_some() {
        format!(
            "its workloadSelector matches the egress gateway's pods, so Istio applies its trafficPolicy for {host} instead"
        )
    } else if chosen.merged.contains(&ours_index) {
        format!(
            "it is for {host} in {ns} with the same exportTo and sorts first (older), so Istio merges the two and keeps its trafficPolicy"
        )
    } else {
        format!(
            "it is for {host} in {ns} with another exportTo and sorts after the origination rule (newer), so the gateway takes it instead"
        )
    };
    Err(vec![Shadowing {
        rule: name(winner),
        reason,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DestinationRuleSpec;
    use crate::resources::common::WorkloadSelector;
    use crate::resources::destination_rule::TrafficPolicy;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    const HOST: &str = "httpbin.example.com";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn rule(ns: &str, name: &str, host: &str, export_to: &[&str], created: i64) -> DestinationRule {
        DestinationRule {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                creation_timestamp: Some(Time(at(created))),
                ..Default::default()
            },
            spec: DestinationRuleSpec {
                host: host.into(),
                export_to: export_to.iter().map(|s| s.to_string()).collect(),
                traffic_policy: Some(TrafficPolicy::default()),
                ..Default::default()
            },
        }
    }

    fn ours() -> DestinationRule {
        rule(
            ISTIO_NAMESPACE,
            "mtls-originate-httpbin-example-com",
            HOST,
            &["."],
            100,
        )
    }

    fn check(others: &[DestinationRule], ours_created: Option<i64>) -> Result<(), Vec<String>> {
        effective_origination(
            &ours(),
            ours_created.map(at),
            others,
            &DnsName::parse(HOST).unwrap(),
            &GatewayProxy::default_egress(),
        )
        .map_err(|v| v.into_iter().map(|s| s.rule).collect())
    }

    fn with_selector(mut r: DestinationRule, labels: &[(&str, &str)]) -> DestinationRule {
        r.spec.workload_selector = Some(WorkloadSelector {
            match_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        r
    }

    #[test]
    fn what_does_not_shadow_the_gateways_rule() {
        let ok: Vec<DestinationRule> = vec![
            // The client namespace: the gateway in the root namespace never looks there first.
            rule("mtls-demo", "legacy", HOST, &[], 0),
            rule("mtls-demo", "private", HOST, &["."], 0),
            // Root namespace, exported: not in the root namespace's private index.
            rule(ISTIO_NAMESPACE, "exported", HOST, &["*"], 0),
            rule(ISTIO_NAMESPACE, "unset", HOST, &[], 0),
            rule(ISTIO_NAMESPACE, "two", HOST, &[".", "mtls-demo"], 0),
            // Wildcards: an exact host wins.
            rule(ISTIO_NAMESPACE, "wild", "*.example.com", &["."], 0),
            rule(ISTIO_NAMESPACE, "all", "*", &["."], 0),
            // Other hosts, short names.
            rule(ISTIO_NAMESPACE, "other", "other.example.com", &["."], 0),
            rule(ISTIO_NAMESPACE, "short", "httpbin", &["."], 0),
            // Same kind but newer: ours is the base of the merge.
            rule(ISTIO_NAMESPACE, "newer", HOST, &["."], 200),
            // Another exportTo but older: ours is the last rule without a selector.
            rule(
                ISTIO_NAMESPACE,
                "older-other-export",
                HOST,
                &["istio-system"],
                0,
            ),
        ];
        assert_eq!(check(&ok, Some(100)), Ok(()));
        // Older and the same kind, but without a trafficPolicy: ours fills it in.
        let mut no_policy = rule(ISTIO_NAMESPACE, "subsets-only", HOST, &["."], 0);
        no_policy.spec.traffic_policy = None;
        assert_eq!(check(&[no_policy.clone()], Some(100)), Ok(()));
        // A selector that matches the gateway, without a trafficPolicy: ours is merged into it.
        let matching = with_selector(no_policy, &[("istio", "egressgateway")]);
        assert_eq!(check(&[matching], Some(100)), Ok(()));
    }

    #[test]
    fn what_shadows_it() {
        let older = rule(ISTIO_NAMESPACE, "older", HOST, &["."], 0);
        assert_eq!(
            check(std::slice::from_ref(&older), Some(100)),
            Err(vec!["istio-system/older".into()])
        );
        // Not created yet: every existing rule is older.
        let later = rule(ISTIO_NAMESPACE, "later", HOST, &["."], 300);
        assert_eq!(
            check(&[later], None),
            Err(vec!["istio-system/later".into()])
        );
        // The same instant: the name decides ("a" < "mtls-originate-...").
        let same = rule(ISTIO_NAMESPACE, "a-rule", HOST, &["."], 100);
        assert_eq!(
            check(&[same], Some(100)),
            Err(vec!["istio-system/a-rule".into()])
        );
        // Another private exportTo, newer: the last rule without a selector wins.
        let newer = rule(ISTIO_NAMESPACE, "newer", HOST, &["istio-system"], 200);
        assert_eq!(
            check(&[newer], Some(100)),
            Err(vec!["istio-system/newer".into()])
        );
        // A selector matching the gateway, with a policy: used instead of ours.
        let matching = with_selector(
            rule(ISTIO_NAMESPACE, "gw", HOST, &["*"], 500),
            &[("istio", "egressgateway")],
        );
        assert_eq!(
            check(&[matching], Some(100)),
            Err(vec!["istio-system/gw".into()])
        );
        // A selector for other pods: ours is merged into it, the gateway gets nothing.
        let elsewhere = with_selector(
            rule(ISTIO_NAMESPACE, "app", HOST, &[], 500),
            &[("app", "reviews")],
        );
        let err = effective_origination(
            &ours(),
            Some(at(100)),
            &[elsewhere],
            &DnsName::parse(HOST).unwrap(),
            &GatewayProxy::default_egress(),
        )
        .unwrap_err();
        assert_eq!(err[0].rule, "istio-system/app");
        assert!(
            err[0].reason.contains("no DestinationRule"),
            "{}",
            err[0].reason
        );
        // Host names compare case-insensitively, with or without the root dot.
        let upper = rule(ISTIO_NAMESPACE, "upper", "HTTPBIN.example.com.", &["."], 0);
        assert_eq!(
            check(&[upper], Some(100)),
            Err(vec!["istio-system/upper".into()])
        );
        // The rule in the client namespace next to the older one changes nothing.
        let legacy = rule("mtls-demo", "legacy", HOST, &[], 0);
        assert_eq!(
            check(&[legacy, older], Some(100)),
            Err(vec!["istio-system/older".into()])
        );
    }

    #[test]
    fn a_gateway_outside_the_root_namespace_looks_at_its_own_namespace() {
        let gateway = GatewayProxy {
            namespace: "istio-egress".into(),
            labels: [("istio".to_string(), "egress".to_string())].into(),
        };
        let mut ours = ours();
        ours.metadata.namespace = Some("istio-egress".into());
        let host = DnsName::parse(HOST).unwrap();
        // Exported rules of its own namespace are in its first index too.
        let exported = rule("istio-egress", "older", HOST, &[], 0);
        assert!(effective_origination(&ours, Some(at(100)), &[exported], &host, &gateway).is_ok());
        let same = rule("istio-egress", "older", HOST, &["."], 0);
        assert!(
            effective_origination(
                &ours,
                Some(at(100)),
                std::slice::from_ref(&same),
                &host,
                &gateway
            )
            .is_err()
        );
        // istio-system's rules do not matter to it at this step.
        let mut root = same;
        root.metadata.namespace = Some(ISTIO_NAMESPACE.into());
        assert!(effective_origination(&ours, Some(at(100)), &[root], &host, &gateway).is_ok());
    }
}
