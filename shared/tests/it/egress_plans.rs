//! The plans of `kubectl mtls-egress expose` and `enable`: snapshots of every variant, every Istio
//! and Kyma object validated against the real CRD schemas, and the semantics that make the mTLS
//! path work (routes, sni + subjectAltNames, exportTo).

use serde_json::Value;
use shared::manifest::egress::{EnableRequest, Hop, enable_plan};
use shared::manifest::expose::{ExposeRequest, Route, expose_plan};
use shared::names::DnsName;
use shared::plan::Plan;

fn enable(host: &str, hop: Hop, access_log: bool, restrict: bool, kyma: bool) -> Plan {
    enable_plan(&EnableRequest {
        host: DnsName::parse(host).unwrap(),
        namespace: "mtls-demo".into(),
        credential: "client-credential".into(),
        hop,
        port: 443,
        access_log,
        restrict_to_namespace: restrict,
        kyma_istio: kyma.then(|| ("kyma-system".to_string(), "default".to_string())),
        mesh: Default::default(),
    })
    .unwrap()
}

fn expose(route: Route, label_namespace: bool) -> Plan {
    expose_plan(&ExposeRequest {
        host: DnsName::parse("httpbin.example.com").unwrap(),
        namespace: "mtls-demo".into(),
        service: "httpbin:8000".parse().unwrap(),
        credential: "kyma-mtls-certs".into(),
        gateway: None,
        route,
        methods: vec!["GET".into()],
        label_namespace,
        ingress: shared::gateway::GatewayWorkload::default_ingress(),
    })
    .unwrap()
}

fn objects(plan: &Plan) -> Vec<Value> {
    plan.objects().iter().map(|o| o.body.clone()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(name_prefix)
        })
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}*"))
}

fn all_plans() -> Vec<(&'static str, Plan)> {
    vec![
        ("expose_apirule", expose(Route::Apirule, true)),
        (
            "expose_virtualservice",
            expose(Route::Virtualservice, false),
        ),
        (
            "enable_istio_mutual_kyma_log_restrict",
            enable("httpbin.example.com", Hop::IstioMutual, true, true, true),
        ),
        (
            "enable_plain_no_log",
            enable("httpbin.example.com", Hop::Plain, false, false, false),
        ),
    ]
}

#[test]
fn plan_snapshots() {
    for (name, plan) in all_plans() {
        insta::assert_snapshot!(name, plan.to_yaml());
    }
    // Two hosts in one namespace: distinct names and subsets, one shared Telemetry.
    let a = enable("httpbin.example.com", Hop::IstioMutual, true, false, false);
    let b = enable("api.partner.example", Hop::IstioMutual, true, false, false);
    let names = |p: &Plan| -> Vec<String> {
        p.objects()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.namespace.as_deref().unwrap_or(""),
                    o.display_name()
                )
            })
            .collect()
    };
    insta::assert_snapshot!(
        "enable_two_hosts",
        format!("{}\n{}", names(&a).join("\n"), names(&b).join("\n"))
    );
    let shared: Vec<_> = names(&a)
        .into_iter()
        .filter(|n| names(&b).contains(n))
        .collect();
    assert_eq!(
        shared,
        ["istio-system/telemetry.telemetry.istio.io/mtls-egressgateway-access-log"]
    );
}

#[test]
fn every_emitted_custom_resource_validates_against_the_real_crds() {
    let Some(schemas) = test_support::schema::Schemas::load() else {
        return;
    };
    let mut checked = 0;
    for (name, plan) in all_plans() {
        for object in objects(&plan) {
            if object["apiVersion"] == "v1" {
                continue; // core kinds are typed by k8s-openapi
            }
            if let Err(errors) = schemas.validate(&object) {
                panic!(
                    "{name}: {} {}: {errors:?}",
                    object["kind"], object["metadata"]["name"]
                );
            }
            checked += 1;
        }
    }
    // expose: Gateway + APIRule, Gateway + VS; enable: Istio + SE + GW + DR + VS + DR + AP + Telemetry, SE + GW + DR + VS + DR.
    assert_eq!(checked, 2 + 2 + 8 + 5);
}

#[test]
fn the_mesh_route_goes_to_the_egress_subset_and_the_gateway_route_to_the_host() {
    for (hop, hop_port) in [(Hop::IstioMutual, 443), (Hop::Plain, 80)] {
        let objs = objects(&enable("httpbin.example.com", hop, true, false, false));
        let vs = find(&objs, "VirtualService", "mtls-httpbin");
        let http = vs["spec"]["http"].as_array().unwrap();
        assert_eq!(http[0]["match"][0]["gateways"][0], "mesh");
        assert_eq!(http[0]["match"][0]["port"], 80);
        let to_gw = &http[0]["route"][0]["destination"];
        assert_eq!(
            to_gw["host"],
            "istio-egressgateway.istio-system.svc.cluster.local"
        );
        assert_eq!(to_gw["subset"], "httpbin-example-com");
        assert_eq!(to_gw["port"]["number"], hop_port);
        assert_eq!(
            http[1]["match"][0]["gateways"][0],
            "mtls-egress-httpbin-example-com"
        );
        assert_eq!(http[1]["match"][0]["port"], hop_port);
        assert_eq!(
            http[1]["route"][0]["destination"]["host"],
            "httpbin.example.com"
        );
        assert_eq!(http[1]["route"][0]["destination"]["port"]["number"], 443);
        // Issue 13 item 9: the gateway's connection manager sets XFCC from the sidecar's Istio
        // certificate (SANITIZE_SET, istio/istio `pilot/pkg/networking/core/gateway.go`); the
        // route to the partner removes it, and only that route (the mesh hop needs nothing).
        assert_eq!(
            http[1]["headers"],
            serde_json::json!({"request": {"remove": ["x-forwarded-client-cert"]}})
        );
        assert!(http[0].get("headers").is_none());
        // The subset the route names exists in the subset rule.
        let subset_rule = find(&objs, "DestinationRule", "mtls-egress-");
        assert_eq!(
            subset_rule["spec"]["subsets"][0]["name"],
            "httpbin-example-com"
        );
        let gw = find(&objs, "Gateway", "mtls-egress-");
        assert_eq!(gw["spec"]["servers"][0]["port"]["number"], hop_port);
        assert_eq!(gw["spec"]["selector"]["istio"], "egressgateway");
        match hop {
            Hop::IstioMutual => {
                assert_eq!(gw["spec"]["servers"][0]["tls"]["mode"], "ISTIO_MUTUAL");
                let tls = &subset_rule["spec"]["subsets"][0]["trafficPolicy"]["portLevelSettings"]
                    [0]["tls"];
                assert_eq!(tls["mode"], "ISTIO_MUTUAL");
                assert_eq!(tls["sni"], "httpbin.example.com");
            }
            Hop::Plain => {
                assert!(gw["spec"]["servers"][0].get("tls").is_none());
                assert!(
                    subset_rule["spec"]["subsets"][0]
                        .get("trafficPolicy")
                        .is_none()
                );
            }
        }
    }
}

#[test]
fn origination_sets_sni_and_san_and_export_to_lets_the_gateway_see_the_routes() {
    let objs = objects(&enable(
        "httpbin.example.com",
        Hop::IstioMutual,
        false,
        false,
        false,
    ));
    let originate = find(&objs, "DestinationRule", "mtls-originate-");
    assert_eq!(originate["metadata"]["namespace"], "istio-system");
    assert_eq!(originate["spec"]["host"], "httpbin.example.com");
    assert_eq!(originate["spec"]["exportTo"], serde_json::json!(["."]));
    let tls = &originate["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"];
    assert_eq!(tls["mode"], "MUTUAL");
    assert_eq!(tls["credentialName"], "client-credential");
    assert_eq!(tls["sni"], "httpbin.example.com");
    assert_eq!(
        tls["subjectAltNames"],
        serde_json::json!(["httpbin.example.com"])
    );
    for kind in ["ServiceEntry", "VirtualService"] {
        let o = find(&objs, kind, "mtls-httpbin");
        assert_eq!(
            o["spec"]["exportTo"],
            serde_json::json!([".", "istio-system"]),
            "{kind}"
        );
        assert_eq!(o["metadata"]["namespace"], "mtls-demo");
    }
    let subset_rule = find(&objs, "DestinationRule", "mtls-egress-");
    assert_eq!(subset_rule["spec"]["exportTo"], serde_json::json!(["."]));
    // Every object made for the host carries the label disable deletes by.
    for o in &objs {
        assert_eq!(
            o["metadata"]["labels"]["kubectl-mtls/host"], "httpbin-example-com",
            "{}",
            o["kind"]
        );
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kubectl-mtls"
        );
    }
}

#[test]
fn the_kyma_istio_cr_patch_owns_one_field_only() {
    let objs = objects(&enable(
        "httpbin.example.com",
        Hop::IstioMutual,
        false,
        false,
        true,
    ));
    let istio = &objs[0];
    assert_eq!(istio["kind"], "Istio");
    assert_eq!(
        istio["spec"],
        serde_json::json!({"components": {"egressGateway": {"enabled": true}}})
    );
    assert!(
        istio["metadata"].get("labels").is_none(),
        "we do not label the user's CR"
    );
    assert!(istio.get("status").is_none());
}

#[test]
fn bad_inputs_are_refused_before_any_plan() {
    let base = EnableRequest {
        host: DnsName::parse("httpbin.example.com").unwrap(),
        namespace: "mtls-demo".into(),
        credential: "client-credential".into(),
        hop: Hop::Plain,
        port: 443,
        access_log: false,
        restrict_to_namespace: true,
        kyma_istio: None,
        mesh: Default::default(),
    };
    let err = enable_plan(&base).unwrap_err().to_string();
    assert!(err.contains("--hop istio-mutual"), "{err}");
    let mut cacert = base.clone();
    cacert.restrict_to_namespace = false;
    cacert.credential = "client-cacert".into();
    assert!(
        enable_plan(&cacert)
            .unwrap_err()
            .to_string()
            .contains("-cacert")
    );
    let mut ns = base.clone();
    ns.restrict_to_namespace = false;
    ns.namespace = "Bad_NS".into();
    assert!(enable_plan(&ns).is_err());
    let mut methods = ExposeRequest {
        host: DnsName::parse("httpbin.example.com").unwrap(),
        namespace: "mtls-demo".into(),
        service: "httpbin:8000".parse().unwrap(),
        credential: "kyma-mtls-certs".into(),
        gateway: None,
        route: Route::Apirule,
        methods: vec!["FETCH".into()],
        label_namespace: false,
        ingress: shared::gateway::GatewayWorkload::default_ingress(),
    };
    assert!(
        expose_plan(&methods)
            .unwrap_err()
            .to_string()
            .contains("FETCH")
    );
    methods.methods = vec!["get".into(), "post".into()];
    let objs = objects(&expose_plan(&methods).unwrap());
    assert_eq!(
        find(&objs, "APIRule", "mtls-")["spec"]["rules"][0]["methods"],
        serde_json::json!(["GET", "POST"])
    );
}

/// Issue 13 item 4: a workload-scoped Telemetry's access-log providers replace the mesh-level
/// ones for that workload (istio/istio 1.30.3 `pilot/pkg/model/telemetry.go`, `mergeLogs`), so
/// ours repeats the mesh-wide Telemetry's (the oldest without a selector in the root namespace:
/// `namespaceWideTelemetryConfig`) or, without one, the mesh config's default providers.
#[test]
fn the_gateway_telemetry_keeps_the_mesh_wide_providers() {
    use shared::manifest::egress::{MeshFacts, kept_access_logging};
    use shared::resources::Telemetry;
    let telemetry = |ns: &str, name: &str, created: &str, spec: Value| -> Telemetry {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": spec}))
        .unwrap()
    };
    let names = |kept: &[shared::resources::telemetry::AccessLogging]| -> Vec<Vec<String>> {
        kept.iter()
            .map(|e| e.providers.iter().map(|p| p.name.clone()).collect())
            .collect()
    };
    let mesh_default = telemetry(
        "istio-system",
        "mesh-default",
        "2025-01-01T00:00:00Z",
        serde_json::json!({"accessLogging": [
            {"providers": [{"name": "otel"}]},
            {"providers": [{"name": "stdout-json"}], "filter": {"expression": "response.code >= 400"}, "match": {"mode": "CLIENT"}},
            {"providers": [{"name": "audit"}], "disabled": true},
            {"providers": [{"name": "envoy"}]},
            {}
        ]}),
    );
    let newer = telemetry(
        "istio-system",
        "a-newer-mesh-wide",
        "2025-06-01T00:00:00Z",
        serde_json::json!({"accessLogging": [{"providers": [{"name": "ignored"}]}]}),
    );
    let scoped = telemetry(
        "istio-system",
        "ingress-only",
        "2024-01-01T00:00:00Z",
        serde_json::json!({"selector": {"matchLabels": {"istio": "ingressgateway"}},
            "accessLogging": [{"providers": [{"name": "scoped"}]}]}),
    );
    let namespaced = telemetry(
        "apps",
        "apps-wide",
        "2024-01-01T00:00:00Z",
        serde_json::json!({"accessLogging": [{"providers": [{"name": "apps"}]}]}),
    );
    let all = [newer, scoped, namespaced.clone(), mesh_default];
    let kept = kept_access_logging(&all, &["zipkin-log".to_string()]);
    // The oldest mesh-wide Telemetry; the disabled entry and a plain envoy entry dropped; the
    // entry without providers names the defaults; filter and match stay.
    assert_eq!(
        names(&kept),
        [vec!["otel"], vec!["stdout-json"], vec!["zipkin-log"]]
    );
    assert_eq!(
        kept[1].filter.as_ref().unwrap().expression,
        "response.code >= 400"
    );
    assert_eq!(
        kept[1].match_.as_ref().unwrap().mode.as_deref(),
        Some("CLIENT")
    );
    // No mesh-wide Telemetry: the mesh config's defaults; none at all: nothing to keep.
    assert_eq!(
        names(&kept_access_logging(
            std::slice::from_ref(&namespaced),
            &["otel".into()]
        )),
        [vec!["otel"]]
    );
    assert!(kept_access_logging(&[namespaced], &[]).is_empty());

    // In the plan: the mesh's entries, then envoy last (Istio keeps the last filter per provider).
    let plan = enable_plan(&EnableRequest {
        host: DnsName::parse("httpbin.example.com").unwrap(),
        namespace: "mtls-demo".into(),
        credential: "client-credential".into(),
        hop: Hop::IstioMutual,
        port: 443,
        access_log: true,
        restrict_to_namespace: false,
        kyma_istio: None,
        mesh: MeshFacts {
            access_logging: kept,
            ..Default::default()
        },
    })
    .unwrap();
    let objs = objects(&plan);
    let t = find(&objs, "Telemetry", "mtls-egressgateway-access-log");
    assert_eq!(
        t["spec"]["accessLogging"],
        serde_json::json!([
            {"providers": [{"name": "otel"}]},
            {"providers": [{"name": "stdout-json"}], "match": {"mode": "CLIENT"}, "filter": {"expression": "response.code >= 400"}},
            {"providers": [{"name": "zipkin-log"}]},
            {"providers": [{"name": "envoy"}]}
        ])
    );
    if let Some(schemas) = test_support::schema::Schemas::load() {
        schemas.validate(t).unwrap();
    }
}
