//! Gateways installed by Istio's Helm `gateway` chart, each in its own namespace, through the fake
//! API server: `expose` binds its Gateway to `istio: ingress` in `istio-ingress`, `enable` routes
//! through `istio: egress` in `istio-egress` and puts the host's gateway-side objects there,
//! `status` and `disable` find them there again, and none or several gateways give one error with
//! the fix. The fixtures are the chart's Deployment and Service for a release (istio/istio 1.30.3
//! `manifests/charts/gateway/templates/{_helpers.tpl,deployment.yaml,service.yaml}` and the
//! `inject.istio.io/templates: gateway` pod annotation of its `values.yaml`); no pod runs, as on a
//! cluster without a kubelet: detection reads the Deployments' pod templates and the Services.

use super::common::{DisableCli, EnableCli, ExposeCli, serve_istio_kinds};
use clap::Parser;
use kubectl_mtls_egress::{disable, enable, expose, status as host_status};
use serde_json::{Value, json};
use shared::error::Error;
use shared::names::DnsName;
use test_support::fake_api::{Shared, State, fake_server, seen};

const NS: &str = "mtls-demo";
const HOST: &str = "httpbin.example.com";

/// The chart's Deployment (available) and Service for release `release` in `ns`.
pub(crate) fn helm_gateway(state: &mut State, ns: &str, release: &str) {
    let istio = release.strip_prefix("istio-").unwrap_or(release);
    let selector = json!({"app": release, "istio": istio});
    state.namespaces.insert(ns.into());
    state.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    );
    state.put(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": release, "namespace": ns,
                            "labels": {"app": release, "istio": istio, "app.kubernetes.io/name": release}},
               "spec": {"selector": {"matchLabels": selector},
                        "template": {"metadata": {
                            "annotations": {"inject.istio.io/templates": "gateway",
                                            "sidecar.istio.io/inject": "true"},
                            "labels": {"app": release, "istio": istio,
                                       "sidecar.istio.io/inject": "true",
                                       "app.kubernetes.io/name": release}},
                          "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}},
               "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    );
    state.put(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": release, "namespace": ns},
               "spec": {"selector": selector,
                        "ports": [{"name": "http2", "port": 80, "targetPort": 80},
                                  {"name": "https", "port": 443, "targetPort": 443}]}}),
    );
}

fn serve_istio(state: &mut State) {
    serve_istio_kinds(state);
    state.serve("apps/v1", "deployments", "Deployment");
    for ns in [NS, "partner", "istio-system"] {
        state.namespaces.insert(ns.into());
        state.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}),
        );
    }
}

/// Plain Istio installed with Helm: both gateways in their own namespaces.
fn helm_cluster(state: &mut State) {
    serve_istio(state);
    helm_gateway(state, "istio-ingress", "istio-ingress");
    helm_gateway(state, "istio-egress", "istio-egress");
}

fn paths(state: &Shared, prefix: &str) -> Vec<String> {
    state
        .lock()
        .unwrap()
        .objects
        .keys()
        .filter(|p| p.contains(prefix))
        .cloned()
        .collect()
}

fn object(state: &Shared, path: &str) -> Option<Value> {
    state.lock().unwrap().objects.get(path).cloned()
}

fn writes(state: &Shared) -> Vec<String> {
    seen(state)
        .iter()
        .filter(|s| matches!(s.method.as_str(), "PATCH" | "DELETE") && !s.dry_run())
        .map(|s| s.summary())
        .collect()
}

async fn run_enable(client: &kube::Client, extra: &[&str]) -> Result<(String, String), Error> {
    let mut argv = vec!["enable", "--host", HOST, "--timeout", "5s"];
    argv.extend(extra);
    let args = EnableCli::parse_from(argv).args;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    enable::execute(client, args.request(NS)?, &args, &mut out, &mut err).await?;
    Ok((
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    ))
}

async fn run_expose(client: &kube::Client, extra: &[&str]) -> Result<(String, String), Error> {
    let mut argv = vec![
        "expose",
        "--host",
        HOST,
        "--service",
        "httpbin:8000",
        "--route",
        "virtualservice",
    ];
    argv.extend(extra);
    let args = ExposeCli::parse_from(argv).args;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    expose::execute(
        client,
        args.request("partner")?,
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        &mut out,
        &mut err,
    )
    .await?;
    Ok((
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    ))
}

const ORIGINATE: &str = "/apis/networking.istio.io/v1/namespaces/istio-egress/destinationrules/mtls-originate-httpbin-example-com";

#[tokio::test]
async fn enable_routes_through_a_helm_egress_gateway_and_disable_cleans_up_there() {
    let (client, state) = fake_server(helm_cluster);
    let (out, err) = run_enable(&client, &["--restrict-to-namespace"])
        .await
        .unwrap();
    assert_eq!(out.lines().count(), 7, "{out}");
    assert!(
        err.contains(
            "note: egress gateway: deployment istio-egress/istio-egress (pods istio=egress)"
        ),
        "{err}"
    );
    // The wait followed the chart's Deployment.
    assert!(err.contains("egress gateway ready"), "{err}");
    let originate = object(&state, ORIGINATE).expect("origination rule in istio-egress");
    assert_eq!(
        originate["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["credentialName"],
        "client-credential"
    );
    for kind in ["authorizationpolicies", "telemetries"] {
        assert_eq!(
            paths(&state, &format!("/namespaces/istio-egress/{kind}/")).len(),
            1,
            "{kind}"
        );
    }
    let subset = object(
        &state,
        "/apis/networking.istio.io/v1/namespaces/mtls-demo/destinationrules/mtls-egress-httpbin-example-com",
    )
    .unwrap();
    assert_eq!(
        subset["spec"]["host"],
        "istio-egress.istio-egress.svc.cluster.local"
    );
    let gateway = object(
        &state,
        "/apis/networking.istio.io/v1/namespaces/mtls-demo/gateways/mtls-egress-httpbin-example-com",
    )
    .unwrap();
    assert_eq!(gateway["spec"]["selector"], json!({"istio": "egress"}));
    assert!(
        paths(&state, "/namespaces/istio-system/")
            .iter()
            .all(|p| !p.contains("mtls-"))
    );

    // status finds the origination rule and the credential in the gateway's namespace.
    let rows = host_status::collect(&client, Some(NS)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]
            .objects
            .contains(&"destinationrule/mtls-originate-httpbin-example-com (istio-egress)".into()),
        "{:?}",
        rows[0].objects
    );
    assert_eq!(
        rows[0].problems,
        ["secret istio-egress/client-credential missing"]
    );

    // disable reads the gateway's namespace from the subset rule and deletes there.
    let args = DisableCli::parse_from(["disable", "--host", HOST]).args;
    let mut out = Vec::new();
    disable::execute(
        &client,
        NS,
        &DnsName::parse(HOST).unwrap(),
        &args,
        &mut out,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(
            "destinationrule.networking.istio.io/mtls-originate-httpbin-example-com deleted"
        ),
        "{out}"
    );
    assert!(
        out.contains("telemetry.telemetry.istio.io/mtls-egressgateway-access-log deleted"),
        "{out}"
    );
    let left: Vec<String> = state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|(_, o)| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-mtls")
        .map(|(p, _)| p.clone())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn expose_binds_to_a_helm_ingress_gateway_and_looks_for_the_secret_there() {
    let (client, state) = fake_server(helm_cluster);
    let (out, err) = run_expose(&client, &[]).await.unwrap();
    assert!(
        out.contains("gateway.networking.istio.io/mtls-httpbin-example-com created"),
        "{out}"
    );
    let gateway = object(
        &state,
        "/apis/networking.istio.io/v1/namespaces/partner/gateways/mtls-httpbin-example-com",
    )
    .unwrap();
    assert_eq!(gateway["spec"]["selector"], json!({"istio": "ingress"}));
    assert!(
        err.contains("warning: secret istio-ingress/kyma-mtls-certs does not exist")
            && err.contains("kubectl mtls-certs secret target --dir DIR --namespace istio-ingress"),
        "{err}"
    );
    assert!(
        err.contains(
            "note: ingress gateway: deployment istio-ingress/istio-ingress (pods istio=ingress)"
        ),
        "{err}"
    );
    // status looks for the server credential where the selected pods run.
    let rows = host_status::collect(&client, Some("partner"))
        .await
        .unwrap();
    assert_eq!(
        rows[0].problems,
        ["secret istio-ingress/kyma-mtls-certs missing"]
    );
}

#[tokio::test]
async fn several_or_no_gateways_are_one_error_with_the_flags_that_pick_one() {
    // istioctl's egress gateway next to the chart's: which one is meant?
    let (client, state) = fake_server(|s| {
        helm_cluster(s);
        s.put(
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
                   "spec": {"template": {"metadata": {"labels": {
                       "app": "istio-egressgateway", "istio": "egressgateway",
                       "operator.istio.io/component": "EgressGateways"}}}},
                   "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
        );
    });
    let err = run_enable(&client, &[]).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3);
    assert!(!text.contains('\n'));
    assert!(
        text.starts_with("2 egress gateways found (istio-egress/istio-egress (istio=egress), istio-system/istio-egressgateway (istio=egressgateway))"),
        "{text}"
    );
    assert!(text.contains("--gateway-namespace"), "{text}");
    assert!(writes(&state).is_empty());
    // The flags pick one.
    let (_, err) = run_enable(
        &client,
        &[
            "--gateway-namespace",
            "istio-egress",
            "--gateway-selector",
            "istio=egress",
        ],
    )
    .await
    .unwrap();
    assert!(
        err.contains("deployment istio-egress/istio-egress"),
        "{err}"
    );
    assert!(object(&state, ORIGINATE).is_some());

    // Only ingress gateways: no egress gateway to route through.
    let (client, state) = fake_server(|s| {
        serve_istio(s);
        helm_gateway(s, "istio-ingress", "istio-ingress");
    });
    let err = run_enable(&client, &[]).await.unwrap_err().to_string();
    assert!(err.starts_with("no egress gateway found"), "{err}");
    assert!(
        err.contains("helm install istio-egress istio/gateway"),
        "{err}"
    );
    assert!(writes(&state).is_empty());
    // A namespace and a selector that no Deployment there carries: the flags name the gateway
    // (one run by a DaemonSet, say), and the note says so.
    let err = run_enable(
        &client,
        &[
            "--gateway-namespace",
            "istio-ingress",
            "--gateway-selector",
            "istio=nope",
            "--no-wait",
        ],
    )
    .await;
    let (_, notes) = err.unwrap();
    assert!(
        notes.contains("from --gateway-namespace and --gateway-selector; no Deployment found"),
        "{notes}"
    );
}

#[tokio::test]
async fn a_bad_gateway_selector_is_bad_input() {
    let err = EnableCli::try_parse_from([
        "enable",
        "--host",
        HOST,
        "--gateway-selector",
        "istio in (egress)",
    ])
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("K=V[,K=V]"), "{err}");
    let args =
        EnableCli::parse_from(["enable", "--host", HOST, "--gateway-namespace", "Bad_NS"]).args;
    let err = args.request(NS).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().starts_with("--gateway-namespace"), "{err}");
}
