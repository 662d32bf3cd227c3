//! The `apply` plans of `kubectl mtls-lockdown` (snapshots of the exact YAML), the Sidecar against
//! the real Istio CRD schema, and the built policy judged by the evaluator: it allows what a
//! meshed pod needs (DNS on UDP and TCP, istiod, the egress gateway) and nothing else.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubectl_mtls_lockdown::apply::plan;
use serde_json::Value;
use shared::manifest::lockdown::{LockdownInputs, kyma_egress_pod_label};
use shared::netpol::{Direction, Endpoint, Inventory, Protocol};
use test_support::schema::Schemas;

fn inputs() -> LockdownInputs {
    LockdownInputs {
        namespace: "mtls-demo".into(),
        dns_service_ip: "100.104.0.10".parse().unwrap(),
        node_local_dns: false,
        extra_dns_pod_ports: vec![],
        egress_gateway_ports: vec![IntOrString::Int(8080), IntOrString::Int(8443)],
        egress_gateway: shared::gateway::GatewayWorkload::default_egress(),
        namespace_wide: false,
        allow_same_namespace: false,
    }
}

#[test]
fn default_plan() {
    insta::assert_snapshot!(plan(&inputs(), false, &[]).unwrap().to_yaml());
}

#[test]
fn namespace_wide_plan_with_node_local_dns_and_same_namespace() {
    let inputs = LockdownInputs {
        namespace_wide: true,
        node_local_dns: true,
        allow_same_namespace: true,
        extra_dns_pod_ports: vec![53, 5353],
        ..inputs()
    };
    insta::assert_snapshot!(plan(&inputs, false, &[]).unwrap().to_yaml());
}

#[test]
fn registry_only_plan_with_named_gateway_ports_and_ipv6_dns() {
    let inputs = LockdownInputs {
        dns_service_ip: "fd00:10:96::a".parse().unwrap(),
        egress_gateway_ports: vec![IntOrString::String("http2".into()), IntOrString::Int(8443)],
        ..inputs()
    };
    insta::assert_snapshot!(plan(&inputs, true, &["curl".into()]).unwrap().to_yaml());
}

#[test]
fn sidecar_validates_against_the_istio_crd_and_a_broken_one_does_not() {
    let Some(schemas) = Schemas::load() else {
        return;
    };
    let plan = plan(&inputs(), true, &[]).unwrap();
    let sidecar = &plan.objects()[1].body;
    assert_eq!(sidecar["kind"], "Sidecar");
    schemas.validate(sidecar).unwrap();
    let mut broken = sidecar.clone();
    broken["spec"]["outboundTrafficPolicy"]["modes"] = Value::String("REGISTRY_ONLY".into());
    assert!(
        schemas.validate(&broken).is_err(),
        "an unknown field must fail"
    );
}

#[test]
fn a_bad_namespace_is_refused() {
    let bad = LockdownInputs {
        namespace: "Mtls_Demo".into(),
        ..inputs()
    };
    let err = plan(&bad, false, &[]).unwrap_err().to_string();
    assert!(err.contains("Mtls_Demo"), "{err}");
    assert!(
        !kyma_egress_pod_label("n", "d")
            .spec
            .template
            .metadata
            .labels
            .is_empty()
    );
}

/// A small cluster: a client pod, CoreDNS behind kube-dns (Gardener style: 53 → 8053), istiod,
/// the egress gateway (80 → 8080, 443 → 8443), and another namespace.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: mtls-demo, labels: {app: client}}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: peer, namespace: mtls-demo, labels: {app: peer}}
status: {podIP: 10.0.0.6}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns-0, namespace: kube-system, labels: {k8s-app: kube-dns}}
status: {podIP: 10.0.9.2}
---
apiVersion: v1
kind: Pod
metadata: {name: istiod-0, namespace: istio-system, labels: {istio: pilot}}
status: {podIP: 10.0.8.2}
---
apiVersion: v1
kind: Pod
metadata: {name: egw-0, namespace: istio-system, labels: {istio: egressgateway}}
status: {podIP: 10.0.8.3}
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-0, namespace: istio-system, labels: {istio: ingressgateway}}
status: {podIP: 10.0.8.4}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: other}
status: {podIP: 10.0.7.2}
"#;

fn judged(inputs: &LockdownInputs) -> impl Fn(&str, u16, Protocol) -> bool + use<> {
    let mut inv = Inventory::new();
    inv.add_text(CLUSTER, "cluster", "default").unwrap();
    let plan = plan(inputs, false, &[]).unwrap();
    inv.add_document(plan.objects()[0].body.clone(), "mtls-demo")
        .unwrap();
    move |to: &str, port, proto| {
        let client = inv.pod("mtls-demo", "client").unwrap();
        let endpoint = match to.split_once('/') {
            Some((ns, name)) => inv.pod_endpoint(inv.pod(ns, name).unwrap()),
            None => Endpoint {
                pod: None,
                ip: Some(to.parse().unwrap()),
            },
        };
        inv.decide(Direction::Egress, client, &endpoint, port, proto)
            .allowed
    }
}

#[test]
fn the_policy_allows_exactly_what_a_meshed_pod_needs() {
    use Protocol::{Tcp, Udp};
    let allowed = judged(&inputs());
    for (to, port, proto) in [
        ("100.104.0.10", 53, Udp),
        ("100.104.0.10", 53, Tcp),
        ("kube-system/coredns-0", 8053, Udp),
        ("kube-system/coredns-0", 8053, Tcp),
        ("kube-system/coredns-0", 53, Tcp),
        ("istio-system/istiod-0", 15012, Tcp),
        ("istio-system/egw-0", 8080, Tcp),
        ("istio-system/egw-0", 8443, Tcp),
    ] {
        assert!(
            allowed(to, port, proto),
            "{to}:{port}/{proto} must be allowed"
        );
    }
    for (to, port, proto) in [
        ("1.1.1.1", 443, Tcp),
        ("8.8.8.8", 53, Udp),
        ("169.254.20.10", 53, Udp),
        ("istio-system/istiod-0", 15010, Tcp),
        ("istio-system/egw-0", 15012, Tcp),
        ("istio-system/ingress-0", 8443, Tcp),
        ("mtls-demo/peer", 8080, Tcp),
        ("other/db", 5432, Tcp),
        ("kube-system/coredns-0", 9153, Tcp),
    ] {
        assert!(
            !allowed(to, port, proto),
            "{to}:{port}/{proto} must be denied"
        );
    }
    // The options widen exactly what they say.
    let wide = judged(&LockdownInputs {
        namespace_wide: true,
        node_local_dns: true,
        allow_same_namespace: true,
        ..inputs()
    });
    assert!(wide("istio-system/ingress-0", 8443, Protocol::Tcp));
    assert!(wide("169.254.20.10", 53, Protocol::Tcp));
    assert!(wide("mtls-demo/peer", 8080, Protocol::Tcp));
    assert!(!wide("other/db", 5432, Protocol::Tcp));
    assert!(!wide("1.1.1.1", 443, Protocol::Tcp));
}
