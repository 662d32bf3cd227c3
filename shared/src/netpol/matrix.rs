//! The verdicts `kubectl mtls-lockdown explain` and `doctor` give, computed without I/O: one
//! report per source pod and destination (every hop judged on both ends), or a matrix of pods ×
//! well-known destinations (DNS on UDP and TCP, istiod, the egress gateway, the outside).

use serde::Serialize;

use super::target::Destination;
use super::{Decision, Hop, HopKind, Inventory, Protocol, Resolved, resolve};
use crate::manifest::ISTIO_NAMESPACE;
use crate::manifest::lockdown::{
    DEFAULT_EGRESS_GATEWAY_PORTS, DNS_NAMESPACE, DNS_POD_LABEL, EGRESS_GATEWAY_POD_LABEL,
    ISTIOD_POD_LABEL, ISTIOD_PORT,
};

/// The outside address the matrix tries (nothing is sent: it is only evaluated).
pub(crate) const OUTSIDE: &str = "1.1.1.1:443";

/// The verdict over the hops of a destination: the backends (or the address) decide; a
/// ClusterIP hop that allows what the backends do not makes it [`Verdict::Partial`] (it works
/// only where nothing rewrites the ClusterIP first, e.g. node-local DNS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every backend (or the address) is allowed.
    Allowed,
    /// Nothing is allowed.
    Denied,
    /// Some backends are allowed and some are not, or only the ClusterIP is.
    Partial,
}

impl Verdict {
    fn of(hops: &[HopReport]) -> Self {
        let primary: Vec<bool> = hops
            .iter()
            .filter(|h| h.hop.kind != HopKind::ClusterIp)
            .map(|h| h.allowed)
            .collect();
        let cluster_ip = hops
            .iter()
            .any(|h| h.hop.kind == HopKind::ClusterIp && h.allowed);
        if primary.is_empty() {
            return if cluster_ip {
                Verdict::Allowed
            } else {
                Verdict::Denied
            };
        }
        if primary.iter().all(|a| *a) {
            Verdict::Allowed
        } else if cluster_ip || primary.iter().any(|a| *a) {
            Verdict::Partial
        } else {
            Verdict::Denied
        }
    }

    /// `allowed`, `denied`, `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Partial => "partial",
        }
    }
}

/// One hop, judged.
#[derive(Debug, Clone, Serialize)]
pub struct HopReport {
    /// The hop.
    #[serde(flatten)]
    pub hop: Hop,
    /// Egress from the source, and ingress at the destination pod.
    pub allowed: bool,
    /// The source pod's egress verdict.
    pub egress: Decision,
    /// The destination pod's ingress verdict, when the hop ends at a known pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Decision>,
}

/// One source pod to one destination.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// `namespace/name` of the source pod.
    pub pod: String,
    /// The destination, e.g. `kube-dns.kube-system:53`.
    pub destination: String,
    /// The protocol.
    pub protocol: Protocol,
    /// Over all hops.
    pub verdict: Verdict,
    /// Each hop.
    pub hops: Vec<HopReport>,
}

/// Judges every hop of `resolved` from pod `source`.
pub fn explain(
    inventory: &Inventory,
    source: usize,
    resolved: &Resolved,
    protocol: Protocol,
) -> PathReport {
    let pod = &inventory.pods()[source];
    let hops: Vec<HopReport> = resolved
        .hops
        .iter()
        .map(|hop| {
            let c = inventory.connection(source, hop.pod, hop.ip, hop.port, protocol);
            HopReport {
                hop: hop.clone(),
                allowed: c.allowed,
                egress: c.egress,
                ingress: c.ingress,
            }
        })
        .collect();
    PathReport {
        pod: format!("{}/{}", pod.namespace, pod.name),
        destination: resolved.destination.clone(),
        protocol,
        verdict: Verdict::of(&hops),
        hops,
    }
}

/// A matrix column: a well-known destination.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Short header, e.g. `DNS/UDP`.
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// What it stands for, e.g. `kube-dns.kube-system:53` or `not found`.
    pub destination: String,
    /// The hops, when the destination exists in the inventory.
    #[serde(skip)]
    pub resolved: Option<Resolved>,
}

/// One matrix row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// One verdict per column (`None` when the destination was not found).
    pub cells: Vec<Option<Verdict>>,
}

/// Pods × well-known destinations.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// The destinations.
    pub columns: Vec<Column>,
    /// One row per source pod.
    pub rows: Vec<Row>,
}

fn pods_hops(inventory: &Inventory, namespace: &str, label: (&str, &str), port: u16) -> Vec<Hop> {
    inventory
        .pods_in(namespace)
        .into_iter()
        .filter(|&i| inventory.pods()[i].labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|i| {
            let p = &inventory.pods()[i];
            Hop {
                description: format!("pod {}/{} port {port}", p.namespace, p.name),
                kind: HopKind::Address,
                pod: Some(i),
                ip: p.ip,
                port,
            }
        })
        .collect()
}

fn column(
    inventory: &Inventory,
    name: &str,
    service: (&str, &str, u16),
    protocol: Protocol,
    fallback: (&str, &str, (&str, &str), u16),
) -> Column {
    let (svc, ns, port) = service;
    let dest = Destination::Service {
        name: svc.into(),
        namespace: Some(ns.into()),
        port,
    };
    let resolved = resolve(inventory, &dest, protocol, ns).ok().or_else(|| {
        let (label_text, ns, label, port) = fallback;
        let hops = pods_hops(inventory, ns, label, port);
        (!hops.is_empty()).then(|| Resolved {
            destination: format!("pods {label_text} in {ns}:{port}"),
            hops,
        })
    });
    Column {
        name: name.into(),
        protocol,
        destination: resolved
            .as_ref()
            .map_or_else(|| "not found".to_string(), |r| r.destination.clone()),
        resolved,
    }
}

/// The well-known destinations: DNS on UDP and TCP, istiod, the egress gateway's ports, and an
/// outside address. A Service is used when present, else pods with the usual labels.
pub fn well_known(inventory: &Inventory) -> Vec<Column> {
    let dns = |proto| {
        column(
            inventory,
            &format!("DNS/{proto}"),
            ("kube-dns", DNS_NAMESPACE, 53),
            proto,
            ("k8s-app=kube-dns", DNS_NAMESPACE, DNS_POD_LABEL, 53),
        )
    };
    let mut columns = vec![dns(Protocol::Udp), dns(Protocol::Tcp)];
    columns.push(column(
        inventory,
        "ISTIOD",
        ("istiod", ISTIO_NAMESPACE, ISTIOD_PORT),
        Protocol::Tcp,
        (
            "istio=pilot",
            ISTIO_NAMESPACE,
            ISTIOD_POD_LABEL,
            ISTIOD_PORT,
        ),
    ));
    match inventory.service(ISTIO_NAMESPACE, "istio-egressgateway") {
        Some(svc) if !svc.ports.is_empty() => {
            for p in svc.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
                columns.push(column(
                    inventory,
                    &format!("EGRESS-GW:{}", p.port),
                    ("istio-egressgateway", ISTIO_NAMESPACE, p.port),
                    Protocol::Tcp,
                    (
                        "istio=egressgateway",
                        ISTIO_NAMESPACE,
                        EGRESS_GATEWAY_POD_LABEL,
                        p.port,
                    ),
                ));
            }
        }
        _ => {
            for port in DEFAULT_EGRESS_GATEWAY_PORTS {
                let hops = pods_hops(inventory, ISTIO_NAMESPACE, EGRESS_GATEWAY_POD_LABEL, port);
                let resolved = (!hops.is_empty()).then(|| Resolved {
                    destination: format!("pods istio=egressgateway in {ISTIO_NAMESPACE}:{port}"),
                    hops,
                });
                columns.push(Column {
                    name: format!("EGRESS-GW:{port}"),
                    protocol: Protocol::Tcp,
                    destination: resolved
                        .as_ref()
                        .map_or_else(|| "not found".to_string(), |r| r.destination.clone()),
                    resolved,
                });
            }
        }
    }
    let outside = Destination::parse_ip(OUTSIDE).expect("a valid address");
    columns.push(Column {
        name: "OUTSIDE".into(),
        protocol: Protocol::Tcp,
        destination: OUTSIDE.into(),
        resolved: resolve(inventory, &outside, Protocol::Tcp, "default").ok(),
    });
    columns
}

/// Evaluates every source pod against every column.
pub fn matrix(inventory: &Inventory, sources: &[usize], columns: Vec<Column>) -> Matrix {
    let rows = sources
        .iter()
        .map(|&source| {
            let pod = &inventory.pods()[source];
            Row {
                pod: format!("{}/{}", pod.namespace, pod.name),
                cells: columns
                    .iter()
                    .map(|c| {
                        c.resolved
                            .as_ref()
                            .map(|r| explain(inventory, source, r, c.protocol).verdict)
                    })
                    .collect(),
            }
        })
        .collect();
    Matrix { columns, rows }
}
