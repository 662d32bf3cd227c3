//! Per-host routing rules on the client side: ServiceEntry and VirtualService visible to the egress
//! gateway, an egress Gateway for the host, the subset the mesh route names, the hop's TLS mode
//! agreeing on both ends, the route to the partner not forwarding the caller's identity, and one
//! origination DestinationRule with `sni` and `subjectAltNames` that nothing takes the place of
//! at the egress gateway (Istio's DestinationRule lookup, replayed by [`shared::precedence`]).

use kube::ResourceExt;

use super::{Finding, RuleId, Severity, Snapshot};
use shared::gateway::{GatewayRole, GatewayWorkload};
use shared::manifest::egress::XFCC_HEADER;
use shared::names::DnsName;
use shared::precedence::{GatewayProxy, effective_origination};
use shared::resources::destination_rule::ClientTls;
use shared::resources::{DestinationRule, Gateway};

/// `ns/host` → `host`.
fn bare(host: &str) -> &str {
    host.rsplit_once('/').map_or(host, |(_, h)| h)
}

fn covers(pattern: &str, host: &DnsName) -> bool {
    let pattern = bare(pattern);
    pattern == "*" || DnsName::parse(pattern).is_ok_and(|p| p.covers(host.as_str()))
}

/// Whether `export_to` lets a proxy in `gateway_ns` (the egress gateway's) see an object from
/// `namespace`.
fn visible_to(export_to: &[String], namespace: &str, gateway_ns: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| e == "*" || e == gateway_ns)
        || (namespace == gateway_ns && export_to.iter().any(|e| e == "."))
}

/// Whether a Gateway selects the egress gateway's pods (its selector is the gateway's, or one of
/// its labels).
fn is_egress_gateway(gw: &Gateway, egress: &GatewayWorkload) -> bool {
    !gw.spec.selector.is_empty()
        && gw
            .spec
            .selector
            .iter()
            .all(|(k, v)| egress.selector.get(k) == Some(v.as_str()))
}

fn mutual(dr: &DestinationRule) -> Option<&ClientTls> {
    let policy = dr.spec.traffic_policy.as_ref()?;
    policy
        .tls
        .iter()
        .chain(
            policy
                .port_level_settings
                .iter()
                .filter_map(|p| p.tls.as_ref()),
        )
        .find(|t| t.mode == "MUTUAL")
}

/// The hosts the snapshot configures for egress mTLS: origination rules in the egress gateway's
/// namespace and hosts of egress Gateways.
pub fn hosts(s: &Snapshot) -> Vec<DnsName> {
    let egress = s.gateway(GatewayRole::Egress);
    let gateway_ns = egress.namespace.as_str();
    let mut hosts: Vec<DnsName> = s
        .destination_rules
        .iter()
        .filter(|dr| dr.namespace().as_deref() == Some(gateway_ns) && mutual(dr).is_some())
        .filter_map(|dr| DnsName::parse_exact(&dr.spec.host).ok())
        .chain(
            s.gateways
                .iter()
                .filter(|g| is_egress_gateway(g, &egress))
                .flat_map(|g| g.spec.servers.iter().flat_map(|srv| srv.hosts.iter()))
                .filter_map(|h| DnsName::parse_exact(bare(h)).ok()),
        )
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn id(kind: &str, namespace: Option<String>, name: String) -> String {
    format!("{kind} {}/{name}", namespace.unwrap_or_default())
}

/// Runs the routing rules for `host`.
pub fn check(s: &Snapshot, host: &DnsName) -> Vec<Finding> {
    let mut findings = Vec::new();
    let h = host.as_str();
    let egress = s.gateway(GatewayRole::Egress);
    let gateway_ns = egress.namespace.as_str();
    let gateway_host = egress.service_host();

    let entries: Vec<_> = s
        .service_entries
        .iter()
        .filter(|se| se.spec.hosts.iter().any(|x| covers(x, host)))
        .collect();
    if entries.is_empty() {
        findings.push(Finding::new(
            RuleId::ServiceentryMissing,
            Severity::Error,
            format!("host {h}"),
            "no ServiceEntry: the mesh does not know the host, and the egress gateway has no cluster outbound|443||HOST",
            format!("kubectl mtls-egress enable --host {h} -n NAMESPACE"),
        ));
    }
    for se in &entries {
        let ns = se.namespace().unwrap_or_default();
        if !visible_to(&se.spec.export_to, &ns, gateway_ns) {
            findings.push(Finding::new(
                RuleId::ServiceentryExport,
                Severity::Error,
                id("serviceentry", se.namespace(), se.name_any()),
                format!(
                    "exportTo {:?} hides it from the egress gateway in {gateway_ns}",
                    se.spec.export_to
                ),
                format!("set exportTo: [\".\", \"{gateway_ns}\"]"),
            ));
        }
    }

    let egress_servers: Vec<_> = s
        .gateways
        .iter()
        .filter(|g| is_egress_gateway(g, &egress))
        .flat_map(|g| g.spec.servers.iter().map(move |srv| (g, srv)))
        .filter(|(_, srv)| srv.hosts.iter().any(|x| covers(x, host)))
        .collect();
    if egress_servers.is_empty() {
        findings.push(Finding::new(
            RuleId::EgressGatewayRouteMissing,
            Severity::Error,
            format!("host {h}"),
            format!(
                "no Gateway with selector {} lists the host: the egress gateway has no listener for it",
                egress
                    .selector
                    .labels()
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("kubectl mtls-egress enable --host {h} -n NAMESPACE"),
        ));
    }

    let services: Vec<_> = s
        .virtual_services
        .iter()
        .filter(|vs| vs.spec.hosts.iter().any(|x| covers(x, host)))
        .collect();
    if services.is_empty() {
        findings.push(Finding::new(
            RuleId::VirtualserviceMissing,
            Severity::Error,
            format!("host {h}"),
            "no VirtualService for the host: sidecars send it straight out, not through the egress gateway",
            format!("kubectl mtls-egress enable --host {h} -n NAMESPACE"),
        ));
    }
    for vs in &services {
        let ns = vs.namespace().unwrap_or_default();
        let object = id("virtualservice", vs.namespace(), vs.name_any());
        if !visible_to(&vs.spec.export_to, &ns, gateway_ns) {
            findings.push(Finding::new(
                RuleId::VirtualserviceExport,
                Severity::Error,
                &object,
                format!("exportTo {:?} hides it from the egress gateway: requests get 404 NR route_not_found there", vs.spec.export_to),
                format!("set exportTo: [\".\", \"{gateway_ns}\"]"),
            ));
        }
        for route in &vs.spec.http {
            let from_mesh = route
                .matches
                .iter()
                .any(|m| m.gateways.iter().any(|g| g == "mesh"));
            for dest in route.route.iter().map(|r| &r.destination) {
                if !from_mesh || dest.host != gateway_host {
                    continue;
                }
                let Some(subset) = &dest.subset else { continue };
                let rule = s.destination_rules.iter().find(|dr| {
                    dr.spec.host == gateway_host
                        && dr.spec.subsets.iter().any(|sub| &sub.name == subset)
                        && (dr.namespace().as_deref() == Some(ns.as_str())
                            || dr.namespace().as_deref() == Some(gateway_ns))
                });
                let Some(rule) = rule else {
                    {
                        findings.push(Finding::new(
                            RuleId::VirtualserviceSubsetMissing,
                            Severity::Error,
                            &object,
                            format!("routes the mesh to subset {subset:?} of the egress gateway, which no DestinationRule in {ns} defines: 503 NC cluster_not_found"),
                            format!("add a DestinationRule for {gateway_host} with subset {subset} in {ns}"),
                        ));
                    }
                    continue;
                };
                // The hop: what the sidecar sends must be what the gateway listens for.
                let port = dest.port.as_ref().map(|p| p.number);
                let subset_tls = rule
                    .spec
                    .subsets
                    .iter()
                    .find(|sub| &sub.name == subset)
                    .and_then(|sub| sub.traffic_policy.as_ref())
                    .and_then(|p| {
                        p.port_level_settings
                            .iter()
                            .find(|l| Some(l.port.number) == port)
                            .and_then(|l| l.tls.clone())
                            .or_else(|| p.tls.clone())
                    })
                    .map(|t| t.mode);
                let sidecar_mutual = subset_tls.as_deref() == Some("ISTIO_MUTUAL");
                for (gw, srv) in &egress_servers {
                    if port.is_some_and(|p| p != srv.port.number) {
                        continue;
                    }
                    let gateway_mutual = srv.tls.as_ref().is_some_and(|t| t.mode == "ISTIO_MUTUAL");
                    if gateway_mutual != sidecar_mutual {
                        findings.push(Finding::new(
                            RuleId::HopTlsMismatch,
                            Severity::Error,
                            id("gateway", gw.namespace(), gw.name_any()),
                            format!(
                                "the egress Gateway listens on {} with {}, but the subset {subset:?} sends {}",
                                srv.port.number,
                                if gateway_mutual { "ISTIO_MUTUAL" } else { "plain text" },
                                if sidecar_mutual { "ISTIO_MUTUAL" } else { "plain text" }
                            ),
                            "make both ISTIO_MUTUAL (kubectl mtls-egress enable --hop istio-mutual) or both plain (--hop plain)",
                        ));
                    }
                }
            }
        }
    }

    // The Istio-mTLS hop: the gateway's connection manager sets XFCC from the sidecar's
    // certificate (SANITIZE_SET, istio/istio `pilot/pkg/networking/core/gateway.go`), and a route
    // that does not remove it forwards the caller's identity to the partner.
    let mutual_hop = egress_servers
        .iter()
        .any(|(_, srv)| srv.tls.as_ref().is_some_and(|t| t.mode == "ISTIO_MUTUAL"));
    for vs in services.iter().filter(|_| mutual_hop) {
        for route in &vs.spec.http {
            let to_host: Vec<_> = route
                .route
                .iter()
                .filter(|r| covers(&r.destination.host, host))
                .collect();
            let removed_for_route = route
                .headers
                .as_ref()
                .is_some_and(|h| h.removes_request_header(XFCC_HEADER));
            let leaks = !removed_for_route
                && to_host.iter().any(|r| {
                    !r.headers
                        .as_ref()
                        .is_some_and(|h| h.removes_request_header(XFCC_HEADER))
                });
            if leaks {
                findings.push(Finding::new(
                    RuleId::IdentityForwarded,
                    Severity::Warning,
                    id("virtualservice", vs.namespace(), vs.name_any()),
                    format!("the route to {h} keeps {XFCC_HEADER}: over the ISTIO_MUTUAL hop the egress gateway forwards the calling workload's SPIFFE identity and certificate to the partner"),
                    format!("add headers: {{request: {{remove: [{XFCC_HEADER}]}}}} to the route to {h} (kubectl mtls-egress enable does)"),
                ));
            }
        }
    }

    let origination: Vec<&DestinationRule> = s
        .destination_rules
        .iter()
        .filter(|dr| {
            dr.namespace().as_deref() == Some(gateway_ns)
                && dr.spec.host == h
                && mutual(dr).is_some()
        })
        .collect();
    if origination.is_empty() {
        findings.push(Finding::new(
            RuleId::OriginationMissing,
            Severity::Error,
            format!("host {h}"),
            format!("no DestinationRule in {gateway_ns} originates MUTUAL TLS for the host: the egress gateway sends it without the client certificate"),
            format!("kubectl mtls-egress enable --host {h} -n NAMESPACE"),
        ));
    }
    for dr in &origination {
        let object = id("destinationrule", dr.namespace(), dr.name_any());
        if let Some(tls) = mutual(dr)
            && tls.subject_alt_names.is_empty()
        {
            findings.push(Finding::new(
                RuleId::OriginationSanMissing,
                Severity::Error,
                &object,
                if tls.sni.is_some() {
                    "sni is set without subjectAltNames: Istio then checks only the CA chain, not the server's name".to_string()
                } else {
                    "no subjectAltNames: the server's name is not verified explicitly".to_string()
                },
                format!("add subjectAltNames: [{h}] next to sni"),
            ));
        }
        if dr.spec.export_to != ["."] {
            findings.push(Finding::new(
                RuleId::OriginationExport,
                Severity::Warning,
                &object,
                format!("exportTo {:?}: a DestinationRule in the root namespace applies to every sidecar of the mesh", dr.spec.export_to),
                "set exportTo: [\".\"] (only the egress gateway needs it)",
            ));
        }
    }
    // Only what Istio's lookup really puts in the origination rule's place at the gateway.
    let results: Vec<_> = origination
        .iter()
        .map(|o| {
            let others: Vec<DestinationRule> = s
                .destination_rules
                .iter()
                .filter(|dr| !std::ptr::eq(*o, *dr))
                .cloned()
                .collect();
            let created = o.metadata.creation_timestamp.as_ref().map(|t| t.0);
            effective_origination(o, created, &others, host, &gateway_proxy(&egress))
        })
        .collect();
    if !results.iter().any(Result::is_ok)
        && let Some(Err(shadowing)) = results.into_iter().next()
    {
        for shadow in shadowing {
            findings.push(Finding::new(
                RuleId::OriginationShadowed,
                Severity::Error,
                format!("destinationrule {}", shadow.rule),
                format!(
                    "the egress gateway uses it instead of the mTLS origination rule for {h}: {}",
                    shadow.reason
                ),
                "delete it, or merge what it needs into the origination rule",
            ));
        }
    }
    findings
}

/// The egress gateway's pods as Istio's DestinationRule lookup sees them.
fn gateway_proxy(egress: &GatewayWorkload) -> GatewayProxy {
    if egress.is_default() {
        return GatewayProxy::default_egress();
    }
    GatewayProxy {
        namespace: egress.namespace.clone(),
        labels: egress.selector.labels().clone(),
    }
}
