//! `kubectl mtls-egress` command flows against the in-process fake API server: what is read
//! before planning, what is refused before the first write, idempotent re-runs, server dry runs
//! that store nothing, the Kyma Istio CR patched in one field only, and disable removing exactly
//! what enable made.

use super::common::{DisableCli, EnableCli, ExposeCli, serve_istio_kinds};
use clap::Parser;
use kubectl_mtls_egress::{disable, enable, expose, status as host_status};
use serde_json::{Value, json};
use shared::error::Error;
use shared::names::DnsName;
use test_support::fake_api::{
    Inject, Seen, Shared, State, decode, fake_server, seen, status, summaries,
};

fn enable_args(extra: &[&str]) -> enable::EnableArgs {
    let mut argv = vec!["enable", "--host", "httpbin.example.com", "--timeout", "5s"];
    argv.extend(extra);
    EnableCli::parse_from(argv).args
}

const NS: &str = "mtls-demo";

fn serve_istio(state: &mut State) {
    serve_istio_kinds(state);
    state.serve("apps/v1", "deployments", "Deployment");
    for ns in [NS, "istio-system", "kyma-system"] {
        state.namespaces.insert(ns.into());
        state.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}),
        );
    }
}

fn egress_deployment(state: &mut State) {
    state.put(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
               "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    );
}

fn istio_cr(state: &mut State, name: &str) {
    state.put(
        "istios",
        json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
               "metadata": {"name": name, "namespace": "kyma-system"},
               "spec": {"config": {"numTrustedProxies": 1}},
               "status": {"state": "Ready"}}),
    );
}

/// A Kyma cluster: Istio CR Ready, egress gateway Available.
fn kyma(state: &mut State) {
    serve_istio(state);
    state.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
    istio_cr(state, "default");
    egress_deployment(state);
}

async fn run_enable(client: &kube::Client, args: &enable::EnableArgs) -> Result<String, Error> {
    let mut out = Vec::new();
    enable::execute(
        client,
        args.request(NS).unwrap(),
        args,
        &mut out,
        &mut Vec::new(),
    )
    .await?;
    Ok(String::from_utf8(out).unwrap())
}

fn object(state: &Shared, path: &str) -> Option<Value> {
    state.lock().unwrap().objects.get(path).cloned()
}

fn ours(state: &Shared) -> Vec<String> {
    state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|(_, o)| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-mtls")
        .map(|(p, _)| p.clone())
        .collect()
}

fn writes(state: &Shared) -> Vec<String> {
    seen(state)
        .iter()
        .filter(|s| matches!(s.method.as_str(), "PATCH" | "DELETE") && !s.dry_run())
        .map(|s| s.summary())
        .collect()
}

const ISTIO_CR: &str =
    "/apis/operator.kyma-project.io/v1alpha2/namespaces/kyma-system/istios/default";

#[tokio::test]
async fn enable_on_kyma_patches_one_field_creates_the_routing_and_is_idempotent() {
    let (client, state) = fake_server(kyma);
    let args = enable_args(&[]);
    let out = run_enable(&client, &args).await.unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "istio.operator.kyma-project.io/default configured",
            "serviceentry.networking.istio.io/mtls-httpbin-example-com created",
            "gateway.networking.istio.io/mtls-egress-httpbin-example-com created",
            "destinationrule.networking.istio.io/mtls-egress-httpbin-example-com created",
            "virtualservice.networking.istio.io/mtls-httpbin-example-com created",
            "destinationrule.networking.istio.io/mtls-originate-httpbin-example-com created",
            "telemetry.telemetry.istio.io/mtls-egressgateway-access-log created",
        ]
    );
    // The Istio CR keeps everything else it had.
    let cr = object(&state, ISTIO_CR).unwrap();
    assert_eq!(cr["spec"]["components"]["egressGateway"]["enabled"], true);
    assert_eq!(cr["spec"]["config"]["numTrustedProxies"], 1);
    // Preflight (dry run) of every object before the first real write.
    let sums = summaries(&state);
    let first_write = sums
        .iter()
        .position(|s| s.starts_with("PATCH") && !s.ends_with("(dry run)"))
        .unwrap();
    let last_dry = sums.iter().rposition(|s| s.ends_with("(dry run)")).unwrap();
    assert!(last_dry < first_write, "{sums:#?}");
    // Discovery was asked once, for Kyma's Istio kind only.
    assert_eq!(
        sums.iter()
            .filter(
                |s| s.starts_with("GET /apis/operator.kyma-project.io/v1alpha2")
                    && !s.contains("istios")
            )
            .count(),
        1
    );

    let again = run_enable(&client, &args).await.unwrap();
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    assert_eq!(again.lines().count(), 7);
}

#[tokio::test]
async fn enable_refuses_without_exactly_one_istio_cr_and_writes_nothing() {
    let (client, state) = fake_server(|s| {
        kyma(s);
        istio_cr(s, "second");
    });
    let err = run_enable(&client, &enable_args(&[])).await.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("2 Istio CRs"), "{err}");
    assert!(writes(&state).is_empty());

    let (client, state) = fake_server(|s| {
        serve_istio(s);
        s.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
    });
    let err = run_enable(&client, &enable_args(&[])).await.unwrap_err();
    assert!(err.to_string().contains("no Istio CR"), "{err}");
    assert!(writes(&state).is_empty());
}

#[tokio::test]
async fn plain_istio_needs_an_existing_egress_gateway_and_gets_no_istio_cr() {
    let (client, state) = fake_server(serve_istio);
    let err = run_enable(&client, &enable_args(&[])).await.unwrap_err();
    assert!(
        err.to_string().contains("no egress gateway")
            && err.to_string().contains("istioctl install"),
        "{err}"
    );
    assert!(writes(&state).is_empty());

    let (client, state) = fake_server(|s| {
        serve_istio(s);
        egress_deployment(s);
    });
    let out = run_enable(
        &client,
        &enable_args(&["--no-access-log", "--restrict-to-namespace"]),
    )
    .await
    .unwrap();
    assert!(!out.contains("istio.operator"), "{out}");
    assert!(!out.contains("telemetry"), "{out}");
    assert!(
        out.contains(
            "authorizationpolicy.security.istio.io/mtls-restrict-httpbin-example-com created"
        ),
        "{out}"
    );
    assert_eq!(ours(&state).len(), 6);
}

/// Issue 13 item 5: only what takes the origination rule's place at the egress gateway stops
/// `enable` (Istio's lookup for a proxy in the root namespace: istio/istio 1.30.3
/// `pilot/pkg/model/push_context.go`, `destinationRule`). This test used to expect a rule in the
/// client namespace to stop it; for the gateway in istio-system such a rule changes nothing, so
/// it now goes ahead without a word, and an older private rule in istio-system stops it.
#[tokio::test]
async fn a_destination_rule_that_takes_the_origination_rules_place_stops_enable_unless_forced() {
    let harmless = |s: &mut State| {
        kyma(s);
        s.put(
            "destinationrules",
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": "legacy", "namespace": NS},
                   "spec": {"host": "httpbin.example.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}),
        );
    };
    let (client, state) = fake_server(harmless);
    let mut err = Vec::new();
    let args = enable_args(&[]);
    enable::execute(
        &client,
        args.request(NS).unwrap(),
        &args,
        &mut Vec::new(),
        &mut err,
    )
    .await
    .unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(!err.contains("warning") && !err.contains("legacy"), "{err}");
    assert_eq!(ours(&state).len(), 6);

    let shadowing = |s: &mut State| {
        kyma(s);
        s.put(
            "destinationrules",
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": "legacy", "namespace": "istio-system", "creationTimestamp": "2025-01-01T00:00:00Z"},
                   "spec": {"host": "httpbin.example.com", "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}),
        );
    };
    let (client, state) = fake_server(shadowing);
    let err = run_enable(&client, &enable_args(&[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("destinationrule istio-system/legacy: it is for httpbin.example.com in istio-system with the same exportTo and sorts first")
            && err.contains("--force")
            && !err.contains("client namespace first"),
        "{err}"
    );
    assert!(writes(&state).is_empty());
    let (client, state) = fake_server(shadowing);
    run_enable(&client, &enable_args(&["--force"]))
        .await
        .unwrap();
    assert_eq!(ours(&state).len(), 6);
}

#[tokio::test]
async fn server_dry_run_stores_nothing_and_says_so() {
    let (client, state) = fake_server(kyma);
    let before = state.lock().unwrap().objects.clone();
    let out = run_enable(&client, &enable_args(&["--dry-run=server"]))
        .await
        .unwrap();
    assert!(
        out.lines().all(|l| l.ends_with("(server dry run)")),
        "{out}"
    );
    assert_eq!(state.lock().unwrap().objects, before);
    assert!(writes(&state).is_empty());
}

#[tokio::test]
async fn a_conflict_on_one_object_applies_nothing_and_names_the_remedy() {
    let (client, state) = fake_server(|s| {
        kyma(s);
        s.inject.insert(
            "PATCH /apis/networking.istio.io/v1/namespaces/mtls-demo/virtualservices/mtls-httpbin-example-com (dry run)".into(),
            Inject::Status(status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with \"argocd-controller\": .spec.http",
                None,
            )),
        );
    });
    let err = run_enable(&client, &enable_args(&[])).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("argocd-controller") && text.contains("--force-conflicts"),
        "{text}"
    );
    assert!(writes(&state).is_empty(), "{:?}", writes(&state));
}

#[tokio::test]
async fn status_lists_the_host_and_disable_removes_exactly_what_enable_made() {
    let (client, state) = fake_server(|s| {
        kyma(s);
        // Someone else's object with a similar name must survive.
        s.put(
            "serviceentries",
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                   "metadata": {"name": "mtls-httpbin-example-com-manual", "namespace": NS},
                   "spec": {"hosts": ["httpbin.example.com"], "ports": []}}),
        );
    });
    run_enable(&client, &enable_args(&[])).await.unwrap();
    run_enable(&client, &{
        let mut argv = vec!["enable", "--host", "api.partner.example", "--no-wait"];
        argv.push("--no-access-log");
        EnableCli::parse_from(argv).args
    })
    .await
    .unwrap();
    let rows = host_status::collect(&client, Some(NS)).await.unwrap();
    assert_eq!(rows.len(), 2);
    let row = rows
        .iter()
        .find(|r| r.host == "httpbin.example.com")
        .unwrap();
    assert_eq!(
        (row.side.as_str(), row.hop.as_deref()),
        ("client", Some("istio-mutual"))
    );
    assert_eq!(row.objects.len(), 5, "{:?}", row.objects);
    assert_eq!(row.credential.as_deref(), Some("client-credential"));
    assert_eq!(
        row.problems,
        ["secret istio-system/client-credential missing"]
    );

    let host = DnsName::parse("httpbin.example.com").unwrap();
    // A server dry run of disable lists what would go and deletes nothing.
    let before = ours(&state);
    let args = DisableCli::parse_from([
        "disable",
        "--host",
        "httpbin.example.com",
        "--dry-run=server",
    ])
    .args;
    let mut out = Vec::new();
    disable::execute(&client, NS, &host, &args, &mut out, &mut Vec::new())
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with("deleted (server dry run)"))
            .count(),
        5,
        "{out}"
    );
    assert_eq!(ours(&state), before);
    let args = DisableCli::parse_from(["disable", "--host", "httpbin.example.com"]).args;
    let mut out = Vec::new();
    disable::execute(&client, NS, &host, &args, &mut out, &mut Vec::new())
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 5, "{out}");
    // The other host keeps its objects and the shared Telemetry stays while it exists.
    let left = ours(&state);
    assert!(
        left.iter()
            .all(|p| !p.contains("httpbin-example-com") || p.ends_with("-manual")),
        "{left:#?}"
    );
    assert!(
        left.iter()
            .any(|p| p.ends_with("telemetries/mtls-egressgateway-access-log"))
    );
    assert!(object(&state, "/apis/networking.istio.io/v1/namespaces/mtls-demo/serviceentries/mtls-httpbin-example-com-manual").is_some());
    assert_eq!(
        object(&state, ISTIO_CR).unwrap()["spec"]["components"]["egressGateway"]["enabled"],
        true
    );

    // The last host takes the Telemetry with it; --egress-gateway switches Kyma's gateway off.
    let last = DnsName::parse("api.partner.example").unwrap();
    let args = DisableCli::parse_from([
        "disable",
        "--host",
        "api.partner.example",
        "--egress-gateway",
    ])
    .args;
    let mut out = Vec::new();
    disable::execute(&client, NS, &last, &args, &mut out, &mut Vec::new())
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("telemetry.telemetry.istio.io/mtls-egressgateway-access-log deleted"),
        "{out}"
    );
    assert!(
        out.contains("istio.operator.kyma-project.io/default configured"),
        "{out}"
    );
    assert!(ours(&state).is_empty(), "{:#?}", ours(&state));
    assert_eq!(
        object(&state, ISTIO_CR).unwrap()["spec"]["components"]["egressGateway"]["enabled"],
        false
    );
}

/// The client credential of `client` (CA `ca`), valid for `days` from `issued`, as `secret client
/// --name NAME` writes it (JSON, for the fake server).
fn client_credential(name: &str, client: &str, days: u32, issued: time::OffsetDateTime) -> Value {
    use shared::manifest::secret::{Side, credential_secret};
    use shared::pki::{Bundle, BundleRequest, CredentialPem, KeyType};
    let b = Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse("server.example.com").unwrap(),
            client: DnsName::parse(client).unwrap(),
            days,
            key_type: KeyType::EcdsaP256,
            ca_name: None,
        },
        issued,
    )
    .unwrap();
    let pem = CredentialPem {
        chain: b.client.cert.to_pem(),
        key: b.client.key.to_pem(),
        ca: b.ca.cert.to_pem(),
    };
    let mut secret =
        serde_json::to_value(credential_secret(Side::Client, name, "istio-system", &pem).unwrap())
            .unwrap();
    secret["apiVersion"] = json!("v1");
    secret["kind"] = json!("Secret");
    secret
}

#[tokio::test]
async fn status_reads_each_hosts_credential_and_an_expired_one_is_not_ready() {
    let now = time::OffsetDateTime::now_utc();
    let (client, _state) = fake_server(|s| {
        kyma(s);
        s.put(
            "secrets",
            client_credential("partner-a", "caller-a.example.com", 5, now),
        );
        let expired = now - time::Duration::days(40);
        s.put(
            "secrets",
            client_credential("partner-b", "caller-b.example.com", 30, expired),
        );
    });
    run_enable(&client, &enable_args(&["--credential", "partner-a"]))
        .await
        .unwrap();
    let mut argv = vec!["enable", "--host", "api.partner.example", "--no-wait"];
    argv.extend(["--no-access-log", "--credential", "partner-b"]);
    run_enable(&client, &EnableCli::parse_from(argv).args)
        .await
        .unwrap();
    let rows = host_status::collect(&client, Some(NS)).await.unwrap();
    let row = |host: &str| rows.iter().find(|r| r.host == host).unwrap();
    let (a, b) = (row("httpbin.example.com"), row("api.partner.example"));
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    let state = a.credential_secret.as_ref().unwrap();
    assert_eq!(state.id(), "istio-system/partner-a");
    assert_eq!(state.hosts, ["caller-a.example.com"]);
    assert_eq!(state.certificate.as_ref().unwrap().days_left, 4);
    assert_eq!(
        b.credential_secret.as_ref().unwrap().id(),
        "istio-system/partner-b"
    );
    assert_eq!(b.problems.len(), 1, "{:?}", b.problems);
    assert!(
        b.problems[0].starts_with("certificate in secret istio-system/partner-b expired "),
        "{:?}",
        b.problems
    );
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["credentialSecret"]["certificate"]["daysLeft"], 4);
    assert_eq!(json["credentialSecret"]["trustBundleKey"], "ca.crt");
}

#[tokio::test]
async fn expose_picks_apirule_when_served_and_refuses_it_when_not() {
    let expose_args = |extra: &[&str]| {
        let mut argv = vec![
            "expose",
            "--host",
            "httpbin.example.com",
            "--service",
            "httpbin:8000",
        ];
        argv.extend(extra);
        ExposeCli::parse_from(argv).args
    };
    let (client, state) = fake_server(|s| {
        serve_istio(s);
        s.serve("gateway.kyma-project.io/v2", "apirules", "APIRule");
    });
    let args = expose_args(&[]);
    let mut out = Vec::new();
    expose::execute(
        &client,
        args.request(NS).unwrap(),
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        &mut out,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("apirule.gateway.kyma-project.io/mtls-httpbin-example-com created"),
        "{out}"
    );
    assert_eq!(ours(&state).len(), 2);

    let (client, state) = fake_server(serve_istio);
    let args = expose_args(&["--route", "apirule"]);
    let err = expose::execute(
        &client,
        args.request(NS).unwrap(),
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--route virtualservice"), "{err}");
    assert!(writes(&state).is_empty());
    let args = expose_args(&[]);
    let mut out = Vec::new();
    expose::execute(
        &client,
        args.request(NS).unwrap(),
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        &mut out,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("virtualservice.networking.istio.io/mtls-httpbin-example-com created")
    );

    let (client, state) = fake_server(serve_istio);
    let args = expose_args(&[]);
    let err = expose::execute(
        &client,
        args.request("nowhere").unwrap(),
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("namespace nowhere does not exist"),
        "{err}"
    );
    assert!(writes(&state).is_empty());
}

/// Issue 13 item 4: `enable` reads the mesh-wide Telemetry and keeps its providers on the
/// egress gateway next to `envoy` (istio/istio `pilot/pkg/model/telemetry.go`, `mergeLogs`).
#[tokio::test]
async fn enable_keeps_the_mesh_wide_access_log_providers() {
    let (client, state) = fake_server(|s| {
        kyma(s);
        s.put(
            "telemetries",
            json!({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                   "metadata": {"name": "mesh-default", "namespace": "istio-system"},
                   "spec": {"accessLogging": [{"providers": [{"name": "otel"}]}]}}),
        );
    });
    run_enable(&client, &enable_args(&[])).await.unwrap();
    let ours = object(
        &state,
        "/apis/telemetry.istio.io/v1/namespaces/istio-system/telemetries/mtls-egressgateway-access-log",
    )
    .expect("the gateway's Telemetry");
    assert_eq!(
        ours["spec"]["accessLogging"],
        json!([{"providers": [{"name": "otel"}]}, {"providers": [{"name": "envoy"}]}])
    );
    // The user's Telemetry is not touched.
    let theirs = object(
        &state,
        "/apis/telemetry.istio.io/v1/namespaces/istio-system/telemetries/mesh-default",
    )
    .unwrap();
    assert_eq!(
        theirs["spec"]["accessLogging"],
        json!([{"providers": [{"name": "otel"}]}])
    );
}

#[tokio::test]
async fn applied_with_o_name_prints_one_name_per_object() {
    let (client, _state) = fake_server(kyma);
    let table = run_enable(&client, &enable_args(&["--no-wait"]))
        .await
        .unwrap();
    let (client, _state) = fake_server(kyma);
    let names = run_enable(&client, &enable_args(&["--no-wait", "-o", "name"]))
        .await
        .unwrap();
    // The result lines are `NAME created|configured`; -o name keeps the NAME only, in order.
    let expected: Vec<&str> = table
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    assert!(expected.len() >= 5, "{table}");
    assert_eq!(names.lines().collect::<Vec<_>>(), expected);
}

/// `enable --host …` repeated `count` times (`h001.fleet.example` …).
fn fleet_args(count: usize) -> enable::EnableArgs {
    let hosts: Vec<String> = (1..=count)
        .map(|i| format!("h{i:03}.fleet.example"))
        .collect();
    let mut argv = vec!["enable", "--timeout", "5s", "--no-wait"];
    for host in &hosts {
        argv.extend(["--host", host.as_str()]);
    }
    EnableCli::parse_from(argv).args
}

async fn run_fleet(client: &kube::Client, args: &enable::EnableArgs) -> Result<String, Error> {
    let mut out = Vec::new();
    enable::execute_all(
        client,
        args.requests(NS).unwrap(),
        args,
        &mut out,
        &mut Vec::new(),
    )
    .await?;
    Ok(String::from_utf8(out).unwrap())
}

/// The requests that are not applies (the reads), without the dry runs and writes.
fn reads(state: &Shared) -> Vec<String> {
    summaries(state)
        .into_iter()
        .filter(|s| !s.starts_with("PATCH"))
        .collect()
}

#[tokio::test]
async fn a_hundred_hosts_are_one_set_of_reads_and_one_plan_with_every_objects_report() {
    let (client, state) = fake_server(kyma);
    let out = run_fleet(&client, &fleet_args(1)).await.unwrap();
    assert_eq!(out.lines().count(), 7, "{out}");
    let one_host_reads = reads(&state).len();

    let (client, state) = fake_server(kyma);
    let args = fleet_args(100);
    let out = run_fleet(&client, &args).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    // Five objects per host, the Istio CR and the shared access-log Telemetry once each.
    assert_eq!(lines.len(), 5 * 100 + 2, "{out}");
    assert_eq!(
        lines[0],
        "istio.operator.kyma-project.io/default configured"
    );
    assert_eq!(
        lines[1..6],
        [
            "serviceentry.networking.istio.io/mtls-h001-fleet-example created",
            "gateway.networking.istio.io/mtls-egress-h001-fleet-example created",
            "destinationrule.networking.istio.io/mtls-egress-h001-fleet-example created",
            "virtualservice.networking.istio.io/mtls-h001-fleet-example created",
            "destinationrule.networking.istio.io/mtls-originate-h001-fleet-example created",
        ]
    );
    assert_eq!(
        lines[6],
        "telemetry.telemetry.istio.io/mtls-egressgateway-access-log created"
    );
    assert_eq!(
        lines[lines.len() - 1],
        "destinationrule.networking.istio.io/mtls-originate-h100-fleet-example created"
    );
    assert_eq!(ours(&state).len(), 5 * 100 + 1);
    // The reads do not grow with the hosts: one discovery, one list per kind and scope.
    assert_eq!(reads(&state).len(), one_host_reads, "{:#?}", reads(&state));
    // Every object passed the dry run before the first write.
    let sums = summaries(&state);
    let first_write = sums
        .iter()
        .position(|s| s.starts_with("PATCH") && !s.ends_with("(dry run)"))
        .unwrap();
    let dry_runs = sums.iter().filter(|s| s.ends_with("(dry run)")).count();
    assert_eq!(dry_runs, 5 * 100 + 2);
    assert!(
        sums[first_write..]
            .iter()
            .all(|s| !s.ends_with("(dry run)")),
        "{sums:#?}"
    );

    // Re-run: every object unchanged, nothing written anew.
    let out = run_fleet(&client, &args).await.unwrap();
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");
}

#[tokio::test]
async fn a_hundred_hosts_with_the_57th_refused_by_the_server_write_nothing() {
    let refused = format!(
        "PATCH /apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/mtls-h057-fleet-example (dry run)"
    );
    let inject = refused.clone();
    let (client, state) = fake_server(move |s| {
        kyma(s);
        s.inject.insert(
            inject,
            Inject::Status(status(
                422,
                "Invalid",
                r#"VirtualService.networking.istio.io "mtls-h057-fleet-example" is invalid: spec.http[0].route: Required value"#,
                None,
            )),
        );
    });
    let err = run_fleet(&client, &fleet_args(100)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mtls-h057-fleet-example"), "{text}");
    assert_eq!(err.exit_code(), 3, "{text}");
    assert!(summaries(&state).contains(&refused));
    // Nothing written: no real PATCH at all, no object of ours, the Istio CR untouched.
    assert_eq!(writes(&state), Vec::<String>::new());
    assert_eq!(ours(&state), Vec::<String>::new());
    assert!(
        object(&state, ISTIO_CR).unwrap()["spec"]["components"].is_null(),
        "the Istio CR was patched"
    );
}

#[test]
fn a_hosts_file_with_an_invalid_57th_host_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.txt");
    let mut text = String::from("# partners\n\n");
    for i in 1..=100 {
        if i == 57 {
            text.push_str("not a host!\n");
        } else {
            text.push_str(&format!("h{i:03}.fleet.example\n"));
        }
    }
    std::fs::write(&file, &text).unwrap();
    let args = EnableCli::parse_from(["enable", "--hosts-file", file.to_str().unwrap()]).args;
    let err = args.requests(NS).unwrap_err();
    // Line 59: two lines of comment and blank before the 57th host.
    assert!(
        err.to_string()
            .starts_with(&format!("{}:59: ", file.display())),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);

    // The same host twice is refused too; a valid file gives its hosts in order.
    let twice = EnableCli::parse_from([
        "enable",
        "--host",
        "h001.fleet.example",
        "--host",
        "h001.fleet.example",
    ])
    .args;
    let err = twice.requests(NS).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    assert_eq!(err.exit_code(), 2);
    std::fs::write(&file, text.replace("not a host!", "h057.fleet.example")).unwrap();
    let hosts: Vec<String> = args
        .requests(NS)
        .unwrap()
        .iter()
        .map(|r| r.host.to_string())
        .collect();
    assert_eq!(hosts.len(), 100);
    assert_eq!(hosts[56], "h057.fleet.example");
}

/// The DestinationRules `enable` reads: only the egress gateway's namespace, the one Istio's
/// lookup for the gateway proxy consults first (istio/istio 1.30.3
/// `pilot/pkg/model/push_context.go`: `destinationRule` looks in the proxy's own namespace, whose
/// exact private rule wins before the service's namespace and the root namespace are consulted),
/// and there every rule except our origination rules for other hosts. A foreign rule there still
/// stops `enable` (a second partner's rule of ours does not count as one); and the one
/// request across namespaces (the ServiceEntries that say which namespace routes the host) is
/// selected by our host label, so neither grows with the partners the cluster has.
#[tokio::test]
async fn the_destination_rule_reads_are_the_gateway_namespace_without_other_hosts_rules() {
    let setup = |s: &mut State| {
        kyma(s);
        for i in 0..20 {
            let slug = format!("other{i}-example-com");
            s.put(
                "destinationrules",
                json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                       "metadata": {"name": format!("mtls-originate-{slug}"), "namespace": "istio-system",
                                    "labels": {"app.kubernetes.io/managed-by": "kubectl-mtls", "kubectl-mtls/host": slug}},
                       "spec": {"host": format!("other{i}.example.com"), "exportTo": ["."]}}),
            );
        }
        s.put(
            "destinationrules",
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": "legacy", "namespace": "istio-system", "creationTimestamp": "2025-01-01T00:00:00Z"},
                   "spec": {"host": "httpbin.example.com", "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}),
        );
    };
    let (client, state) = fake_server(setup);
    let err = run_enable(&client, &enable_args(&[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("destinationrule istio-system/legacy"), "{err}");
    assert!(!err.contains("other"), "{err}");
    let lists: Vec<Seen> = seen(&state)
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with("/destinationrules"))
        .collect();
    let selectors: Vec<(String, String)> = lists
        .iter()
        .map(|s| {
            (
                s.path.clone(),
                decode(s.param("labelSelector").unwrap_or_default()),
            )
        })
        .collect();
    let dr = "/apis/networking.istio.io/v1/namespaces/istio-system/destinationrules";
    assert_eq!(
        selectors,
        [
            (dr.to_string(), "!kubectl-mtls/host".to_string()),
            (
                dr.to_string(),
                "kubectl-mtls/host in (httpbin-example-com)".to_string()
            ),
        ],
        "{selectors:?}"
    );
    let across: Vec<String> = seen(&state)
        .iter()
        .filter(|s| {
            s.method == "GET"
                && s.path
                    .starts_with("/apis/networking.istio.io/v1/serviceentries")
        })
        .map(|s| decode(s.param("labelSelector").unwrap_or_default()))
        .collect();
    assert_eq!(
        across,
        ["kubectl-mtls/host in (httpbin-example-com),app.kubernetes.io/component=egress"]
    );
    assert!(writes(&state).is_empty());
}

/// `enable` of `hosts` in `namespace`, in one run.
async fn enable_hosts(client: &kube::Client, namespace: &str, hosts: &[&str]) {
    let mut argv = vec!["enable", "--timeout", "5s", "--no-wait"];
    for host in hosts {
        argv.extend(["--host", host]);
    }
    let args = EnableCli::parse_from(argv).args;
    enable::execute_all(
        client,
        args.requests(namespace).unwrap(),
        &args,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .await
    .unwrap();
}

/// `disable ARGS -n mtls-demo` (the hosts from the flags), its stdout.
async fn run_disable(client: &kube::Client, argv: &[&str]) -> Result<String, Error> {
    let mut full = vec!["disable"];
    full.extend(argv);
    let args = DisableCli::parse_from(full).args;
    let mut out = Vec::new();
    disable::execute_all(client, NS, &args.hosts()?, &args, &mut out, &mut Vec::new()).await?;
    Ok(String::from_utf8(out).unwrap())
}

/// A Kyma cluster where mtls-demo routes a.fleet.example, b.fleet.example and c.fleet.example
/// (enabled in one run), and the namespace payments routes partner.example.
fn fleet_with_a_partner_elsewhere(state: &mut State) {
    kyma(state);
    state.namespaces.insert("payments".into());
    state.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}}),
    );
}

async fn enabled_fleet() -> (kube::Client, Shared) {
    let (client, state) = fake_server(fleet_with_a_partner_elsewhere);
    enable_hosts(
        &client,
        NS,
        &["a.fleet.example", "b.fleet.example", "c.fleet.example"],
    )
    .await;
    enable_hosts(&client, "payments", &["partner.example"]).await;
    (client, state)
}

/// The paths of our objects labelled for `slug`.
fn ours_for(state: &Shared, slug: &str) -> Vec<String> {
    state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-mtls"
                && o["metadata"]["labels"]["kubectl-mtls/host"] == slug
        })
        .map(|(p, _)| p.clone())
        .collect()
}

/// Issue 15: `disable` of several hosts is one run. Each host's objects are reported in turn
/// (a host another namespace routes: its objects in istio-system are kept, and said so); the
/// host left in the namespace, the partner of the other namespace and the shared access-log
/// Telemetry stay; the reads are those of one host; every deletion passed the server's check
/// before the first was sent.
#[tokio::test]
async fn disable_of_several_hosts_is_one_run_and_leaves_the_other_partner_and_namespace() {
    // The reads of one host's disable, for comparison (a host the namespace does not route:
    // where its egress gateway runs is read from the cluster).
    let (client, state) = enabled_fleet().await;
    let before = seen(&state).len();
    run_disable(&client, &["--host", "partner.example"])
        .await
        .unwrap();
    let reads_of_one: Vec<String> = summaries(&state)[before..]
        .iter()
        .filter(|s| s.starts_with("GET"))
        .cloned()
        .collect();

    let (client, state) = enabled_fleet().await;
    let before = seen(&state).len();
    let out = run_disable(
        &client,
        &[
            "--host",
            "a.fleet.example",
            "--host",
            "partner.example",
            "--host",
            "b.fleet.example",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "virtualservice.networking.istio.io/mtls-a-fleet-example deleted",
            "gateway.networking.istio.io/mtls-egress-a-fleet-example deleted",
            "destinationrule.networking.istio.io/mtls-egress-a-fleet-example deleted",
            "serviceentry.networking.istio.io/mtls-a-fleet-example deleted",
            "destinationrule.networking.istio.io/mtls-originate-a-fleet-example deleted",
            "destinationrule.networking.istio.io/mtls-originate-partner-example kept: namespace payments still routes partner.example through the egress gateway",
            "virtualservice.networking.istio.io/mtls-b-fleet-example deleted",
            "gateway.networking.istio.io/mtls-egress-b-fleet-example deleted",
            "destinationrule.networking.istio.io/mtls-egress-b-fleet-example deleted",
            "serviceentry.networking.istio.io/mtls-b-fleet-example deleted",
            "destinationrule.networking.istio.io/mtls-originate-b-fleet-example deleted",
        ],
        "{out}"
    );
    assert!(ours_for(&state, "a-fleet-example").is_empty());
    assert!(ours_for(&state, "b-fleet-example").is_empty());
    assert_eq!(ours_for(&state, "c-fleet-example").len(), 5);
    assert_eq!(ours_for(&state, "partner-example").len(), 5);
    assert!(object(&state, "/apis/telemetry.istio.io/v1/namespaces/istio-system/telemetries/mtls-egressgateway-access-log").is_some());
    let sums = summaries(&state)[before..].to_vec();
    let reads: Vec<String> = sums
        .iter()
        .filter(|s| s.starts_with("GET"))
        .cloned()
        .collect();
    assert_eq!(reads.len(), reads_of_one.len(), "{reads:#?}");
    let first_delete = sums
        .iter()
        .position(|s| s.starts_with("DELETE") && !s.ends_with("(dry run)"))
        .unwrap();
    assert_eq!(sums.iter().filter(|s| s.ends_with("(dry run)")).count(), 10);
    assert!(
        sums[first_delete..]
            .iter()
            .all(|s| !s.ends_with("(dry run)")),
        "{sums:#?}"
    );

    // The last hosts of the cluster: c here, partner.example from its own namespace. Without
    // the partner's namespace, c is not the last: the Telemetry stays.
    let out = run_disable(&client, &["--host", "c.fleet.example"])
        .await
        .unwrap();
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(object(&state, "/apis/telemetry.istio.io/v1/namespaces/istio-system/telemetries/mtls-egressgateway-access-log").is_some());
    assert_eq!(ours_for(&state, "partner-example").len(), 5);
}

/// One deletion of the plan refused by the server's check: nothing is deleted, for any host.
#[tokio::test]
async fn disable_of_several_hosts_with_one_deletion_refused_deletes_nothing() {
    let (client, state) = enabled_fleet().await;
    let refused = format!(
        "DELETE /apis/networking.istio.io/v1/namespaces/{NS}/serviceentries/mtls-b-fleet-example (dry run)"
    );
    state.lock().unwrap().inject.insert(
        refused.clone(),
        Inject::Status(status(
            403,
            "Forbidden",
            r#"serviceentries.networking.istio.io "mtls-b-fleet-example" is forbidden: denied by the admission webhook"#,
            None,
        )),
    );
    let before = ours(&state);
    let sent = seen(&state).len();
    let err = run_disable(
        &client,
        &[
            "--host",
            "a.fleet.example",
            "--host",
            "b.fleet.example",
            "--host",
            "c.fleet.example",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("mtls-b-fleet-example"), "{err}");
    let sums = summaries(&state)[sent..].to_vec();
    assert!(sums.contains(&refused), "{sums:#?}");
    assert!(
        sums.iter()
            .all(|s| s.starts_with("GET") || s.ends_with("(dry run)")),
        "{sums:#?}"
    );
    assert_eq!(ours(&state), before);

    // A --dry-run=server of the same hosts, once the check passes, lists and deletes nothing.
    state.lock().unwrap().inject.clear();
    let out = run_disable(
        &client,
        &[
            "--host",
            "a.fleet.example",
            "--host",
            "c.fleet.example",
            "--dry-run=server",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(
        out.lines()
            .all(|l| l.ends_with(" deleted (server dry run)")),
        "{out}"
    );
    assert_eq!(ours(&state), before);
}

/// `status --host …` shows those hosts only, with reads that do not grow with the hosts: one list
/// per kind (selected by the hosts' labels), one read of the gateway namespace's rules, of the
/// gateway's Deployment and of the credential Secret the hosts share.
#[tokio::test]
async fn status_of_several_hosts_reads_once_for_all() {
    let (client, state) = enabled_fleet().await;
    let before = seen(&state).len();
    let one = [DnsName::parse("a.fleet.example").unwrap()];
    let rows = host_status::collect_hosts(&client, Some(NS), &one)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let reads_of_one = seen(&state).len() - before;

    let before = seen(&state).len();
    let two = [
        DnsName::parse("a.fleet.example").unwrap(),
        DnsName::parse("c.fleet.example").unwrap(),
    ];
    let rows = host_status::collect_hosts(&client, Some(NS), &two)
        .await
        .unwrap();
    let hosts: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts, ["a.fleet.example", "c.fleet.example"]);
    for row in &rows {
        assert_eq!(row.objects.len(), 5, "{:?}", row.objects);
        assert_eq!(
            row.problems,
            ["secret istio-system/client-credential missing"]
        );
    }
    assert_eq!(seen(&state).len() - before, reads_of_one);
    let selectors: Vec<String> = seen(&state)[before..]
        .iter()
        .filter_map(|s| s.param("labelSelector").map(decode))
        .collect();
    assert!(
        selectors.iter().all(|s| s
            == "app.kubernetes.io/managed-by=kubectl-mtls,kubectl-mtls/host in (a-fleet-example,c-fleet-example)"),
        "{selectors:#?}"
    );

    // Across namespaces, the partner's row comes too; without hosts, every host.
    let rows =
        host_status::collect_hosts(&client, None, &[DnsName::parse("partner.example").unwrap()])
            .await
            .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.host.as_str(), r.namespace.as_str()))
            .collect::<Vec<_>>(),
        [("partner.example", "payments")]
    );
    assert_eq!(host_status::collect(&client, None).await.unwrap().len(), 4);
}

/// `expose` of several hosts (public names of one Service) is one run: the reads of one host
/// (the hosts' Gateways in one list), a Gateway and a route per host in order, every object
/// checked by the server's dry run before the first write; another host exposed before keeps
/// its objects untouched; `--gateway` names one host's Gateway only.
#[tokio::test]
async fn expose_of_several_hosts_is_one_run_and_leaves_the_other_host() {
    let expose = |hosts: &[&str]| {
        let mut argv = vec!["expose", "--service", "httpbin:8000"];
        for host in hosts {
            argv.extend(["--host", host]);
        }
        ExposeCli::parse_from(argv).args
    };
    let run = |client: kube::Client, args: expose::ExposeArgs| async move {
        let mut out = Vec::new();
        let limit = usize::from(args.max_in_flight);
        expose::execute_all(
            &client,
            args.requests(NS).unwrap(),
            &args,
            limit,
            &mut out,
            &mut Vec::new(),
        )
        .await
        .map(|()| String::from_utf8(out).unwrap())
    };
    let (client, state) = fake_server(serve_istio);
    run(client.clone(), expose(&["first.example.com"]))
        .await
        .unwrap();
    let first = ours(&state);
    assert_eq!(first.len(), 2, "{first:#?}");
    let before = seen(&state).len();
    run(client.clone(), expose(&["one.example.com"]))
        .await
        .unwrap();
    let reads_of_one = seen(&state)[before..]
        .iter()
        .filter(|s| s.method == "GET")
        .count();

    let before = seen(&state).len();
    let out = run(
        client.clone(),
        expose(&["b.example.com", "a.example.com", "c.example.com"]),
    )
    .await
    .unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "gateway.networking.istio.io/mtls-b-example-com created",
            "virtualservice.networking.istio.io/mtls-b-example-com created",
            "gateway.networking.istio.io/mtls-a-example-com created",
            "virtualservice.networking.istio.io/mtls-a-example-com created",
            "gateway.networking.istio.io/mtls-c-example-com created",
            "virtualservice.networking.istio.io/mtls-c-example-com created",
        ],
        "{out}"
    );
    let sums = summaries(&state)[before..].to_vec();
    assert_eq!(
        sums.iter().filter(|s| s.starts_with("GET")).count(),
        reads_of_one,
        "{sums:#?}"
    );
    let first_write = sums
        .iter()
        .position(|s| s.starts_with("PATCH") && !s.ends_with("(dry run)"))
        .unwrap();
    assert_eq!(sums.iter().filter(|s| s.ends_with("(dry run)")).count(), 6);
    assert!(
        sums[first_write..]
            .iter()
            .all(|s| !s.ends_with("(dry run)"))
    );
    let now = ours(&state);
    assert_eq!(now.len(), 2 + 2 + 6, "{now:#?}");
    assert!(
        writes(&state)[..]
            .iter()
            .filter(|w| w.contains("first-example-com"))
            .count()
            == 2,
        "the first host's objects were written again"
    );

    // --gateway with several hosts, or a host twice: refused before any request.
    let mut args = expose(&["a.example.com", "b.example.com"]);
    args.gateway = Some("shared".into());
    let err = args.requests(NS).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--gateway names the Gateway of one host"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
    let err = expose(&["a.example.com", "A.example.com"])
        .requests(NS)
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
}
