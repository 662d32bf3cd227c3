//! `kubectl mtls-egress` against a real API server (`MTLS_E2E_KUBECONFIG`, e.g. `../shared/kapi`):
//! what the fake API server cannot decide. A Terminating namespace, field ownership and
//! `--force-conflicts`, the Kyma Istio CR's other fields, a user bound to a Role in one namespace,
//! ten enables and ten disables at once, finalizers on disable and disconnect; and several
//! partners and namespaces on one cluster (issue 13): two partners connected from one client
//! cluster with one disconnected, one host enabled from two namespaces, and `connect` with one
//! cluster for both sides where Kyma's APIRule is served.
//!
//! Every case runs the real binary. Each test makes and removes its own uniquely named namespaces
//! and objects (`test_support::e2e::Scratch`); CRDs, `istio-system`, `kyma-system` and the Istio
//! CR are shared and stay. Without the variable each test says so on stderr and passes (under
//! `CI=true` it fails).

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use test_support::e2e::{
    HOLD_FINALIZER, ISTIO_CR, MeshAccess, NamespacedUser, Scratch, apply_as, client, dynamic,
    ensure_istio_cr, forbidden_line, hold_terminating, kubeconfig, kubectl_can_i, mesh_lock,
    resource, runtime, unique_suffix,
};

/// What one run of the plugin did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `kubectl-mtls_egress ARGS --kubeconfig KUBECONFIG`.
fn egress(kubeconfig: impl AsRef<Path>, args: &[&str]) -> Ran {
    let start = Instant::now();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_egress"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig.as_ref())
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    if std::env::var_os("MTLS_E2E_SHOW").is_some() {
        eprintln!(
            "$ kubectl mtls-egress {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        elapsed: start.elapsed(),
    }
}

fn slug(host: &str) -> String {
    host.replace('.', "-")
}

/// The kinds `enable` labels per host: `(group, kind, plural)`.
const PER_HOST: [(&str, &str, &str); 4] = [
    ("networking.istio.io", "ServiceEntry", "serviceentries"),
    ("networking.istio.io", "Gateway", "gateways"),
    ("networking.istio.io", "DestinationRule", "destinationrules"),
    ("networking.istio.io", "VirtualService", "virtualservices"),
];

/// Everything labelled for `host` anywhere, as `Kind/namespace/name`, sorted.
async fn labelled(client: &Client, host: &str) -> Vec<String> {
    let selector = format!(
        "app.kubernetes.io/managed-by=kubectl-mtls,kubectl-mtls/host={}",
        slug(host)
    );
    let mut found = Vec::new();
    for (group, kind, plural) in PER_HOST {
        let api = dynamic(client, (group, "v1", kind), plural, None);
        for o in api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
        {
            found.push(format!(
                "{kind}/{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            ));
        }
    }
    found.sort();
    found
}

/// The shared access-log Telemetry, if present.
async fn access_log_telemetry(client: &Client) -> bool {
    dynamic(
        client,
        ("telemetry.istio.io", "v1", "Telemetry"),
        "telemetries",
        Some("istio-system"),
    )
    .get_opt("mtls-egressgateway-access-log")
    .await
    .unwrap()
    .is_some()
}

/// The origination DestinationRule `enable` puts into istio-system for `host`, recorded so that
/// a failed test does not leave it behind (its namespace is shared and stays).
fn record_origination(scratch: &mut Scratch, host: &str) {
    scratch.record(
        resource(
            ("networking.istio.io", "v1", "DestinationRule"),
            "destinationrules",
        ),
        Some("istio-system"),
        &format!("mtls-originate-{}", slug(host)),
    );
}

#[test]
fn enable_into_a_terminating_namespace_names_the_namespace_not_rbac() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (terminating namespace)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("term-{}.e2e.example.com", unique_suffix());
    record_origination(&mut scratch, &host);
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        let namespace = scratch.namespace(&client, "terminating").await;
        hold_terminating(&client, &mut scratch, &namespace).await;
        namespace
    });

    let ran = egress(
        &kubeconfig,
        &["enable", "--host", &host, "-n", &namespace, "--no-wait"],
    );
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    let prefix = format!(
        "error: namespace {namespace} is being deleted (Terminating), so the API server refused to patch "
    );
    assert!(ran.stderr.starts_with(&prefix), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("in namespace {namespace}; this is not a permission problem: wait until the namespace is gone")),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(!ran.stderr.contains("RBAC"), "{}", ran.stderr);
    // The whole plan is checked first: nothing went into istio-system either.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(labelled(&client, &host).await, Vec::<String>::new());
    });
}

#[test]
fn a_field_another_manager_owns_is_a_conflict_until_force_conflicts() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (field ownership)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("owned-{}.e2e.example.com", unique_suffix());
    let entry = format!("mtls-{}", slug(&host));
    record_origination(&mut scratch, &host);
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        let namespace = scratch.namespace(&client, "owned").await;
        // Another tool made the ServiceEntry enable writes, with another resolution.
        apply_as(
            &client,
            "platform-gitops",
            &json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": entry, "namespace": namespace},
                "spec": {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "NONE",
                         "ports": [{"number": 80, "name": "http", "protocol": "HTTP"},
                                   {"number": 443, "name": "https", "protocol": "HTTPS"}]}}),
        )
        .await;
        namespace
    });
    let enable = ["enable", "--host", &host, "-n", &namespace, "--no-wait"];

    let ran = egress(&kubeconfig, &enable);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.starts_with(&format!(
            "error: conflict applying serviceentries.networking.istio.io/{entry} in namespace {namespace}: "
        )),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(r#"conflict with "platform-gitops""#)
            && ran.stderr.contains(".spec.resolution")
            && ran.stderr.contains("re-run with --force-conflicts"),
        "{}",
        ran.stderr
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        // Nothing else was applied, and the other tool's object is as it was.
        assert_eq!(labelled(&client, &host).await, Vec::<String>::new());
        let se = dynamic(
            &client,
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
            Some(&namespace),
        )
        .get(&entry)
        .await
        .unwrap();
        assert_eq!(se.data["spec"]["resolution"], "NONE");
    });

    let mut forced = enable.to_vec();
    forced.push("--force-conflicts");
    let ran = egress(&kubeconfig, &forced);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!(
            "serviceentry.networking.istio.io/{entry} configured"
        )),
        "{}",
        ran.stdout
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(labelled(&client, &host).await.len(), 5);
        let se = dynamic(
            &client,
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
            Some(&namespace),
        )
        .get(&entry)
        .await
        .unwrap();
        assert_eq!(se.data["spec"]["resolution"], "DNS");
        // The field changed hands: ours now, no longer the other tool's.
        let owners_of_resolution: Vec<String> = se
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:resolution").is_some())
            })
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(owners_of_resolution, ["kubectl-mtls"]);
    });

    // --field-manager writes as another manager, as kubectl's does: applying the same value, it
    // shares the field with kubectl-mtls (server-side apply's shared ownership).
    let mut as_gitops = forced.clone();
    as_gitops.extend(["--field-manager", "platform-gitops"]);
    let ran = egress(&kubeconfig, &as_gitops);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let se = dynamic(
            &client,
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
            Some(&namespace),
        )
        .get(&entry)
        .await
        .unwrap();
        let mut owners_of_resolution: Vec<String> = se
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:resolution").is_some())
            })
            .filter_map(|m| m.manager)
            .collect();
        owners_of_resolution.sort();
        assert_eq!(owners_of_resolution, ["kubectl-mtls", "platform-gitops"]);
    });
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &namespace]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

/// `spec` without the one field enable and disable own.
fn foreign_spec(cr: &Value) -> Value {
    let mut spec = cr["spec"].clone();
    if let Some(egress) = spec
        .pointer_mut("/components/egressGateway")
        .and_then(Value::as_object_mut)
    {
        egress.remove("enabled");
    }
    spec
}

#[test]
fn the_kyma_istio_cr_keeps_every_field_we_do_not_own() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (Kyma Istio CR)") else {
        return;
    };
    // disable --egress-gateway switches the egress gateway off for every host.
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Exclusive);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("kyma-{}.e2e.example.com", unique_suffix());
    record_origination(&mut scratch, &host);
    let (namespace, cr_namespace, cr_name) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        let (cr_ns, cr_name) = ensure_istio_cr(&client).await;
        let namespace = scratch.namespace(&client, "kyma").await;
        (namespace, cr_ns, cr_name)
    });
    // Fields of two other managers: one applies (a GitOps tool), one edits (kubectl edit).
    let others = json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
        "metadata": {"name": cr_name, "namespace": cr_namespace},
        "spec": {"config": {"numTrustedProxies": 2, "gatewayExternalTrafficPolicy": "Local"},
                 "components": {"egressGateway": {"k8s": {"hpaSpec": {"minReplicas": 2, "maxReplicas": 3}}},
                                "pilot": {"k8s": {"resources": {"limits": {"cpu": "500m"}}}}}}});
    let edited = json!({"spec": {"compatibilityMode": true}});
    /// Takes the other managers' fields off the shared CR again, also after a failed assertion.
    struct Restore(String, String, String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let (kubeconfig, ns, name) = (self.0.clone(), self.1.clone(), self.2.clone());
            let _ = std::thread::spawn(move || {
                runtime().block_on(async {
                    let client = client(&kubeconfig).await;
                    let api = dynamic(&client, ISTIO_CR, "istios", Some(&ns));
                    let release = json!({"apiVersion": "operator.kyma-project.io/v1alpha2",
                        "kind": "Istio", "metadata": {"name": name, "namespace": ns}});
                    let _ = api
                        .patch(
                            &name,
                            &PatchParams::apply("platform-gitops").force(),
                            &Patch::Apply(&release),
                        )
                        .await;
                    let unset = json!({"spec": {"compatibilityMode": null}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&unset))
                        .await;
                })
            })
            .join();
        }
    }
    let _restore = Restore(kubeconfig.clone(), cr_namespace.clone(), cr_name.clone());
    let before = rt.block_on(async {
        let client = client(&kubeconfig).await;
        apply_as(&client, "platform-gitops", &others).await;
        let api = dynamic(&client, ISTIO_CR, "istios", Some(&cr_namespace));
        let params = PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        };
        api.patch(&cr_name, &params, &Patch::Merge(&edited))
            .await
            .unwrap();
        serde_json::to_value(api.get(&cr_name).await.unwrap()).unwrap()
    });
    assert_eq!(before["spec"]["compatibilityMode"], true);
    let read = || {
        rt.block_on(async {
            let client = client(&kubeconfig).await;
            let api = dynamic(&client, ISTIO_CR, "istios", Some(&cr_namespace));
            serde_json::to_value(api.get(&cr_name).await.unwrap()).unwrap()
        })
    };

    let ran = egress(
        &kubeconfig,
        &["enable", "--host", &host, "-n", &namespace, "--no-wait"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let after_enable = read();
    assert_eq!(
        after_enable["spec"]["components"]["egressGateway"]["enabled"],
        true
    );
    assert_eq!(foreign_spec(&after_enable), foreign_spec(&before));
    // Our field manager owns exactly that one field.
    let ours: Vec<&Value> = after_enable["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["manager"] == "kubectl-mtls")
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(
        ours[0]["fieldsV1"],
        json!({"f:spec": {"f:components": {"f:egressGateway": {"f:enabled": {}}}}})
    );

    let ran = egress(
        &kubeconfig,
        &[
            "disable",
            "--host",
            &host,
            "-n",
            &namespace,
            "--egress-gateway",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let after_disable = read();
    assert_eq!(
        after_disable["spec"]["components"]["egressGateway"]["enabled"],
        false
    );
    assert_eq!(foreign_spec(&after_disable), foreign_spec(&before));
    assert_eq!(after_disable["spec"]["compatibilityMode"], true);
    assert_eq!(after_disable["spec"]["config"]["numTrustedProxies"], 2);
}

#[test]
fn a_user_bound_to_a_role_is_told_what_it_may_not_do_and_nothing_is_applied() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (namespace-scoped user)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let host = format!("dev-{}.e2e.example.com", unique_suffix());
    record_origination(&mut scratch, &host);
    let user = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        NamespacedUser::create(&client, &mut scratch, &kubeconfig, dir.path(), "dev").await
    });
    let enable = ["enable", "--host", &host, "--no-wait"];

    // Only its own namespace: the first thing it may not do is to read the Istio CRs.
    let ran = egress(&user.kubeconfig, &enable);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let denied = forbidden_line(&ran.stderr);
    assert_eq!(denied.user, user.name);
    assert!(
        !kubectl_can_i(&user.kubeconfig, &denied),
        "the line names a permission the user has: {denied:?}"
    );

    // With every read enable needs, the first write outside its namespace is refused, in the
    // server dry run of the whole plan: not even its own namespace (where it may write) gets
    // anything.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        user.grant_cluster_wide(
            &client,
            &mut scratch,
            &[
                "istios.operator.kyma-project.io",
                "destinationrules.networking.istio.io",
                "telemetries.telemetry.istio.io",
                "deployments.apps",
            ],
            &["get", "list"],
        )
        .await;
    });
    let ran = egress(&user.kubeconfig, &enable);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let denied = forbidden_line(&ran.stderr);
    assert_eq!(
        (denied.user.as_str(), denied.verb.as_str()),
        (user.name.as_str(), "patch")
    );
    assert_ne!(denied.namespace.as_deref(), Some(user.namespace.as_str()));
    assert!(!kubectl_can_i(&user.kubeconfig, &denied), "{denied:?}");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(labelled(&client, &host).await, Vec::<String>::new());
    });
}

#[test]
fn ten_enables_at_once_then_ten_disables_at_once() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (concurrency)") else {
        return;
    };
    // Asserts on the access-log Telemetry that all hosts share.
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Exclusive);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let hosts: Vec<String> = (0..10)
        .map(|i| format!("c{i}-{suffix}.e2e.example.com"))
        .collect();
    for host in &hosts {
        record_origination(&mut scratch, host);
    }
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        let others = dynamic(
            &client,
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
            None,
        )
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubectl-mtls"))
        .await
        .unwrap();
        let names: Vec<_> = others.iter().map(|o| o.metadata.name.clone()).collect();
        assert!(
            names.is_empty(),
            "hosts of kubectl-mtls are left on this cluster, so the shared Telemetry cannot go with our last host: {names:?}"
        );
        scratch.namespace(&client, "concurrent").await
    });
    let all_at_once = |verb: &str| -> Vec<Ran> {
        std::thread::scope(|s| {
            let runs: Vec<_> = hosts
                .iter()
                .map(|host| {
                    let (kubeconfig, namespace) = (&kubeconfig, &namespace);
                    s.spawn(move || {
                        let mut args = vec![verb, "--host", host, "-n", namespace];
                        if verb == "enable" {
                            args.push("--no-wait");
                        }
                        egress(kubeconfig, &args)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        })
    };

    for ran in all_at_once("enable") {
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts {
            let found = labelled(&client, host).await;
            assert_eq!(found.len(), 5, "{host}: {found:?}");
        }
        assert!(access_log_telemetry(&client).await);
    });

    let disabled = all_at_once("disable");
    for ran in &disabled {
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let telemetry_lines = disabled
        .iter()
        .flat_map(|r| r.stdout.lines())
        .filter(|l| l.starts_with("telemetry.telemetry.istio.io/"))
        .count();
    assert_eq!(telemetry_lines, 1, "the Telemetry goes exactly once");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts {
            assert_eq!(
                labelled(&client, host).await,
                Vec::<String>::new(),
                "{host}"
            );
        }
        assert!(!access_log_telemetry(&client).await);
    });

    // Exactly with the last host: not before.
    let (first, last) = (&hosts[0], &hosts[1]);
    for host in [first, last] {
        let ran = egress(
            &kubeconfig,
            &["enable", "--host", host, "-n", &namespace, "--no-wait"],
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let ran = egress(&kubeconfig, &["disable", "--host", first, "-n", &namespace]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stdout.contains("telemetry"), "{}", ran.stdout);
    assert!(rt.block_on(async { access_log_telemetry(&client(&kubeconfig).await).await }));
    let ran = egress(&kubeconfig, &["disable", "--host", last, "-n", &namespace]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains("telemetry.telemetry.istio.io/mtls-egressgateway-access-log deleted"),
        "{}",
        ran.stdout
    );
    assert!(!rt.block_on(async { access_log_telemetry(&client(&kubeconfig).await).await }));
}

#[test]
fn disable_reports_objects_a_finalizer_keeps_and_does_not_wait() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (finalizers on disable)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("held-{}.e2e.example.com", unique_suffix());
    let gateway = format!("mtls-egress-{}", slug(&host));
    record_origination(&mut scratch, &host);
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        scratch.namespace(&client, "held").await
    });
    let ran = egress(
        &kubeconfig,
        &["enable", "--host", &host, "-n", &namespace, "--no-wait"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let gateways = resource(("networking.istio.io", "v1", "Gateway"), "gateways");
        scratch
            .hold(&client, &gateways, Some(&namespace), &gateway)
            .await;
    });
    let held = format!(
        "gateway.networking.istio.io/{gateway} marked for deletion, kept until its finalizers finish: {HOLD_FINALIZER}"
    );
    let disable = [
        "disable",
        "--host",
        &host,
        "-n",
        &namespace,
        "--request-timeout",
        "10s",
    ];

    let ran = egress(&kubeconfig, &disable);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines.contains(&held.as_str()), "{}", ran.stdout);
    // The other four of the host's objects (the shared Telemetry goes too when no other test's
    // host is left: not ours to count).
    let deleted = lines
        .iter()
        .filter(|l| l.ends_with(" deleted") && !l.starts_with("telemetry."))
        .count();
    assert_eq!(deleted, 4, "{}", ran.stdout);
    // Again: only the held object is left, and said so again.
    let ran = egress(&kubeconfig, &disable);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, format!("{held}\n"));
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(
            labelled(&client, &host).await,
            [format!("Gateway/{namespace}/{gateway}")]
        );
    });
}

#[test]
fn disconnect_from_a_namespace_stuck_in_terminating_reports_and_returns() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (disconnect, Terminating namespace)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let host = format!("stuck-{suffix}.e2e.example.com");
    let entry = format!("mtls-{}", slug(&host));
    let context = kube::config::Kubeconfig::read_from(&kubeconfig)
        .unwrap()
        .current_context
        .unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (target_ns, client_ns) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        (
            scratch.namespace(&client, "stuck-target").await,
            scratch.namespace(&client, "stuck-client").await,
        )
    });
    let target_credential = format!("mtls-e2e-server-{suffix}");
    let client_credential = format!("mtls-e2e-client-{suffix}");
    record_origination(&mut scratch, &host);
    for name in [&target_credential, &client_credential] {
        scratch.record(
            resource(("", "v1", "Secret"), "secrets"),
            Some("istio-system"),
            name,
        );
    }
    let certs_dir = certs.path().join("bundle");
    let flags = |verb: &'static str| -> Vec<String> {
        [
            verb,
            "--target-context",
            &context,
            "--client-context",
            &context,
            "--target-namespace",
            &target_ns,
            "-n",
            &client_ns,
            "--host",
            &host,
            "--client-name",
            &format!("caller-{suffix}.e2e.example.com"),
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
            "--no-wait",
            "--no-probe",
            "--request-timeout",
            "10s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |verb| {
        let args = flags(verb);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        egress(&kubeconfig, &args)
    };
    let ran = run("connect");
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    // The client namespace is being deleted, and a finalizer keeps its ServiceEntry (and with
    // it the namespace) from going.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let entries = resource(
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
        );
        scratch
            .hold(&client, &entries, Some(&client_ns), &entry)
            .await;
        dynamic(&client, ("", "v1", "Namespace"), "namespaces", None)
            .delete(&client_ns, &Default::default())
            .await
            .unwrap();
    });

    let ran = run("disconnect");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let held = format!(
        "client: serviceentry.networking.istio.io/{entry} marked for deletion, kept until its finalizers finish: {HOLD_FINALIZER}"
    );
    assert!(lines.contains(&held.as_str()), "{}", ran.stdout);
    for gone in [
        format!("client: secret/{client_credential} deleted"),
        format!("target: secret/{target_credential} deleted"),
        format!(
            "client: destinationrule.networking.istio.io/mtls-originate-{} deleted",
            slug(&host)
        ),
    ] {
        assert!(
            lines.contains(&gone.as_str()),
            "{gone:?} not in {}",
            ran.stdout
        );
    }
    assert!(
        ran.stderr.contains(&format!("disconnected {host}")),
        "{}",
        ran.stderr
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let ns = dynamic(&client, ("", "v1", "Namespace"), "namespaces", None)
            .get(&client_ns)
            .await
            .unwrap();
        assert_eq!(ns.data["status"]["phase"], "Terminating");
        assert_eq!(
            labelled(&client, &host).await,
            [format!("ServiceEntry/{client_ns}/{entry}")]
        );
    });
}

/// The kubeconfig's current context: one API server standing in for both clusters.
fn current_context(kubeconfig: &str) -> String {
    kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap()
        .current_context
        .unwrap()
}

/// `connect`'s (or `disconnect`'s) command line for `host`, target namespace `target_ns`,
/// client namespace `client_ns`, on one context, with `extra` flags.
fn one_cluster_flags(
    verb: &str,
    context: &str,
    host: &str,
    target_ns: &str,
    client_ns: &str,
    certs: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        verb,
        "--target-context",
        context,
        "--client-context",
        context,
        "--target-namespace",
        target_ns,
        "-n",
        client_ns,
        "--host",
        host,
        "--client-name",
        &format!("caller.{host}"),
        "--service",
        "httpbin:8000",
        "--certs",
        certs.to_str().unwrap(),
        "--no-access-log",
        "--no-wait",
        "--no-probe",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_args(kubeconfig: &str, args: &[String]) -> Ran {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    egress(kubeconfig, &args)
}

/// One object's JSON, if it exists.
async fn get_json(
    client: &Client,
    gvk: (&str, &str, &str),
    plural: &str,
    namespace: &str,
    name: &str,
) -> Option<Value> {
    dynamic(client, gvk, plural, Some(namespace))
        .get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

async fn secret_json(client: &Client, name: &str) -> Option<Value> {
    get_json(
        client,
        ("", "v1", "Secret"),
        "secrets",
        "istio-system",
        name,
    )
    .await
}

async fn origination_json(client: &Client, host: &str) -> Option<Value> {
    get_json(
        client,
        ("networking.istio.io", "v1", "DestinationRule"),
        "destinationrules",
        "istio-system",
        &format!("mtls-originate-{}", slug(host)),
    )
    .await
}

fn credential_name_of(rule: &Value) -> &str {
    rule["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["credentialName"]
        .as_str()
        .unwrap()
}

/// Records what `connect` puts into istio-system for `host` (with the default Secret names), so
/// that a failed test leaves nothing behind there.
fn record_connect(scratch: &mut Scratch, host: &str) {
    record_origination(scratch, host);
    for name in [
        format!("mtls-server-{}", slug(host)),
        format!("mtls-client-{}", slug(host)),
    ] {
        scratch.record(
            resource(("", "v1", "Secret"), "secrets"),
            Some("istio-system"),
            &name,
        );
    }
}

/// The PEM of `file` as base64, as a Secret's data holds it.
fn file_base64(file: &Path) -> String {
    test_support::e2e::base64(&std::fs::read(file).unwrap())
}

#[test]
fn two_partners_in_one_client_cluster_one_disconnected_the_other_intact() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (two partners, one client cluster)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let (a, b) = (
        format!("a-{suffix}.e2e.example.com"),
        format!("b-{suffix}.e2e.example.com"),
    );
    record_connect(&mut scratch, &a);
    record_connect(&mut scratch, &b);
    let context = current_context(&kubeconfig);
    let certs = tempfile::tempdir().unwrap();
    let (a_certs, b_certs) = (certs.path().join("a"), certs.path().join("b"));
    let (partner_a, partner_b, caller) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        (
            scratch.namespace(&client, "partner-a").await,
            scratch.namespace(&client, "partner-b").await,
            scratch.namespace(&client, "caller").await,
        )
    });
    let flags = |verb: &str, host: &str, target_ns: &str, certs: &Path, extra: &[&str]| {
        one_cluster_flags(verb, &context, host, target_ns, &caller, certs, extra)
    };
    let vs = ["--route", "virtualservice"];

    for (host, ns, dir) in [(&a, &partner_a, &a_certs), (&b, &partner_b, &b_certs)] {
        let ran = run_args(&kubeconfig, &flags("connect", host, ns, dir, &vs));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let (a_client, a_server) = (
        format!("mtls-client-{}", slug(&a)),
        format!("mtls-server-{}", slug(&a)),
    );
    let before = rt.block_on(async {
        let client = client(&kubeconfig).await;
        let a_secret = secret_json(&client, &a_client)
            .await
            .expect("a's client credential");
        assert_eq!(
            a_secret["data"]["tls.crt"],
            file_base64(&a_certs.join("client.crt"))
        );
        let b_rule = origination_json(&client, &b).await.unwrap();
        assert_eq!(
            credential_name_of(&b_rule),
            format!("mtls-client-{}", slug(&b))
        );
        a_secret
    });

    // Partner b under a's Secret name: refused, a's certificate stays.
    let ran = run_args(
        &kubeconfig,
        &flags(
            "connect",
            &b,
            &partner_b,
            &b_certs,
            &[&vs[..], &["--client-credential", &a_client]].concat(),
        ),
    );
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(
        ran.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );
    assert!(
        ran.stderr.contains(&format!(
            "secret istio-system/{a_client} holds another certificate (subject CN=caller.{a}, sha256 "
        )) && ran.stderr.contains(&format!("than the one to write (subject CN=caller.{b}, sha256 "))
            && ran.stderr.contains("nothing was applied to either cluster"),
        "{}",
        ran.stderr
    );

    // Disconnect b: a's Secret and origination rule stay, naming each other.
    let ran = run_args(
        &kubeconfig,
        &flags("disconnect", &b, &partner_b, &b_certs, &vs),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains(&format!("client: secret/mtls-client-{} deleted", slug(&b))),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains(&slug(&a)), "{}", ran.stdout);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let a_secret = secret_json(&client, &a_client)
            .await
            .expect("a's Secret stays");
        assert_eq!(a_secret["data"], before["data"]);
        let a_rule = origination_json(&client, &a).await.expect("a's rule stays");
        assert_eq!(credential_name_of(&a_rule), a_client);
        assert!(secret_json(&client, &a_server).await.is_some());
        let gateway = get_json(
            &client,
            ("networking.istio.io", "v1", "Gateway"),
            "gateways",
            &partner_a,
            &format!("mtls-{}", slug(&a)),
        )
        .await
        .expect("a's target Gateway stays");
        assert_eq!(
            gateway["spec"]["servers"][0]["tls"]["credentialName"],
            a_server.as_str()
        );
        assert!(origination_json(&client, &b).await.is_none());
        assert!(
            secret_json(&client, &format!("mtls-client-{}", slug(&b)))
                .await
                .is_none()
        );
    });
    let ran = run_args(
        &kubeconfig,
        &flags("disconnect", &a, &partner_a, &a_certs, &vs),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert!(secret_json(&client, &a_client).await.is_none());
        assert!(origination_json(&client, &a).await.is_none());
    });
}

#[test]
fn one_host_from_two_namespaces_the_second_is_refused_and_disable_there_keeps_the_first() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (one host, two namespaces)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("shared-{}.e2e.example.com", unique_suffix());
    record_origination(&mut scratch, &host);
    let restrict = format!("mtls-restrict-{}", slug(&host));
    scratch.record(
        resource(
            ("security.istio.io", "v1", "AuthorizationPolicy"),
            "authorizationpolicies",
        ),
        Some("istio-system"),
        &restrict,
    );
    let (first, second) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        (
            scratch.namespace(&client, "team-a").await,
            scratch.namespace(&client, "team-b").await,
        )
    });
    let enable = |ns: &str| {
        egress(
            &kubeconfig,
            &[
                "enable",
                "--host",
                &host,
                "-n",
                ns,
                "--restrict-to-namespace",
                "--no-access-log",
                "--no-wait",
            ],
        )
    };
    let istio_objects = || {
        rt.block_on(async {
            let client = client(&kubeconfig).await;
            let rule = origination_json(&client, &host).await;
            let policy = get_json(
                &client,
                ("security.istio.io", "v1", "AuthorizationPolicy"),
                "authorizationpolicies",
                "istio-system",
                &restrict,
            )
            .await;
            (rule, policy)
        })
    };

    let ran = enable(&first);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (rule, policy) = istio_objects();
    let (rule, policy) = (rule.unwrap(), policy.unwrap());
    assert_eq!(
        rule["metadata"]["annotations"]["kubectl-mtls/client-namespace"],
        first.as_str()
    );
    assert_eq!(
        policy["spec"]["rules"][0]["from"][0]["source"]["notNamespaces"],
        json!([first])
    );

    // The second namespace is refused, and nothing of it is written.
    let ran = enable(&second);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "{host} is routed through the egress gateway for namespace {first} already"
        )) && ran
            .stderr
            .contains(&format!("disable --host {host} -n {first}")),
        "{}",
        ran.stderr
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let found = labelled(&client, &host).await;
        assert!(
            found.iter().all(|o| !o.contains(&format!("/{second}/"))),
            "{found:?}"
        );
    });

    // disable in the second namespace: the first one's objects in istio-system stay as they were.
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &second]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!(
            "destinationrule.networking.istio.io/mtls-originate-{} kept: namespace {first} still routes {host} through the egress gateway",
            slug(&host)
        )) && ran.stdout.contains(&format!(
            "authorizationpolicy.security.istio.io/{restrict} kept: namespace {first}"
        )),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains(" deleted"), "{}", ran.stdout);
    let (after_rule, after_policy) = istio_objects();
    assert_eq!(after_rule.unwrap()["spec"], rule["spec"]);
    assert_eq!(after_policy.unwrap()["spec"], policy["spec"]);

    // What an older version could leave: the host's ServiceEntry in the second namespace too.
    // Disabling the first then keeps the istio-system objects for the second.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let entry = dynamic(
            &client,
            ("networking.istio.io", "v1", "ServiceEntry"),
            "serviceentries",
            Some(&first),
        )
        .get(&format!("mtls-{}", slug(&host)))
        .await
        .unwrap();
        let copy = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": entry.metadata.name, "namespace": second,
                         "labels": entry.metadata.labels},
            "spec": entry.data["spec"]});
        scratch.create(&client, &copy).await;
    });
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &first]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains(&format!("kept: namespace {second} still routes {host}")),
        "{}",
        ran.stdout
    );
    assert!(istio_objects().0.is_some());
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &second]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!(
            "destinationrule.networking.istio.io/mtls-originate-{} deleted",
            slug(&host)
        )),
        "{}",
        ran.stdout
    );
    let (rule, policy) = istio_objects();
    assert!(rule.is_none() && policy.is_none());
}

#[test]
fn single_cluster_connect_with_kyma_apirule_routes_by_virtualservice() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (single-cluster connect, APIRule)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let host = format!("one-{}.e2e.example.com", unique_suffix());
    record_connect(&mut scratch, &host);
    let context = current_context(&kubeconfig);
    let certs = tempfile::tempdir().unwrap();
    let (partner, caller) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        // ensure_istio_cr installs Kyma's APIRule CRD too: `--route auto` would pick it.
        ensure_istio_cr(&client).await;
        (
            scratch.namespace(&client, "one-partner").await,
            scratch.namespace(&client, "one-caller").await,
        )
    });
    let flags = |verb: &str, extra: &[&str]| {
        one_cluster_flags(
            verb,
            &context,
            &host,
            &partner,
            &caller,
            certs.path(),
            extra,
        )
    };

    // --route apirule: refused before anything is read or written, with the reason.
    let ran = run_args(&kubeconfig, &flags("connect", &["--route", "apirule"]));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("Host is occupied by another Virtual Service")
            && ran.stderr.contains("use --route virtualservice"),
        "{}",
        ran.stderr
    );
    assert!(!certs.path().join("ca.crt").exists());

    // --route auto: a VirtualService on the target side, and a note saying why.
    let ran = run_args(&kubeconfig, &flags("connect", &[]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("note: target and client are one cluster: the target routes by VirtualService, not APIRule"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stdout.contains(&format!(
            "target: virtualservice.networking.istio.io/mtls-{} created",
            slug(&host)
        )),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("apirule"), "{}", ran.stdout);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let rules = dynamic(
            &client,
            ("gateway.kyma-project.io", "v2", "APIRule"),
            "apirules",
            Some(&partner),
        )
        .list(&ListParams::default())
        .await
        .unwrap();
        assert!(rules.items.is_empty());
        // Both VirtualServices carry the host: what an APIRule would have been refused for.
        for ns in [&partner, &caller] {
            let vs = get_json(
                &client,
                ("networking.istio.io", "v1", "VirtualService"),
                "virtualservices",
                ns,
                &format!("mtls-{}", slug(&host)),
            )
            .await
            .unwrap();
            assert_eq!(vs["spec"]["hosts"], json!([host]));
        }
    });
    let ran = run_args(&kubeconfig, &flags("disconnect", &[]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert!(labelled(&client, &host).await.is_empty());
    });
}

/// The Deployment and Service Istio's Helm `gateway` chart renders for release `release` in
/// `ns`, with `istio: <istio>` (istio/istio 1.30.3 `manifests/charts/gateway/templates/
/// {_helpers.tpl,deployment.yaml,service.yaml}`, the pod annotation from `values.yaml`). No
/// kubelet runs them: the commands find them by the Deployment's pod template and the Service.
fn helm_gateway_objects(ns: &str, release: &str, istio: &str) -> [Value; 2] {
    let selector = json!({"app": release, "istio": istio});
    [
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": release, "namespace": ns},
               "spec": {"selector": {"matchLabels": selector},
                        "template": {"metadata": {
                            "annotations": {"inject.istio.io/templates": "gateway",
                                            "sidecar.istio.io/inject": "true"},
                            "labels": {"app": release, "istio": istio,
                                       "sidecar.istio.io/inject": "true"}},
                          "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": release, "namespace": ns},
               "spec": {"type": "ClusterIP", "selector": selector,
                        "ports": [{"name": "http2", "port": 80, "targetPort": 80},
                                  {"name": "https", "port": 443, "targetPort": 443}]}}),
    ]
}

/// Item 6 of issue 13 on a real API server: gateways installed by Istio's Helm chart in their
/// own namespaces, named by `--gateway-selector` alone (this shared cluster is Kyma, whose
/// defaults apply without a flag), found from their Deployments and Services. `enable` puts the
/// host's gateway-side objects into the egress gateway's namespace and `disable` finds them
/// there without a flag; `expose` binds its Gateway to the ingress gateway's pods and looks for
/// the server credential in their namespace.
#[test]
fn enable_disable_and_expose_with_gateways_outside_istio_system() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (Helm gateways outside istio-system)")
    else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let host = format!("helm-{suffix}.e2e.example.com");
    let (egress_label, ingress_label) = (format!("egress-{suffix}"), format!("ingress-{suffix}"));
    let (client_ns, egress_ns, ingress_ns, target_ns) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        let client_ns = scratch.namespace(&client, "helm-client").await;
        let egress_ns = scratch.namespace(&client, "helm-egress").await;
        let ingress_ns = scratch.namespace(&client, "helm-ingress").await;
        let target_ns = scratch.namespace(&client, "helm-target").await;
        for object in helm_gateway_objects(&egress_ns, "istio-egress", &egress_label)
            .iter()
            .chain(helm_gateway_objects(&ingress_ns, "istio-ingress", &ingress_label).iter())
        {
            scratch.create(&client, object).await;
        }
        (client_ns, egress_ns, ingress_ns, target_ns)
    });
    let selector = format!("istio={egress_label}");
    let ran = egress(
        &kubeconfig,
        &[
            "enable",
            "--host",
            &host,
            "-n",
            &client_ns,
            "--gateway-selector",
            &selector,
            "--restrict-to-namespace",
            "--no-wait",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "note: egress gateway: deployment {egress_ns}/istio-egress (pods {selector})"
        )),
        "{}",
        ran.stderr
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let dr = dynamic(
            &client,
            ("networking.istio.io", "v1", "DestinationRule"),
            "destinationrules",
            Some(&egress_ns),
        );
        assert!(
            dr.get_opt(&format!("mtls-originate-{}", slug(&host)))
                .await
                .unwrap()
                .is_some()
        );
        let subset = dynamic(
            &client,
            ("networking.istio.io", "v1", "DestinationRule"),
            "destinationrules",
            Some(&client_ns),
        )
        .get(&format!("mtls-egress-{}", slug(&host)))
        .await
        .unwrap();
        assert_eq!(
            subset.data["spec"]["host"],
            format!("istio-egress.{egress_ns}.svc.cluster.local")
        );
        let ap = dynamic(
            &client,
            ("security.istio.io", "v1", "AuthorizationPolicy"),
            "authorizationpolicies",
            Some(&egress_ns),
        )
        .get(&format!("mtls-restrict-{}", slug(&host)))
        .await
        .unwrap();
        assert_eq!(
            ap.data["spec"]["selector"]["matchLabels"],
            json!({"istio": egress_label})
        );
    });
    let ran = egress(&kubeconfig, &["status", "-n", &client_ns]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("egress gateway not Available")
            && ran
                .stdout
                .contains(&format!("secret {egress_ns}/client-credential missing")),
        "{}",
        ran.stdout
    );
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &client_ns]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for line in [
        format!(
            "destinationrule.networking.istio.io/mtls-originate-{} deleted",
            slug(&host)
        ),
        format!(
            "authorizationpolicy.security.istio.io/mtls-restrict-{} deleted",
            slug(&host)
        ),
    ] {
        assert!(ran.stdout.contains(&line), "{line}\n{}", ran.stdout);
    }
    assert_eq!(
        rt.block_on(async { labelled(&client(&kubeconfig).await, &host).await }),
        Vec::<String>::new()
    );

    let selector = format!("istio={ingress_label}");
    let ran = egress(
        &kubeconfig,
        &[
            "expose",
            "--host",
            &host,
            "--service",
            "httpbin:8000",
            "--route",
            "virtualservice",
            "-n",
            &target_ns,
            "--gateway-selector",
            &selector,
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "warning: secret {ingress_ns}/kyma-mtls-certs does not exist"
        )) && ran.stderr.contains(&format!(
            "note: ingress gateway: deployment {ingress_ns}/istio-ingress"
        )),
        "{}",
        ran.stderr
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let gateway = dynamic(
            &client,
            ("networking.istio.io", "v1", "Gateway"),
            "gateways",
            Some(&target_ns),
        )
        .get(&format!("mtls-{}", slug(&host)))
        .await
        .unwrap();
        assert_eq!(
            gateway.data["spec"]["selector"],
            json!({"istio": ingress_label})
        );
    });
    let ran = egress(&kubeconfig, &["disable", "--host", &host, "-n", &target_ns]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("gateway.networking.istio.io/"),
        "{}",
        ran.stdout
    );
}

/// Issue 15: a hundred hosts in one `enable --hosts-file`. The 57th host's ServiceEntry belongs
/// to another field manager, so the server's dry run refuses it: nothing of the whole plan is
/// written. With `--force-conflicts` the plan goes through in one run (the 57th `configured`,
/// the rest `created`), and again it is all `unchanged` — decided from the resourceVersions the
/// real server returns for the dry run and the write, without a GET per object.
#[test]
fn a_hundred_hosts_in_one_run_the_57th_refused_writes_nothing() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (a hundred hosts in one run)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let hosts: Vec<String> = (1..=100)
        .map(|i| format!("f{i:03}-{suffix}.e2e.example.com"))
        .collect();
    for host in &hosts {
        record_origination(&mut scratch, host);
    }
    let refused = &hosts[56];
    let entry = format!("mtls-{}", slug(refused));
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        let namespace = scratch.namespace(&client, "fleet").await;
        apply_as(
            &client,
            "platform-gitops",
            &json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": entry, "namespace": namespace},
                "spec": {"hosts": [refused], "location": "MESH_EXTERNAL", "resolution": "NONE",
                         "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}]}}),
        )
        .await;
        namespace
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("partners.txt");
    std::fs::write(&file, hosts.join("\n")).unwrap();
    let file = file.to_str().unwrap();
    let enable = [
        "enable",
        "--hosts-file",
        file,
        "-n",
        &namespace,
        "--no-wait",
    ];

    let ran = egress(&kubeconfig, &enable);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.starts_with(&format!(
            "error: conflict applying serviceentries.networking.istio.io/{entry} in namespace {namespace}: "
        )),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stdout, "");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts {
            assert_eq!(
                labelled(&client, host).await,
                Vec::<String>::new(),
                "{host}"
            );
        }
    });

    let mut forced = enable.to_vec();
    forced.push("--force-conflicts");
    let ran = egress(&kubeconfig, &forced);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 5 * 100 + 2, "{}", ran.stdout);
    let configured: Vec<&&str> = lines
        .iter()
        .filter(|l| l.ends_with(" configured"))
        .collect();
    // The 57th ServiceEntry, and the Istio CR unless another test switched it on already.
    assert!(
        configured
            .contains(&&format!("serviceentry.networking.istio.io/{entry} configured").as_str()),
        "{}",
        ran.stdout
    );
    for host in &hosts {
        let s = slug(host);
        for name in [
            format!("serviceentry.networking.istio.io/mtls-{s}"),
            format!("gateway.networking.istio.io/mtls-egress-{s}"),
            format!("destinationrule.networking.istio.io/mtls-egress-{s}"),
            format!("virtualservice.networking.istio.io/mtls-{s}"),
            format!("destinationrule.networking.istio.io/mtls-originate-{s}"),
        ] {
            let expected = if host == refused && name.starts_with("serviceentry") {
                "configured"
            } else {
                "created"
            };
            assert!(
                lines.contains(&format!("{name} {expected}").as_str()),
                "{name} {expected}: {}",
                ran.stdout
            );
        }
    }
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts {
            assert_eq!(labelled(&client, host).await.len(), 5, "{host}");
        }
    });

    let ran = egress(&kubeconfig, &enable);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().count(), 5 * 100 + 2);
    assert!(
        ran.stdout.lines().all(|l| l.ends_with(" unchanged")),
        "{}",
        ran.stdout
    );
    // Gone before the test ends (the namespace's deletion would take a while): other tests
    // count the hosts left on the cluster.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        let ours = ListParams::default().labels("app.kubernetes.io/managed-by=kubectl-mtls");
        for (group, kind, plural) in PER_HOST {
            dynamic(&client, (group, "v1", kind), plural, Some(&namespace))
                .delete_collection(&DeleteParams::default(), &ours)
                .await
                .unwrap();
        }
    });
}

/// Issue 15: `disable --hosts-file` of several hosts in one run on a real API server. Another
/// partner enabled from a second namespace (and named in the run) keeps every object, with its
/// origination rule reported as kept; the host left in the namespace keeps its objects, and so
/// does the shared access-log Telemetry; a server dry run of the same run deletes nothing.
#[test]
fn disable_of_several_hosts_in_one_run_leaves_the_other_partner_intact() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (disable of several hosts in one run)")
    else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let hosts: Vec<String> = (1..=5)
        .map(|i| format!("d{i}-{suffix}.e2e.example.com"))
        .collect();
    let partner = format!("partner-{suffix}.e2e.example.com");
    for host in hosts.iter().chain([&partner]) {
        record_origination(&mut scratch, host);
    }
    let (namespace, partner_ns) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        (
            scratch.namespace(&client, "fleet-off").await,
            scratch.namespace(&client, "partner").await,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.txt");
    std::fs::write(&all, hosts.join("\n")).unwrap();
    let ran = egress(
        &kubeconfig,
        &[
            "enable",
            "--hosts-file",
            all.to_str().unwrap(),
            "-n",
            &namespace,
            "--no-wait",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ran = egress(
        &kubeconfig,
        &["enable", "--host", &partner, "-n", &partner_ns, "--no-wait"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    // status of some hosts: their rows, and a host that is not there named on stderr.
    let missing = format!("missing-{suffix}.e2e.example.com");
    let ran = egress(
        &kubeconfig,
        &[
            "status", "-n", &namespace, "--host", &hosts[1], "--host", &missing, "--host",
            &hosts[0],
        ],
    );
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let rows: Vec<&str> = ran.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", ran.stdout);
    assert!(
        rows.iter()
            .all(|r| r.starts_with(&hosts[0]) || r.starts_with(&hosts[1])),
        "{}",
        ran.stdout
    );
    assert_eq!(
        ran.stderr.lines().collect::<Vec<_>>(),
        [format!(
            "error: nothing managed by kubectl-mtls for {missing} in namespace {namespace}; see `kubectl mtls-egress status` for the hosts there are"
        )],
    );

    // The first four hosts, and the partner (routed from its own namespace).
    let off = dir.path().join("off.txt");
    let mut listed = hosts[..4].to_vec();
    listed.insert(2, partner.clone());
    std::fs::write(&off, format!("# off\n{}\n", listed.join("\n"))).unwrap();
    let disable = [
        "disable",
        "--hosts-file",
        off.to_str().unwrap(),
        "-n",
        &namespace,
    ];

    // A server dry run of the whole run deletes nothing.
    let mut dry = disable.to_vec();
    dry.push("--dry-run=server");
    let ran = egress(&kubeconfig, &dry);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout
            .lines()
            .filter(|l| l.ends_with(" deleted (server dry run)"))
            .count(),
        4 * 5,
        "{}",
        ran.stdout
    );
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts {
            assert_eq!(labelled(&client, host).await.len(), 5, "{host}");
        }
    });

    let ran = egress(&kubeconfig, &disable);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 4 * 5 + 1, "{}", ran.stdout);
    // Each host's lines in the order of the file: the partner's between the second and third.
    let p = slug(&partner);
    assert_eq!(
        lines[10],
        format!(
            "destinationrule.networking.istio.io/mtls-originate-{p} kept: namespace {partner_ns} still routes {partner} through the egress gateway"
        ),
        "{}",
        ran.stdout
    );
    for (index, host) in hosts[..4].iter().enumerate() {
        let at = if index < 2 { index * 5 } else { index * 5 + 1 };
        let s = slug(host);
        assert_eq!(
            lines[at..at + 5],
            [
                format!("virtualservice.networking.istio.io/mtls-{s} deleted").as_str(),
                format!("gateway.networking.istio.io/mtls-egress-{s} deleted").as_str(),
                format!("destinationrule.networking.istio.io/mtls-egress-{s} deleted").as_str(),
                format!("serviceentry.networking.istio.io/mtls-{s} deleted").as_str(),
                format!("destinationrule.networking.istio.io/mtls-originate-{s} deleted").as_str(),
            ],
            "{}",
            ran.stdout
        );
    }
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in &hosts[..4] {
            assert_eq!(
                labelled(&client, host).await,
                Vec::<String>::new(),
                "{host}"
            );
        }
        assert_eq!(labelled(&client, &hosts[4]).await.len(), 5);
        let kept = labelled(&client, &partner).await;
        assert_eq!(kept.len(), 5, "{kept:?}");
        assert!(
            kept.iter()
                .all(|o| o.contains(&format!("/{partner_ns}/")) || o.contains("/istio-system/")),
            "{kept:?}"
        );
        assert!(access_log_telemetry(&client).await);
    });

    // The rest, from both namespaces; the objects are gone before the test ends (other tests
    // count the hosts left on the cluster).
    let ran = egress(
        &kubeconfig,
        &["disable", "--host", &hosts[4], "-n", &namespace],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ran = egress(
        &kubeconfig,
        &["disable", "--host", &partner, "-n", &partner_ns],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        for host in hosts.iter().chain([&partner]) {
            assert_eq!(
                labelled(&client, host).await,
                Vec::<String>::new(),
                "{host}"
            );
        }
    });
}
