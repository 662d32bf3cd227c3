//! The plans of `expose`, `enable` and the lockdown for gateways installed by Istio's Helm
//! `gateway` chart, each in its own namespace: `helm install istio-ingress istio/gateway -n
//! istio-ingress` gives pods `app: istio-ingress`, `istio: ingress` (istio/istio 1.30.3
//! `manifests/charts/gateway/templates/_helpers.tpl`: `gateway.name` is the release name,
//! `gateway.selectorLabels` is `app: <name>` and `istio: <name without istio->`), and likewise
//! `istio-egress` in `istio-egress`. Snapshots, the real CRD schemas, and what Istio needs of each
//! object for a gateway outside the root namespace.

use serde_json::Value;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload};
use shared::manifest::egress::{EnableRequest, Hop, MeshFacts, enable_plan, origination_rule};
use shared::manifest::expose::{ExposeRequest, Route, expose_plan};
use shared::manifest::lockdown::{LockdownInputs, network_policy};
use shared::names::DnsName;
use shared::precedence::{GatewayProxy, effective_origination};

const HOST: &str = "httpbin.example.com";

/// What `--gateway-namespace istio-egress --gateway-selector istio=egress` name (and what
/// detection finds for the chart's release `istio-egress`).
fn helm_egress() -> GatewayWorkload {
    GatewayArgs {
        gateway_namespace: Some("istio-egress".into()),
        gateway_selector: Some("istio=egress".parse().unwrap()),
    }
    .offline(GatewayRole::Egress)
}

fn helm_ingress() -> GatewayWorkload {
    GatewayArgs {
        gateway_namespace: Some("istio-ingress".into()),
        gateway_selector: Some("istio=ingress".parse().unwrap()),
    }
    .offline(GatewayRole::Ingress)
}

fn enable_request() -> EnableRequest {
    EnableRequest {
        host: DnsName::parse(HOST).unwrap(),
        namespace: "mtls-demo".into(),
        credential: "client-credential".into(),
        hop: Hop::IstioMutual,
        port: 443,
        access_log: true,
        restrict_to_namespace: true,
        kyma_istio: None,
        mesh: MeshFacts {
            egress_gateway: helm_egress(),
            ..Default::default()
        },
    }
}

fn objects(plan: &shared::plan::Plan) -> Vec<Value> {
    plan.objects().iter().map(|o| o.body.clone()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn enable_follows_a_helm_egress_gateway_into_its_namespace() {
    let plan = enable_plan(&enable_request()).unwrap();
    insta::assert_snapshot!("enable_helm_egress_gateway", plan.to_yaml());
    let objs = objects(&plan);
    let service = "istio-egress.istio-egress.svc.cluster.local";
    let se = find(&objs, "ServiceEntry", "mtls-httpbin-example-com");
    assert_eq!(
        se["spec"]["exportTo"],
        serde_json::json!([".", "istio-egress"])
    );
    let gw = find(&objs, "Gateway", "mtls-egress-httpbin-example-com");
    assert_eq!(
        gw["spec"]["selector"],
        serde_json::json!({"istio": "egress"})
    );
    let subset = find(&objs, "DestinationRule", "mtls-egress-httpbin-example-com");
    assert_eq!(subset["spec"]["host"], service);
    let vs = find(&objs, "VirtualService", "mtls-httpbin-example-com");
    assert_eq!(
        vs["spec"]["exportTo"],
        serde_json::json!([".", "istio-egress"])
    );
    assert_eq!(
        vs["spec"]["http"][0]["route"][0]["destination"]["host"],
        service
    );
    for (kind, name) in [
        ("DestinationRule", "mtls-originate-httpbin-example-com"),
        ("AuthorizationPolicy", "mtls-restrict-httpbin-example-com"),
        ("Telemetry", "mtls-egressgateway-access-log"),
    ] {
        let o = find(&objs, kind, name);
        assert_eq!(o["metadata"]["namespace"], "istio-egress", "{kind}");
    }
    for (kind, name) in [
        ("AuthorizationPolicy", "mtls-restrict-httpbin-example-com"),
        ("Telemetry", "mtls-egressgateway-access-log"),
    ] {
        assert_eq!(
            find(&objs, kind, name)["spec"]["selector"]["matchLabels"],
            serde_json::json!({"istio": "egress"}),
            "{kind}"
        );
    }
    assert!(
        !plan.to_yaml().contains("istio-system"),
        "nothing lands in istio-system:\n{}",
        plan.to_yaml()
    );
}

#[test]
fn expose_selects_a_helm_ingress_gateway() {
    for route in [Route::Virtualservice, Route::Apirule] {
        let plan = expose_plan(&ExposeRequest {
            host: DnsName::parse(HOST).unwrap(),
            namespace: "partner".into(),
            service: "httpbin:8000".parse().unwrap(),
            credential: "kyma-mtls-certs".into(),
            gateway: None,
            route,
            methods: vec!["GET".into()],
            label_namespace: false,
            ingress: helm_ingress(),
        })
        .unwrap();
        let objs = objects(&plan);
        let gw = find(&objs, "Gateway", "mtls-httpbin-example-com");
        assert_eq!(
            gw["spec"]["selector"],
            serde_json::json!({"istio": "ingress"})
        );
        if route == Route::Virtualservice {
            insta::assert_snapshot!("expose_helm_ingress_gateway", plan.to_yaml());
        }
    }
}

#[test]
fn the_helm_gateway_plans_validate_against_the_real_crds() {
    let Some(schemas) = test_support::schema::Schemas::load() else {
        return;
    };
    let mut all = objects(&enable_plan(&enable_request()).unwrap());
    let mut plain = enable_request();
    plain.hop = Hop::Plain;
    plain.restrict_to_namespace = false;
    all.extend(objects(&enable_plan(&plain).unwrap()));
    for route in [Route::Virtualservice, Route::Apirule] {
        all.extend(objects(
            &expose_plan(&ExposeRequest {
                host: DnsName::parse(HOST).unwrap(),
                namespace: "partner".into(),
                service: "httpbin:8000".parse().unwrap(),
                credential: "kyma-mtls-certs".into(),
                gateway: None,
                route,
                methods: vec!["GET".into()],
                label_namespace: false,
                ingress: helm_ingress(),
            })
            .unwrap(),
        ));
    }
    let mut checked = 0;
    for o in &all {
        let (api, kind) = (
            o["apiVersion"].as_str().unwrap(),
            o["kind"].as_str().unwrap(),
        );
        if schemas.knows(api, kind) {
            schemas
                .validate(o)
                .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
}

/// A DestinationRule exported to `.` in a namespace other than the root one goes into that
/// namespace's `namespaceLocal` index, and a proxy whose config namespace is that namespace (and
/// not the root) looks there first (istio/istio 1.30.3 `pilot/pkg/model/push_context.go`:
/// `setDestinationRules` — "add only if the dest rule is exported with . or * or explicit
/// exportTo containing this namespace" — and `destinationRule`, step 1 for
/// `proxyNameSpace != ps.Mesh.RootNamespace`). So the origination rule in `istio-egress` is the
/// one the Helm egress gateway uses, and a gateway in istio-system would not see it at all (it is
/// private to istio-egress, and not in the root namespace's private index).
#[test]
fn a_gateway_outside_the_root_namespace_uses_the_origination_rule_of_its_namespace() {
    let host = DnsName::parse(HOST).unwrap();
    let ours = origination_rule(&enable_request());
    assert_eq!(ours.metadata.namespace.as_deref(), Some("istio-egress"));
    assert_eq!(ours.spec.export_to, ["."]);
    let helm = GatewayProxy {
        namespace: "istio-egress".into(),
        labels: [("istio".to_string(), "egress".to_string())].into(),
    };
    assert_eq!(
        effective_origination(&ours, None, &[], &host, &helm),
        Ok(())
    );
    // An older rule for the host in the gateway's namespace is seen by it first, and shadows ours.
    let mut older = ours.clone();
    older.metadata.name = Some("legacy".into());
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    assert_eq!(
        effective_origination(&ours, None, std::slice::from_ref(&older), &host, &helm).unwrap_err()
            [0]
        .rule,
        "istio-egress/legacy"
    );
    // The same rule in istio-system does not matter to the gateway in istio-egress.
    older.metadata.namespace = Some("istio-system".into());
    assert_eq!(
        effective_origination(&ours, None, &[older], &host, &helm),
        Ok(())
    );
}

/// The lockdown lets the namespace reach the Helm egress gateway's pods in their namespace, and
/// with `namespace_wide` that whole namespace next to istio-system.
#[test]
fn the_lockdown_allows_the_helm_egress_gateway_pods() {
    let inputs = LockdownInputs {
        namespace: "mtls-demo".into(),
        dns_service_ip: "10.96.0.10".parse().unwrap(),
        node_local_dns: false,
        extra_dns_pod_ports: vec![],
        egress_gateway_ports: vec![
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8443),
        ],
        egress_gateway: helm_egress(),
        namespace_wide: false,
        allow_same_namespace: false,
    };
    let policy = serde_json::to_value(network_policy(&inputs).unwrap()).unwrap();
    let peer = &policy["spec"]["egress"][2]["to"][0];
    assert_eq!(
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "istio-egress"
    );
    assert_eq!(
        peer["podSelector"]["matchLabels"],
        serde_json::json!({"istio": "egress"})
    );
    let wide = serde_json::to_value(
        network_policy(&LockdownInputs {
            namespace_wide: true,
            ..inputs
        })
        .unwrap(),
    )
    .unwrap();
    let namespaces: Vec<&Value> = wide["spec"]["egress"][1]["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        .collect();
    assert_eq!(namespaces, ["istio-system", "istio-egress"]);
}
