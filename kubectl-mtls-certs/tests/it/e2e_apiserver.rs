//! `kubectl mtls-certs` against a real API server (`MTLS_E2E_KUBECONFIG`, e.g. `../shared/kapi`):
//! `secret` into a namespace held in Terminating and as a user bound to a Role, and the
//! kubeconfig shapes kubectl accepts (bearer token, exec credential plugin, client certificate as
//! data and as files, `certificate-authority` file, `tls-server-name`), each also run through the
//! real kubectl; and the ones that must fail in one line (a token the server rejects, a
//! `tls-server-name` the certificate does not name, a version-1 client certificate).
//!
//! Each test makes and removes its own namespace, users, ServiceAccount, Roles and CSRs; the shared
//! namespaces stay. Without the variable each test says so on stderr and passes (under `CI=true`
//! it fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Client;
use kube::api::ListParams;
use serde_json::{Value, json};
use test_support::e2e::{
    NamespacedUser, Scratch, base64, client, cluster_ca_pem, current_cluster, dynamic,
    ensure_shared_namespaces, forbidden_line, hold_terminating, in_ci, kubeconfig, kubectl_can_i,
    runtime, unique_suffix, user_certificate, write_kubeconfig, write_private,
};
use test_support::require_tool;

/// Runs `kubectl-mtls_certs ARGS --kubeconfig KUBECONFIG`; exit code, stdout, stderr.
fn certs(kubeconfig: impl AsRef<Path>, args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"))
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

/// A certificate bundle from `gen` in `dir`.
fn bundle(dir: &Path) -> PathBuf {
    let out = dir.join("bundle");
    let (code, _, err) = certs(
        "/dev/null",
        &[
            "gen",
            "--domain",
            "httpbin.example.com",
            "--client",
            "client.example.com",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    out
}

async fn secrets_named(client: &Client, namespace: &str, name: &str) -> usize {
    dynamic(client, ("", "v1", "Secret"), "secrets", Some(namespace))
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap()
        .items
        .len()
}

#[test]
fn secret_into_a_terminating_namespace_names_the_namespace_not_rbac() {
    let Some(kubeconfig) = kubeconfig("mtls-certs e2e (terminating namespace)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let namespace = rt.block_on(async {
        let client = client(&kubeconfig).await;
        let namespace = scratch.namespace(&client, "certs-terminating").await;
        hold_terminating(&client, &mut scratch, &namespace).await;
        namespace
    });
    let (code, out, err) = certs(
        &kubeconfig,
        &[
            "secret",
            "client",
            "-n",
            &namespace,
            "--dir",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        format!(
            "error: namespace {namespace} is being deleted (Terminating), so the API server refused to patch secrets/client-credential in namespace {namespace}; this is not a permission problem: wait until the namespace is gone (`kubectl get namespace {namespace}` says NotFound; if it stays Terminating, its status.conditions say what holds it) and create it again, or use another namespace\n"
        )
    );
}

#[test]
fn a_user_bound_to_a_role_is_told_what_it_may_not_do_and_nothing_is_applied() {
    let Some(kubeconfig) = kubeconfig("mtls-certs e2e (namespace-scoped user)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let name = format!("mtls-e2e-credential-{}", unique_suffix());
    let user = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_shared_namespaces(&client, &["istio-system"]).await;
        NamespacedUser::create(&client, &mut scratch, &kubeconfig, dir.path(), "certs").await
    });
    // The Secret goes to istio-system by default, outside the user's namespace.
    let secret = [
        "secret",
        "client",
        "--name",
        &name,
        "--dir",
        bundle.to_str().unwrap(),
    ];

    let (code, out, err) = certs(&user.kubeconfig, &secret);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    let denied = forbidden_line(&err);
    assert_eq!(
        (denied.user.as_str(), denied.resource.as_str()),
        (user.name.as_str(), "secrets")
    );
    assert_eq!(denied.namespace.as_deref(), Some("istio-system"));
    assert!(!kubectl_can_i(&user.kubeconfig, &denied), "{denied:?}");

    // May read Secrets in istio-system, not write them: refused at the dry run, nothing stored.
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        user.grant(
            &client,
            &mut scratch,
            "istio-system",
            &["secrets"],
            &["get"],
        )
        .await;
    });
    let (code, out, err) = certs(&user.kubeconfig, &secret);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    let denied = forbidden_line(&err);
    assert_eq!(
        (
            denied.verb.as_str(),
            denied.resource.as_str(),
            denied.namespace.as_deref()
        ),
        ("patch", "secrets", Some("istio-system"))
    );
    assert!(!kubectl_can_i(&user.kubeconfig, &denied), "{denied:?}");
    rt.block_on(async {
        let client = client(&kubeconfig).await;
        assert_eq!(secrets_named(&client, "istio-system", &name).await, 0);
    });
}

/// `kubectl get secret NAME -n NS` with `kubeconfig`: whether kubectl accepts the kubeconfig
/// (and the server its credentials).
fn kubectl_reads(kubeconfig: &Path, namespace: &str, secret: &str) -> bool {
    Command::new(require_tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "secret", secret, "-n", namespace, "-o", "name"])
        .output()
        .expect("kubectl runs")
        .status
        .success()
}

/// The certificate authority of the cluster of `MTLS_E2E_KUBECONFIG`'s signing key, when it is
/// a `../shared/kapi` cluster (`DIR/certs/ca.{crt,key}` next to `DIR/kubeconfig`).
fn kapi_ca(kubeconfig: &str) -> Option<(PathBuf, PathBuf)> {
    let certs = Path::new(kubeconfig).parent()?.join("certs");
    let (crt, key) = (certs.join("ca.crt"), certs.join("ca.key"));
    (crt.is_file() && key.is_file()).then_some((crt, key))
}

#[test]
fn kubeconfig_shapes_kubectl_accepts_work_and_the_others_fail_in_one_line() {
    let Some(admin) = kubeconfig("mtls-certs e2e (kubeconfig variants)") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&admin);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = bundle(d);
    let suffix = unique_suffix();
    let cert_user = format!("mtls-e2e-kc-{suffix}");
    let v1_user = format!("mtls-e2e-v1-{suffix}");
    let secret = "reader-check";
    let (namespace, cert, key, ca_pem) = rt.block_on(async {
        let client = client(&admin).await;
        let namespace = scratch.namespace(&client, "kubeconfigs").await;
        scratch
            .create(
                &client,
                &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "reader", "namespace": namespace}}),
            )
            .await;
        scratch
            .create(
                &client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "read-secrets", "namespace": namespace},
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            )
            .await;
        let subjects = json!([
            {"kind": "ServiceAccount", "name": "reader", "namespace": namespace},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": cert_user},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": v1_user},
        ]);
        scratch
            .create(
                &client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "read-secrets", "namespace": namespace},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-secrets"},
                    "subjects": subjects}),
            )
            .await;
        let (cert, key) = user_certificate(&client, &mut scratch, &cert_user, &[]).await;
        (namespace, cert, key, cluster_ca_pem(&admin).await)
    });
    let (code, _, err) = certs(
        &admin,
        &[
            "secret",
            "client",
            "--name",
            secret,
            "-n",
            &namespace,
            "--dir",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let out = Command::new(require_tool("kubectl"))
        .args([
            "--kubeconfig",
            &admin,
            "create",
            "token",
            "reader",
            "-n",
            &namespace,
        ])
        .args(["--duration", "10m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let cluster = current_cluster(&admin);
    let ca_file = write_private(&d.join("ca.crt"), ca_pem.as_bytes());
    let mut cluster_ca_file = cluster.clone();
    let map = cluster_ca_file.as_object_mut().unwrap();
    map.remove("certificate-authority-data");
    map.insert("certificate-authority".into(), json!(ca_file));
    let with_server_name = |name: &str| {
        let mut c = cluster.clone();
        c["tls-server-name"] = json!(name);
        c
    };
    let exec_plugin = write_private(
        &d.join("credential-plugin.sh"),
        format!(
            "#!/bin/sh\ncat <<'EOF'\n{}\nEOF\n",
            json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                   "status": {"token": token}})
        )
        .as_bytes(),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exec_plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let cert_file = write_private(&d.join("user.crt"), cert.as_bytes());
    let key_file = write_private(&d.join("user.key"), key.as_bytes());
    let token_user = json!({"token": token});
    let accepted: Vec<(&str, Value, Value)> = vec![
        ("bearer token", cluster.clone(), token_user.clone()),
        (
            "exec credential plugin",
            cluster.clone(),
            json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                            "command": exec_plugin, "interactiveMode": "Never"}}),
        ),
        (
            "client certificate data",
            cluster.clone(),
            json!({"client-certificate-data": base64(cert.as_bytes()),
                   "client-key-data": base64(key.as_bytes())}),
        ),
        (
            "client certificate files",
            cluster.clone(),
            json!({"client-certificate": cert_file, "client-key": key_file}),
        ),
        (
            "certificate-authority file",
            cluster_ca_file,
            token_user.clone(),
        ),
        (
            "tls-server-name",
            with_server_name("kubernetes.default"),
            token_user.clone(),
        ),
    ];
    let inspect = [
        "inspect",
        &format!("secret/{secret}"),
        "-n",
        &namespace,
        "-o",
        "json",
    ];
    for (i, (shape, cluster, user)) in accepted.iter().enumerate() {
        let file = write_kubeconfig(d, &format!("accepted-{i}.kubeconfig"), cluster, user);
        assert!(
            kubectl_reads(&file, &namespace, secret),
            "{shape}: kubectl does not accept it"
        );
        let (code, out, err) = certs(&file, &inspect);
        assert_eq!(code, 0, "{shape}: {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert!(
            report["serves"]
                .as_str()
                .unwrap()
                .starts_with("client side"),
            "{shape}: {out}"
        );
    }

    // What the server or rustls refuses: one line each, cause and hint, exit 3.
    let refused = [
        (
            "a token the server does not know",
            cluster.clone(),
            json!({"token": "not-a-token"}),
            "error: the API server rejected our credentials (401 Unauthorized) while trying to get secrets/reader-check in namespace ",
        ),
        (
            "a tls-server-name the certificate does not name",
            with_server_name("not-the-api-server.invalid"),
            token_user.clone(),
            "error: the API server's certificate is not accepted while trying to get secrets/reader-check in namespace ",
        ),
    ];
    for (i, (shape, cluster, user, line)) in refused.iter().enumerate() {
        let file = write_kubeconfig(d, &format!("refused-{i}.kubeconfig"), cluster, user);
        assert!(
            !kubectl_reads(&file, &namespace, secret),
            "{shape}: kubectl accepts it"
        );
        let (code, out, err) = certs(&file, &inspect);
        assert_eq!(code, 3, "{shape}: {err}");
        assert!(out.is_empty(), "{shape}: {out}");
        assert!(err.starts_with(line), "{shape}: {err}");
        assert_eq!(err.lines().count(), 1, "{shape}: {err}");
        // Neither a network problem nor rustls's type names.
        assert!(
            !err.contains("VPN") && !err.contains("DnsName("),
            "{shape}: {err}"
        );
    }

    // A version-1 client certificate: kubectl (Go) accepts it, rustls does not. It needs the
    // cluster CA's key, which only a ../shared/kapi cluster hands out.
    let Some((ca_crt, ca_key)) = kapi_ca(&admin) else {
        assert!(
            !in_ci(),
            "under CI the e2e cluster is ../shared/kapi, with DIR/certs/ca.key"
        );
        eprintln!(
            "SKIPPED the version-1 certificate case: MTLS_E2E_KUBECONFIG is not in a ../shared/kapi DIR"
        );
        return;
    };
    let (v1_key, csr) = (d.join("v1.key"), d.join("v1.csr"));
    let out = Command::new(require_tool("openssl"))
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", &format!("/CN={v1_user}"), "-keyout"])
        .arg(&v1_key)
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v1_cert = d.join("v1.crt");
    // `openssl x509 -req` without extensions writes an X.509 version 1 certificate.
    let out = Command::new(require_tool("openssl"))
        .args(["x509", "-req", "-days", "1", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca_crt)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&v1_cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v1_pem = std::fs::read_to_string(&v1_cert).unwrap();
    let text = Command::new(require_tool("openssl"))
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&v1_cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "openssl wrote no v1 certificate"
    );
    let file = write_kubeconfig(
        d,
        "v1.kubeconfig",
        &cluster,
        &json!({"client-certificate-data": base64(v1_pem.as_bytes()),
                "client-key-data": base64(&std::fs::read(&v1_key).unwrap())}),
    );
    assert!(
        kubectl_reads(&file, &namespace, secret),
        "kubectl accepts a v1 client certificate"
    );
    let (code, out, err) = certs(&file, &inspect);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        format!(
            "error: the client certificate in kubeconfig {} is an X.509 version 1 certificate: kubectl accepts it, but this plugin's TLS library (rustls) takes only version 3; have it issued again as a version 3 certificate (a CertificateSigningRequest approved with `kubectl certificate approve` gives one), or give this user a token or an exec credential plugin\n",
            file.display()
        )
    );
}
