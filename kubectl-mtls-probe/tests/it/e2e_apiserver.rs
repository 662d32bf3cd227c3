//! `kubectl mtls-probe doctor` against a real API server (`MTLS_E2E_KUBECONFIG`, e.g.
//! `../shared/kapi`), as a user bound to a Role in one namespace: it must diagnose what it may
//! read, say on stderr what it skipped, and never report as missing what it could not read.
//!
//! The test makes and removes its own namespace, user (certificate from the CSR API), Roles and
//! objects; CRDs, `istio-system`, `kyma-system` and the Istio CR
//! are shared and stay. Without the variable it says so on stderr and passes (under `CI=true`
//! it fails).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use test_support::e2e::{
    NamespacedUser, Scratch, client, ensure_istio_cr, kubeconfig, runtime, unique_suffix,
};

/// Runs a plugin binary with `--kubeconfig`; returns exit code, stdout, stderr (also shown on
/// stderr with `MTLS_E2E_SHOW=1` and `--nocapture`).
fn run(bin: &str, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    if std::env::var_os("MTLS_E2E_SHOW").is_some() {
        eprintln!(
            "$ {bin} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The rule ids of doctor's JSON findings.
fn rules(stdout: &str) -> Vec<String> {
    let findings: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn doctor_as_a_user_bound_to_a_role_degrades_with_notes_and_no_false_findings() {
    let Some(admin) = kubeconfig("mtls-probe e2e (doctor, namespace-scoped user)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&admin);
    let dir = tempfile::tempdir().unwrap();
    let host = format!("doc-{}.e2e.example.com", unique_suffix());
    let user = rt.block_on(async {
        let client = client(&admin).await;
        ensure_istio_cr(&client).await;
        let user =
            NamespacedUser::create(&client, &mut scratch, &admin, dir.path(), "doctor").await;
        // Half a setup in the user's namespace: an egress Gateway for the host, and no
        // origination rule in istio-system. A doctor that can read istio-system must say so.
        scratch
            .create(
                &client,
                &json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                    "metadata": {"name": "half-done", "namespace": user.namespace},
                    "spec": {"selector": {"istio": "egressgateway"},
                             "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                          "hosts": [host], "tls": {"mode": "ISTIO_MUTUAL"}}]}}),
            )
            .await;
        user
    });
    let doctor = ["doctor", "--host", &host, "-o", "json"];
    let probe = env!("CARGO_BIN_EXE_kubectl-mtls_probe");

    // Only its own namespace: every cluster-wide or istio-system read is skipped with a note, and
    // nothing about the host is reported (doctor could not look at istio-system).
    let (code, out, err) = run(probe, &user.kubeconfig, &doctor);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(rules(&out), Vec::<String>::new());
    assert!(
        err.lines().all(|l| l.starts_with("note: not allowed to ")),
        "{err}"
    );
    for skipped in [
        "list secrets in namespace istio-system: credential checks skipped",
        // Not cluster-wide, so tried where Kyma keeps it: the note names the last refusal.
        "list istios.operator.kyma-project.io in namespace kyma-system: Istio CR checks skipped",
        "get deployments.apps in namespace istio-system: egress gateway checks skipped",
        "in namespace istio-system: routing checks skipped",
        "list namespaces cluster-wide: lockdown checks skipped",
    ] {
        assert!(err.contains(skipped), "{skipped:?} not in {err}");
    }

    // Allowed to read the routing objects of istio-system too: the routing checks run on its
    // namespace and istio-system, and find the missing origination rule.
    rt.block_on(async {
        let client = client(&admin).await;
        user.grant(
            &client,
            &mut scratch,
            "istio-system",
            &[
                "serviceentries.networking.istio.io",
                "gateways.networking.istio.io",
                "virtualservices.networking.istio.io",
                "destinationrules.networking.istio.io",
            ],
            &["get", "list"],
        )
        .await;
    });
    let (code, out, err) = run(probe, &user.kubeconfig, &doctor);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        rules(&out).contains(&"origination-missing".to_string()),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains(&format!(
            "routing checks read only namespaces {} and istio-system",
            user.namespace
        )),
        "{err}"
    );
    assert!(!err.contains("routing checks skipped"), "{err}");
}
