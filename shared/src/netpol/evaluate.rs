//! The verdict for one packet's direction: which policies isolate the pod, which rule allows the
//! traffic, or why none does.
//!
//! Kubernetes semantics: a pod is isolated for a direction when at least one policy of its
//! namespace selects it and affects that direction; then traffic is allowed when any rule of any
//! of those policies allows it (policies are a union, there is no deny rule and no order). A pod
//! no policy isolates allows everything. A rule allows traffic that matches one of its peers AND
//! one of its ports; a named port is resolved against the container ports of the receiving pod
//! (the destination for egress, the selected pod itself for ingress).

use std::fmt;

use serde::Serialize;

use super::inventory::Inventory;
use super::policy::{Direction, Endpoint, PodRef, Policy, Protocol};

/// A policy, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "networkpolicy {}/{}", self.namespace, self.name)
    }
}

/// One rule of a policy: `spec.egress[rule]` or `spec.ingress[rule]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The policy.
    pub policy: PolicyRef,
    /// Ingress or egress.
    pub direction: Direction,
    /// The rule's index in the policy's list.
    pub rule: usize,
}

impl fmt::Display for RuleRef {
    /// `networkpolicy ns/name spec.egress[1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} spec.{}[{}]", self.policy, self.direction, self.rule)
    }
}

/// A rule that matched the peer or the port, but not both: why it did not allow the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NearMiss {
    /// The rule.
    pub rule: RuleRef,
    /// Whether one of its peers matched.
    pub peer_matches: bool,
    /// Whether one of its ports matched.
    pub port_matches: bool,
    /// What the rule allows instead, e.g. `allows only 53/UDP` or `allows 53/TCP only to …`.
    pub detail: String,
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rule, self.detail)
    }
}

/// Why traffic is allowed or denied in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Reason {
    /// No policy selects the pod for this direction, so everything is allowed.
    #[serde(rename_all = "camelCase")]
    NotIsolated,
    /// These rules allow the traffic (any one suffices).
    #[serde(rename_all = "camelCase")]
    AllowedBy {
        /// The allowing rules, in load order.
        rules: Vec<RuleRef>,
    },
    /// These policies isolate the pod and none of their rules allows the traffic.
    #[serde(rename_all = "camelCase")]
    NoRuleAllows {
        /// The isolating policies.
        policies: Vec<PolicyRef>,
        /// Rules that matched the peer or the port but not both.
        near_misses: Vec<NearMiss>,
    },
}

/// The verdict in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Ingress or egress.
    pub direction: Direction,
    /// Whether the traffic is allowed.
    pub allowed: bool,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

impl fmt::Display for Decision {
    /// One line: `allowed by networkpolicy a/b spec.egress[0]`, `allowed: no NetworkPolicy selects
    /// the pod for egress`, `denied: networkpolicy a/b selects the pod for egress and no rule allows it`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::NotIsolated => write!(
                f,
                "allowed: no NetworkPolicy selects the pod for {}",
                self.direction
            ),
            Reason::AllowedBy { rules } => {
                write!(f, "allowed by {}", rules[0])?;
                if rules.len() > 1 {
                    write!(f, " (and {} more)", rules.len() - 1)?;
                }
                Ok(())
            }
            Reason::NoRuleAllows { policies, .. } => {
                let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "denied: {} select{} the pod for {} and no rule allows it",
                    names.join(", "),
                    if policies.len() == 1 { "s" } else { "" },
                    self.direction
                )
            }
        }
    }
}

/// Decides traffic in `direction` between `subject` (the pod the policies would select) and
/// `other` (the destination for egress, the source for ingress) on `port`/`protocol`, over
/// `policies` (those of other namespaces are ignored).
pub fn decide<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    direction: Direction,
    subject: &PodRef<'_>,
    other: &Endpoint<'_>,
    port: u16,
    protocol: Protocol,
) -> Decision {
    let named_ports = match direction {
        Direction::Egress => other.pod.map_or(&[][..], |p| p.ports),
        Direction::Ingress => subject.ports,
    };
    let mut isolating = Vec::new();
    let mut allowing = Vec::new();
    let mut near_misses = Vec::new();
    for policy in policies {
        if policy.namespace != subject.namespace || !policy.pod_selector.matches(subject.labels) {
            continue;
        }
        let Some(rules) = policy.rules(direction) else {
            continue;
        };
        let policy_ref = PolicyRef {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        };
        for (i, rule) in rules.iter().enumerate() {
            let peer_matches = rule
                .peers
                .as_ref()
                .is_none_or(|peers| peers.iter().any(|p| p.matches(other)));
            let port_matches = rule
                .ports
                .as_ref()
                .is_none_or(|ports| ports.iter().any(|p| p.matches(port, protocol, named_ports)));
            let rule_ref = || RuleRef {
                policy: policy_ref.clone(),
                direction,
                rule: i,
            };
            if peer_matches && port_matches {
                allowing.push(rule_ref());
            } else if peer_matches || port_matches {
                let detail = if peer_matches {
                    let ports: Vec<String> = rule
                        .ports
                        .iter()
                        .flatten()
                        .map(ToString::to_string)
                        .collect();
                    format!("matches the peer but allows only {}", ports.join(", "))
                } else {
                    let peers: Vec<String> = rule
                        .peers
                        .iter()
                        .flatten()
                        .map(ToString::to_string)
                        .collect();
                    format!(
                        "allows {port}/{protocol} but only {} {}",
                        match direction {
                            Direction::Egress => "to",
                            Direction::Ingress => "from",
                        },
                        peers.join("; ")
                    )
                };
                near_misses.push(NearMiss {
                    rule: rule_ref(),
                    peer_matches,
                    port_matches,
                    detail,
                });
            }
        }
        isolating.push(policy_ref);
    }
    let (allowed, reason) = if isolating.is_empty() {
        (true, Reason::NotIsolated)
    } else if !allowing.is_empty() {
        (true, Reason::AllowedBy { rules: allowing })
    } else {
        (
            false,
            Reason::NoRuleAllows {
                policies: isolating,
                near_misses,
            },
        )
    };
    Decision {
        direction,
        allowed,
        reason,
    }
}

/// Both ends of one connection: egress from the source pod, and ingress at the destination pod
/// when the destination is a known pod. Allowed only when both are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// Whether the connection is allowed (egress, and ingress when evaluated).
    pub allowed: bool,
    /// The source pod's egress verdict.
    pub egress: Decision,
    /// The destination pod's ingress verdict (`None` when the destination is not a known pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Decision>,
}

impl Inventory {
    /// Decides `direction` for pod `subject` (an index into [`Inventory::pods`]) against `other`.
    pub fn decide(
        &self,
        direction: Direction,
        subject: usize,
        other: &Endpoint<'_>,
        port: u16,
        protocol: Protocol,
    ) -> Decision {
        let pod = self.pod_ref(subject);
        decide(
            self.policies_in(pod.namespace),
            direction,
            &pod,
            other,
            port,
            protocol,
        )
    }

    /// Evaluates a connection from pod `from` to `to_pod` (a known pod) or to the bare address
    /// `to_ip`, on `port`/`protocol` (the port the destination receives on).
    pub fn connection(
        &self,
        from: usize,
        to_pod: Option<usize>,
        to_ip: Option<std::net::IpAddr>,
        port: u16,
        protocol: Protocol,
    ) -> Connection {
        let destination = match to_pod {
            Some(i) => Endpoint {
                ip: to_ip.or(self.pods()[i].ip),
                ..self.pod_endpoint(i)
            },
            None => Endpoint {
                pod: None,
                ip: to_ip,
            },
        };
        let egress = self.decide(Direction::Egress, from, &destination, port, protocol);
        let ingress = to_pod.map(|i| {
            self.decide(
                Direction::Ingress,
                i,
                &self.pod_endpoint(from),
                port,
                protocol,
            )
        });
        Connection {
            allowed: egress.allowed && ingress.as_ref().is_none_or(|d| d.allowed),
            egress,
            ingress,
        }
    }
}
