//! `kubectl mtls-lockdown` against a live API server, when `MTLS_E2E_KUBECONFIG` names one:
//! apply (created, then unchanged), a server dry run, live explain on a pod of the namespace,
//! remove (deleted, then nothing left). It installs the Sidecar CRD from ../shared/crds when the
//! cluster lacks it (and leaves it: other tests use it at the same time), works in its own
//! namespace and deletes it at the end, also when an assertion fails. Without the variable it says
//! so on stderr and passes.

use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};
use test_support::e2e::{client, install_crds, kubeconfig, runtime};

const SIDECAR_CRD: &str = "sidecars.networking.istio.io";

/// Deletes the namespace when dropped.
struct Cleanup {
    kubeconfig: String,
    namespace: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (kubeconfig, namespace) = (self.kubeconfig.clone(), self.namespace.clone());
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let api: Api<Namespace> = Api::all(client(&kubeconfig).await);
                let _ = api.delete(&namespace, &DeleteParams::default()).await;
            })
        })
        .join();
    }
}

fn lockdown(kubeconfig: &str, namespace: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_lockdown"))
        .args(args)
        .args(["--kubeconfig", kubeconfig, "-n", namespace])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn apply_explain_remove_on_a_live_cluster() {
    let Some(kubeconfig) = kubeconfig("e2e (mtls-lockdown)") else {
        return;
    };
    let suffix = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    let namespace = format!("mtls-e2e-lockdown-{suffix:08x}");
    let rt = runtime();
    let has_kube_dns = rt.block_on(async {
        let client = client(&kubeconfig).await;
        install_crds(&client, &[SIDECAR_CRD]).await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "probe", "labels": {"app": "probe"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}
        }))
        .unwrap();
        Api::<Pod>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        Api::<Service>::namespaced(client, "kube-system")
            .get_opt("kube-dns")
            .await
            .unwrap()
            .is_some()
    });
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
    };
    let mut apply = vec!["apply", "--registry-only"];
    if !has_kube_dns {
        // A bare API server (no DNS add-on): the detection error is tested offline; go on here.
        let (code, _, stderr) = lockdown(&kubeconfig, &namespace, &apply);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("--dns-ip"), "{stderr}");
        apply.extend(["--dns-ip", "10.96.0.10"]);
    }
    let policy = "networkpolicy.networking.k8s.io/mtls-lockdown";
    let sidecar = "sidecar.networking.istio.io/mtls-registry-only";

    let mut dry = apply.clone();
    dry.push("--dry-run=server");
    let (code, out, err) = lockdown(&kubeconfig, &namespace, &dry);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("{policy} created (server dry run)\n{sidecar} created (server dry run)\n")
    );

    let (code, out, err) = lockdown(&kubeconfig, &namespace, &apply);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{policy} created\n{sidecar} created\n"));
    let (code, out, err) = lockdown(&kubeconfig, &namespace, &apply);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("{policy} unchanged\n{sidecar} unchanged\n"),
        "idempotent"
    );

    let (code, out, err) = lockdown(
        &kubeconfig,
        &namespace,
        &["explain", "--pod", "probe", "--to-ip", "1.1.1.1:443"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("{namespace}/probe -> 1.1.1.1:443/TCP: DENIED\n")),
        "{out}"
    );
    assert!(
        out.contains("networkpolicy") && out.contains("/mtls-lockdown"),
        "{out}"
    );
    let (code, out, err) = lockdown(&kubeconfig, &namespace, &["explain", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let matrix: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(matrix["rows"][0]["pod"], format!("{namespace}/probe"));
    assert_eq!(
        matrix["rows"][0]["cells"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "denied"
    );

    let (code, out, err) = lockdown(&kubeconfig, &namespace, &["remove"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{policy} deleted\n{sidecar} deleted\n"));
    let (code, out, err) = lockdown(&kubeconfig, &namespace, &["remove"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.is_empty() && err.contains("No lockdown resources found"),
        "{out}{err}"
    );
    let (code, out, _) = lockdown(
        &kubeconfig,
        &namespace,
        &["explain", "--pod", "probe", "--to-ip", "1.1.1.1:443"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains(": ALLOWED\n"),
        "nothing isolates the pod after remove: {out}"
    );
}
