//! `kubectl mtls-egress connect` and `disconnect`: the two plans (snapshots, key material
//! redacted; schema-checked), the dry-run streams, the flags refused before anything happens, stage
//! 1's bundle handling, and the command flows against two fake API servers — one per cluster:
//! both plans validated before the first write to either, a failure midway that names what was
//! applied where and a re-run that continues, and disconnect removing exactly ours.

use std::path::Path;

use super::common::{ConnectCli, DisconnectCli, serve_istio_kinds};
use clap::Parser;
use kubectl_mtls_egress::connect::bundle::{
    self, BundleSpec, DirState, Source, check_dir, dir_state, obtain,
};
use kubectl_mtls_egress::connect::{
    self, ClusterRef, ConnectInputs, ConnectRequest, Role, connect_plans, render_dry_run,
};
use kubectl_mtls_egress::disconnect;
use serde_json::{Value, json};
use shared::cli::{DryRun, OutputFormat};
use shared::error::Error;
use shared::manifest::egress::{EnableRequest, Hop};
use shared::manifest::expose::{ExposeRequest, Route};
use shared::manifest::lockdown::LockdownInputs;
use shared::names::DnsName;
use shared::pki::KeyType;
use test_support::fake_api::{Inject, Shared, State, fake_server, seen, status, tcp_server};
use test_support::mesh::{Mesh, install};

const HOST: &str = "httpbin.example.com";
const TARGET_NS: &str = "partner";
const CLIENT_NS: &str = "mtls-demo";

// ---------------------------------------------------------------------------------------------
// Plans

fn inputs(kyma: bool, lockdown: bool) -> ConnectInputs {
    let host = DnsName::parse(HOST).unwrap();
    ConnectInputs {
        expose: ExposeRequest {
            host: host.clone(),
            namespace: TARGET_NS.into(),
            service: "httpbin:8000".parse().unwrap(),
            credential: "kyma-mtls-certs".into(),
            gateway: None,
            route: if kyma {
                Route::Apirule
            } else {
                Route::Virtualservice
            },
            methods: vec!["GET".into()],
            label_namespace: false,
            ingress: shared::gateway::GatewayWorkload::default_ingress(),
        },
        enable: EnableRequest {
            host,
            namespace: CLIENT_NS.into(),
            credential: "client-credential".into(),
            hop: Hop::IstioMutual,
            port: 443,
            access_log: true,
            restrict_to_namespace: false,
            kyma_istio: kyma.then(|| ("kyma-system".to_string(), "default".to_string())),
            mesh: Default::default(),
        },
        credentials: bundle::credentials(&test_support::bundle(HOST)),
        lockdown: lockdown.then(|| LockdownInputs {
            namespace: CLIENT_NS.into(),
            dns_service_ip: "100.104.0.10".parse().unwrap(),
            node_local_dns: false,
            extra_dns_pod_ports: Vec::new(),
            egress_gateway_ports: vec![
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8443),
            ],
            egress_gateway: shared::gateway::GatewayWorkload::default_egress(),
            namespace_wide: false,
            allow_same_namespace: false,
        }),
    }
}

fn bodies(plan: &shared::plan::Plan) -> Vec<Value> {
    plan.objects().iter().map(|o| o.body.clone()).collect()
}

/// The plan's YAML with every Secret value replaced: key material is random.
fn redacted_yaml(plan: &shared::plan::Plan) -> String {
    let docs: Vec<Value> = bodies(plan)
        .into_iter()
        .map(|mut o| {
            if o["kind"] == "Secret" {
                for value in o["data"].as_object_mut().unwrap().values_mut() {
                    *value = Value::from("[redacted PEM, base64]");
                }
            }
            o
        })
        .collect();
    shared::plan::render_yaml(&docs)
}

fn decode_base64(text: &str) -> String {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = table.iter().position(|t| *t == c).unwrap() as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn plan_snapshots_for_both_clusters() {
    for (name, kyma, lockdown) in [
        ("kyma_apirule_lockdown", true, true),
        ("istio_virtualservice", false, false),
    ] {
        let plans = connect_plans(&inputs(kyma, lockdown)).unwrap();
        insta::assert_snapshot!(format!("{name}_target"), redacted_yaml(&plans.target));
        insta::assert_snapshot!(format!("{name}_client"), redacted_yaml(&plans.client));
    }
}

#[test]
fn each_cluster_gets_its_own_credential_labelled_for_the_host() {
    let inputs = inputs(true, true);
    let plans = connect_plans(&inputs).unwrap();
    let (target, client) = (bodies(&plans.target), bodies(&plans.client));
    // The Secret goes first on both sides, so the Gateway and the origination rule find it.
    assert_eq!(target[0]["kind"], "Secret");
    assert_eq!(client[0]["kind"], "Secret");
    let creds = &inputs.credentials;
    for (secret, keys, pem) in [
        (&target[0], ["cert", "key", "cacert"], &creds.target),
        (&client[0], ["tls.crt", "tls.key", "ca.crt"], &creds.client),
    ] {
        assert_eq!(secret["metadata"]["namespace"], "istio-system");
        assert_eq!(
            secret["metadata"]["labels"]["kubectl-mtls/host"],
            "httpbin-example-com"
        );
        assert_eq!(secret["metadata"]["annotations"]["kubectl-mtls/host"], HOST);
        let data = &secret["data"];
        assert_eq!(decode_base64(data[keys[0]].as_str().unwrap()), pem.chain);
        assert_eq!(decode_base64(data[keys[1]].as_str().unwrap()), pem.key);
        assert_eq!(decode_base64(data[keys[2]].as_str().unwrap()), pem.ca);
    }
    // The target serves the server certificate; the client presents the client certificate.
    assert!(creds.target.chain != creds.client.chain);
    // Nothing of one cluster leaks into the other's plan.
    assert!(
        target
            .iter()
            .all(|o| o["metadata"]["namespace"] != CLIENT_NS)
    );
    assert!(
        client
            .iter()
            .all(|o| o["metadata"]["namespace"] != TARGET_NS)
    );
    assert!(!client.iter().any(|o| o["kind"] == "APIRule"));
    assert_eq!(client.last().unwrap()["kind"], "NetworkPolicy");
    // The Gateway and the origination rule name the Secrets of the plan.
    let gateway = target.iter().find(|o| o["kind"] == "Gateway").unwrap();
    assert_eq!(
        gateway["spec"]["servers"][0]["tls"]["credentialName"],
        target[0]["metadata"]["name"]
    );
    let origination = client
        .iter()
        .find(|o| o["kind"] == "DestinationRule" && o["metadata"]["namespace"] == "istio-system")
        .unwrap();
    assert_eq!(
        origination["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["credentialName"],
        client[0]["metadata"]["name"]
    );

    // One host for both sides.
    let mut mismatched = inputs.clone();
    mismatched.enable.host = DnsName::parse("other.example.com").unwrap();
    assert!(connect_plans(&mismatched).is_err());
}

#[test]
fn every_custom_resource_of_both_plans_validates_against_the_real_crds() {
    let Some(schemas) = test_support::schema::Schemas::load() else {
        return;
    };
    let mut checked = 0;
    for (kyma, lockdown) in [(true, true), (false, false)] {
        let plans = connect_plans(&inputs(kyma, lockdown)).unwrap();
        for object in bodies(&plans.target)
            .into_iter()
            .chain(bodies(&plans.client))
        {
            let api_version = object["apiVersion"].as_str().unwrap();
            if api_version == "v1" || api_version.starts_with("networking.k8s.io/") {
                continue; // core kinds are typed by k8s-openapi
            }
            if let Err(errors) = schemas.validate(&object) {
                panic!(
                    "{} {}: {errors:?}",
                    object["kind"], object["metadata"]["name"]
                );
            }
            checked += 1;
        }
    }
    // Kyma: Gateway + APIRule | Istio + SE + GW + DR + VS + DR + Telemetry;
    // Istio: Gateway + VS | SE + GW + DR + VS + DR + Telemetry.
    assert_eq!(checked, 2 + 7 + 2 + 6);
}

fn cluster(role: Role, context: &str, namespace: &str) -> ClusterRef {
    ClusterRef {
        role,
        context: context.into(),
        namespace: namespace.into(),
    }
}

#[test]
fn the_dry_run_prints_one_labelled_stream_per_cluster() {
    let plans = connect_plans(&inputs(true, true)).unwrap();
    let (target, client) = (
        cluster(Role::Target, "ctx-a", TARGET_NS),
        cluster(Role::Client, "ctx-b", CLIENT_NS),
    );
    let yaml = render_dry_run(&plans, &target, &client, None);
    let headers: Vec<&str> = yaml.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headers,
        [
            "# cluster: target (context ctx-a), namespace partner",
            "# cluster: client (context ctx-b), namespace mtls-demo",
        ]
    );
    // Split at the second header: each part is a stream kubectl reads, with that cluster's objects.
    let at = yaml.find("# cluster: client").unwrap();
    let (first, second) = yaml.split_at(at);
    for (stream, plan) in [(first, &plans.target), (second, &plans.client)] {
        let docs: Vec<Value> = serde_saphyr::from_multiple(stream).unwrap();
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        assert_eq!(docs, bodies(plan));
    }
    // The whole output is one valid YAML stream too.
    let all: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(
        all.iter().filter(|d| !d.is_null()).count(),
        plans.target.objects().len() + plans.client.objects().len()
    );

    let json: Value = serde_json::from_str(&render_dry_run(
        &plans,
        &target,
        &client,
        Some(OutputFormat::Json),
    ))
    .unwrap();
    assert_eq!(json["target"]["context"], "ctx-a");
    assert_eq!(json["client"]["namespace"], CLIENT_NS);
    assert_eq!(json["client"]["manifests"]["kind"], "List");
    assert_eq!(
        json["target"]["manifests"]["items"].as_array().unwrap(),
        &bodies(&plans.target)
    );

    let table = render_dry_run(&plans, &target, &client, Some(OutputFormat::Table));
    assert!(
        table.starts_with("target: secret/kyma-mtls-certs created (dry run)\n"),
        "{table}"
    );
    assert!(
        table.contains("client: networkpolicy.networking.k8s.io/mtls-lockdown created (dry run)\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Flags

/// `connect` with the base flags of these tests; `extra` flags replace a base flag of the same
/// name (clap refuses an option given twice) or are added.
fn connect_argv(certs: &str, extra: &[&str]) -> Vec<String> {
    let base: [(&str, &str); 8] = [
        ("--target-context", "ctx-a"),
        ("--client-context", "ctx-b"),
        ("--host", HOST),
        ("--client-name", "client.example.com"),
        ("--service", "httpbin:8000"),
        ("--target-namespace", TARGET_NS),
        ("-n", CLIENT_NS),
        ("--certs", certs),
    ];
    let mut pairs: Vec<(String, Option<String>)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    let mut rest = extra.iter().peekable();
    while let Some(flag) = rest.next() {
        let value = rest.next_if(|v| !v.starts_with('-')).map(|v| v.to_string());
        match pairs.iter_mut().find(|(k, _)| k == flag) {
            Some(pair) => pair.1 = value,
            None => pairs.push((flag.to_string(), value)),
        }
    }
    std::iter::once("connect".to_string())
        .chain(
            pairs
                .into_iter()
                .flat_map(|(k, v)| std::iter::once(k).chain(v)),
        )
        .collect()
}

fn connect_request(certs: &Path, extra: &[&str]) -> Result<ConnectRequest, Error> {
    let cli = ConnectCli::try_parse_from(connect_argv(certs.to_str().unwrap(), extra)).unwrap();
    let ns = |v: Option<&String>| v.cloned().unwrap_or_else(|| "default".into());
    let client_ns = ns(cli.global.kube.namespace.as_ref());
    let target_ns = cli
        .args
        .target_namespace
        .clone()
        .unwrap_or_else(|| client_ns.clone());
    cli.args.request(&cli.global.kube, &target_ns, &client_ns)
}

#[test]
fn bad_flag_combinations_are_refused_before_anything_happens() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let refused = |extra: &[&str], needle: &str| {
        let err = connect_request(&certs, extra).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains(needle), "{needle:?} not in {text}");
        assert_eq!(text.lines().count(), 1);
    };
    // One cluster standing in for two needs two namespaces.
    refused(
        &["--client-context", "ctx-a", "--target-namespace", CLIENT_NS],
        "--target-namespace other than -n",
    );
    refused(&["--context", "ctx-a"], "--context selects one cluster");
    refused(
        &["--client-name", HOST],
        "--host and --client-name are both",
    );
    refused(&["--host", "*.example.com"], "wildcard");
    refused(&["--service", "httpbin"], "no port");
    refused(&["--target-namespace", "Bad_NS"], "Bad_NS");
    refused(&["--days", "0"], "days");
    refused(
        &["--hop", "plain", "--restrict-to-namespace"],
        "--hop istio-mutual",
    );
    refused(&["--lockdown", "--dry-run=client"], "--dns-ip");
    refused(&["--target-context", " "], "--target-context is empty");
    assert!(!certs.exists(), "nothing is written for bad flags");

    // The same context with two namespaces is fine (a demo on one cluster).
    let ok = connect_request(&certs, &["--client-context", "ctx-a"]).unwrap();
    assert_eq!(
        (ok.target.namespace.as_str(), ok.client.namespace.as_str()),
        (TARGET_NS, CLIENT_NS)
    );
    assert_eq!(ok.bundle.dir, certs);
    assert!(ok.probe && ok.wait.is_some() && !ok.lockdown);

    let dcli = DisconnectCli::parse_from([
        "disconnect",
        "--target-context",
        "a",
        "--client-context",
        "b",
        "--host",
        HOST,
        "--dry-run",
    ]);
    let err = dcli.args.request(&dcli.global, "x", "y").unwrap_err();
    assert!(err.to_string().contains("--dry-run=server"), "{err}");

    // connect's whole command line works for disconnect (what shapes the objects is not needed).
    let mut argv = connect_argv(
        certs.to_str().unwrap(),
        &[
            "--lockdown",
            "--dns-ip",
            "10.96.0.10",
            "--no-probe",
            "--no-wait",
            "--route",
            "virtualservice",
            "--target-credential",
            "partner-a",
            "--hop",
            "plain",
            "--days",
            "90",
        ],
    );
    argv[0] = "disconnect".into();
    let dcli = DisconnectCli::try_parse_from(&argv).unwrap();
    let request = dcli
        .args
        .request(&dcli.global, TARGET_NS, CLIENT_NS)
        .unwrap();
    assert!(request.lockdown && !request.dry_run);
    assert_eq!(request.host.as_str(), HOST);
}

// ---------------------------------------------------------------------------------------------
// Stage 1

fn spec(dir: &Path) -> BundleSpec {
    BundleSpec {
        dir: dir.to_path_buf(),
        domain: DnsName::parse(HOST).unwrap(),
        client: DnsName::parse("client.example.com").unwrap(),
        days: 30,
        key_type: KeyType::EcdsaP256,
    }
}

#[test]
fn the_bundle_is_generated_once_then_reused_and_never_written_in_a_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mtls");
    let (_, source) = obtain(&spec(&dir), false).unwrap();
    assert_eq!(source, Source::InMemory);
    assert!(!dir.exists());

    let (made, source) = obtain(&spec(&dir), true).unwrap();
    assert_eq!(source, Source::Generated);
    assert_eq!(dir_state(&dir).unwrap(), DirState::Complete);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (again, source) = obtain(&spec(&dir), true).unwrap();
    assert_eq!(source, Source::Reused);
    assert_eq!(again.target.key, made.target.key);
    assert_eq!(again.client.chain, made.client.chain);
    // The CA key may be kept offline: the bundle is still reusable.
    std::fs::remove_file(dir.join("ca.key")).unwrap();
    assert_eq!(obtain(&spec(&dir), true).unwrap().1, Source::Reused);
}

#[test]
fn a_partial_or_foreign_bundle_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mtls");
    obtain(&spec(&dir), true).unwrap();
    let before = std::fs::read(dir.join("server.key")).unwrap();
    std::fs::remove_file(dir.join("client.key")).unwrap();
    let err = check_dir(&dir).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("but not client.key"), "{err}");
    let err = obtain(&spec(&dir), true).unwrap_err().to_string();
    assert!(err.contains("but not client.key"), "{err}");
    assert_eq!(std::fs::read(dir.join("server.key")).unwrap(), before);
    assert!(!dir.join("client.key").exists());

    let other = tmp.path().join("other");
    obtain(&spec(&other), true).unwrap();
    let mut wrong_host = spec(&other);
    wrong_host.domain = DnsName::parse("api.example.com").unwrap();
    let err = obtain(&wrong_host, true).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("is for httpbin.example.com, not --host api.example.com"),
        "{err}"
    );
    let mut wrong_client = spec(&other);
    wrong_client.client = DnsName::parse("someone.example.com").unwrap();
    let err = obtain(&wrong_client, true).unwrap_err().to_string();
    assert!(
        err.contains("not --client-name someone.example.com"),
        "{err}"
    );

    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let err = obtain(&spec(&file), true).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Command flows against two fake API servers

fn namespace(state: &mut State, ns: &str) {
    state.namespaces.insert(ns.into());
    state.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}),
    );
}

fn serve_istio(state: &mut State) {
    serve_istio_kinds(state);
    namespace(state, "istio-system");
}

/// The target: plain Istio with the workload's namespace (routes by VirtualService).
fn target_cluster(state: &mut State) {
    serve_istio(state);
    namespace(state, TARGET_NS);
}

/// The client: Kyma with a Ready Istio CR and an Available egress gateway.
fn client_cluster(state: &mut State) {
    serve_istio(state);
    namespace(state, CLIENT_NS);
    namespace(state, "kyma-system");
    state.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
    state.put(
        "istios",
        json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
               "metadata": {"name": "default", "namespace": "kyma-system"},
               "spec": {}, "status": {"state": "Ready"}}),
    );
    state.put(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
               "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    );
}

/// Successful non-dry-run writes.
fn writes(state: &Shared) -> Vec<String> {
    seen(state)
        .iter()
        .filter(|s| matches!(s.method.as_str(), "PATCH" | "DELETE") && !s.dry_run())
        .map(|s| s.summary())
        .collect()
}

/// Paths of the objects labelled as ours.
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

struct Run {
    result: Result<(), Error>,
    out: String,
    progress: String,
}

async fn run_connect(
    target: &kube::Client,
    client: &kube::Client,
    request: &ConnectRequest,
) -> Run {
    let (mut out, mut progress) = (Vec::new(), Vec::new());
    let result = connect::execute(target, client, request, &mut out, &mut progress).await;
    Run {
        result,
        out: String::from_utf8(out).unwrap(),
        progress: String::from_utf8(progress).unwrap(),
    }
}

const TARGET_OBJECTS: [&str; 3] = [
    "target: secret/mtls-server-httpbin-example-com",
    "target: gateway.networking.istio.io/mtls-httpbin-example-com",
    "target: virtualservice.networking.istio.io/mtls-httpbin-example-com",
];

const CLIENT_OBJECTS: [&str; 9] = [
    "client: secret/mtls-client-httpbin-example-com",
    "client: istio.operator.kyma-project.io/default",
    "client: serviceentry.networking.istio.io/mtls-httpbin-example-com",
    "client: gateway.networking.istio.io/mtls-egress-httpbin-example-com",
    "client: destinationrule.networking.istio.io/mtls-egress-httpbin-example-com",
    "client: virtualservice.networking.istio.io/mtls-httpbin-example-com",
    "client: destinationrule.networking.istio.io/mtls-originate-httpbin-example-com",
    "client: telemetry.telemetry.istio.io/mtls-egressgateway-access-log",
    "client: networkpolicy.networking.k8s.io/mtls-lockdown",
];

/// Every object's line with `outcome`; the Kyma Istio CR exists already, so where the others are
/// created it is configured.
fn expected(outcome: &str) -> Vec<String> {
    TARGET_OBJECTS
        .iter()
        .chain(CLIENT_OBJECTS.iter())
        .map(|o| {
            if o.contains("istio.operator") {
                format!("{o} {}", outcome.replace("created", "configured"))
            } else {
                format!("{o} {outcome}")
            }
        })
        .collect()
}

/// The flags of the flow tests: no probe (its `direct` half needs a real target), the lockdown
/// with a given DNS address (the fake has no kube-dns).
fn flow_request(certs: &Path, extra: &[&str]) -> ConnectRequest {
    let mut argv = vec!["--no-probe", "--lockdown", "--dns-ip", "10.96.0.10"];
    argv.extend(extra);
    connect_request(certs, &argv).unwrap()
}

#[tokio::test]
async fn connect_applies_both_clusters_in_stages_and_a_second_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let (target, target_state) = fake_server(target_cluster);
    let (client, client_state) = fake_server(client_cluster);
    let request = flow_request(&certs, &[]);

    let run = run_connect(&target, &client, &request).await;
    run.result.unwrap();
    assert_eq!(run.out.lines().collect::<Vec<_>>(), expected("created"));
    let stages: Vec<&str> = run
        .progress
        .lines()
        .filter(|l| l.starts_with('['))
        .collect();
    assert_eq!(stages.len(), 5, "{}", run.progress);
    assert!(
        stages[0].starts_with("[1/5] certificates: generated"),
        "{}",
        stages[0]
    );
    assert!(stages[2].starts_with("[3/5] target (context ctx-a): applying 3 objects"));
    assert!(stages[3].starts_with("[4/5] client (context ctx-b): applying 9 objects"));
    assert!(stages[4].starts_with("[5/5] probe: skipped (--no-probe)"));
    assert!(
        run.progress
            .contains("done: httpbin.example.com is exposed")
            && run.progress.contains("not probed"),
        "{}",
        run.progress
    );
    assert_eq!(dir_state(&certs).unwrap(), DirState::Complete);

    // Each cluster got its own objects, and nothing of the other's.
    assert_eq!(ours(&target_state).len(), 3);
    assert_eq!(ours(&client_state).len(), 8); // + the Istio CR, which carries no label of ours
    let client_secret = client_state.lock().unwrap().objects
        ["/api/v1/namespaces/istio-system/secrets/mtls-client-httpbin-example-com"]
        .clone();
    let pem = std::fs::read_to_string(certs.join("client.key")).unwrap();
    assert_eq!(
        decode_base64(client_secret["data"]["tls.key"].as_str().unwrap()),
        pem
    );
    assert!(
        target_state
            .lock()
            .unwrap()
            .objects
            .keys()
            .all(|p| !p.contains("serviceentries") && !p.contains("mtls-client-"))
    );

    // On each cluster every object was server-dry-run before its first real write.
    for state in [&target_state, &client_state] {
        let sums: Vec<String> = seen(state).iter().map(|s| s.summary()).collect();
        let first_write = sums
            .iter()
            .position(|s| s.starts_with("PATCH") && !s.ends_with("(dry run)"))
            .unwrap();
        for write in writes(state) {
            let dry = format!("{write} (dry run)");
            assert!(
                sums[..first_write].contains(&dry),
                "{dry} after the first write: {sums:#?}"
            );
        }
    }

    // A re-run reuses the bundle and changes nothing.
    let again = run_connect(&target, &client, &request).await;
    again.result.unwrap();
    assert_eq!(again.out.lines().collect::<Vec<_>>(), expected("unchanged"));
    assert!(
        again
            .progress
            .contains("[1/5] certificates: reused the bundle")
    );

    // -o json reports without any object body (no key material on stdout).
    let json_request = flow_request(&certs, &["-o", "json"]);
    let run = run_connect(&target, &client, &json_request).await;
    run.result.unwrap();
    let report: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(report["clusters"][0]["role"], "target");
    assert_eq!(
        report["clusters"][1]["objects"][0]["object"],
        "secret/mtls-client-httpbin-example-com"
    );
    assert_eq!(report["clusters"][1]["objects"][0]["outcome"], "unchanged");
    assert!(!run.out.contains("PRIVATE KEY") && !run.out.contains("tls.key"));
}

#[tokio::test]
async fn a_client_object_the_server_refuses_in_the_dry_run_stops_everything_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, target_state) = fake_server(target_cluster);
    let (client, client_state) = fake_server(|s| {
        client_cluster(s);
        s.inject.insert(
            "PATCH /apis/networking.istio.io/v1/namespaces/mtls-demo/serviceentries/mtls-httpbin-example-com (dry run)".into(),
            Inject::Status(status(403, "Forbidden", "serviceentries.networking.istio.io \"mtls-httpbin-example-com\" is forbidden: User \"dev\" cannot patch resource", Some(json!({"kind": "serviceentries", "group": "networking.istio.io", "name": "mtls-httpbin-example-com"})))),
        );
    });
    let run = run_connect(
        &target,
        &client,
        &flow_request(&tmp.path().join("mtls"), &[]),
    )
    .await;
    let err = run.result.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3);
    assert!(
        text.starts_with("client (context ctx-b): ")
            && text.ends_with("nothing was applied to either cluster"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
    assert!(
        writes(&target_state).is_empty(),
        "{:?}",
        writes(&target_state)
    );
    assert!(writes(&client_state).is_empty());
    assert!(run.out.is_empty(), "{}", run.out);
}

#[tokio::test]
async fn a_failing_write_on_the_client_stops_the_run_names_what_was_applied_and_a_rerun_continues()
{
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let secret_write =
        "PATCH /api/v1/namespaces/istio-system/secrets/mtls-client-httpbin-example-com";
    let (target, target_state) = fake_server(target_cluster);
    let (client, client_state) = fake_server(|s| {
        client_cluster(s);
        // The dry run passes; the real write fails (the cluster changed in between).
        s.inject.insert(
            secret_write.into(),
            Inject::Status(status(
                500,
                "InternalError",
                "etcdserver: request timed out",
                None,
            )),
        );
    });
    let request = flow_request(&certs, &[]);
    let run = run_connect(&target, &client, &request).await;
    let err = run.result.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.starts_with("client (context ctx-b): secret/mtls-client-httpbin-example-com: "),
        "{text}"
    );
    assert!(
        text.contains(
            "so far target (context ctx-a) applied 3 objects, client (context ctx-b) nothing applied"
        ),
        "{text}"
    );
    assert!(text.contains("run the same command again"), "{text}");
    // The target has its three objects; the client has nothing (only the refused attempt).
    assert_eq!(ours(&target_state).len(), 3);
    assert!(ours(&client_state).is_empty(), "{:?}", ours(&client_state));
    assert_eq!(writes(&client_state), [secret_write]);
    assert_eq!(
        run.out.lines().collect::<Vec<_>>(),
        TARGET_OBJECTS
            .iter()
            .map(|o| format!("{o} created"))
            .collect::<Vec<_>>()
    );
    assert!(!run.progress.contains("[5/5]"), "{}", run.progress);

    // The cluster recovers; the same command continues where it stopped.
    client_state.lock().unwrap().inject.clear();
    let again = run_connect(&target, &client, &request).await;
    again.result.unwrap();
    let lines: Vec<String> = again.out.lines().map(str::to_string).collect();
    let mut continued = expected("created");
    for line in &mut continued[..3] {
        *line = line.replace(" created", " unchanged");
    }
    assert_eq!(lines, continued);
    assert!(again.progress.contains("certificates: reused"));
}

#[tokio::test]
async fn a_server_dry_run_stores_nothing_on_either_cluster_and_writes_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let (target, target_state) = fake_server(target_cluster);
    let (client, client_state) = fake_server(client_cluster);
    let before = (
        target_state.lock().unwrap().objects.clone(),
        client_state.lock().unwrap().objects.clone(),
    );
    let request = flow_request(&certs, &["--dry-run=server"]);
    assert_eq!(request.apply.dry_run, DryRun::Server);
    let run = run_connect(&target, &client, &request).await;
    run.result.unwrap();
    assert_eq!(
        run.out.lines().collect::<Vec<_>>(),
        expected("created (server dry run)")
    );
    assert_eq!(target_state.lock().unwrap().objects, before.0);
    assert_eq!(client_state.lock().unwrap().objects, before.1);
    assert!(writes(&target_state).is_empty() && writes(&client_state).is_empty());
    assert!(!certs.exists());
    assert!(run.progress.contains("generated in memory only"));
}

#[tokio::test]
async fn the_probe_stage_skips_direct_when_the_host_does_not_resolve_and_runs_check() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    // `.invalid` never resolves (RFC 6761), so `direct` cannot run from here.
    let host = "httpbin.connect.invalid";
    let (target, _) = fake_server(target_cluster);
    // The client cluster has a mesh that answers the way a working one does: XFCC carries the
    // client certificate connect generated, one gateway replica logs the request.
    let mut mesh = Mesh::working(host, CLIENT_NS, "");
    mesh.xfcc_cert_file = Some(certs.join("client.crt"));
    let (client, client_state) = tcp_server(|state| {
        client_cluster(state);
        install(state, mesh);
    });
    let mut request = connect_request(&certs, &["--no-wait"]).unwrap();
    let host = DnsName::parse(host).unwrap();
    request.bundle.domain = host.clone();
    request.expose.host = host.clone();
    request.enable.host = host;
    let run = run_connect(&target, &client, &request).await;
    run.result.unwrap();
    assert!(
        run.progress.contains("[5/5] probe:")
            && run
                .progress
                .contains("direct: skipped: httpbin.connect.invalid does not resolve"),
        "{}",
        run.progress
    );
    assert!(
        run.progress.contains(
            &format!("check: namespace {CLIENT_NS} -> egress gateway -> httpbin.connect.invalid (attempt 1/3)")
        ),
        "{}",
        run.progress
    );
    assert!(
        run.out.contains("probe direct:") && run.out.contains("skipped"),
        "{}",
        run.out
    );
    let check = &run.out[run.out.find("probe check:").expect("a check table")..];
    for passed in [
        "egress-gateway",
        "probe-pod",
        "request",
        "xfcc",
        "access-log",
    ] {
        assert!(
            check
                .lines()
                .any(|l| l.starts_with(passed) && l.contains(" ok ")),
            "{passed} should pass:\n{check}"
        );
    }
    // The probe pod is gone again.
    assert!(
        !client_state
            .lock()
            .unwrap()
            .objects
            .keys()
            .any(|k| k.contains("/pods/mtls-probe-"))
    );
}

fn disconnect_request(extra: &[&str]) -> disconnect::DisconnectRequest {
    let mut argv = vec![
        "disconnect",
        "--target-context",
        "ctx-a",
        "--client-context",
        "ctx-b",
        "--host",
        HOST,
        "--target-namespace",
        TARGET_NS,
        "-n",
        CLIENT_NS,
        // connect's own flags are accepted, so its command line can be reused.
        "--client-name",
        "client.example.com",
        "--service",
        "httpbin:8000",
    ];
    argv.extend(extra);
    let cli = DisconnectCli::parse_from(argv);
    cli.args.request(&cli.global, TARGET_NS, CLIENT_NS).unwrap()
}

async fn run_disconnect(
    target: &kube::Client,
    client: &kube::Client,
    request: &disconnect::DisconnectRequest,
) -> Run {
    let (mut out, mut progress) = (Vec::new(), Vec::new());
    let result = disconnect::execute(target, client, request, &mut out, &mut progress).await;
    Run {
        result,
        out: String::from_utf8(out).unwrap(),
        progress: String::from_utf8(progress).unwrap(),
    }
}

#[tokio::test]
async fn disconnect_removes_exactly_what_connect_made_on_both_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let look_alikes = |s: &mut State| {
        // Another host's credential, made by us; a Secret with our component label that is not ours.
        s.put(
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "partner-b", "namespace": "istio-system",
                                "labels": {"app.kubernetes.io/managed-by": "kubectl-mtls",
                                           "app.kubernetes.io/component": "client-credential",
                                           "kubectl-mtls/host": "api-partner-example"}}}),
        );
        s.put(
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "client-credential-copy", "namespace": "istio-system",
                                "labels": {"app.kubernetes.io/component": "client-credential",
                                           "kubectl-mtls/host": "httpbin-example-com"}}}),
        );
        s.put(
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "kyma-mtls-certs-old", "namespace": "istio-system",
                                "labels": {"app.kubernetes.io/managed-by": "kubectl-mtls",
                                           "app.kubernetes.io/component": "target-credential"}}}),
        );
        // Someone else's NetworkPolicy in the client namespace.
        s.put(
            "networkpolicies",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny-all", "namespace": CLIENT_NS}, "spec": {"podSelector": {}}}),
        );
    };
    let (target, target_state) = fake_server(|s| {
        target_cluster(s);
        look_alikes(s);
    });
    let (client, client_state) = fake_server(|s| {
        client_cluster(s);
        look_alikes(s);
    });
    let snapshot = |state: &Shared| state.lock().unwrap().objects.clone();
    let (target_before, client_before) = (snapshot(&target_state), snapshot(&client_state));
    run_connect(&target, &client, &flow_request(&certs, &[]))
        .await
        .result
        .unwrap();

    // A server dry run lists what would go and deletes nothing.
    let connected = (snapshot(&target_state), snapshot(&client_state));
    let dry = run_disconnect(
        &target,
        &client,
        &disconnect_request(&["--lockdown", "--dry-run=server"]),
    )
    .await;
    dry.result.unwrap();
    assert!(
        dry.out
            .lines()
            .all(|l| l.ends_with("deleted (server dry run)")),
        "{}",
        dry.out
    );
    assert_eq!(dry.out.lines().count(), 3 + 8);
    assert_eq!(
        (snapshot(&target_state), snapshot(&client_state)),
        connected
    );

    let run = run_disconnect(&target, &client, &disconnect_request(&["--lockdown"])).await;
    run.result.unwrap();
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len(), 3 + 8, "{}", run.out);
    // The client is cleaned first, then the target.
    assert!(
        lines[..8].iter().all(|l| l.starts_with("client: ")),
        "{lines:#?}"
    );
    assert!(
        lines[8..].iter().all(|l| l.starts_with("target: ")),
        "{lines:#?}"
    );
    for expected in [
        "client: secret/mtls-client-httpbin-example-com deleted",
        "client: networkpolicy.networking.k8s.io/mtls-lockdown deleted",
        "client: telemetry.telemetry.istio.io/mtls-egressgateway-access-log deleted",
        "target: secret/mtls-server-httpbin-example-com deleted",
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
    }
    // What is left is what was there before: the look-alikes survive, the files stay. The
    // Istio CR keeps the egress gateway on (other hosts may use it).
    assert_eq!(snapshot(&target_state), target_before);
    let client_after = snapshot(&client_state);
    let mut changed: Vec<&String> = client_after
        .iter()
        .filter(|(path, object)| client_before.get(*path) != Some(object))
        .map(|(path, _)| path)
        .collect();
    changed.extend(
        client_before
            .keys()
            .filter(|p| !client_after.contains_key(*p)),
    );
    assert_eq!(
        changed,
        ["/apis/operator.kyma-project.io/v1alpha2/namespaces/kyma-system/istios/default"]
    );
    assert_eq!(dir_state(&certs).unwrap(), DirState::Complete);
    assert!(
        run.progress
            .contains("certificate files on this workstation are left")
    );

    // Nothing left: a second disconnect deletes nothing and says so.
    let again = run_disconnect(&target, &client, &disconnect_request(&["--lockdown"])).await;
    again.result.unwrap();
    assert!(again.out.is_empty(), "{}", again.out);
    assert!(
        again
            .progress
            .contains("nothing managed by kubectl-mtls for httpbin.example.com")
    );
}

#[tokio::test]
async fn disconnect_checks_both_clusters_before_deleting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, target_state) = fake_server(|s| {
        target_cluster(s);
        s.inject.insert(
            "DELETE /apis/networking.istio.io/v1/namespaces/partner/gateways/mtls-httpbin-example-com (dry run)".into(),
            Inject::Status(status(403, "Forbidden", "gateways.networking.istio.io \"mtls-httpbin-example-com\" is forbidden: User \"dev\" cannot delete resource", Some(json!({"kind": "gateways", "group": "networking.istio.io", "name": "mtls-httpbin-example-com"})))),
        );
    });
    let (client, client_state) = fake_server(client_cluster);
    run_connect(
        &target,
        &client,
        &flow_request(&tmp.path().join("mtls"), &[]),
    )
    .await
    .result
    .unwrap();
    let (target_objects, client_objects) = (ours(&target_state), ours(&client_state));
    let run = run_disconnect(&target, &client, &disconnect_request(&[])).await;
    let err = run.result.unwrap_err();
    assert!(
        err.to_string().starts_with("target (context ctx-a): "),
        "{err}"
    );
    assert_eq!(err.exit_code(), 3);
    assert_eq!(ours(&target_state), target_objects);
    assert_eq!(ours(&client_state), client_objects);
    assert!(run.out.is_empty());
}

#[test]
fn cluster_refs_read_like_the_progress_lines() {
    let target = cluster(Role::Target, "a", "x");
    assert_eq!(target.to_string(), "target (context a)");
    let err = connect::on(&target, Error::Usage("bad".into()));
    assert_eq!(
        (err.exit_code(), err.to_string()),
        (2, "target (context a): bad".to_string())
    );
    let err = connect::on(&target, Error::CheckFailed("no".into()));
    assert_eq!(err.exit_code(), 1);
}

/// Both clusters installed with Istio's Helm `gateway` chart (`istio: ingress` in
/// `istio-ingress` on the target, `istio: egress` in `istio-egress` on the client, plain Istio):
/// each credential Secret goes where its gateway's pods resolve `credentialName` (their own
/// namespace: istio/istio 1.30.3 `pilot/pkg/model/credentials/resource.go`), the egress side's
/// shared objects and the lockdown follow the egress gateway, and `disconnect` finds all of it
/// there again.
#[tokio::test]
async fn connect_and_disconnect_follow_helm_gateways_into_their_namespaces() {
    use super::helm_gateways::helm_gateway;
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    let (target, target_state) = fake_server(|s| {
        target_cluster(s);
        helm_gateway(s, "istio-ingress", "istio-ingress");
    });
    let (client, client_state) = fake_server(|s| {
        serve_istio(s);
        namespace(s, CLIENT_NS);
        helm_gateway(s, "istio-egress", "istio-egress");
    });
    let run = run_connect(
        &target,
        &client,
        &flow_request(&certs, &["--timeout", "5s"]),
    )
    .await;
    run.result.unwrap();
    assert!(
        run.progress
            .contains("target: note: ingress gateway: deployment istio-ingress/istio-ingress (pods istio=ingress)")
            && run.progress.contains(
                "client: note: egress gateway: deployment istio-egress/istio-egress (pods istio=egress)"
            ),
        "{}",
        run.progress
    );
    assert!(
        run.progress
            .contains("applying 3 objects (namespace partner, secret in istio-ingress)"),
        "{}",
        run.progress
    );
    let has = |state: &Shared, path: &str| state.lock().unwrap().objects.contains_key(path);
    assert!(has(
        &target_state,
        "/api/v1/namespaces/istio-ingress/secrets/mtls-server-httpbin-example-com"
    ));
    assert!(has(
        &client_state,
        "/api/v1/namespaces/istio-egress/secrets/mtls-client-httpbin-example-com"
    ));
    assert!(has(
        &client_state,
        "/apis/networking.istio.io/v1/namespaces/istio-egress/destinationrules/mtls-originate-httpbin-example-com"
    ));
    let policy = client_state.lock().unwrap().objects[&format!(
        "/apis/networking.k8s.io/v1/namespaces/{CLIENT_NS}/networkpolicies/mtls-lockdown"
    )]
        .clone();
    assert_eq!(
        policy["spec"]["egress"][2]["to"][0]["podSelector"]["matchLabels"],
        json!({"istio": "egress"})
    );
    assert!(
        ours(&client_state)
            .iter()
            .chain(ours(&target_state).iter())
            .all(|p| !p.contains("/namespaces/istio-system/")),
        "nothing in istio-system"
    );

    let run = run_disconnect(&target, &client, &disconnect_request(&["--lockdown"])).await;
    run.result.unwrap();
    assert!(
        run.out
            .contains("client: secret/mtls-client-httpbin-example-com deleted")
            && run
                .out
                .contains("target: secret/mtls-server-httpbin-example-com deleted"),
        "{}",
        run.out
    );
    assert!(ours(&client_state).is_empty(), "{:?}", ours(&client_state));
    assert!(ours(&target_state).is_empty(), "{:?}", ours(&target_state));
}

#[test]
fn a_bad_gateway_namespace_names_its_side_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("mtls");
    for flag in ["--client-gateway-namespace", "--target-gateway-namespace"] {
        let err = connect_request(&certs, &[flag, "Not_A_Namespace"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with(&format!(
                "{flag} \"Not_A_Namespace\" is not a namespace name"
            )),
            "{err}"
        );
    }
}
