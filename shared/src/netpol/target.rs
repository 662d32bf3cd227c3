//! Where traffic to `--to HOST:PORT` or `--to-ip IP:PORT` actually goes, as [`Hop`]s the
//! evaluator can judge.
//!
//! A Service name resolves to each pod it selects, on the pod's target port (what most CNI plugins
//! see: kube-proxy rewrites the ClusterIP before the policy is applied), and to the ClusterIP on
//! the Service port (what a policy sees when nothing rewrites it first, e.g. node-local DNS
//! answering on the node). An address is judged as an address (ipBlock), and as the pod that owns
//! it when one does.

use std::net::IpAddr;

use serde::Serialize;

use super::inventory::{Inventory, TargetPort};
use super::policy::Protocol;

/// A parsed `--to` / `--to-ip` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Service: `NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc[.CLUSTER-DOMAIN]`, and a port.
    Service {
        /// The Service's name.
        name: String,
        /// Its namespace, when the host names one.
        namespace: Option<String>,
        /// The Service port.
        port: u16,
    },
    /// An address and a port.
    Ip {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
}

const HOST_HINT: &str = "use --to SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT, e.g. --to kube-dns.kube-system:53, or --to-ip IP:PORT for an address";

impl Destination {
    /// Parses `--to HOST:PORT` (an IP literal host is the same as `--to-ip`).
    pub fn parse_host(value: &str) -> Result<Self, String> {
        let (host, port) = split_host_port(value, HOST_HINT)?;
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Destination::Ip { ip, port });
        }
        let parts: Vec<&str> = host.split('.').collect();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !parts.iter().all(|l| valid_label(l)) || (parts.len() >= 3 && parts[2] != "svc") {
            return Err(format!(
                "invalid --to {value:?}: {host:?} is not a Service name; {HOST_HINT}"
            ));
        }
        Ok(Destination::Service {
            name: parts[0].to_string(),
            namespace: parts.get(1).map(|s| s.to_string()),
            port,
        })
    }

    /// Parses `--to-ip IP:PORT` (`[IPv6]:PORT` for IPv6).
    pub fn parse_ip(value: &str) -> Result<Self, String> {
        let hint = "use --to-ip IP:PORT, e.g. --to-ip 1.1.1.1:443 or --to-ip [2001:db8::1]:443";
        let (host, port) = split_host_port(value, hint)?;
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("invalid --to-ip {value:?}: {host:?} is not an IP address; {hint}")
            })?;
        Ok(Destination::Ip { ip, port })
    }
}

fn split_host_port<'a>(value: &'a str, hint: &str) -> Result<(&'a str, u16), String> {
    let (host, port) = value
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("invalid destination {value:?}: missing :PORT; {hint}"))?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "invalid destination {value:?}: write an IPv6 address in brackets, [ADDRESS]:PORT; {hint}"
        ));
    }
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        format!("invalid destination {value:?}: port {port:?} is not between 1 and 65535; {hint}")
    })?;
    Ok((host, port))
}

/// What kind of hop a [`Hop`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HopKind {
    /// A pod behind a Service, on its target port (after kube-proxy's DNAT): what most CNI
    /// plugins evaluate.
    Backend,
    /// A Service's ClusterIP on the Service port (before DNAT): what a policy sees only when
    /// nothing rewrites it first, e.g. node-local DNS answering on the node.
    ClusterIp,
    /// An address (`--to-ip`), or a pod found by label.
    Address,
}

/// One way traffic reaches the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// What this hop is, e.g. `pod kube-system/coredns-0 (Service backend)`.
    pub description: String,
    /// Backend, ClusterIP or address.
    pub kind: HopKind,
    /// The destination pod (index into [`Inventory::pods`]), when the hop ends at a known pod.
    #[serde(skip)]
    pub pod: Option<usize>,
    /// The destination address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The port the destination receives on.
    pub port: u16,
}

/// A destination resolved against an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The destination as the user named it, normalised: `kube-dns.kube-system:53`, `1.1.1.1:443`.
    pub destination: String,
    /// Every hop: Service backends, then the ClusterIP; or the one address.
    pub hops: Vec<Hop>,
}

/// Resolves `destination` for `protocol`; a Service without a namespace is looked up in
/// `namespace` (the source pod's). Fails (one line) when the Service is unknown, has no such
/// port, or leads nowhere.
pub fn resolve(
    inventory: &Inventory,
    destination: &Destination,
    protocol: Protocol,
    namespace: &str,
) -> Result<Resolved, String> {
    match destination {
        Destination::Ip { ip, port } => {
            let pod = inventory.pod_by_ip(*ip);
            let description = match pod {
                Some(i) => {
                    let p = &inventory.pods()[i];
                    format!("address {ip} (pod {}/{})", p.namespace, p.name)
                }
                None => format!("address {ip}"),
            };
            let shown = if ip.is_ipv6() {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            Ok(Resolved {
                destination: shown,
                hops: vec![Hop {
                    description,
                    kind: HopKind::Address,
                    pod,
                    ip: Some(*ip),
                    port: *port,
                }],
            })
        }
        Destination::Service {
            name,
            namespace: ns,
            port,
        } => {
            let ns = ns.as_deref().unwrap_or(namespace);
            let svc = inventory.service(ns, name).ok_or_else(|| {
                format!("service {ns}/{name} not found; check the name and namespace ({HOST_HINT})")
            })?;
            let sp = svc
                .ports
                .iter()
                .find(|p| p.port == *port && p.protocol == protocol)
                .ok_or_else(|| {
                    let ports: Vec<String> = svc
                        .ports
                        .iter()
                        .map(|p| format!("{}/{}", p.port, p.protocol))
                        .collect();
                    format!(
                        "service {ns}/{name} has no port {port}/{protocol} (it has {}); pick one of those, or --protocol",
                        if ports.is_empty() { "none".to_string() } else { ports.join(", ") }
                    )
                })?;
            let mut hops = Vec::new();
            for i in inventory.service_pods(svc) {
                let pod = &inventory.pods()[i];
                let target = match &sp.target {
                    TargetPort::Number(n) => Some(*n),
                    TargetPort::Name(n) => pod
                        .ports
                        .iter()
                        .find(|p| &p.name == n && p.protocol == protocol)
                        .map(|p| p.port),
                };
                // A pod without the named target port is not an endpoint of this Service port.
                if let Some(target) = target {
                    hops.push(Hop {
                        description: format!(
                            "pod {}/{} port {target} (Service backend)",
                            pod.namespace, pod.name
                        ),
                        kind: HopKind::Backend,
                        pod: Some(i),
                        ip: pod.ip,
                        port: target,
                    });
                }
            }
            if let Some(ip) = svc.cluster_ip {
                hops.push(Hop {
                    description: format!("ClusterIP {ip} port {port} (before DNAT)"),
                    kind: HopKind::ClusterIp,
                    pod: None,
                    ip: Some(ip),
                    port: *port,
                });
            }
            if hops.is_empty() {
                return Err(format!(
                    "service {ns}/{name} has no ClusterIP and selects no pod with a port for {port}/{protocol}; add its pods to the input"
                ));
            }
            Ok(Resolved {
                destination: format!("{name}.{ns}:{port}"),
                hops,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_names_and_addresses() {
        let svc = |name: &str, ns: Option<&str>, port| Destination::Service {
            name: name.into(),
            namespace: ns.map(Into::into),
            port,
        };
        assert_eq!(
            Destination::parse_host("kube-dns:53").unwrap(),
            svc("kube-dns", None, 53)
        );
        assert_eq!(
            Destination::parse_host("kube-dns.kube-system:53").unwrap(),
            svc("kube-dns", Some("kube-system"), 53)
        );
        assert_eq!(
            Destination::parse_host("istiod.istio-system.svc.cluster.local:15012").unwrap(),
            svc("istiod", Some("istio-system"), 15012)
        );
        assert_eq!(
            Destination::parse_host("10.0.0.1:80").unwrap(),
            Destination::Ip {
                ip: "10.0.0.1".parse().unwrap(),
                port: 80
            }
        );
        assert_eq!(
            Destination::parse_ip("[2001:db8::1]:443").unwrap(),
            Destination::Ip {
                ip: "2001:db8::1".parse().unwrap(),
                port: 443
            }
        );
        for bad in [
            "kube-dns",
            "kube-dns:",
            ":53",
            "kube-dns:0",
            "kube-dns:70000",
            "a.b.c:1",
            "Foo:1",
            "a_b:1",
        ] {
            assert!(Destination::parse_host(bad).is_err(), "{bad}");
        }
        for bad in ["1.2.3.4", "host:80", "2001:db8::1:443", "1.2.3.4:x"] {
            assert!(Destination::parse_ip(bad).is_err(), "{bad}");
        }
    }
}
