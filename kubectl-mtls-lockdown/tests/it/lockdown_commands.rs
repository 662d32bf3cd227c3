//! `kubectl mtls-lockdown apply`, `remove` and live `explain` against the in-process fake API
//! server: what is detected (kube-dns ClusterIP and target ports, node-local DNS, the egress
//! gateway Service's target ports, Kyma's networkPoliciesEnabled), what is refused before the
//! first write, and that `remove` deletes only what carries our labels.

use clap::Parser;
use kubectl_mtls_lockdown::{apply, explain, remove};
use serde_json::{Value, json};
use shared::error::Error;
use shared::netpol::Protocol;
use shared::netpol::load;
use test_support::fake_api::{State, fake_server, seen, summaries};

#[derive(Parser)]
struct ApplyCli {
    #[command(flatten)]
    args: apply::ApplyCmdArgs,
}

#[derive(Parser)]
struct RemoveCli {
    #[command(flatten)]
    args: remove::RemoveArgs,
}

#[derive(Parser)]
struct ExplainCli {
    #[command(flatten)]
    args: explain::ExplainArgs,
}

const NS: &str = "mtls-demo";

fn namespace(state: &mut State, name: &str) {
    state.namespaces.insert(name.into());
    state.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    );
}

/// A Gardener-like cluster: kube-dns 53 → 8053, node-local DNS, an egress gateway Service.
fn gardener(state: &mut State) {
    state.serve("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy");
    state.serve("networking.istio.io/v1", "sidecars", "Sidecar");
    for ns in [NS, "kube-system", "istio-system", "kyma-system"] {
        namespace(state, ns);
    }
    state.put(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "100.104.0.10", "selector": {"k8s-app": "kube-dns"}, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 8053},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 8053}]}}),
    );
    state.put(
        "daemonsets",
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "node-local-dns", "namespace": "kube-system"}}),
    );
    state.put(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
        "spec": {"clusterIP": "100.104.5.5", "selector": {"istio": "egressgateway"}, "ports": [
            {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8081},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]}}),
    );
}

fn apply_args(extra: &[&str]) -> apply::ApplyCmdArgs {
    let mut argv = vec!["apply"];
    argv.extend(extra);
    ApplyCli::parse_from(argv).args
}

fn stored(state: &test_support::fake_api::Shared, path: &str) -> Option<Value> {
    state.lock().unwrap().objects.get(path).cloned()
}

const POLICY: &str =
    "/apis/networking.k8s.io/v1/namespaces/mtls-demo/networkpolicies/mtls-lockdown";

#[tokio::test]
async fn apply_uses_what_it_detects_and_is_idempotent() {
    let (client, state) = fake_server(gardener);
    let mut out = Vec::new();
    let notes = apply::apply_with(&client, NS, &apply_args(&[]), &mut out)
        .await
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "networkpolicy.networking.k8s.io/mtls-lockdown created\n"
    );
    let policy = stored(&state, POLICY).expect("the policy is stored");
    let rules = &policy["spec"]["egress"];
    let cidrs: Vec<&str> = rules[0]["to"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["ipBlock"]["cidr"].as_str())
        .collect();
    assert_eq!(cidrs, ["100.104.0.10/32", "169.254.20.10/32"]);
    let ports: Vec<String> = rules[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, ["53/UDP", "53/TCP", "8053/UDP", "8053/TCP"]);
    let gateway: Vec<&Value> = rules[2]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["port"])
        .collect();
    assert_eq!(
        gateway,
        [&json!(8081), &json!(8443)],
        "target ports of the Service"
    );
    // The whole plan was server-dry-run before the write.
    let patches: Vec<String> = summaries(&state)
        .into_iter()
        .filter(|s| s.starts_with("PATCH"))
        .collect();
    assert_eq!(
        patches,
        [
            format!("PATCH {POLICY} (dry run)"),
            format!("PATCH {POLICY}")
        ]
    );

    let mut again = Vec::new();
    apply::apply_with(&client, NS, &apply_args(&[]), &mut again)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        "networkpolicy.networking.k8s.io/mtls-lockdown unchanged\n"
    );
}

#[tokio::test]
async fn without_kube_dns_it_asks_for_dns_ip_and_writes_nothing() {
    let (client, state) = fake_server(|s| {
        gardener(s);
        s.objects
            .remove("/api/v1/namespaces/kube-system/services/kube-dns");
    });
    let err = apply::apply_with(&client, NS, &apply_args(&[]), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Usage(_)));
    assert_eq!(err.exit_code(), 2);
    let line = err.to_string();
    assert!(
        line.contains("kube-dns") && line.contains("--dns-ip IP"),
        "{line}"
    );
    assert!(!summaries(&state).iter().any(|s| s.starts_with("PATCH")));
    // With --dns-ip it goes ahead.
    let mut out = Vec::new();
    apply::apply_with(
        &client,
        NS,
        &apply_args(&["--dns-ip", "10.96.0.10"]),
        &mut out,
    )
    .await
    .unwrap();
    let policy = stored(&state, POLICY).unwrap();
    assert_eq!(
        policy["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"],
        "10.96.0.10/32"
    );
}

#[tokio::test]
async fn an_unknown_namespace_is_refused_before_anything_is_read_or_written() {
    let (client, state) = fake_server(gardener);
    let err = apply::apply_with(&client, "nope", &apply_args(&[]), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("namespace nope does not exist;"),
        "{err}"
    );
    assert_eq!(summaries(&state), ["GET /api/v1/namespaces/nope"]);
    let err = remove::remove_with(
        &client,
        "nope",
        RemoveCli::parse_from(["remove"]).args.dry_run,
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn kyma_network_policies_get_a_note_and_label_pods_labels_the_templates() {
    let (client, state) = fake_server(|s| {
        gardener(s);
        s.serve("apps/v1", "deployments", "Deployment");
        s.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
        s.put(
            "istios",
            json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
            "metadata": {"name": "default", "namespace": "kyma-system"},
            "spec": {"networkPoliciesEnabled": true}}),
        );
        s.put("deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "curl", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "curl"}},
                     "template": {"metadata": {"labels": {"app": "curl"}}, "spec": {"containers": []}}}}));
    });
    let notes = apply::apply_with(
        &client,
        NS,
        &apply_args(&["--dry-run=client"]),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("networking.kyma-project.io/to-egressgateway=allowed"),
        "{notes:?}"
    );
    assert!(
        !summaries(&state).iter().any(|s| s.starts_with("PATCH")),
        "client dry run writes nothing"
    );

    let mut out = Vec::new();
    apply::apply_with(&client, NS, &apply_args(&["--label-pods"]), &mut out)
        .await
        .unwrap();
    let d = stored(
        &state,
        "/apis/apps/v1/namespaces/mtls-demo/deployments/curl",
    )
    .unwrap();
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        labels["networking.kyma-project.io/to-egressgateway"],
        "allowed"
    );
    assert_eq!(labels["app"], "curl", "other labels stay");
    assert_eq!(
        d["spec"]["selector"]["matchLabels"]["app"], "curl",
        "the selector is not touched"
    );
}

#[tokio::test]
async fn remove_deletes_only_what_carries_our_labels() {
    let (client, state) = fake_server(|s| {
        gardener(s);
        s.put("networkpolicies", json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "theirs", "namespace": NS, "labels": {"app.kubernetes.io/component": "lockdown"}}}));
    });
    apply::apply_with(
        &client,
        NS,
        &apply_args(&["--registry-only"]),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let sidecar = "/apis/networking.istio.io/v1/namespaces/mtls-demo/sidecars/mtls-registry-only";
    assert!(stored(&state, sidecar).is_some());

    let mut out = Vec::new();
    let n = remove::remove_with(
        &client,
        NS,
        RemoveCli::parse_from(["remove", "--dry-run=server"])
            .args
            .dry_run,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    // kube sends a delete's dry run in the DeleteOptions body; the API server honours it there.
    let deletes: Vec<_> = seen(&state)
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2);
    for d in &deletes {
        assert_eq!(
            d.body.as_ref().unwrap()["dryRun"],
            json!(["All"]),
            "{}",
            d.path
        );
    }
    state.lock().unwrap().seen.clear();
    apply::apply_with(
        &client,
        NS,
        &apply_args(&["--registry-only"]),
        &mut Vec::new(),
    )
    .await
    .unwrap();

    let mut out = Vec::new();
    remove::remove_with(
        &client,
        NS,
        RemoveCli::parse_from(["remove"]).args.dry_run,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "networkpolicy.networking.k8s.io/mtls-lockdown deleted\nsidecar.networking.istio.io/mtls-registry-only deleted\n"
    );
    assert!(stored(&state, POLICY).is_none() && stored(&state, sidecar).is_none());
    assert!(
        stored(
            &state,
            "/apis/networking.k8s.io/v1/namespaces/mtls-demo/networkpolicies/theirs"
        )
        .is_some(),
        "a policy without our managed-by label stays"
    );
    let again = remove::remove_with(
        &client,
        NS,
        RemoveCli::parse_from(["remove"]).args.dry_run,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(again, 0);
}

#[tokio::test]
async fn live_explain_reads_the_same_kinds_and_judges_them() {
    let (client, _state) = fake_server(|s| {
        gardener(s);
        s.put("pods", json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "curl", "namespace": NS, "labels": {"app": "curl"}}, "status": {"podIP": "10.1.0.5"}}));
        s.put("pods", json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "coredns-0", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "status": {"podIP": "10.1.9.2"}}));
    });
    apply::apply_with(&client, NS, &apply_args(&[]), &mut Vec::new())
        .await
        .unwrap();
    let inv = load::from_cluster(&client, &[NS, "kube-system", "istio-system"])
        .await
        .unwrap();
    let args = ExplainCli::parse_from([
        "explain",
        "--to",
        "kube-dns.kube-system:53",
        "--protocol",
        "TCP",
    ])
    .args;
    assert_eq!(args.protocol, Protocol::Tcp);
    let explanation = explain::evaluate(&args, &inv, NS, "the cluster").unwrap();
    let text = explain::render(&explanation, None);
    assert!(
        text.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/TCP: ALLOWED\n"),
        "{text}"
    );
    assert!(
        text.contains("pod kube-system/coredns-0 port 8053 (Service backend): allowed"),
        "{text}"
    );
    assert!(
        text.contains("ClusterIP 100.104.0.10 port 53 (before DNAT): allowed"),
        "{text}"
    );
    let outside = ExplainCli::parse_from(["explain", "--to-ip", "1.1.1.1:443"]).args;
    let text = explain::render(
        &explain::evaluate(&outside, &inv, NS, "the cluster").unwrap(),
        None,
    );
    assert!(
        text.starts_with("mtls-demo/curl -> 1.1.1.1:443/TCP: DENIED\n"),
        "{text}"
    );
    let err = explain::evaluate(&outside, &inv, "nope", "the cluster").unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespace nope not found in the cluster; choose another with -n"
    );
}

/// Issue 13 item 10: with two Sidecars without a workloadSelector in a namespace it is undefined
/// which one a pod gets (istio/istio 1.30.3 `pkg/config/analysis/msg/messages.yaml`, IST0111
/// `MultipleSidecarsWithoutWorkloadSelectors`), so `--registry-only` does not add ours next to
/// one; a Sidecar with a selector, or ours from an earlier run, is no reason to refuse.
#[tokio::test]
async fn registry_only_refuses_a_second_namespace_wide_sidecar() {
    let sidecar = |name: &str, selector: Option<Value>| {
        let mut spec = json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}});
        if let Some(labels) = selector {
            spec["workloadSelector"] = json!({"labels": labels});
        }
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": name, "namespace": NS}, "spec": spec})
    };
    let (client, state) = fake_server(|s| {
        gardener(s);
        s.put("sidecars", sidecar("default", None));
    });
    let err = apply::apply_with(
        &client,
        NS,
        &apply_args(&["--registry-only"]),
        &mut Vec::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("namespace mtls-demo already has sidecar/default without a workloadSelector")
            && err.contains("IST0111")
            && err.contains("without --registry-only"),
        "{err}"
    );
    assert!(
        seen(&state).iter().all(|r| r.method == "GET"),
        "nothing is written"
    );
    // Without --registry-only the same namespace is fine.
    apply::apply_with(&client, NS, &apply_args(&[]), &mut Vec::new())
        .await
        .unwrap();

    let (client, _) = fake_server(|s| {
        gardener(s);
        s.put(
            "sidecars",
            sidecar("ratings", Some(json!({"app": "ratings"}))),
        );
        s.put("sidecars", sidecar("mtls-registry-only", None));
    });
    apply::apply_with(
        &client,
        NS,
        &apply_args(&["--registry-only"]),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    // An empty label set selects nothing: Istio's analyzer counts it as no selector.
    let (client, _) = fake_server(|s| {
        gardener(s);
        s.put("sidecars", sidecar("empty", Some(json!({}))));
    });
    assert!(
        apply::apply_with(
            &client,
            NS,
            &apply_args(&["--registry-only"]),
            &mut Vec::new()
        )
        .await
        .is_err()
    );
}
