//! What `expose` and `enable` need to know about a cluster before they plan: Kyma or plain Istio,
//! the egress gateway, APIRule support, DestinationRules that would shadow ours — and the waits
//! after applying. Decisions are pure functions ([`choose_istio_cr`], [`shadows`]); the rest reads.

use std::io::Write;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::{Client, ResourceExt};

use shared::cluster::detect::{
    EGRESS_DEPLOYMENT, deployment_available, egress_gateway, kyma_istio_crs,
};
use shared::cluster::served;
use shared::cluster::{ClusterError, get_opt, list};
use shared::error::Error;
use shared::manifest::host::HOST_LABEL;
use shared::manifest::{MANAGED_BY_LABEL, MANAGER, host::slug};
use shared::names::DnsName;
use shared::resources::{APIRule, DestinationRule, Istio};

/// Picks the one Kyma Istio CR to patch, or says why not.
pub(crate) fn choose_istio_cr(crs: &[Istio]) -> Result<(String, String), Error> {
    match crs {
        [] => Err(Error::State(
            "the Istio CRD of Kyma is installed but there is no Istio CR: add the Istio module (kyma-system/default) before enabling the egress gateway".into(),
        )),
        [one] => Ok((one.namespace().unwrap_or_default(), one.name_any())),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
                .collect();
            Err(Error::State(format!(
                "there are {} Istio CRs ({}): Kyma reconciles only the oldest and marks the others Warning; delete the extra ones, then run enable again",
                several.len(),
                names.join(", ")
            )))
        }
    }
}

/// The Kyma Istio CR to switch the egress gateway on in, or `None` on plain Istio.
pub async fn kyma_istio(client: &Client) -> Result<Option<(String, String)>, Error> {
    match kyma_istio_crs(client).await? {
        Some(crs) => choose_istio_cr(&crs).map(Some),
        None => Ok(None),
    }
}

/// The Kyma Istio CR, if Kyma is installed and exactly one CR exists (read-only uses).
pub(crate) async fn kyma_istio_cr(client: &Client) -> Result<Option<Istio>, ClusterError> {
    Ok(match kyma_istio_crs(client).await? {
        Some(crs) if crs.len() == 1 => crs.into_iter().next(),
        _ => None,
    })
}

/// Whether the APIRule `v2` kind is served (Kyma's API Gateway module).
pub(crate) async fn apirule_served(client: &Client) -> Result<bool, ClusterError> {
    served::<APIRule>(client).await
}

/// Whether `rule` is for `host` and not one we made for that host: such a rule can take
/// precedence over our origination rule and silently drop the mutual TLS (Istio's lookup order:
/// istio/istio `pilot/pkg/model/push_context.go`, `destinationRule`).
pub fn shadows(rule: &DestinationRule, host: &DnsName) -> bool {
    let labels = rule.labels();
    let ours = labels.get(MANAGED_BY_LABEL).is_some_and(|v| v == MANAGER)
        && labels.get(HOST_LABEL).is_some_and(|v| *v == slug(host));
    if ours {
        return false;
    }
    match DnsName::parse(&rule.spec.host) {
        Ok(name) => name.covers(host.as_str()),
        // Short names (`httpbin`) or `*`: only an exact `*` covers an external host.
        Err(_) => rule.spec.host == "*",
    }
}

/// DestinationRules anywhere (or, without cluster-wide list permission, in `namespace` and
/// istio-system) that would shadow our origination rule for `host`, as `namespace/name`.
pub(crate) async fn shadowing_rules(
    client: &Client,
    host: &DnsName,
    namespace: &str,
) -> Result<Vec<String>, ClusterError> {
    let rules: Vec<DestinationRule> = match list(client, None, &ListParams::default()).await {
        Ok(rules) => rules,
        Err(ClusterError::Forbidden { .. }) => {
            let mut rules: Vec<DestinationRule> =
                list(client, Some(namespace), &ListParams::default()).await?;
            rules.extend(
                list::<DestinationRule>(
                    client,
                    Some(shared::manifest::ISTIO_NAMESPACE),
                    &ListParams::default(),
                )
                .await?,
            );
            rules
        }
        Err(e) => return Err(e),
    };
    Ok(rules
        .iter()
        .filter(|r| shadows(r, host))
        .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
        .collect())
}

/// Polls until the Kyma Istio CR (when `kyma` names it) is `Ready` and the egress gateway
/// Deployment is Available, writing each change of state to `progress`; fails after `timeout`.
pub async fn wait_ready(
    client: &Client,
    kyma: Option<&(String, String)>,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let istio_state = match kyma {
            Some((ns, name)) => get_opt::<Istio>(client, ns, name)
                .await?
                .and_then(|cr| cr.status.and_then(|s| s.state)),
            None => Some("Ready".to_string()),
        };
        let deployment = egress_gateway(client).await?;
        let available = deployment.as_ref().is_some_and(deployment_available);
        let istio_ready = istio_state.as_deref() == Some("Ready");
        let state = format!(
            "waiting: Istio CR {}, deployment istio-system/{EGRESS_DEPLOYMENT} {}",
            istio_state.as_deref().unwrap_or("(no state yet)"),
            match &deployment {
                None => "not created yet",
                Some(_) if available => "Available",
                Some(_) => "not Available yet",
            }
        );
        if istio_ready && available {
            writeln!(
                progress,
                "egress gateway ready after {:.0?}",
                start.elapsed()
            )?;
            return Ok(());
        }
        if state != last {
            writeln!(progress, "{state}")?;
            last = state;
        }
        if start.elapsed() >= timeout {
            return Err(Error::State(format!(
                "timed out after {timeout:?} ({last}); check `kubectl -n istio-system describe deployment {EGRESS_DEPLOYMENT}` and the Istio CR's status, or re-run with --no-wait"
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use shared::resources::DestinationRuleSpec;

    fn istio(ns: &str, name: &str) -> Istio {
        Istio {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: None,
        }
    }

    #[test]
    fn exactly_one_istio_cr_is_required() {
        assert!(matches!(choose_istio_cr(&[]), Err(Error::State(m)) if m.contains("no Istio CR")));
        assert_eq!(
            choose_istio_cr(&[istio("kyma-system", "default")]).unwrap(),
            ("kyma-system".to_string(), "default".to_string())
        );
        let err = choose_istio_cr(&[
            istio("kyma-system", "default"),
            istio("kyma-system", "second"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("2 Istio CRs") && err.contains("kyma-system/second"),
            "{err}"
        );
    }

    fn rule(host: &str, labels: &[(&str, &str)]) -> DestinationRule {
        DestinationRule {
            metadata: ObjectMeta {
                name: Some("r".into()),
                namespace: Some("mtls-demo".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: DestinationRuleSpec {
                host: host.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn foreign_rules_for_the_host_shadow_ours() {
        let host = DnsName::parse("httpbin.example.com").unwrap();
        assert!(shadows(&rule("httpbin.example.com", &[]), &host));
        assert!(shadows(&rule("*.example.com", &[]), &host));
        assert!(shadows(&rule("*", &[]), &host));
        assert!(!shadows(&rule("other.example.com", &[]), &host));
        assert!(!shadows(
            &rule("istio-egressgateway.istio-system.svc.cluster.local", &[]),
            &host
        ));
        let ours = [
            (MANAGED_BY_LABEL, MANAGER),
            (HOST_LABEL, "httpbin-example-com"),
        ];
        assert!(!shadows(&rule("httpbin.example.com", &ours), &host));
        // Ours, but for another host that happens to cover this one: still in the way.
        let other = [
            (MANAGED_BY_LABEL, MANAGER),
            (HOST_LABEL, "wildcard-example-com"),
        ];
        assert!(shadows(&rule("*.example.com", &other), &host));
    }
}
