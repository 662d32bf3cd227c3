//! A NetworkPolicy compiled for evaluation, with the API server's defaulting and validation
//! applied: `policyTypes` defaulted from the rules present, protocols defaulted to TCP, selectors
//! compiled, CIDRs parsed, `endPort` checked. What the API server would refuse is refused here.

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::cidr::Cidr;
use super::selector::{Labels, Selector};

/// A transport protocol a NetworkPolicy port can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the default when a policy port names none).
    #[value(name = "TCP", alias = "tcp")]
    Tcp,
    /// UDP.
    #[value(name = "UDP", alias = "udp")]
    Udp,
    /// SCTP.
    #[value(name = "SCTP", alias = "sctp")]
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name (`TCP`, `UDP`, `SCTP`; absent means TCP).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("TCP") => Ok(Protocol::Tcp),
            Some("UDP") => Ok(Protocol::Udp),
            Some("SCTP") => Ok(Protocol::Sctp),
            Some(other) => Err(format!("protocol {other:?} is not one of TCP, UDP, SCTP")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// Which way a rule or policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic leaving the selected pods.
    Egress,
    /// Traffic arriving at the selected pods.
    Ingress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        })
    }
}

/// A compiled NetworkPolicy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its namespace (pod selectors without a namespace selector refer to it).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.podSelector`: the pods it applies to, in its namespace.
    pub pod_selector: Selector,
    /// The ingress rules when the policy affects ingress (`None` when it does not).
    pub ingress: Option<Vec<Rule>>,
    /// The egress rules when the policy affects egress (`None` when it does not).
    pub egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule: it allows traffic that matches one of its peers AND one of its ports.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `to`/`from`; `None` (absent or empty) matches every peer.
    pub peers: Option<Vec<Peer>>,
    /// `ports`; `None` (absent or empty) matches every port and protocol.
    pub ports: Option<Vec<PortMatch>>,
}

/// One `to`/`from` entry.
#[derive(Debug, Clone)]
pub enum Peer {
    /// `ipBlock`: addresses in `cidr` but in none of `except`.
    IpBlock {
        /// `cidr`.
        cidr: Cidr,
        /// `except`.
        except: Vec<Cidr>,
    },
    /// `podSelector` and/or `namespaceSelector`.
    Pods {
        /// Which namespaces: the policy's own (no `namespaceSelector`) or those selected.
        namespaces: NamespaceScope,
        /// Which pods in them (`{}` when `podSelector` is absent).
        pods: Selector,
    },
}

/// The namespaces a pod peer covers.
#[derive(Debug, Clone)]
pub enum NamespaceScope {
    /// Only the policy's namespace (the peer has a `podSelector` and no `namespaceSelector`).
    Own(String),
    /// Namespaces whose labels match.
    Selected(Selector),
}

/// One `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMatch {
    /// `protocol` (TCP when absent).
    pub protocol: Protocol,
    /// `port` and `endPort`.
    pub port: PortSpec,
}

/// What a `ports` entry says about the port number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// No `port`: every port of the protocol.
    Any,
    /// `port`, or `port`..=`endPort`.
    Range(u16, u16),
    /// A named port, resolved against the container ports of the pod on the receiving end.
    Named(String),
}

/// The pod or address on the other side of the traffic being evaluated, and what a pod peer
/// needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The pod, when the endpoint is one: its namespace, that namespace's labels, its labels.
    pub pod: Option<PodRef<'a>>,
    /// Its IP address, when known (ipBlock peers match on it).
    pub ip: Option<IpAddr>,
}

/// A pod as selectors see it.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// That namespace's labels (with `kubernetes.io/metadata.name`).
    pub namespace_labels: &'a Labels,
    /// The pod's labels.
    pub labels: &'a Labels,
    /// The pod's named container ports.
    pub ports: &'a [NamedPort],
}

/// A named container port (`ports[].name` of a container), for named policy ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// Its number.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl Peer {
    /// Whether this peer covers `endpoint`. ipBlocks match on the endpoint's IP (for a pod, its
    /// pod IP — how a CNI treats pod IPs in ipBlocks is implementation-defined); pod peers match
    /// only pods.
    pub fn matches(&self, endpoint: &Endpoint<'_>) -> bool {
        match self {
            Peer::IpBlock { cidr, except } => endpoint
                .ip
                .is_some_and(|ip| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))),
            Peer::Pods { namespaces, pods } => endpoint.pod.is_some_and(|pod| {
                let in_scope = match namespaces {
                    NamespaceScope::Own(ns) => ns == pod.namespace,
                    NamespaceScope::Selected(sel) => sel.matches(pod.namespace_labels),
                };
                in_scope && pods.matches(pod.labels)
            }),
        }
    }
}

impl PortMatch {
    /// Whether traffic to `port`/`protocol` matches; a named port matches when `named_ports`
    /// (the receiving pod's container ports) has that name with that protocol and number.
    pub fn matches(&self, port: u16, protocol: Protocol, named_ports: &[NamedPort]) -> bool {
        if self.protocol != protocol {
            return false;
        }
        match &self.port {
            PortSpec::Any => true,
            PortSpec::Range(lo, hi) => (*lo..=*hi).contains(&port),
            PortSpec::Named(name) => named_ports
                .iter()
                .any(|p| &p.name == name && p.protocol == protocol && p.port == port),
        }
    }
}

impl fmt::Display for PortMatch {
    /// `53/UDP`, `30000-32767/TCP`, `dns/UDP` (named), `*/TCP` (every port).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            PortSpec::Any => write!(f, "*/{}", self.protocol),
            PortSpec::Range(lo, hi) if lo == hi => write!(f, "{lo}/{}", self.protocol),
            PortSpec::Range(lo, hi) => write!(f, "{lo}-{hi}/{}", self.protocol),
            PortSpec::Named(name) => write!(f, "{name}/{}", self.protocol),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::IpBlock { cidr, except } if except.is_empty() => write!(f, "ipBlock {cidr}"),
            Peer::IpBlock { cidr, except } => {
                let except: Vec<String> = except.iter().map(ToString::to_string).collect();
                write!(f, "ipBlock {cidr} except {}", except.join(","))
            }
            Peer::Pods { namespaces, pods } => match namespaces {
                NamespaceScope::Own(ns) => write!(f, "pods {pods} in namespace {ns}"),
                NamespaceScope::Selected(sel) => write!(f, "pods {pods} in namespaces {sel}"),
            },
        }
    }
}

impl Policy {
    /// Compiles `policy` (its namespace is `default_namespace` when it names none). The error is
    /// one line naming the policy and the field.
    pub(crate) fn compile(policy: &NetworkPolicy, default_namespace: &str) -> Result<Self, String> {
        let namespace = policy
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let at = |what: String| format!("networkpolicy {namespace}/{name}: {what}");
        if name.is_empty() {
            return Err(format!(
                "a networkpolicy in namespace {namespace} has no metadata.name"
            ));
        }
        let spec = policy.spec.clone().unwrap_or_default();
        let pod_selector = Selector::compile(&spec.pod_selector.unwrap_or_default())
            .map_err(|e| at(format!("spec.podSelector: {e}")))?;
        let types = spec.policy_types.clone().unwrap_or_default();
        for t in &types {
            if t != "Ingress" && t != "Egress" {
                return Err(at(format!(
                    "spec.policyTypes: {t:?} is not Ingress or Egress"
                )));
            }
        }
        // The API server's defaulting: without policyTypes, every policy affects ingress, and it
        // affects egress when it has egress rules.
        let egress_rules = spec.egress.unwrap_or_default();
        let ingress_rules = spec.ingress.unwrap_or_default();
        let (affects_ingress, affects_egress) = if types.is_empty() {
            (true, !egress_rules.is_empty())
        } else {
            (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            )
        };
        let egress = if affects_egress {
            let mut rules = Vec::new();
            for (i, NetworkPolicyEgressRule { to, ports }) in egress_rules.iter().enumerate() {
                rules.push(
                    compile_rule(to.as_deref(), ports.as_deref(), &namespace)
                        .map_err(|e| at(format!("spec.egress[{i}]: {e}")))?,
                );
            }
            Some(rules)
        } else {
            None
        };
        let ingress = if affects_ingress {
            let mut rules = Vec::new();
            for (i, NetworkPolicyIngressRule { from, ports }) in ingress_rules.iter().enumerate() {
                rules.push(
                    compile_rule(from.as_deref(), ports.as_deref(), &namespace)
                        .map_err(|e| at(format!("spec.ingress[{i}]: {e}")))?,
                );
            }
            Some(rules)
        } else {
            None
        };
        Ok(Policy {
            namespace,
            name,
            pod_selector,
            ingress,
            egress,
        })
    }

    /// The rules for `direction`, when the policy affects it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Egress => self.egress.as_deref(),
            Direction::Ingress => self.ingress.as_deref(),
        }
    }
}

fn compile_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    namespace: &str,
) -> Result<Rule, String> {
    let peers = match peers {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| compile_peer(p, namespace).map_err(|e| format!("peer {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| compile_port(p).map_err(|e| format!("ports[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn compile_peer(peer: &NetworkPolicyPeer, namespace: &str) -> Result<Peer, String> {
    match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("ipBlock cannot be combined with podSelector or namespaceSelector".into())
        }
        (Some(block), None, None) => {
            let cidr: Cidr = block.cidr.parse()?;
            let mut except = Vec::new();
            for e in block.except.iter().flatten() {
                let e: Cidr = e.parse()?;
                if !cidr.covers(&e) || e == cidr {
                    return Err(format!(
                        "ipBlock except {e} must be a strict subset of cidr {cidr}"
                    ));
                }
                except.push(e);
            }
            Ok(Peer::IpBlock { cidr, except })
        }
        (None, None, None) => {
            Err("a peer needs an ipBlock, a podSelector or a namespaceSelector".into())
        }
        (None, ns, pods) => {
            let pods = Selector::compile(&pods.clone().unwrap_or_default())
                .map_err(|e| format!("podSelector: {e}"))?;
            let namespaces = match ns {
                None => NamespaceScope::Own(namespace.to_string()),
                Some(sel) => NamespaceScope::Selected(
                    Selector::compile(sel).map_err(|e| format!("namespaceSelector: {e}"))?,
                ),
            };
            Ok(Peer::Pods { namespaces, pods })
        }
    }
}

fn compile_port(port: &NetworkPolicyPort) -> Result<PortMatch, String> {
    let protocol = Protocol::parse(port.protocol.as_deref())?;
    let number = |n: i32| {
        u16::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("port {n} is not between 1 and 65535"))
    };
    let spec = match (&port.port, port.end_port) {
        (None, None) => PortSpec::Any,
        (None, Some(_)) => return Err("endPort needs port".into()),
        (Some(IntOrString::String(name)), None) => match name.parse::<i32>() {
            // Port names are IANA service names and contain a letter: the API server refuses
            // a quoted number ("53") as a name, and so do we.
            Ok(_) => return Err(format!("port {name:?} is a string: write it as a number")),
            Err(_) if name.is_empty() => return Err("port is an empty name".into()),
            Err(_) => PortSpec::Named(name.clone()),
        },
        (Some(IntOrString::String(_)), Some(_)) => {
            return Err("endPort cannot be used with a named port".into());
        }
        (Some(IntOrString::Int(n)), end) => {
            let lo = number(*n)?;
            let hi = match end {
                None => lo,
                Some(e) => {
                    let hi = number(e)?;
                    if hi < lo {
                        return Err(format!("endPort {hi} is less than port {lo}"));
                    }
                    hi
                }
            };
            PortSpec::Range(lo, hi)
        }
    };
    Ok(PortMatch {
        protocol,
        port: spec,
    })
}
