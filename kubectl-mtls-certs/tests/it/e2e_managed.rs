//! `kubectl mtls-certs inspect --managed` against a live API server, when `MTLS_E2E_KUBECONFIG`
//! names one: two partners' credential Secrets, written by `secret` from bundles made by `gen
//! --days`, one of them ending in 5 days; a Secret that is not ours beside them; one of ours in
//! a second namespace. `-n` lists exactly the two, `-A` all three, and only the 5-day Secret is
//! warned about.

use std::path::Path;

use serde_json::{Value, json};
use test_support::e2e::{Scratch, client, kubeconfig, runtime};

/// Runs `kubectl-mtls_certs ARGS --kubeconfig KUBECONFIG`: exit code, stdout, stderr.
fn certs(kubeconfig: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"))
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

/// `gen` for `domain` (client `caller.DOMAIN`), valid for `days`, into `dir`.
fn gen_bundle(kubeconfig: &str, domain: &str, days: &str, dir: &Path) {
    let caller = format!("caller.{domain}");
    let dir = dir.to_str().unwrap();
    let (code, _, err) = certs(
        kubeconfig,
        &[
            "gen", "--domain", domain, "--client", &caller, "--days", days, "--out", dir,
        ],
    );
    assert_eq!(code, 0, "{err}");
}

fn fingerprint(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    shared::pki::sha256_hex(shared::pki::Certificate::parse_chain(&text, "test").unwrap()[0].der())
}

#[test]
fn inspect_managed_lists_both_partners_and_warns_about_the_one_expiring() {
    let Some(kubeconfig) = kubeconfig("e2e_managed") else {
        return;
    };
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let (ns, other_ns) = rt.block_on(async {
        let client = client(&kubeconfig).await;
        let ns = scratch.namespace(&client, "managed").await;
        let other = scratch.namespace(&client, "managed-other").await;
        // Not ours: same layout, no label. Never listed.
        scratch
            .create(
                &client,
                &json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "foreign", "namespace": ns},
                        "stringData": {"cert": "x", "key": "y", "cacert": "z"}}),
            )
            .await;
        (ns, other)
    });
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gen_bundle(&kubeconfig, "a.example.com", "400", &a);
    gen_bundle(&kubeconfig, "b.example.com", "5", &b);
    for (side, name, dir, namespace) in [
        ("target", "partner-a", &a, &ns),
        ("client", "partner-b", &b, &ns),
        ("client", "partner-a-client", &a, &other_ns),
    ] {
        let (code, out, err) = certs(
            &kubeconfig,
            &[
                "secret",
                side,
                "--dir",
                dir.to_str().unwrap(),
                "--name",
                name,
                "-n",
                namespace,
            ],
        );
        assert_eq!(
            (code, out.trim()),
            (0, format!("secret/{name} created").as_str()),
            "{err}"
        );
    }

    let (code, out, err) = certs(
        &kubeconfig,
        &["inspect", "--managed", "-n", &ns, "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let rows = listed.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["partner-a", "partner-b"]);
    let (target, client) = (&rows[0], &rows[1]);
    assert_eq!(target["namespace"], ns.as_str());
    assert_eq!(target["side"], "target");
    assert_eq!(target["hosts"], json!(["a.example.com"]));
    assert_eq!(target["certificate"]["subject"], "CN=a.example.com");
    assert_eq!(
        target["certificate"]["sha256"],
        fingerprint(&a.join("server.crt"))
    );
    assert_eq!(target["certificate"]["daysLeft"], 399);
    assert_eq!(target["trustBundleKey"], "cacert");
    assert_eq!(target["trustBundle"].as_array().unwrap().len(), 1);
    assert_eq!(
        target["trustBundle"][0]["sha256"],
        fingerprint(&a.join("ca.crt"))
    );
    assert_eq!(client["side"], "client");
    assert_eq!(client["hosts"], json!(["caller.b.example.com"]));
    assert_eq!(client["certificate"]["daysLeft"], 4);
    assert_eq!(client["trustBundleKey"], "ca.crt");
    assert_eq!(
        client["trustBundle"][0]["sha256"],
        fingerprint(&b.join("ca.crt"))
    );
    assert!(rows.iter().all(|r| r.get("error").is_none()), "{out}");
    // The 5-day bundle, its leaf and its CA, on stderr; nothing about partner A.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "warning: secret {ns}/partner-b: certificate CN=caller.b.example.com for caller.b.example.com expires in 4 days ("
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("warning: secret {ns}/partner-b: CA ")),
        "{err}"
    );
    // A threshold below 4 days: silent. The key material is never printed.
    let (code, out, err) = certs(
        &kubeconfig,
        &["inspect", "--managed", "-n", &ns, "--expiry-warning", "72h"],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(!out.contains("PRIVATE KEY"));
    let table: Vec<&str> = out.lines().collect();
    assert_eq!(table.len(), 3, "{out}");
    assert!(
        table[2].contains(&format!("{ns}/partner-b")) && table[2].contains("ca.crt: CN="),
        "{out}"
    );

    // -A: the second namespace's Secret too (other tests' Secrets may be listed beside them).
    let (code, out, err) = certs(&kubeconfig, &["inspect", "--managed", "-A", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    let ours: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .filter(|id| id.starts_with(&ns) || id.starts_with(&other_ns))
        .collect();
    assert_eq!(
        ours,
        [
            format!("{ns}/partner-a"),
            format!("{ns}/partner-b"),
            format!("{other_ns}/partner-a-client")
        ]
    );
    drop(scratch);
}
