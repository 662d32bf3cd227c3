//! `kubectl mtls-probe check` against a live API server, when `MTLS_E2E_KUBECONFIG` names one:
//! what an API server alone can answer. The real API server validates and stores our probe pod
//! spec (admission included), the check reports what is missing (no egress gateway, no mesh in
//! a bare cluster) with exit 1, and every probe pod it created is gone afterwards. The test works
//! in its own namespace and deletes it at the end, also when an assertion fails. Without the
//! variable it says so on stderr and passes.

use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::Value;
use test_support::e2e::{client, kubeconfig, runtime};

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

#[test]
fn check_on_a_live_api_server_creates_a_valid_probe_pod_and_removes_it() {
    let Some(kubeconfig) = kubeconfig("e2e (mtls-probe check)") else {
        return;
    };
    let suffix = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    let namespace = format!("mtls-e2e-check-{suffix:08x}");
    let rt = runtime();
    rt.block_on(async {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client(&kubeconfig).await)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    });
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_probe"))
        .args([
            "check",
            "--host",
            "httpbin.example.com",
            "--start-timeout",
            // No kubelet on a bare API server: the pod never starts, so waiting longer only
            // slows the suite (a cluster that does start it within 3 s still ends in exit 1).
            "3",
            "-o",
            "json",
        ])
        .args(["--kubeconfig", &kubeconfig, "-n", &namespace])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // A cluster error (exit 3) would mean the API server refused our pod spec.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][1]["name"], "probe-pod");
    assert!(stderr.contains("creating pod/mtls-probe-mesh-"), "{stderr}");
    assert!(stderr.contains(" deleted"), "{stderr}");
    let left = rt.block_on(async {
        Api::<Pod>::namespaced(client(&kubeconfig).await, &namespace)
            .list(&ListParams::default().labels(kubectl_mtls_probe::check::pod::RUN_LABEL))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
    });
    assert_eq!(left, 0, "probe pods left behind");
}
