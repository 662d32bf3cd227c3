//! `explain -f` on the manifests users have: workloads of every kind (`fixtures/shop/workloads.yaml`,
//! in `helm template` style, read from stdin), the typed lists the API returns
//! (`fixtures/shop/raw/`: `kubectl get --raw /api/v1/namespaces/shop/pods` and `…/namespaces`,
//! captured from a real kube-apiserver v1.32 after `kubectl apply -f fixtures/shop/pods.yaml`), and
//! directories holding files that are not manifests. The verdicts on workloads and on the raw lists
//! equal those on the equivalent hand-written Pods (`fixtures/shop/pods.yaml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn shop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/shop")
        .join(name)
}

fn cluster() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster.yaml")
}

/// `explain -n shop -o json` over `files` (and `stdin` as `-f -` when given): stdout as JSON,
/// and stderr.
fn explain_json(files: &[PathBuf], stdin: Option<&Path>, extra: &[&str]) -> (Value, String) {
    let mut cmd = Command::cargo_bin("kubectl-mtls_lockdown").unwrap();
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("RUST_LOG")
        .args(["explain", "-n", "shop", "-o", "json"]);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    if let Some(path) = stdin {
        cmd.args(["-f", "-"]).pipe_stdin(path).unwrap();
    }
    let out = cmd.args(extra).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "stderr: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// `shop/deployment/web` → `shop/web`: a workload's pod under the name of the hand-written Pod.
fn pod_name(name: &str) -> String {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        [ns, _kind, pod] => format!("{ns}/{pod}"),
        _ => name.to_string(),
    }
}

/// The matrix as `pod → verdict per column` (columns by name), pods under their hand-written names.
fn matrix_verdicts(matrix: &Value) -> BTreeMap<String, Vec<(String, Value)>> {
    let columns: Vec<String> = matrix["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    matrix["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells = row["cells"].as_array().unwrap();
            (
                pod_name(row["pod"].as_str().unwrap()),
                columns.iter().cloned().zip(cells.iter().cloned()).collect(),
            )
        })
        .collect()
}

/// Path reports as `pod → verdict` (pods under their hand-written names).
fn path_verdicts(report: &Value) -> BTreeMap<String, String> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                pod_name(r["pod"].as_str().unwrap()),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const SEVEN: [&str; 7] = [
    "shop/agent",
    "shop/cache",
    "shop/db",
    "shop/legacy",
    "shop/migrate",
    "shop/report",
    "shop/web",
];

#[test]
fn workloads_on_stdin_get_the_verdicts_of_their_hand_written_pods() {
    let policy = shop("policy.yaml");
    let (by_hand, _) = explain_json(&[cluster(), policy.clone(), shop("pods.yaml")], None, &[]);
    let (workloads, stderr) =
        explain_json(&[cluster(), policy], Some(&shop("workloads.yaml")), &[]);
    let by_hand = matrix_verdicts(&by_hand);
    assert_eq!(by_hand.keys().collect::<Vec<_>>(), SEVEN);
    assert_eq!(matrix_verdicts(&workloads), by_hand);
    // The web tier is isolated: UDP DNS only. The others are not isolated at all.
    assert_eq!(by_hand["shop/web"][0], ("DNS/UDP".into(), "allowed".into()));
    assert_eq!(by_hand["shop/web"][1], ("DNS/TCP".into(), "denied".into()));
    assert_eq!(
        by_hand["shop/agent"][1],
        ("DNS/TCP".into(), "allowed".into())
    );
    // Helm's output names no namespace: said once, with the count of objects it applies to.
    let notes: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        notes,
        ["note: 7 object(s) in the files name no namespace: read as in namespace shop (-n)"]
    );
}

#[test]
fn a_service_with_a_named_target_port_reaches_the_statefulsets_named_container_port() {
    let files = [cluster(), shop("policy.yaml")];
    let to_db = ["--to", "db.shop:5432"];
    let (by_hand, _) = explain_json(
        &[files[0].clone(), files[1].clone(), shop("pods.yaml")],
        None,
        &to_db,
    );
    let (workloads, _) = explain_json(&files, Some(&shop("workloads.yaml")), &to_db);
    let by_hand = path_verdicts(&by_hand);
    assert_eq!(path_verdicts(&workloads), by_hand);
    // Only the web tier may reach the database (egress from its policy, ingress at db).
    let allowed: Vec<&str> = by_hand
        .iter()
        .filter(|(_, v)| *v == "allowed")
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(allowed, ["shop/cache", "shop/migrate", "shop/web"]);
    // The hop lands on the StatefulSet's pod, on the port its template names `postgres`.
    let (one, _) = explain_json(
        &files,
        Some(&shop("workloads.yaml")),
        &["--pod", "deployment/web", "--to", "db.shop:5432"],
    );
    let results = one["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["pod"], "shop/deployment/web");
    let hop = &results[0]["hops"][0];
    assert!(
        hop["description"]
            .as_str()
            .unwrap()
            .contains("shop/statefulset/db port 5432"),
        "{hop}"
    );
}

#[test]
fn typed_lists_as_the_api_returns_them_are_read() {
    let raw = |name| shop("raw").join(name);
    let (from_api, stderr) = explain_json(
        &[
            cluster(),
            shop("policy.yaml"),
            raw("namespaces.json"),
            raw("pods.json"),
        ],
        None,
        &[],
    );
    let (by_hand, _) = explain_json(
        &[cluster(), shop("policy.yaml"), shop("pods.yaml")],
        None,
        &[],
    );
    assert_eq!(matrix_verdicts(&from_api), matrix_verdicts(&by_hand));
    assert!(
        stderr.is_empty(),
        "every object from the API has a namespace: {stderr}"
    );
}

#[test]
fn a_directory_skips_what_is_not_a_manifest_and_recurses_with_r() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(cluster(), dir.join("cluster.yaml")).unwrap();
    std::fs::copy(shop("policy.yaml"), dir.join("policy.yaml")).unwrap();
    std::fs::write(dir.join("README.md"), "# shop\n\nDeploy with helm.\n").unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name": "shop-ui", "version": "1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        "replicas: 3\nimage: {tag: \"1.27\"}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("apps")).unwrap();
    std::fs::copy(shop("pods.yaml"), dir.join("apps/pods.yaml")).unwrap();

    // Without -R: the subdirectory is not read, so shop has no pods; two files are skipped.
    let mut cmd = Command::cargo_bin("kubectl-mtls_lockdown").unwrap();
    let out = cmd
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args(["explain", "-n", "shop", "-f"])
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "warning: skipping {}: not a Kubernetes manifest",
            dir.join("package.json").display()
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "warning: skipping {}: not a Kubernetes manifest",
            dir.join("values.yaml").display()
        )),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("error: no pods to explain in namespace shop"),
        "{stderr}"
    );

    // With -R: the pods in apps/ are read, and give the same verdicts as naming the files.
    let (recursive, stderr) = explain_json(&[dir.to_path_buf()], None, &["-R"]);
    assert_eq!(stderr.lines().count(), 2, "the two warnings: {stderr}");
    let (named, _) = explain_json(
        &[cluster(), shop("policy.yaml"), shop("pods.yaml")],
        None,
        &[],
    );
    assert_eq!(matrix_verdicts(&recursive), matrix_verdicts(&named));
}

#[test]
fn a_file_named_explicitly_must_be_a_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("values.yaml");
    std::fs::write(&values, "replicas: 3\n").unwrap();
    let out = Command::cargo_bin("kubectl-mtls_lockdown")
        .unwrap()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args(["explain", "-n", "shop", "-f"])
        .arg(&values)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: {}: not a Kubernetes object",
            values.display()
        )),
        "{stderr}"
    );
}
