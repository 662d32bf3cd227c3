//! Several partners and namespaces on one cluster (issue 13, items 1, 2 and 7), against the
//! in-process fake API server: each partner gets its own credential Secrets, one that holds
//! another certificate is not replaced without `--force`, disconnect keeps a Secret another
//! object still names, a host serves one client namespace (the second is refused, disable
//! elsewhere keeps the istio-system objects), and one cluster standing in for two routes the
//! target by VirtualService instead of an APIRule.

use std::path::Path;

use super::common::{
    ConnectCli, DisableCli, DisconnectCli, EnableCli, ExposeCli, serve_istio_kinds,
};
use clap::Parser;
use kubectl_mtls_egress::connect::{self, ConnectRequest};
use kubectl_mtls_egress::disconnect;
use kubectl_mtls_egress::expose::RouteChoice;
use kubectl_mtls_egress::{disable, enable, expose};
use serde_json::{Value, json};
use shared::error::Error;
use shared::manifest::secret::Side;
use shared::names::DnsName;
use shared::pki::{Certificate, sha256_hex};
use test_support::e2e::base64;
use test_support::fake_api::{Inject, Shared, State, fake_server, seen, status};

const A: &str = "a.partners.example.com";
const B: &str = "b.partners.example.com";
const PARTNER_NS: &str = "partner";
const CALLER_NS: &str = "caller";

fn namespace(state: &mut State, ns: &str) {
    state.namespaces.insert(ns.into());
    state.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}),
    );
}

/// Kyma with Istio's kinds, a Ready Istio CR, an Available egress gateway, and the namespaces.
fn cluster(state: &mut State, namespaces: &[&str]) {
    serve_istio_kinds(state);
    state.serve("apps/v1", "deployments", "Deployment");
    state.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
    for ns in ["istio-system", "kyma-system"].iter().chain(namespaces) {
        namespace(state, ns);
    }
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

fn object(state: &Shared, path: &str) -> Option<Value> {
    state.lock().unwrap().objects.get(path).cloned()
}

fn secret_path(name: &str) -> String {
    format!("/api/v1/namespaces/istio-system/secrets/{name}")
}

fn origination_path(host: &str) -> String {
    format!(
        "/apis/networking.istio.io/v1/namespaces/istio-system/destinationrules/mtls-originate-{}",
        host.replace('.', "-")
    )
}

/// The credentialName of the origination rule for `host`.
fn origination_credential(state: &Shared, host: &str) -> Option<String> {
    object(state, &origination_path(host)).map(|rule| {
        rule["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["credentialName"]
            .as_str()
            .unwrap()
            .to_string()
    })
}

/// Successful non-dry-run writes.
fn writes(state: &Shared) -> Vec<String> {
    seen(state)
        .iter()
        .filter(|s| matches!(s.method.as_str(), "PATCH" | "DELETE") && !s.dry_run())
        .map(|s| s.summary())
        .collect()
}

/// SHA-256 of the first certificate in a PEM file.
fn fingerprint(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    sha256_hex(Certificate::parse_chain(&text, "test").unwrap()[0].der())
}

/// `connect` for `host` with the bundle in `certs`; `extra` may name another `--client-context`
/// (e.g. the target's, for one cluster standing in for two).
fn connect_request(host: &str, certs: &Path, extra: &[&str]) -> Result<ConnectRequest, Error> {
    let client_context = match extra.iter().position(|f| *f == "--client-context") {
        Some(i) => extra[i + 1],
        None => "ctx-client",
    };
    let extra: Vec<&str> = match extra.iter().position(|f| *f == "--client-context") {
        Some(i) => [&extra[..i], &extra[i + 2..]].concat(),
        None => extra.to_vec(),
    };
    let mut argv = vec![
        "connect",
        "--target-context",
        "ctx-target",
        "--client-context",
        client_context,
        "--target-namespace",
        PARTNER_NS,
        "-n",
        CALLER_NS,
        "--host",
        host,
        "--client-name",
        "caller.partners.example.com",
        "--service",
        "httpbin:8000",
        "--certs",
        certs.to_str().unwrap(),
        "--no-probe",
        "--no-wait",
    ];
    argv.extend(&extra);
    let cli = ConnectCli::try_parse_from(argv).unwrap();
    let target_ns = cli.args.target_namespace.clone().unwrap();
    cli.args.request(&cli.global.kube, &target_ns, CALLER_NS)
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

async fn run_disconnect(
    target: &kube::Client,
    client: &kube::Client,
    host: &str,
    extra: &[&str],
) -> Run {
    let mut argv = vec![
        "disconnect",
        "--target-context",
        "ctx-target",
        "--client-context",
        "ctx-client",
        "--target-namespace",
        PARTNER_NS,
        "-n",
        CALLER_NS,
        "--host",
        host,
    ];
    argv.extend(extra);
    let cli = DisconnectCli::parse_from(argv);
    let request = cli
        .args
        .request(&cli.global, PARTNER_NS, CALLER_NS)
        .unwrap();
    let (mut out, mut progress) = (Vec::new(), Vec::new());
    let result = disconnect::execute(target, client, &request, &mut out, &mut progress).await;
    Run {
        result,
        out: String::from_utf8(out).unwrap(),
        progress: String::from_utf8(progress).unwrap(),
    }
}

#[test]
fn connect_names_each_partners_credentials_after_its_host() {
    let host = DnsName::parse(A).unwrap();
    assert_eq!(
        connect::credential_name(Side::Target, &host),
        "mtls-server-a-partners-example-com"
    );
    assert_eq!(
        connect::credential_name(Side::Client, &host),
        "mtls-client-a-partners-example-com"
    );
    let tmp = tempfile::tempdir().unwrap();
    let request = connect_request(A, &tmp.path().join("a"), &[]).unwrap();
    assert_eq!(
        request.expose.credential,
        "mtls-server-a-partners-example-com"
    );
    assert_eq!(
        request.enable.credential,
        "mtls-client-a-partners-example-com"
    );
    // A long host still gives valid Secret names (the slug is cut and hashed).
    let long = format!("{}.partners.example.com", "x".repeat(60));
    let name = connect::credential_name(Side::Client, &DnsName::parse(&long).unwrap());
    assert!(
        name.len() <= 63 && name.starts_with("mtls-client-"),
        "{name}"
    );
    // Given names stay as given.
    let request =
        connect_request(A, &tmp.path().join("a"), &["--client-credential", "mine"]).unwrap();
    assert_eq!(request.enable.credential, "mine");
}

#[tokio::test]
async fn two_partners_connected_from_one_client_cluster_keep_their_own_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, target_state) = fake_server(|s| cluster(s, &[PARTNER_NS]));
    let (client, client_state) = fake_server(|s| cluster(s, &[CALLER_NS]));
    let (a_certs, b_certs) = (tmp.path().join("a"), tmp.path().join("b"));

    let run = run_connect(
        &target,
        &client,
        &connect_request(A, &a_certs, &[]).unwrap(),
    )
    .await;
    run.result.unwrap();
    let a_secret = object(
        &client_state,
        &secret_path("mtls-client-a-partners-example-com"),
    )
    .expect("partner a's client credential");
    let run = run_connect(
        &target,
        &client,
        &connect_request(B, &b_certs, &[]).unwrap(),
    )
    .await;
    run.result.unwrap();
    // The second partner's run did not touch the first one's Secret.
    assert!(
        run.out
            .contains("client: secret/mtls-client-b-partners-example-com created"),
        "{}",
        run.out
    );
    assert!(!run.out.contains("mtls-client-a-"), "{}", run.out);
    assert_eq!(
        object(
            &client_state,
            &secret_path("mtls-client-a-partners-example-com")
        )
        .unwrap(),
        a_secret
    );
    assert_eq!(
        origination_credential(&client_state, A).unwrap(),
        "mtls-client-a-partners-example-com"
    );
    assert_eq!(
        origination_credential(&client_state, B).unwrap(),
        "mtls-client-b-partners-example-com"
    );
    for name in [
        "mtls-server-a-partners-example-com",
        "mtls-server-b-partners-example-com",
    ] {
        assert!(
            object(&target_state, &secret_path(name)).is_some(),
            "{name}"
        );
    }

    // Disconnecting b leaves a whole: its Secret and origination rule, naming each other.
    let run = run_disconnect(&target, &client, B, &[]).await;
    run.result.unwrap();
    assert!(
        run.out
            .contains("client: secret/mtls-client-b-partners-example-com deleted"),
        "{}",
        run.out
    );
    assert!(!run.out.contains("-a-partners-"), "{}", run.out);
    assert_eq!(
        object(
            &client_state,
            &secret_path("mtls-client-a-partners-example-com")
        )
        .unwrap(),
        a_secret
    );
    assert_eq!(
        origination_credential(&client_state, A).unwrap(),
        "mtls-client-a-partners-example-com"
    );
    assert!(
        object(
            &target_state,
            &secret_path("mtls-server-a-partners-example-com")
        )
        .is_some()
    );
    assert!(
        object(
            &client_state,
            &secret_path("mtls-client-b-partners-example-com")
        )
        .is_none()
    );
    assert!(origination_credential(&client_state, B).is_none());
}

#[tokio::test]
async fn one_secret_name_for_two_partners_is_refused_forced_and_then_kept_while_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, target_state) = fake_server(|s| cluster(s, &[PARTNER_NS]));
    let (client, client_state) = fake_server(|s| cluster(s, &[CALLER_NS]));
    let (a_certs, b_certs) = (tmp.path().join("a"), tmp.path().join("b"));
    let shared_names = [
        "--target-credential",
        "shared-server",
        "--client-credential",
        "shared-client",
    ];
    run_connect(
        &target,
        &client,
        &connect_request(A, &a_certs, &shared_names).unwrap(),
    )
    .await
    .result
    .unwrap();
    let a_secret = object(&client_state, &secret_path("shared-client")).unwrap();
    let writes_before = (writes(&target_state).len(), writes(&client_state).len());

    // Partner b with the same names: refused before anything is written, both certificates named.
    let b_request = connect_request(B, &b_certs, &shared_names).unwrap();
    let run = run_connect(&target, &client, &b_request).await;
    let err = run.result.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    for needle in [
        "target (context ctx-target): secret istio-system/shared-server holds another certificate (subject CN=a.partners.example.com, sha256 ".to_string(),
        fingerprint(&a_certs.join("server.crt")),
        "than the one to write (subject CN=b.partners.example.com, sha256 ".to_string(),
        fingerprint(&b_certs.join("server.crt")),
        "--target-credential NAME".to_string(),
        "or pass --force to replace it; nothing was applied to either cluster".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in {text}");
    }
    assert!(!text.contains("PRIVATE KEY"));
    assert_eq!(
        (writes(&target_state).len(), writes(&client_state).len()),
        writes_before
    );
    assert_eq!(
        object(&client_state, &secret_path("shared-client")).unwrap(),
        a_secret
    );

    // --force replaces them, and says so.
    let forced = connect_request(B, &b_certs, &[&shared_names[..], &["--force"]].concat()).unwrap();
    let run = run_connect(&target, &client, &forced).await;
    run.result.unwrap();
    for side in [
        "target: warning: --force: replacing secret istio-system/shared-server holds another certificate",
        "client: warning: --force: replacing secret istio-system/shared-client holds another certificate",
    ] {
        assert!(
            run.progress.contains(side),
            "{side:?} not in {}",
            run.progress
        );
    }
    assert_ne!(
        object(&client_state, &secret_path("shared-client")).unwrap(),
        a_secret
    );

    // Disconnecting b: partner a's origination rule and Gateway still name the Secrets: kept.
    let run = run_disconnect(&target, &client, B, &[]).await;
    run.result.unwrap();
    let lines: Vec<&str> = run.out.lines().collect();
    for kept in [
        "client: secret/shared-client kept: destinationrule.networking.istio.io istio-system/mtls-originate-a-partners-example-com still uses it",
        "target: secret/shared-server kept: gateway.networking.istio.io partner/mtls-a-partners-example-com still uses it",
    ] {
        assert!(lines.contains(&kept), "{kept:?} not in {lines:#?}");
    }
    assert!(object(&client_state, &secret_path("shared-client")).is_some());
    assert!(object(&target_state, &secret_path("shared-server")).is_some());
    assert_eq!(
        origination_credential(&client_state, A).unwrap(),
        "shared-client"
    );
    assert!(
        run.progress
            .contains("to delete: client (context ctx-client) 5 objects"),
        "the kept Secret is not counted: {}",
        run.progress
    );

    // Disconnecting a then removes them: a's objects named them, and nothing else does now.
    let run = run_disconnect(&target, &client, A, &[]).await;
    run.result.unwrap();
    for gone in [
        "client: secret/shared-client deleted",
        "target: secret/shared-server deleted",
    ] {
        assert!(
            run.out.lines().any(|l| l == gone),
            "{gone:?} not in {}",
            run.out
        );
    }
    assert!(object(&client_state, &secret_path("shared-client")).is_none());
    assert!(object(&target_state, &secret_path("shared-server")).is_none());
}

fn enable_args(extra: &[&str]) -> enable::EnableArgs {
    let mut argv = vec!["enable", "--host", A, "--no-wait"];
    argv.extend(extra);
    EnableCli::parse_from(argv).args
}

async fn run_enable(
    client: &kube::Client,
    namespace: &str,
    extra: &[&str],
) -> Result<(String, String), Error> {
    let args = enable_args(extra);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    enable::execute(
        client,
        args.request(namespace).unwrap(),
        &args,
        &mut out,
        &mut err,
    )
    .await?;
    Ok((
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    ))
}

async fn run_disable(client: &kube::Client, namespace: &str) -> Result<String, Error> {
    let args = DisableCli::parse_from(["disable", "--host", A]).args;
    let mut out = Vec::new();
    disable::execute(
        client,
        namespace,
        &DnsName::parse(A).unwrap(),
        &args,
        &mut out,
        &mut Vec::new(),
    )
    .await?;
    Ok(String::from_utf8(out).unwrap())
}

const ORIGINATION_KEPT: &str =
    "destinationrule.networking.istio.io/mtls-originate-a-partners-example-com kept: namespace";

#[tokio::test]
async fn a_host_serves_one_client_namespace_and_disable_elsewhere_keeps_its_istio_objects() {
    let (client, state) = fake_server(|s| cluster(s, &["team-a", "team-b"]));
    run_enable(&client, "team-a", &["--restrict-to-namespace"])
        .await
        .unwrap();
    let rule = object(&state, &origination_path(A)).unwrap();
    assert_eq!(
        rule["metadata"]["annotations"]["kubectl-mtls/client-namespace"],
        "team-a"
    );
    let restrict = "/apis/security.istio.io/v1/namespaces/istio-system/authorizationpolicies/mtls-restrict-a-partners-example-com";
    let policy = object(&state, restrict).unwrap();

    // A second namespace for the host: refused before anything is written.
    let before = writes(&state).len();
    let err = run_enable(&client, "team-b", &["--restrict-to-namespace"])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert_eq!(text.lines().count(), 1);
    for needle in [
        "a.partners.example.com is routed through the egress gateway for namespace team-a already",
        "Istio drops a second egress Gateway for the same host",
        "kubectl mtls-egress disable --host a.partners.example.com -n team-a",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert_eq!(writes(&state).len(), before, "nothing written for team-b");
    assert_eq!(object(&state, restrict).unwrap(), policy, "still team-a's");
    // Re-running in the namespace that has it is fine.
    let (out, _) = run_enable(&client, "team-a", &["--restrict-to-namespace"])
        .await
        .unwrap();
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");

    // disable in the other namespace deletes nothing of team-a's.
    let out = run_disable(&client, "team-b").await.unwrap();
    assert!(
        out.contains(&format!("{ORIGINATION_KEPT} team-a still routes a.partners.example.com through the egress gateway")),
        "{out}"
    );
    assert!(!out.contains(" deleted"), "{out}");
    assert_eq!(object(&state, &origination_path(A)).unwrap(), rule);
    assert_eq!(object(&state, restrict).unwrap(), policy);
    assert!(object(&state, "/apis/telemetry.istio.io/v1/namespaces/istio-system/telemetries/mtls-egressgateway-access-log").is_some());

    // disable in team-a takes them, and team-b may have the host now.
    let out = run_disable(&client, "team-a").await.unwrap();
    assert!(
        out.contains(
            "destinationrule.networking.istio.io/mtls-originate-a-partners-example-com deleted"
        ),
        "{out}"
    );
    assert!(object(&state, &origination_path(A)).is_none());
    run_enable(&client, "team-b", &[]).await.unwrap();
    assert_eq!(
        object(&state, &origination_path(A)).unwrap()["metadata"]["annotations"]["kubectl-mtls/client-namespace"],
        "team-b"
    );
}

#[tokio::test]
async fn objects_of_two_namespaces_from_an_older_version_stay_until_the_last_one_disables() {
    let (client, state) = fake_server(|s| cluster(s, &["team-a", "team-b"]));
    run_enable(&client, "team-a", &[]).await.unwrap();
    // What an older version left: the host's namespace objects in team-b too (copied from
    // team-a's ServiceEntry), and an origination rule without the annotation.
    {
        let mut s = state.lock().unwrap();
        let entry_path = "/apis/networking.istio.io/v1/namespaces/team-a/serviceentries/mtls-a-partners-example-com";
        let mut entry = s.objects[entry_path].clone();
        entry["metadata"]["namespace"] = json!("team-b");
        s.put("serviceentries", entry);
        let mut rule = s.objects[&origination_path(A)].clone();
        rule["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubectl-mtls/client-namespace");
        s.objects.insert(origination_path(A), rule);
    }
    let out = run_disable(&client, "team-a").await.unwrap();
    assert!(
        out.contains(&format!("{ORIGINATION_KEPT} team-b still routes")),
        "{out}"
    );
    assert!(object(&state, &origination_path(A)).is_some());
    let out = run_disable(&client, "team-b").await.unwrap();
    assert!(
        out.contains(
            "destinationrule.networking.istio.io/mtls-originate-a-partners-example-com deleted"
        ),
        "{out}"
    );
    assert!(object(&state, &origination_path(A)).is_none());
}

#[tokio::test]
async fn without_a_cluster_wide_list_the_origination_rules_annotation_decides() {
    let forbidden = |s: &mut State| {
        s.inject.insert(
            "GET /apis/networking.istio.io/v1/serviceentries".into(),
            Inject::Status(status(
                403,
                "Forbidden",
                "serviceentries.networking.istio.io is forbidden: User \"dev\" cannot list resource \"serviceentries\" in API group \"networking.istio.io\" at the cluster scope",
                Some(json!({"kind": "serviceentries", "group": "networking.istio.io"})),
            )),
        );
    };
    let (client, state) = fake_server(|s| cluster(s, &["team-a", "team-b"]));
    run_enable(&client, "team-a", &[]).await.unwrap();
    forbidden(&mut state.lock().unwrap());
    let err = run_enable(&client, "team-b", &[]).await.unwrap_err();
    assert!(
        err.to_string().contains("for namespace team-a already"),
        "{err}"
    );
    let out = run_disable(&client, "team-b").await.unwrap();
    assert!(
        out.contains(&format!("{ORIGINATION_KEPT} team-a still routes")),
        "{out}"
    );
    let out = run_disable(&client, "team-a").await.unwrap();
    assert!(
        out.contains("mtls-originate-a-partners-example-com deleted"),
        "{out}"
    );
}

/// A credential Secret `name` in istio-system holding the certificate of `pem_file`.
fn credential(state: &mut State, name: &str, chain: &Path, layout: [&str; 2]) {
    let pem = std::fs::read(chain).unwrap();
    state.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": "istio-system"},
               "data": {layout[0]: base64(&pem), layout[1]: base64(b"not shown")}}),
    );
}

#[tokio::test]
async fn expose_and_enable_do_not_switch_a_host_to_another_certificate_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, domain) in [(&a, A), (&b, B)] {
        std::fs::create_dir(dir).unwrap();
        let bundle = test_support::bundle(domain);
        std::fs::write(dir.join("server.crt"), bundle.server.cert.to_pem()).unwrap();
        std::fs::write(dir.join("client.crt"), bundle.client.cert.to_pem()).unwrap();
    }
    let (client, state) = fake_server(|s| {
        cluster(s, &[PARTNER_NS, CALLER_NS]);
        credential(s, "server-a", &a.join("server.crt"), ["cert", "key"]);
        credential(s, "server-b", &b.join("server.crt"), ["cert", "key"]);
        credential(s, "client-a", &a.join("client.crt"), ["tls.crt", "tls.key"]);
        credential(s, "client-b", &b.join("client.crt"), ["tls.crt", "tls.key"]);
        // Another Secret with a's server certificate (a rename, not a new identity).
        credential(
            s,
            "server-a-copy",
            &a.join("server.crt"),
            ["tls.crt", "tls.key"],
        );
    });
    let expose_args = |extra: &[&str]| {
        let mut argv = vec![
            "expose",
            "--host",
            A,
            "--service",
            "httpbin:8000",
            "--route",
            "virtualservice",
        ];
        argv.extend(extra);
        ExposeCli::parse_from(argv).args
    };
    let expose = |args: expose::ExposeArgs| {
        let client = client.clone();
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            expose::execute(
                &client,
                args.request(PARTNER_NS).unwrap(),
                args.route,
                args.force,
                &args.ingress,
                &args.apply,
                &mut out,
                &mut err,
            )
            .await
            .map(|()| String::from_utf8(err).unwrap())
        }
    };
    expose(expose_args(&["--credential", "server-a"]))
        .await
        .unwrap();
    // Same certificate under another name: fine.
    expose(expose_args(&["--credential", "server-a-copy"]))
        .await
        .unwrap();
    let gateway =
        "/apis/networking.istio.io/v1/namespaces/partner/gateways/mtls-a-partners-example-com";
    let before = object(&state, gateway).unwrap();
    let err = expose(expose_args(&["--credential", "server-b"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    for needle in [
        "gateway.networking.istio.io partner/mtls-a-partners-example-com presents secret istio-system/server-a-copy (subject CN=a.partners.example.com, sha256 ".to_string(),
        fingerprint(&a.join("server.crt")),
        "--credential server-b holds another certificate (subject CN=b.partners.example.com".to_string(),
        fingerprint(&b.join("server.crt")),
        "pass --credential server-a-copy to keep it, or --force to switch".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in {text}");
    }
    assert_eq!(object(&state, gateway).unwrap(), before);
    let warned = expose(expose_args(&["--credential", "server-b", "--force"]))
        .await
        .unwrap();
    assert!(warned.contains("warning: --force: switching: gateway.networking.istio.io partner/mtls-a-partners-example-com presents secret istio-system/server-a-copy"), "{warned}");
    assert_eq!(
        object(&state, gateway).unwrap()["spec"]["servers"][0]["tls"]["credentialName"],
        "server-b"
    );

    run_enable(&client, CALLER_NS, &["--credential", "client-a"])
        .await
        .unwrap();
    let err = run_enable(&client, CALLER_NS, &["--credential", "client-b"])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("destinationrule.networking.istio.io istio-system/mtls-originate-a-partners-example-com presents secret istio-system/client-a (subject CN=client.example.com"),
        "{err}"
    );
    assert_eq!(origination_credential(&state, A).unwrap(), "client-a");
    let (_, warned) = run_enable(&client, CALLER_NS, &["--credential", "client-b", "--force"])
        .await
        .unwrap();
    assert!(warned.contains("warning: --force: switching:"), "{warned}");
    assert_eq!(origination_credential(&state, A).unwrap(), "client-b");
    // A credential that does not exist yet has no certificate to compare: not refused here
    // (expose warns that the Secret is missing).
    run_enable(&client, CALLER_NS, &["--credential", "client-later"])
        .await
        .unwrap();
}

#[test]
fn one_cluster_for_both_sides_never_plans_an_apirule() {
    let host = DnsName::parse(A).unwrap();
    // Kyma's APIRule v2 refuses a host another VirtualService uses: kyma-project/api-gateway
    // internal/validation/v2alpha1/hosts.go (validateHosts, "Host is occupied by another
    // Virtual Service"); the client side's VirtualService mtls-<host> has that host.
    let (route, note) = connect::route_on_one_cluster(RouteChoice::Auto, &host).unwrap();
    assert_eq!(route, RouteChoice::Virtualservice);
    let note = note.unwrap();
    assert!(
        note.contains("Host is occupied by another Virtual Service")
            && note.contains("mtls-a-partners-example-com"),
        "{note}"
    );
    assert_eq!(
        connect::route_on_one_cluster(RouteChoice::Virtualservice, &host).unwrap(),
        (RouteChoice::Virtualservice, None)
    );
    let err = connect::route_on_one_cluster(RouteChoice::Apirule, &host).unwrap_err();
    assert_eq!(err.exit_code(), 2);

    // Through the flags: the same context for both sides is one cluster.
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let one = ["--client-context", "ctx-target"];
    let request = connect_request(A, &certs, &one).unwrap();
    assert!(request.same_cluster);
    assert!(!connect_request(A, &certs, &[]).unwrap().same_cluster);
    let err =
        connect_request(A, &certs, &[&one[..], &["--route", "apirule"]].concat()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 2);
    assert!(
        text.starts_with("--route apirule with target and client on one cluster: ")
            && text.contains("Host is occupied by another Virtual Service")
            && text.contains("use --route virtualservice"),
        "{text}"
    );
    let err = connect_request(
        A,
        &certs,
        &[
            &one[..],
            &["--target-credential", "same", "--client-credential", "same"],
        ]
        .concat(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("give them two names"), "{err}");
    // Two clusters: the APIRule is theirs to choose.
    assert!(connect_request(A, &certs, &["--route", "apirule"]).is_ok());
    assert!(!certs.exists(), "nothing written for refused flags");
}

#[tokio::test]
async fn one_cluster_with_kyma_apirules_gets_a_virtualservice_route_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    // One fake cluster for both sides, with Kyma's APIRule served.
    let (cluster_client, state) = fake_server(|s| {
        cluster(s, &[PARTNER_NS, CALLER_NS]);
        s.serve("gateway.kyma-project.io/v2", "apirules", "APIRule");
    });
    let request = connect_request(
        A,
        &tmp.path().join("certs"),
        &["--client-context", "ctx-target"],
    )
    .unwrap();
    let run = run_connect(&cluster_client, &cluster_client, &request).await;
    run.result.unwrap();
    assert!(
        run.out.contains(
            "target: virtualservice.networking.istio.io/mtls-a-partners-example-com created"
        ),
        "{}",
        run.out
    );
    assert!(!run.out.contains("apirule"), "{}", run.out);
    assert!(
        run.progress.contains("target: note: target and client are one cluster: the target routes by VirtualService, not APIRule"),
        "{}",
        run.progress
    );
    let objects = state.lock().unwrap().objects.clone();
    assert!(!objects.keys().any(|p| p.contains("/apirules/")));
    // Both credentials, side by side in the one istio-system.
    for name in [
        "mtls-server-a-partners-example-com",
        "mtls-client-a-partners-example-com",
    ] {
        assert!(objects.contains_key(&secret_path(name)), "{name}");
    }
}
