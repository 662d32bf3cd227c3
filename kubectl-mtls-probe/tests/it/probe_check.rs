//! `kubectl mtls-probe check` against the fake API server over real HTTP (exec is a websocket
//! upgrade, so it needs a socket): the probe pod spec as the server receives it, the exec URL
//! and command, one log request per egress gateway replica, the verdicts, and that probe pods
//! are deleted on success, on failure and when a request errors half-way (`--keep` aside).
//!
//! The fake cluster and its curl are in `common/mesh.rs`.

use std::time::Duration;

use kubectl_mtls_probe::check::{CheckReport, CheckRequest, Source, execute, pod};
use kubectl_mtls_probe::report::Status;
use kubectl_mtls_probe::xfcc::ClientIdentity;
use serde_json::{Value, json};
use shared::names::DnsName;
use shared::pki::Bundle;
use test_support::fake_api::{Inject, Shared, State, seen, status, tcp_server};
use test_support::mesh::{GATEWAYS, Mesh, install};

const HOST: &str = "httpbin.example.com";
const NS: &str = "apps";

fn working(hash: &str) -> Mesh {
    Mesh::working(HOST, NS, hash)
}

/// A fake client cluster with `mesh` (and `lockdown`), then `extra`.
fn fake(mut mesh: Mesh, lockdown: bool, extra: impl FnOnce(&mut State)) -> (kube::Client, Shared) {
    mesh.lockdown = lockdown;
    tcp_server(move |state| {
        install(state, mesh);
        extra(state);
    })
}

fn request(client: Option<&Bundle>, source: Source) -> CheckRequest {
    CheckRequest {
        host: DnsName::parse_exact(HOST).unwrap(),
        port: 443,
        path: "/headers".into(),
        namespace: NS.into(),
        source,
        image: pod::DEFAULT_IMAGE.into(),
        client: client.map(|b| {
            (
                ClientIdentity::from_certificate(&b.client.cert),
                "client.crt".to_string(),
            )
        }),
        external: "example.com".into(),
        keep: false,
        start_timeout: Duration::from_secs(2),
        curl_timeout: 10,
        gateway_namespace: "istio-system".into(),
        gateway_selector: "istio=egressgateway".into(),
        log_wait: Duration::from_millis(300),
        poll: Duration::from_millis(20),
    }
}

fn probe_pod_source() -> Source {
    Source::ProbePod {
        image: pod::DEFAULT_IMAGE.into(),
    }
}

async fn run(
    client: &kube::Client,
    req: &CheckRequest,
) -> (Result<CheckReport, shared::error::Error>, String) {
    let mut progress = Vec::new();
    let result = execute(client, req, &mut progress).await;
    (result, String::from_utf8(progress).unwrap())
}

fn verdicts(report: &CheckReport) -> Vec<(&'static str, Status)> {
    report.checks.iter().map(|c| (c.name, c.status)).collect()
}

fn detail<'a>(report: &'a CheckReport, name: &str) -> &'a str {
    &report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .detail
}

fn pods_left(state: &Shared) -> Vec<String> {
    let state = state.lock().unwrap();
    state
        .objects
        .keys()
        .filter(|p| p.starts_with(&format!("/api/v1/namespaces/{NS}/pods/")))
        .cloned()
        .collect()
}

/// Plain Istio: the `envoy` provider logs in TEXT, `meshConfig.accessLogEncoding`'s default
/// (istio/istio 1.30.3 `pkg/config/mesh/mesh.go`), in the format `EnvoyTextLogFormat` of
/// `pilot/pkg/model/telemetry_logging.go` (which test-support's `envoy_log` renders).
#[tokio::test]
async fn plain_istio_text_access_logs_are_read() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let mut s = working(&hash);
    s.text_log = true;
    let (client, state) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[4].name, "access-log");
    assert_eq!(report.checks[4].status, Status::Passed, "{report:#?}");
    let logged = report.access_log.as_ref().unwrap();
    assert_eq!(logged.pod, GATEWAYS[1]);
    assert_eq!(logged.entry.response_code, Some(200));
    assert_eq!(logged.entry.requested_server_name.as_deref(), Some(HOST));
    // The log really was TEXT.
    let log = state.lock().unwrap().logs[&test_support::mesh::gateway_log_key(GATEWAYS[1])].clone();
    assert!(log.lines().all(|l| l.starts_with('[')), "{log}");

    let mut s = working(&hash);
    s.text_log = true;
    s.status = 503;
    s.logged = (503, "UF,URX");
    let (client, _) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    let log = detail(&report, "access-log");
    assert!(
        log.contains("503 flags UF,URX; upstream TLS:")
            && log.contains("CERTIFICATE_VERIFY_FAILED"),
        "{log}"
    );
}

/// Issue 13 item 8: with Kyma's networkPoliciesEnabled the egress gateway admits only pods
/// labelled `networking.kyma-project.io/to-egressgateway=allowed`. The probe pod has it; the
/// check names the namespace's pod templates that do not (and not those without a sidecar, not
/// its own probe pods, not pods a controller owns).
#[tokio::test]
async fn kyma_network_policies_name_the_workloads_without_the_egress_label() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let kyma = |enabled: bool| {
        move |s: &mut State| {
            s.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
            s.put(
                "istios",
                json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
                "metadata": {"name": "default", "namespace": "kyma-system"},
                "spec": {"networkPoliciesEnabled": enabled}}),
            );
            let template = |labels: Value| {
                json!({"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "app"}]}})
            };
            s.put("deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "orders", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "orders"}}, "template": template(json!({"app": "orders"}))}}));
            s.put("deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "billing", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "billing"}},
                    "template": template(json!({"app": "billing", "networking.kyma-project.io/to-egressgateway": "allowed"}))}}));
            s.put("statefulsets", json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "cache", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "cache"}}, "serviceName": "cache",
                    "template": template(json!({"app": "cache", "sidecar.istio.io/inject": "false"}))}}));
            s.put(
                "pods",
                json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "debug", "namespace": NS, "labels": {"run": "debug"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            );
            s.put("pods", json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "orders-7d9f-x", "namespace": NS, "labels": {"app": "orders"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "orders-7d9f", "uid": "u"}]},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}));
        }
    };
    let (client, _) = fake(working(&hash), false, kyma(true));
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "kyma-egress-label")
        .expect("the check runs when networkPoliciesEnabled is on");
    assert_eq!(check.status, Status::Failed, "{report:#?}");
    assert!(
        check.detail.contains("deployment/orders, pod/debug in apps lack(s) networking.kyma-project.io/to-egressgateway=allowed")
            && check.detail.contains("kubectl mtls-lockdown apply -n apps --label-pods"),
        "{}",
        check.detail
    );
    assert!(!report.ok);
    // The rest of the path still passed: this is about the user's workloads only.
    assert_eq!(
        detail(&report, "access-log").split(':').next(),
        Some("pod/istio-egressgateway-7f-b")
    );

    let (client, _) = fake(working(&hash), false, kyma(false));
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert!(report.checks.iter().all(|c| c.name != "kyma-egress-label"));
    assert!(report.ok, "{report:#?}");
}

#[tokio::test]
async fn working_path_request_shape_and_cleanup() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let (client, state) = fake(working(&hash), false, |_| {});
    let (report, progress) = run(&client, &request(Some(&b), probe_pod_source())).await;
    let report = report.unwrap();
    assert_eq!(
        verdicts(&report),
        [
            ("egress-gateway", Status::Passed),
            ("probe-pod", Status::Passed),
            ("request", Status::Passed),
            ("xfcc", Status::Passed),
            ("access-log", Status::Passed),
            ("lockdown", Status::Skipped),
        ],
        "{report:#?}"
    );
    assert!(report.ok);
    assert!(
        detail(&report, "xfcc").contains("Hash"),
        "{}",
        detail(&report, "xfcc")
    );
    let logged = report.access_log.as_ref().unwrap();
    assert_eq!(logged.pod, GATEWAYS[1], "the replica that logged it");
    assert_eq!(
        logged.entry.response_code,
        Some(200),
        "the earlier 503 of someone else is not ours"
    );

    let seen = seen(&state);
    // The pod as the API server received it.
    let create = seen.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(create.path, format!("/api/v1/namespaces/{NS}/pods"));
    let body = create.body.as_ref().unwrap();
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("mtls-probe-mesh-"), "{name}");
    assert_eq!(body["metadata"]["labels"][pod::INJECT_LABEL], "true");
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubectl-mtls"
    );
    assert_eq!(body["spec"]["containers"][0]["image"], pod::DEFAULT_IMAGE);
    assert_eq!(body["spec"]["automountServiceAccountToken"], false);
    // The exec URL: the pod's exec subresource, our container, stdout+stderr, argv as params.
    let exec = seen.iter().find(|s| s.path.ends_with("/exec")).unwrap();
    assert_eq!(exec.method, "GET");
    assert_eq!(
        exec.path,
        format!("/api/v1/namespaces/{NS}/pods/{name}/exec")
    );
    assert_eq!(exec.param("container"), Some("probe"));
    assert_eq!(exec.param("stdout"), Some("true"));
    assert_eq!(exec.param("stderr"), Some("true"));
    assert_ne!(exec.param("stdin"), Some("true"));
    assert_eq!(exec.param("command"), Some("curl"));
    // One log request per replica, for the sidecar container, bounded in time.
    for gw in GATEWAYS {
        let log = seen
            .iter()
            .find(|s| s.path == format!("/api/v1/namespaces/istio-system/pods/{gw}/log"))
            .unwrap_or_else(|| panic!("no log request for {gw}"));
        assert_eq!(log.param("container"), Some("istio-proxy"));
        let since: i64 = log.param("sinceSeconds").unwrap().parse().unwrap();
        assert!((1..=60).contains(&since), "{since}");
    }
    // Removed at the end, and only ours.
    let delete = seen.iter().rposition(|s| s.method == "DELETE").unwrap();
    assert_eq!(
        seen[delete].path,
        format!("/api/v1/namespaces/{NS}/pods/{name}")
    );
    assert_eq!(seen.iter().filter(|s| s.method == "DELETE").count(), 1);
    assert!(pods_left(&state).is_empty());
    assert!(
        progress.contains(&format!("pod/{name} deleted")),
        "{progress}"
    );
    let gateway_pods = state
        .lock()
        .unwrap()
        .objects
        .keys()
        .filter(|p| p.contains("istio-system/pods/"))
        .count();
    assert_eq!(gateway_pods, 2, "gateway pods untouched");
}

#[tokio::test]
async fn lockdown_is_tested_from_an_injected_and_a_plain_pod() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let mut scenario = working(&hash);
    // The plain pod gets out: the NetworkPolicy does not hold for pods without a sidecar.
    scenario.reach = (28, 0);
    let (client, state) = fake(scenario, true, |_| {});
    let (report, _) = run(&client, &request(Some(&b), probe_pod_source())).await;
    let report = report.unwrap();
    let v = verdicts(&report);
    assert_eq!(
        v[v.len() - 2..],
        [
            ("lockdown-mesh", Status::Passed),
            ("lockdown-plain", Status::Failed)
        ]
    );
    assert!(!report.ok);
    assert!(detail(&report, "lockdown-plain").contains("reachable from non-injected pod"));
    let created: Vec<Value> = seen(&state)
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.body.clone().unwrap())
        .collect();
    assert_eq!(created.len(), 2);
    for pod in &created {
        assert_eq!(
            pod["metadata"]["labels"]["app"], "client",
            "the policy's selector labels, so it covers the pod"
        );
    }
    assert_eq!(
        created[0]["metadata"]["labels"]["networking.kyma-project.io/to-egressgateway"],
        "allowed"
    );
    assert!(
        created[1]["metadata"]["labels"]
            .get("networking.kyma-project.io/to-egressgateway")
            .is_none()
    );
    let inject: Vec<&str> = created
        .iter()
        .map(|p| p["metadata"]["labels"][pod::INJECT_LABEL].as_str().unwrap())
        .collect();
    assert_eq!(inject, ["true", "false"]);
    let reach_execs: Vec<String> = seen(&state)
        .iter()
        .filter(|s| {
            s.path.ends_with("/exec")
                && s.query
                    .iter()
                    .any(|(k, v)| k == "command" && v.starts_with("https"))
        })
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(reach_execs.len(), 2, "{reach_execs:?}");
    assert!(
        pods_left(&state).is_empty(),
        "both pods deleted although a check failed"
    );

    // Both blocked: passes.
    let mut scenario = working(&hash);
    scenario.reach = (28, 56);
    let (client, _) = fake(scenario, true, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert!(report.ok, "{report:#?}");
}

#[tokio::test]
async fn failures_name_the_cause_and_still_clean_up() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());

    // The host does not resolve in the pod: no ServiceEntry. Nothing reaches the gateway.
    let mut s = working(&hash);
    s.curl_exit = 6;
    let (client, state) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[2].status, Status::Failed);
    assert!(
        report.checks[2].detail.contains("ServiceEntry"),
        "{}",
        report.checks[2].detail
    );
    assert_eq!(detail(&report, "xfcc"), "no 200 response to read it from");
    assert_eq!(
        report.checks[4].detail,
        "no entry of this probe for outbound|443||httpbin.example.com in 2 replica(s) (2 from other requests): the request did not leave through the egress gateway (VirtualService mesh→gateway route, exportTo), or the gateway does not write access logs (kubectl mtls-egress enable --access-log)"
    );
    assert_eq!(report.checks[4].status, Status::Failed);
    assert!(pods_left(&state).is_empty());

    // The gateway's origination fails: 503, and the log line says why.
    let mut s = working(&hash);
    s.status = 503;
    s.logged = (503, "UF,URX");
    let (client, _) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert!(detail(&report, "request").starts_with("HTTP 503"));
    let log = detail(&report, "access-log");
    assert!(
        log.contains("503 flags UF,URX; upstream TLS:")
            && log.contains("CERTIFICATE_VERIFY_FAILED"),
        "{log}"
    );

    // The gateway replaced x-request-id: the id in the logged path still identifies the request.
    let mut s = working(&hash);
    s.regenerates_request_id = true;
    let (client, _) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[4].status, Status::Passed, "{report:#?}");
    assert_eq!(
        report.access_log.unwrap().entry.request_id.as_deref(),
        Some("1b9c-regenerated")
    );

    // XFCC carries another certificate.
    let s = working(&"ab".repeat(32));
    let (client, _) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[3].name, "xfcc");
    assert_eq!(report.checks[3].status, Status::Failed, "{report:#?}");

    // Without --client-cert XFCC is reported, not judged.
    let (client, _) = fake(working(&hash), false, |_| {});
    let report = run(&client, &request(None, probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[3].status, Status::Skipped);
    assert!(report.checks[3].detail.contains("proves nothing"));

    // The image cannot be pulled: the pod check fails, the rest is skipped, the pod is deleted.
    let mut s = working(&hash);
    s.pods_start = false;
    let (client, state) = fake(s, false, |_| {});
    let report = run(&client, &request(Some(&b), probe_pod_source()))
        .await
        .0
        .unwrap();
    assert_eq!(report.checks[1].status, Status::Failed);
    assert!(
        report.checks[1].detail.contains("ImagePullBackOff"),
        "{}",
        report.checks[1].detail
    );
    assert!(
        report.checks[2..]
            .iter()
            .all(|c| c.status == Status::Skipped)
    );
    assert!(pods_left(&state).is_empty());
}

#[tokio::test]
async fn an_api_error_half_way_still_deletes_the_probe_pods() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let forbidden = status(
        403,
        "Forbidden",
        "pods \"x\" is forbidden: User \"dev\" cannot get resource \"pods/log\"",
        None,
    );
    let (client, state) = fake(working(&hash), true, |state| {
        state.inject.insert(
            format!(
                "GET /api/v1/namespaces/istio-system/pods/{}/log",
                GATEWAYS[0]
            ),
            Inject::Status(forbidden),
        );
    });
    let (result, progress) = run(&client, &request(Some(&b), probe_pod_source())).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("pods/log"), "{err}");
    assert!(pods_left(&state).is_empty(), "{progress}");
    assert_eq!(
        seen(&state).iter().filter(|s| s.method == "DELETE").count(),
        2
    );
}

#[tokio::test]
async fn keep_leaves_the_pods_and_says_how_to_delete_them() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let (client, state) = fake(working(&hash), false, |_| {});
    let mut req = request(Some(&b), probe_pod_source());
    req.keep = true;
    let (report, progress) = run(&client, &req).await;
    assert!(report.unwrap().ok);
    assert_eq!(pods_left(&state).len(), 1);
    assert!(seen(&state).iter().all(|s| s.method != "DELETE"));
    assert!(
        progress.contains(&format!(
            "kubectl delete pod -n {NS} -l {}=",
            pod::RUN_LABEL
        )),
        "{progress}"
    );
}

#[tokio::test]
async fn an_existing_pod_is_used_as_is() {
    let b = test_support::bundle(HOST);
    let hash = shared::pki::sha256_hex(b.client.cert.der());
    let app = |sidecar: bool| {
        let mut containers = vec![json!({"name": "app"})];
        let mut statuses = vec![
            json!({"name": "app", "ready": true, "restartCount": 0, "image": "a", "imageID": "", "state": {"running": {}}}),
        ];
        if sidecar {
            containers.insert(0, json!({"name": "istio-proxy"}));
            statuses.push(json!({"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "p", "imageID": "", "state": {"running": {}}}));
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client-7d9f", "namespace": NS},
               "spec": {"containers": containers}, "status": {"phase": "Running", "containerStatuses": statuses}})
    };
    let existing = Source::Existing {
        pod: "client-7d9f".into(),
        container: None,
    };

    let (client, state) = fake(working(&hash), false, |s| s.put("pods", app(true)));
    let report = run(&client, &request(Some(&b), existing.clone()))
        .await
        .0
        .unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(
        detail(&report, "probe-pod"),
        "using pod/client-7d9f, container app"
    );
    let seen = seen(&state);
    assert!(
        seen.iter()
            .all(|s| s.method != "POST" && s.method != "DELETE"),
        "nothing created, nothing deleted"
    );
    assert_eq!(
        seen.iter()
            .find(|s| s.path.ends_with("/exec"))
            .unwrap()
            .param("container"),
        Some("app")
    );

    // With a lockdown that does not select the pod: its outside traffic is not the lockdown's to
    // stop, so only the plain probe pod (which carries the selector's labels) tests it.
    let (client, state) = fake(working(&hash), true, |s| s.put("pods", app(true)));
    let report = run(&client, &request(Some(&b), existing.clone()))
        .await
        .0
        .unwrap();
    let v = verdicts(&report);
    assert_eq!(
        v[v.len() - 2..],
        [
            ("lockdown-mesh", Status::Skipped),
            ("lockdown-plain", Status::Passed)
        ],
        "{report:#?}"
    );
    assert!(detail(&report, "lockdown-mesh").starts_with(
        "pod/client-7d9f is not selected by networkpolicy/mtls-lockdown (it selects app=client)"
    ));
    let seen = test_support::fake_api::seen(&state);
    let created: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| {
            s.body.as_ref().unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(created.len(), 1);
    assert!(created[0].starts_with("mtls-probe-plain-"));
    assert_eq!(
        pods_left(&state),
        [format!("/api/v1/namespaces/{NS}/pods/client-7d9f")]
    );

    // Without a sidecar the request would bypass the gateway: say so, run nothing.
    let (client, state) = fake(working(&hash), false, |s| s.put("pods", app(false)));
    let report = run(&client, &request(Some(&b), existing.clone()))
        .await
        .0
        .unwrap();
    let sidecar = report.checks.iter().find(|c| c.name == "sidecar").unwrap();
    assert_eq!(sidecar.status, Status::Failed);
    assert!(sidecar.detail.contains("istio-injection=enabled"));
    assert!(seen_paths(&state).iter().all(|p| !p.ends_with("/exec")));
    assert_eq!(
        pods_left(&state).len(),
        1,
        "the user's pod is never deleted"
    );

    // A pod that does not exist: exit 3, before anything is created.
    let (client, state) = fake(working(&hash), true, |_| {});
    let err = run(&client, &request(Some(&b), existing))
        .await
        .0
        .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string()
            .contains("pod client-7d9f not found in namespace apps"),
        "{err}"
    );
    assert!(
        test_support::fake_api::seen(&state)
            .iter()
            .all(|s| s.method != "POST")
    );
}

fn seen_paths(state: &Shared) -> Vec<String> {
    seen(state).into_iter().map(|s| s.path).collect()
}
