//! `kubectl mtls-certs secret` against a live API server, when `MTLS_E2E_KUBECONFIG` names one.
//!
//! The test creates its own namespace, applies both credential Secrets (created, then unchanged,
//! then — a new bundle — refused without --force, configured with it), runs a server dry run and `inspect secret/...`, and
//! deletes the namespace at the end, also when an assertion fails. Without the variable it says
//! so on stderr (uncaptured) and passes without touching anything.

use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use test_support::e2e::{client, kubeconfig, runtime};

/// Deletes the test namespace when dropped.
struct NamespaceGuard {
    kubeconfig: String,
    name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let (kubeconfig, name) = (self.kubeconfig.clone(), self.name.clone());
        // A fresh thread: drop may run while a runtime is active on this one.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let api: Api<Namespace> = Api::all(client(&kubeconfig).await);
                let _ = api.delete(&name, &DeleteParams::default()).await;
            })
        })
        .join();
    }
}

fn certs(kubeconfig: &str, namespace: &str, args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .args(["--kubeconfig", kubeconfig, "-n", namespace])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// SHA-256 of the first certificate in a PEM file, as the refusal prints it.
fn fingerprint(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    shared::pki::sha256_hex(shared::pki::Certificate::parse_chain(&text, "test").unwrap()[0].der())
}

fn gen_bundle(dir: &Path, force: bool) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"));
    cmd.args([
        "gen",
        "--domain",
        "httpbin.example.com",
        "--client",
        "client.example.com",
        "--out",
    ])
    .arg(dir);
    if force {
        cmd.arg("--force");
    }
    assert!(cmd.output().unwrap().status.success());
}

#[test]
fn secret_applies_idempotently_to_a_live_cluster() {
    let Some(kubeconfig) = kubeconfig("e2e_secret") else {
        return;
    };
    let suffix: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos());
    let namespace = format!("mtls-e2e-certs-{:08x}", suffix);
    let rt = runtime();
    rt.block_on(async {
        let api: Api<Namespace> = Api::all(client(&kubeconfig).await);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns).await.unwrap();
    });
    let _guard = NamespaceGuard {
        kubeconfig: kubeconfig.clone(),
        name: namespace.clone(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen_bundle(dir, false);

    let run = |args: &[&str]| certs(&kubeconfig, &namespace, args, dir);
    let (code, out, err) = run(&["secret", "target", "--dry-run=server"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "secret/kyma-mtls-certs created (server dry run)"
    );
    let (code, out, err) = run(&["secret", "target"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "secret/kyma-mtls-certs created");
    let (code, out, _) = run(&["secret", "target"]);
    assert_eq!((code, out.trim()), (0, "secret/kyma-mtls-certs unchanged"));
    let (code, out, err) = run(&["secret", "client"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "secret/client-credential created");

    // Request logging: `-v` logs each request (never a body: this one is a Secret), RUST_LOG
    // takes `target=level` directives instead, and a RUST_LOG of `error` silences them.
    let logged = |verbose: Option<&str>, rust_log: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"));
        cmd.args(["secret", "client", "--dry-run=server", "--dir"])
            .arg(dir)
            .args(["--kubeconfig", &kubeconfig, "-n", &namespace])
            .args(verbose)
            .env_remove("RUST_LOG");
        if let Some(directives) = rust_log {
            cmd.env("RUST_LOG", directives);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let key = std::fs::read_to_string(dir.join("client.key")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    for (verbose, rust_log, logs) in [
        (None, None, false),
        (Some("-v"), None, true),
        (Some("--v=9"), None, true),
        (None, Some("warn,shared::cluster=debug"), true),
        (Some("-v"), Some("error"), false),
    ] {
        let err = logged(verbose, rust_log);
        assert_eq!(
            err.contains("PATCH (server-side apply)"),
            logs,
            "{verbose:?} RUST_LOG={rust_log:?}: {err}"
        );
        assert!(
            !err.contains("PRIVATE KEY") && !err.contains(key_line),
            "{err}"
        );
    }

    let stored = rt.block_on(async {
        let api: Api<Secret> = Api::namespaced(client(&kubeconfig).await, &namespace);
        api.get("client-credential").await.unwrap()
    });
    let keys: Vec<_> = stored.data.unwrap().into_keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(
        stored.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "kubectl-mtls"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"))
        .args([
            "inspect",
            "secret/client-credential",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .args(["-n", &namespace])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["serves"]
            .as_str()
            .unwrap()
            .starts_with("client side")
    );

    // A new bundle: the Secret holds another certificate now, so it is not replaced without
    // --force (issue 13: it may be another partner's), and the refusal names both.
    let old_fingerprint = fingerprint(&dir.join("server.crt"));
    gen_bundle(dir, true);
    let new_fingerprint = fingerprint(&dir.join("server.crt"));
    let (code, out, err) = run(&["secret", "target"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        format!(
            "secret {namespace}/kyma-mtls-certs holds another certificate (subject CN=httpbin.example.com, sha256 {old_fingerprint})"
        ),
        format!("than the one to write (subject CN=httpbin.example.com, sha256 {new_fingerprint})"),
        "or pass --force to replace it".to_string(),
    ] {
        assert!(err.contains(&needle), "{needle:?} not in {err}");
    }
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let (code, out, err) = run(&["secret", "target", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "secret/kyma-mtls-certs configured");

    // A Secret that does not exist is a clear cluster error (exit 3), not a crash.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"))
        .args(["inspect", "secret/does-not-exist", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["-n", &namespace])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
