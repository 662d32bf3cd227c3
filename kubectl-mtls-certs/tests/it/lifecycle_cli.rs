//! `renew` and `rotate-ca` refusing bad input: a CA key that does not belong to the CA, an
//! expired CA, another host's bundle, a leaf another CA signed, phase 3 before phase 2, `--context`
//! where two clusters are meant. Each gives one line on stderr, exit 2, nothing on stdout, and
//! leaves every file of the directory as it was. Also: a client dry run writes nothing, and the
//! new CA's key is private.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use shared::names::DnsName;
use shared::pki::{Authority, KeyType, PrivateKey, Usage};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_certs");

fn gen_bundle(domain: &str) -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "gen",
            "--domain",
            domain,
            "--client",
            "client.example.com",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    tmp
}

/// Every file of `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `args` on `dir` fails with exit 2 and one line containing `needle`, writing nothing.
#[track_caller]
fn refused(dir: &Path, args: &[&str], needle: &str) {
    let before = files(dir);
    let (code, out, err) = run(dir, args);
    assert_eq!(code, 2, "{args:?}: {out}{err}");
    assert_eq!(out, "", "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert_eq!(files(dir), before, "{args:?} changed the directory");
}

#[test]
fn renew_refuses_a_ca_key_that_does_not_belong_to_the_ca() {
    let ours = gen_bundle("httpbin.example.com");
    let other = gen_bundle("httpbin.example.com");
    fs::copy(other.path().join("ca.key"), ours.path().join("ca.key")).unwrap();
    refused(
        ours.path(),
        &["renew"],
        "ca.key does not belong to the certificate",
    );
    refused(
        ours.path(),
        &["renew", "--client", "--new-key"],
        "does not belong",
    );
}

#[test]
fn renew_refuses_an_expired_ca() {
    let dir = tempfile::tempdir().unwrap();
    let then = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let ca = Authority::create("Expired CA", 2, key, then).unwrap();
    let mut written = vec![("ca.crt", ca.cert.to_pem()), ("ca.key", ca.key.to_pem())];
    for (usage, stem, name) in [
        (Usage::Server, "server", "httpbin.example.com"),
        (Usage::Client, "client", "client.example.com"),
    ] {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let leaf = ca
            .issue(usage, &DnsName::parse(name).unwrap(), 2, key, then)
            .unwrap();
        written.push((
            if stem == "server" {
                "server.crt"
            } else {
                "client.crt"
            },
            leaf.cert.to_pem(),
        ));
        written.push((
            if stem == "server" {
                "server.key"
            } else {
                "client.key"
            },
            leaf.key.to_pem(),
        ));
    }
    for (name, pem) in written {
        fs::write(dir.path().join(name), pem).unwrap();
    }
    refused(dir.path(), &["renew"], "is not valid now");
    refused(dir.path(), &["renew", "--server"], "is not valid now");
}

#[test]
fn renew_and_rotate_refuse_another_hosts_bundle() {
    let b = gen_bundle("httpbin.example.com");
    let needle = "server.crt is for httpbin.example.com and not for --host other.example.com";
    refused(b.path(), &["renew", "--host", "other.example.com"], needle);
    refused(
        b.path(),
        &["rotate-ca", "--phase", "1", "--host", "other.example.com"],
        needle,
    );
    // The right host passes (the wildcard-free SAN covers exactly it).
    let (code, _, err) = run(b.path(), &["renew", "--host", "httpbin.example.com"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn renew_refuses_a_leaf_another_ca_signed() {
    let ours = gen_bundle("httpbin.example.com");
    let other = gen_bundle("httpbin.example.com");
    for f in ["server.crt", "server.key"] {
        fs::copy(other.path().join(f), ours.path().join(f)).unwrap();
    }
    refused(
        ours.path(),
        &["renew", "--server"],
        "server.crt was not signed by",
    );
}

#[test]
fn rotate_refuses_phases_out_of_order_and_one_context() {
    let b = gen_bundle("httpbin.example.com");
    let dir = b.path();
    refused(
        dir,
        &["rotate-ca", "--phase", "3"],
        "phase 3 before phase 2",
    );
    refused(
        dir,
        &["rotate-ca", "--phase", "2"],
        "phase 2 before phase 1",
    );
    refused(
        dir,
        &["rotate-ca", "--phase", "1", "--context", "target"],
        "use --target-context and --client-context",
    );
    let (code, _, err) = run(dir, &["rotate-ca", "--phase", "1"]);
    assert_eq!(code, 0, "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("ca.next.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    refused(
        dir,
        &["rotate-ca", "--phase", "3"],
        "phase 3 before phase 2",
    );
    let (code, _, err) = run(dir, &["rotate-ca", "--phase", "4"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"4\" is not a phase: use 1, 2, 3 or all"),
        "{err}"
    );
}

#[test]
fn client_dry_runs_write_nothing() {
    let b = gen_bundle("httpbin.example.com");
    let dir = b.path();
    let before = files(dir);
    for args in [
        &["renew", "--dry-run=client"][..],
        &["renew", "--new-key", "--dry-run"][..],
        &["rotate-ca", "--phase", "1", "--dry-run=client"][..],
    ] {
        let (code, out, err) = run(dir, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            out.contains("would be renewed") || out.contains("dry run"),
            "{out}"
        );
        assert_eq!(files(dir), before, "{args:?} wrote files");
    }
    // With clusters named: the two Secrets, as `kubectl apply -f -` reads them (no cluster is
    // contacted: the contexts need not exist), or the report with -o table.
    let both = ["--target-context", "t", "--client-context", "c"];
    let (code, yaml, err) = run(
        dir,
        &[
            &["rotate-ca", "--phase", "1", "--dry-run=client"][..],
            &both,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(yaml.starts_with("apiVersion: v1\nkind: Secret"), "{yaml}");
    assert_eq!(yaml.matches("kind: Secret").count(), 2, "{yaml}");
    assert!(yaml.contains("name: kyma-mtls-certs") && yaml.contains("name: client-credential"));
    let (code, table, err) = run(
        dir,
        &[
            &["renew", "--server", "--dry-run=client", "-o", "table"][..],
            &both[..2],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("would be renewed"), "{table}");
    assert!(
        table.contains(
            "target (context t) secret istio-system/kyma-mtls-certs: would be configured (dry run)"
        ),
        "{table}"
    );
    assert_eq!(files(dir), before);
}

#[test]
fn secret_during_a_rotation_trusts_both_cas() {
    let b = gen_bundle("httpbin.example.com");
    let dir = b.path();
    let (code, _, err) = run(dir, &["rotate-ca", "--phase", "1"]);
    assert_eq!(code, 0, "{err}");
    let (code, yaml, err) = run(dir, &["secret", "client", "--dry-run=client", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&yaml).unwrap();
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(list["items"][0].clone()).unwrap();
    let ca = secret.data.unwrap()["ca.crt"].0.clone();
    let expected = fs::read_to_string(dir.join("ca-bundle.crt")).unwrap();
    assert_eq!(
        ca,
        expected.as_bytes(),
        "secret --dir must use the overlap bundle while a rotation is under way"
    );
    assert_eq!(expected.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn renew_says_when_the_ca_cuts_the_validity_short() {
    let b = gen_bundle("httpbin.example.com");
    let (code, out, err) = run(b.path(), &["renew", "--server"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("Note:"), "same lifetime as before: {out}");
    let (code, out, err) = run(b.path(), &["renew", "--client", "--days", "3650"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Note: client.crt ends when its CA does")
            && out.contains("rotate-ca --phase 1"),
        "{out}"
    );
}

#[test]
fn rotate_refuses_a_directory_changed_behind_its_back() {
    let b = gen_bundle("httpbin.example.com");
    let dir = b.path();
    let (code, _, err) = run(dir, &["rotate-ca", "--phase", "1"]);
    assert_eq!(code, 0, "{err}");
    // A new bundle over the old one: the recorded overlap bundle lacks the CA now in use.
    let out = Command::new(BIN)
        .args(["gen", "--force", "--domain", "httpbin.example.com"])
        .args(["--client", "client.example.com", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    for phase in ["1", "2"] {
        refused(
            dir,
            &["rotate-ca", "--phase", phase],
            "ca.crt is not the CA rotate-ca.json recorded in phase 1",
        );
    }
}
