//! `kubectl mtls-probe doctor -f` as CI would run it on a GitOps folder: clean manifests pass (exit
//! 0), a defect is reported with its rule and fix (exit 1), bad input is one line (exit 2).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use shared::names::DnsName;
use shared::pki::{Bundle, BundleRequest, KeyType};

fn probe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_probe"));
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig");
    cmd
}

/// The recommended manifests with a real bundle in their Secrets, written to `dir`; `None` when
/// the reference file is absent.
fn write_recommended(dir: &Path) -> Option<PathBuf> {
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/recommended-manifests.yaml");
    let text = std::fs::read_to_string(&reference).ok()?;
    let b = Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse("httpbin.example.com").unwrap(),
            client: DnsName::parse("client.example.com").unwrap(),
            days: 365,
            key_type: KeyType::EcdsaP256,
            ca_name: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.retain(|d| !d.is_null());
    for d in &mut docs {
        // The reference predates issue 13 (item 9): the recommended route to the partner removes
        // the caller's identity that the gateway puts into XFCC over the ISTIO_MUTUAL hop.
        if d["kind"] == "VirtualService" {
            d["spec"]["http"][1]["headers"] =
                json!({"request": {"remove": ["x-forwarded-client-cert"]}});
        }
        if d["kind"] == "Secret" {
            d["stringData"] = if d["stringData"].get("cert").is_some() {
                json!({"cert": b.server.cert.to_pem(), "key": b.server.key.to_pem(), "cacert": b.ca.cert.to_pem()})
            } else {
                json!({"tls.crt": b.client.cert.to_pem(), "tls.key": b.client.key.to_pem(), "ca.crt": b.ca.cert.to_pem()})
            };
        }
    }
    let path = dir.join("recommended.yaml");
    std::fs::write(&path, shared::plan::render_yaml(&docs)).unwrap();
    Some(path)
}

#[test]
fn doctor_on_files_passes_clean_manifests_and_reports_a_defect() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(clean) = write_recommended(tmp.path()) else {
        return;
    };
    let out = probe().args(["doctor", "-f"]).arg(&clean).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "No problems found."
    );

    // The tutorial's mistake: sni without subjectAltNames.
    let text = std::fs::read_to_string(&clean).unwrap();
    let broken_text = text.replace(
        "        subjectAltNames:\n        - httpbin.example.com\n",
        "",
    );
    assert_ne!(broken_text, text, "the fixture must really change");
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("all.yaml"), broken_text).unwrap();
    let out = probe()
        .args(["doctor", "-o", "json", "-f"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(findings[0]["id"], "origination-san-missing");
    assert!(
        findings[0]["fix"]
            .as_str()
            .unwrap()
            .contains("subjectAltNames")
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn doctor_bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let not_k8s = tmp.path().join("x.yaml");
    std::fs::write(&not_k8s, "foo: bar\n").unwrap();
    for args in [
        vec![
            "doctor".to_string(),
            "-f".into(),
            tmp.path().join("missing.yaml").display().to_string(),
        ],
        vec![
            "doctor".to_string(),
            "-f".into(),
            not_k8s.display().to_string(),
        ],
        vec![
            "doctor".to_string(),
            "-f".into(),
            not_k8s.display().to_string(),
            "--target-context".into(),
            "t".into(),
        ],
        vec![
            "doctor".to_string(),
            "--host".into(),
            "bad..host".into(),
            "-f".into(),
            not_k8s.display().to_string(),
        ],
    ] {
        let out = probe().args(&args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}
