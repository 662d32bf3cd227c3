//! `kubectl mtls-egress` against a live API server, when `MTLS_E2E_KUBECONFIG` names one.
//!
//! It installs the CRDs it needs from `../shared/crds` when missing, creates its own namespaces
//! (and `istio-system`, `kyma-system` and a Kyma `Istio` CR when missing), runs expose, enable
//! (`--no-wait`: no Istio control plane is required), status, a second enable (all unchanged), a
//! server dry run (nothing created) and disable, and asserts through the API after each step. It
//! deletes its own namespaces and objects at the end, also when an assertion fails; what other
//! tests share (CRDs, `istio-system`, `kyma-system`, the Istio CR) stays (`test_support::e2e`).
//! Without the variable it says so on stderr (uncaptured) and passes without touching anything.
//!
//! `connect` and `disconnect` run across two contexts: the kubeconfig's current context is the
//! client cluster, `MTLS_E2E_TARGET_CONTEXT` the target (by default the same context: two
//! namespaces then stand in for two clusters).

use std::process::Command;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};
use test_support::e2e::{MeshAccess, client, kubeconfig, mesh_lock, runtime};

const MANAGER: &str = "kubectl-mtls-e2e";

fn dynamic(
    client: &Client,
    gvk: (&str, &str, &str),
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// What this run created, deleted again on drop (in reverse order).
struct Created {
    kubeconfig: String,
    /// The kubeconfig context the objects live in (`None`: the current context).
    context: Option<String>,
    /// `(group, version, kind, plural, namespace, name)`.
    objects: Vec<(String, String, String, String, Option<String>, String)>,
}

impl Drop for Created {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let context = self.context.take();
        let objects = std::mem::take(&mut self.objects);
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let client = client_for(&kubeconfig, context.as_deref()).await;
                for (g, v, k, plural, ns, name) in objects.into_iter().rev() {
                    let api = dynamic(&client, (&g, &v, &k), &plural, ns.as_deref());
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            })
        })
        .join();
    }
}

async fn apply(api: &Api<DynamicObject>, name: &str, body: Value) {
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Installs the CRDs from ../shared/crds that are not there yet. They are never removed: other
/// tests use them at the same time.
async fn install_crds(client: &Client, _created: &mut Created) {
    test_support::e2e::install_crds(client, &test_support::e2e::MESH_CRDS).await;
}

/// A client for `context` of the kubeconfig at `path` (its current context for `None`).
async fn client_for(path: &str, context: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read MTLS_E2E_KUBECONFIG");
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("a usable kubeconfig context");
    Client::try_from(config).expect("a client")
}

fn egress(kubeconfig: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_egress"))
        .args(args)
        .args(["--kubeconfig", kubeconfig])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn labelled(client: &Client, host_slug: &str) -> Vec<String> {
    let selector =
        format!("app.kubernetes.io/managed-by=kubectl-mtls,kubectl-mtls/host={host_slug}");
    let mut found = Vec::new();
    for (g, k, plural) in [
        ("networking.istio.io", "ServiceEntry", "serviceentries"),
        ("networking.istio.io", "Gateway", "gateways"),
        ("networking.istio.io", "DestinationRule", "destinationrules"),
        ("networking.istio.io", "VirtualService", "virtualservices"),
    ] {
        let api = dynamic(client, (g, "v1", k), plural, None);
        for o in api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
        {
            found.push(format!("{k}/{}", o.metadata.name.unwrap_or_default()));
        }
    }
    found.sort();
    found
}

#[test]
fn expose_enable_status_disable_against_a_live_api_server() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e") else {
        return;
    };
    let suffix = format!(
        "{:06x}",
        (std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos())
            & 0xffffff
    );
    let target_ns = format!("mtls-e2e-target-{suffix}");
    let client_ns = format!("mtls-e2e-client-{suffix}");
    let host = format!("httpbin-{suffix}.e2e.example.com");
    let host_slug = host.replace('.', "-");
    // Asserts on the Istio CR's egress gateway switch, which a test holding it exclusively flips.
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut created = Created {
        kubeconfig: kubeconfig.clone(),
        context: None,
        objects: Vec::new(),
    };
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        install_crds(&client, &mut created).await;
        ensure_namespaces(
            &client,
            &[&target_ns, &client_ns, "istio-system", "kyma-system"],
            &mut created,
        )
        .await;
        ensure_istio_cr(&client, &mut created).await;
    });

    // Target side.
    let (code, out, err) = egress(
        &kubeconfig,
        &[
            "expose",
            "--host",
            &host,
            "--service",
            "httpbin:8000",
            "-n",
            &target_ns,
            "--route",
            "virtualservice",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("gateway.networking.istio.io/") && out.contains(" created"),
        "{out}"
    );

    // A server dry run creates nothing.
    let (code, out, err) = egress(
        &kubeconfig,
        &[
            "enable",
            "--host",
            &host,
            "-n",
            &client_ns,
            "--no-wait",
            "--dry-run=server",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().all(|l| l.ends_with("(server dry run)")),
        "{out}"
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let found = labelled(&client, &host_slug).await;
        // Only the target side's Gateway and VirtualService exist so far.
        assert_eq!(found.len(), 2, "{found:?}");
    });

    // Client side, twice: the second run changes nothing.
    let (code, out, err) = egress(
        &kubeconfig,
        &["enable", "--host", &host, "-n", &client_ns, "--no-wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "serviceentry.networking.istio.io/mtls-{host_slug} created"
        )),
        "{out}"
    );
    let (code, again, err) = egress(
        &kubeconfig,
        &["enable", "--host", &host, "-n", &client_ns, "--no-wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(labelled(&client, &host_slug).await.len(), 2 + 5);
        let istios = dynamic(
            &client,
            ("operator.kyma-project.io", "v1alpha2", "Istio"),
            "istios",
            None,
        );
        let cr = istios
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .remove(0);
        assert_eq!(
            cr.data["spec"]["components"]["egressGateway"]["enabled"],
            true
        );
    });

    let (code, out, err) = egress(&kubeconfig, &["status", "-n", &client_ns, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["host"], host.as_str());
    assert_eq!(rows[0]["hop"], "istio-mutual");

    // Disable removes exactly what enable made; expose's objects stay until disabled in their namespace.
    let (code, out, err) = egress(&kubeconfig, &["disable", "--host", &host, "-n", &client_ns]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted"), "{out}");
    let (code, _, err) = egress(&kubeconfig, &["disable", "--host", &host, "-n", &target_ns]);
    assert_eq!(code, 0, "{err}");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert!(labelled(&client, &host_slug).await.is_empty());
    });
    drop(created);
}

fn run_suffix() -> String {
    format!(
        "{:06x}",
        (std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos())
            & 0xffffff
    )
}

/// The target and client contexts of the connect e2e.
fn contexts(kubeconfig: &str) -> (String, String) {
    let config = Kubeconfig::read_from(kubeconfig).expect("read MTLS_E2E_KUBECONFIG");
    let current = config
        .current_context
        .expect("MTLS_E2E_KUBECONFIG names a current-context");
    let target = std::env::var("MTLS_E2E_TARGET_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| current.clone());
    (target, current)
}

/// Creates the namespaces that do not exist yet, recording the test's own for cleanup; the shared
/// ones (`istio-system`, `kyma-system`) are created when missing and never deleted.
async fn ensure_namespaces(client: &Client, names: &[&str], created: &mut Created) {
    let (shared, own): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|ns| test_support::e2e::SHARED_NAMESPACES.contains(ns));
    test_support::e2e::ensure_shared_namespaces(client, &shared).await;
    let namespaces = dynamic(client, ("", "v1", "Namespace"), "namespaces", None);
    for ns in own {
        if namespaces.get_opt(ns).await.unwrap().is_none() {
            apply(
                &namespaces,
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await;
            created.objects.push((
                "".into(),
                "v1".into(),
                "Namespace".into(),
                "namespaces".into(),
                None,
                ns.to_string(),
            ));
        }
    }
}

/// A Kyma Istio CR, so that enable finds an egress gateway to switch on: created when there is
/// none, and never deleted (other tests use it at the same time).
async fn ensure_istio_cr(client: &Client, _created: &mut Created) {
    test_support::e2e::ensure_istio_cr(client).await;
}

/// What is labelled for the host on one cluster: routing objects anywhere, credential Secrets in
/// istio-system, and the lockdown policy in `namespace`.
async fn left_for_host(client: &Client, host_slug: &str, namespace: &str) -> Vec<String> {
    let mut found = labelled(client, host_slug).await;
    let selector =
        format!("app.kubernetes.io/managed-by=kubectl-mtls,kubectl-mtls/host={host_slug}");
    let secrets = dynamic(
        client,
        ("", "v1", "Secret"),
        "secrets",
        Some("istio-system"),
    );
    for s in secrets
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
    {
        found.push(format!("Secret/{}", s.metadata.name.unwrap_or_default()));
    }
    let policies = dynamic(
        client,
        ("networking.k8s.io", "v1", "NetworkPolicy"),
        "networkpolicies",
        Some(namespace),
    );
    for p in policies
        .list(&ListParams::default().labels("app.kubernetes.io/component=lockdown"))
        .await
        .unwrap()
    {
        found.push(format!(
            "NetworkPolicy/{}",
            p.metadata.name.unwrap_or_default()
        ));
    }
    found
}

#[test]
fn connect_status_disconnect_across_two_contexts() {
    let Some(kubeconfig) = kubeconfig("mtls-egress connect e2e") else {
        return;
    };
    let suffix = run_suffix();
    let (target_ctx, client_ctx) = contexts(&kubeconfig);
    let target_ns = format!("mtls-e2e-partner-{suffix}");
    let client_ns = format!("mtls-e2e-caller-{suffix}");
    let host = format!("httpbin-{suffix}.e2e.example.com");
    let host_slug = host.replace('.', "-");
    let client_name = format!("caller-{suffix}.e2e.example.com");
    let target_credential = format!("mtls-e2e-server-{suffix}");
    let client_credential = format!("mtls-e2e-client-{suffix}");
    let certs = tempfile::tempdir().unwrap();
    let certs_dir = certs.path().join("bundle");
    let rt = runtime();
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let record = |context: &str| Created {
        kubeconfig: kubeconfig.clone(),
        context: Some(context.to_string()),
        objects: Vec::new(),
    };
    // Cleanup records, dropped in reverse order: the client's first, then the target's.
    let mut target_created = record(&target_ctx);
    let mut client_created = record(&client_ctx);
    // If the run stops halfway, the credential Secrets and the origination rule in istio-system
    // go too (the namespaces take the rest with them).
    let secret = |name: &str| {
        (
            String::new(),
            "v1".to_string(),
            "Secret".to_string(),
            "secrets".to_string(),
            Some("istio-system".to_string()),
            name.to_string(),
        )
    };
    rt.block_on(async {
        let target = client_for(&kubeconfig, Some(&target_ctx)).await;
        install_crds(&target, &mut target_created).await;
        ensure_namespaces(&target, &[&target_ns, "istio-system"], &mut target_created).await;
        let client = client_for(&kubeconfig, Some(&client_ctx)).await;
        install_crds(&client, &mut client_created).await;
        ensure_namespaces(
            &client,
            &[&client_ns, "istio-system", "kyma-system"],
            &mut client_created,
        )
        .await;
        ensure_istio_cr(&client, &mut client_created).await;
    });
    target_created.objects.push(secret(&target_credential));
    client_created.objects.push(secret(&client_credential));
    client_created.objects.push((
        "networking.istio.io".into(),
        "v1".into(),
        "DestinationRule".into(),
        "destinationrules".into(),
        Some("istio-system".into()),
        format!("mtls-originate-{host_slug}"),
    ));

    let flags: Vec<&str> = vec![
        "--target-context",
        &target_ctx,
        "--client-context",
        &client_ctx,
        "--target-namespace",
        &target_ns,
        "-n",
        &client_ns,
        "--host",
        &host,
        "--client-name",
        &client_name,
        "--service",
        "httpbin:8000",
        "--certs",
        certs_dir.to_str().unwrap(),
        "--target-credential",
        &target_credential,
        "--client-credential",
        &client_credential,
        "--route",
        "virtualservice",
        "--no-access-log",
        "--lockdown",
        "--dns-ip",
        "10.96.0.10",
        "--no-wait",
        "--no-probe",
    ];
    let command = |verb: &'static str| -> Vec<&str> {
        std::iter::once(verb).chain(flags.iter().copied()).collect()
    };

    // connect: both clusters, stage by stage.
    let (code, out, err) = egress(&kubeconfig, &command("connect"));
    assert_eq!(code, 0, "{err}");
    for stage in [
        "[1/5] certificates: generated",
        "[3/5] target",
        "[4/5] client",
        "[5/5] probe: skipped",
    ] {
        assert!(err.contains(stage), "{stage:?} not in {err}");
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 + 8, "{out}");
    assert!(
        lines.contains(&format!("target: secret/{target_credential} created").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("client: secret/{client_credential} created").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&"client: networkpolicy.networking.k8s.io/mtls-lockdown created"),
        "{out}"
    );
    for file in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        assert!(certs_dir.join(file).is_file(), "{file} not written");
    }

    // Again: the bundle is reused and nothing changes.
    let (code, again, err) = egress(&kubeconfig, &command("connect"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reused the bundle"), "{err}");
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    assert_eq!(again.lines().count(), 3 + 8);

    // status on both clusters.
    let (code, out, err) = egress(
        &kubeconfig,
        &[
            "status",
            "--context",
            &target_ctx,
            "-n",
            &target_ns,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["host"], host.as_str());
    assert_eq!(rows[0]["side"], "target");
    assert_eq!(rows[0]["credential"], target_credential.as_str());
    assert_eq!(rows[0]["credentialPresent"], true);
    let (code, out, err) = egress(
        &kubeconfig,
        &[
            "status",
            "--context",
            &client_ctx,
            "-n",
            &client_ns,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["side"], "client");
    assert_eq!(rows[0]["hop"], "istio-mutual");
    assert_eq!(rows[0]["credential"], client_credential.as_str());
    assert_eq!(rows[0]["credentialPresent"], true);

    // disconnect with connect's command line: everything of ours goes, on both clusters.
    let (code, out, err) = egress(&kubeconfig, &command("disconnect"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("client: secret/{client_credential} deleted")),
        "{out}"
    );
    assert!(
        out.contains(&format!("target: secret/{target_credential} deleted")),
        "{out}"
    );
    assert!(
        out.contains("client: networkpolicy.networking.k8s.io/mtls-lockdown deleted"),
        "{out}"
    );
    rt.block_on(async {
        let target = client_for(&kubeconfig, Some(&target_ctx)).await;
        let client = client_for(&kubeconfig, Some(&client_ctx)).await;
        assert!(
            left_for_host(&target, &host_slug, &target_ns)
                .await
                .is_empty()
        );
        assert!(
            left_for_host(&client, &host_slug, &client_ns)
                .await
                .is_empty()
        );
    });
    // The certificate files stay.
    assert!(certs_dir.join("client.key").is_file());
    drop(client_created);
    drop(target_created);
}
