//! `kubectl mtls-lockdown apply` against a real API server (`MTLS_E2E_KUBECONFIG`, e.g.
//! `../shared/kapi`): into a namespace held in Terminating, and as a user bound to a Role in its
//! own namespace. The API server decides both; the fake cannot.
//!
//! Each test makes and removes its own namespace, user (certificate from the CSR API) and Roles;
//! the Sidecar CRD and the shared namespaces stay. Without the variable each test says so on
//! stderr and passes (under `CI=true` it fails).

use std::path::Path;

use kube::Client;
use kube::api::ListParams;
use serde_json::json;
use test_support::e2e::{
    NamespacedUser, Scratch, client, dynamic, ensure_shared_namespaces, forbidden_line,
    hold_terminating, install_crds, kubeconfig, kubectl_can_i, runtime,
};

const SIDECAR_CRD: &str = "sidecars.networking.istio.io";

/// Runs `kubectl-mtls_lockdown ARGS --kubeconfig KUBECONFIG`; exit code, stdout, stderr.
fn lockdown(kubeconfig: impl AsRef<Path>, args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_lockdown"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig.as_ref())
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The lockdown objects in `namespace`: NetworkPolicies and Sidecars, as `Kind/name`.
async fn lockdown_objects(client: &Client, namespace: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (gvk, plural) in [
        (
            ("networking.k8s.io", "v1", "NetworkPolicy"),
            "networkpolicies",
        ),
        (("networking.istio.io", "v1", "Sidecar"), "sidecars"),
    ] {
        for o in dynamic(client, gvk, plural, Some(namespace))
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            found.push(format!("{}/{}", gvk.2, o.metadata.name.unwrap_or_default()));
        }
    }
    found
}

#[test]
fn apply_into_a_terminating_namespace_names_the_namespace_not_rbac() {
    let Some(kubeconfig) = kubeconfig("mtls-lockdown e2e (terminating namespace)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        install_crds(&client, &[SIDECAR_CRD]).await;
        let namespace = scratch.namespace(&client, "lockdown-terminating").await;
        hold_terminating(&client, &mut scratch, &namespace).await;
        namespace
    });
    let (code, out, err) = lockdown(
        &kubeconfig,
        &[
            "apply",
            "-n",
            &namespace,
            "--dns-ip",
            "10.96.0.10",
            "--registry-only",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with(&format!(
            "error: namespace {namespace} is being deleted (Terminating), so the API server refused to patch "
        )),
        "{err}"
    );
    assert!(err.contains("this is not a permission problem"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("RBAC"), "{err}");
}

#[test]
fn a_user_bound_to_a_role_is_told_what_it_may_not_do_and_nothing_is_applied() {
    let Some(kubeconfig) = kubeconfig("mtls-lockdown e2e (namespace-scoped user)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    // In its namespace it may read what apply reads and write Sidecars, but not NetworkPolicies.
    let rules = json!([
        {"apiGroups": [""], "resources": ["namespaces", "pods", "services"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["sidecars"], "verbs": ["*"]},
    ]);
    let user = rt.block_on(async {
        let client = client(&kubeconfig).await;
        install_crds(&client, &[SIDECAR_CRD]).await;
        ensure_shared_namespaces(&client, &["istio-system", "kube-system", "kyma-system"]).await;
        NamespacedUser::with_rules(
            &client,
            &mut scratch,
            &kubeconfig,
            dir.path(),
            "lockdown",
            rules,
        )
        .await
    });
    let apply = ["apply", "--dns-ip", "10.96.0.10", "--registry-only"];

    // Only its namespace: apply reads kube-system (kube-dns, node-local-dns) first.
    let (code, out, err) = lockdown(&user.kubeconfig, &apply);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    let denied = forbidden_line(&err);
    assert_eq!(denied.user, user.name);
    assert!(!kubectl_can_i(&user.kubeconfig, &denied), "{denied:?}");

    // With those reads granted, the NetworkPolicy is refused in the server dry run of the whole
    // plan, so the Sidecar it may write is not created either.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        user.grant(
            &client,
            &mut scratch,
            "kube-system",
            &["services", "daemonsets.apps"],
            &["get"],
        )
        .await;
        user.grant(
            &client,
            &mut scratch,
            "istio-system",
            &["services"],
            &["get"],
        )
        .await;
        user.grant(
            &client,
            &mut scratch,
            "kyma-system",
            &["istios.operator.kyma-project.io"],
            &["list"],
        )
        .await;
    });
    let (code, out, err) = lockdown(&user.kubeconfig, &apply);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    let denied = forbidden_line(&err);
    assert_eq!(
        (
            denied.user.as_str(),
            denied.verb.as_str(),
            denied.resource.as_str(),
            denied.namespace.as_deref()
        ),
        (
            user.name.as_str(),
            "patch",
            "networkpolicies.networking.k8s.io",
            Some(user.namespace.as_str())
        )
    );
    assert!(!kubectl_can_i(&user.kubeconfig, &denied), "{denied:?}");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(
            lockdown_objects(&client, &user.namespace).await,
            Vec::<String>::new()
        );
    });
}
