//! The `kubectl mtls-certs` command line as a user meets it: bad input gets exit 2, one line on
//! stderr, no file written and no cluster contacted; the Secret manifests are snapshot-tested.

use std::path::Path;
use std::process::Command as Process;

use assert_cmd::Command;
use serde_json::Value;

const DOMAIN: &str = "httpbin.example.com";
const CLIENT: &str = "client.example.com";

fn certs() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mtls_certs").unwrap();
    // Never let a developer's own cluster leak into a test.
    // Help text wraps at COLUMNS when there is no terminal: pin it for the snapshots.
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("COLUMNS", "100")
        .env_remove("RUST_LOG");
    cmd
}

fn gen_bundle(dir: &Path, extra: &[&str]) {
    certs()
        .args(["gen", "--domain", DOMAIN, "--client", CLIENT, "--out"])
        .arg(dir)
        .args(extra)
        .assert()
        .success();
}

/// Runs the command, expects exit 2 with exactly one `error: ...` line on stderr containing
/// `needle`, and returns that line.
fn fails_with(cmd: &mut Command, needle: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "no key material in errors");
    lines[0].to_string()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn gen_refuses_malformed_domains_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let long_label = format!("{}.example.com", "a".repeat(64));
    let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
    let cases: [(&str, &str); 8] = [
        ("", "empty"),
        ("a..b", "empty label"),
        (&long_label, "at most 63"),
        (&long_name, "at most 253"),
        ("foo.*.example.com", "wildcard"),
        ("has space.example.com", "contains ' '"),
        ("10.0.0.1", "IP address"),
        ("::1", "IP address"),
    ];
    for (domain, needle) in cases {
        fails_with(
            certs()
                .args(["gen", "--domain", domain, "--client", CLIENT, "--out"])
                .arg(&out),
            needle,
        );
        assert!(!out.exists(), "nothing written for {domain:?}");
    }
    // The client identity must be a concrete name.
    fails_with(
        certs()
            .args([
                "gen",
                "--domain",
                DOMAIN,
                "--client",
                "*.example.com",
                "--out",
            ])
            .arg(&out),
        "wildcard",
    );
    fails_with(
        certs()
            .args(["gen", "--domain", DOMAIN, "--client", DOMAIN, "--out"])
            .arg(&out),
        "different names",
    );
    for days in ["0", "99999"] {
        fails_with(
            certs()
                .args([
                    "gen", "--domain", DOMAIN, "--client", CLIENT, "--days", days, "--out",
                ])
                .arg(&out),
            "out of range",
        );
    }
    assert!(!out.exists());
}

#[test]
fn gen_never_overwrites_without_force_and_reports_unwritable_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    gen_bundle(&out, &[]);
    assert_eq!(
        files_in(&out),
        [
            "ca.crt",
            "ca.key",
            "client.crt",
            "client.key",
            "server.crt",
            "server.key"
        ]
    );
    let before = std::fs::read(out.join("ca.key")).unwrap();
    fails_with(
        certs()
            .args(["gen", "--domain", DOMAIN, "--client", CLIENT, "--out"])
            .arg(&out),
        "--force",
    );
    assert_eq!(
        std::fs::read(out.join("ca.key")).unwrap(),
        before,
        "untouched"
    );
    gen_bundle(&out, &["--force"]);
    assert_ne!(
        std::fs::read(out.join("ca.key")).unwrap(),
        before,
        "replaced"
    );
    assert_eq!(files_in(&out).len(), 6, "no temporary files left");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    fails_with(
        certs()
            .args(["gen", "--domain", DOMAIN, "--client", CLIENT, "--out"])
            .arg(file.join("sub")),
        "cannot create directory",
    );
}

#[test]
fn gen_prints_what_it_wrote_and_the_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let out = certs()
        .args(["gen", "--domain", DOMAIN, "--client", CLIENT, "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("DNS:httpbin.example.com"), "{stdout}");
    assert!(stdout.contains("clientAuth"), "{stdout}");
    assert!(
        stdout.contains("kubectl mtls-certs secret target --dir"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"));
    let json = certs()
        .args([
            "gen", "--force", "-o", "json", "--domain", DOMAIN, "--client", CLIENT, "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[1]["sans"][0], "DNS:httpbin.example.com");
}

#[test]
fn verify_and_secret_refuse_broken_pem_keys_and_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen_bundle(dir, &[]);
    let other = dir.join("other");
    gen_bundle(&other, &[]);
    let p = |n: &str| dir.join(n);
    std::fs::write(p("empty.pem"), "").unwrap();
    std::fs::write(p("garbage.pem"), "this is not PEM\n").unwrap();
    let server = std::fs::read_to_string(p("server.crt")).unwrap();
    std::fs::write(p("truncated.pem"), &server[..server.len() / 2]).unwrap();
    let ca = std::fs::read_to_string(p("ca.crt")).unwrap();
    std::fs::write(p("reversed.pem"), format!("{ca}{server}")).unwrap();

    let verify = |cert: &Path| {
        let mut c = certs();
        c.args(["verify", "--ca"]).arg(p("ca.crt")).arg(cert);
        c
    };
    fails_with(&mut verify(&p("empty.pem")), "is empty");
    fails_with(&mut verify(&p("garbage.pem")), "not PEM");
    fails_with(&mut verify(&p("truncated.pem")), "not PEM");
    fails_with(&mut verify(&p("reversed.pem")), "wrong order");
    fails_with(&mut verify(&p("server.key")), "private key");
    fails_with(&mut verify(&p("missing.pem")), "cannot read");

    // secret: every input is checked before any cluster is contacted (KUBECONFIG points nowhere,
    // and the errors are input errors, exit 2, not cluster errors).
    let secret = |extra: &[&Path]| {
        let mut c = certs();
        c.args(["secret", "target", "--dir"]).arg(dir);
        let mut flags = ["--cert", "--key", "--ca"].iter();
        for path in extra {
            c.arg(flags.next().unwrap()).arg(path);
        }
        c
    };
    fails_with(&mut secret(&[&p("empty.pem")]), "is empty");
    fails_with(&mut secret(&[&p("reversed.pem")]), "wrong order");
    fails_with(
        &mut secret(&[&p("server.crt"), &other.join("server.key")]),
        "does not belong",
    );
    fails_with(
        &mut secret(&[&p("client.crt"), &p("client.key")]),
        "serverAuth",
    );
    fails_with(
        &mut secret(&[&p("server.crt"), &p("server.key"), &p("server.crt")]),
        "not a CA",
    );
    let mut named = secret(&[]);
    named.args(["--name", "client-credential-cacert"]);
    fails_with(&mut named, "-cacert");
    let mut ns = secret(&[]);
    ns.args(["-n", "Istio_System"]);
    fails_with(&mut ns, "Istio_System");
}

/// Key files only openssl makes: an encrypted PKCS#8 key and an Ed448 key.
#[test]
fn encrypted_and_unsupported_keys_get_a_hint() {
    assert!(
        Process::new("openssl").arg("version").output().is_ok(),
        "openssl not found: install it (apt-get install -y openssl)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen_bundle(dir, &[]);
    let enc = dir.join("encrypted.key");
    let status = Process::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:secret",
            "-in",
        ])
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(&enc)
        .status()
        .unwrap();
    assert!(status.success());
    let ed448 = dir.join("ed448.key");
    let status = Process::new("openssl")
        .args(["genpkey", "-algorithm", "ED448", "-out"])
        .arg(&ed448)
        .status()
        .unwrap();
    assert!(status.success());
    for (key, needle) in [(&enc, "encrypted"), (&ed448, "ECDSA P-256 or RSA")] {
        fails_with(
            certs()
                .args(["verify", "--ca"])
                .arg(dir.join("ca.crt"))
                .arg(dir.join("server.crt"))
                .arg("--key")
                .arg(key),
            needle,
        );
    }
    // An ECDSA key in openssl's traditional SEC1 form is read, and matches.
    let sec1 = dir.join("sec1.key");
    let status = Process::new("openssl")
        .args(["ec", "-in"])
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(&sec1)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    certs()
        .args(["verify", "--ca"])
        .arg(dir.join("ca.crt"))
        .arg(dir.join("server.crt"))
        .arg("--key")
        .arg(&sec1)
        .assert()
        .success();
}

#[test]
fn verify_lists_failed_checks_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    gen_bundle(tmp.path(), &[]);
    let out = certs()
        .args(["verify", "--ca"])
        .arg(tmp.path().join("ca.crt"))
        .arg(tmp.path().join("server.crt"))
        .args(["--host", "other.example.com", "--usage", "client"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("san        FAILED"), "{stdout}");
    assert!(stdout.contains("usage      FAILED"), "{stdout}");
    assert!(stdout.contains("chain      ok"), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("2 of 5 checks failed (san, usage)"),
        "{stderr}"
    );
}

#[test]
fn issue_signs_more_leaves_and_refuses_a_foreign_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen_bundle(dir, &[]);
    certs()
        .args([
            "issue",
            "client",
            "--name",
            "client2.example.com",
            "--ca-dir",
        ])
        .arg(dir)
        .assert()
        .success();
    certs()
        .args(["verify", "--ca"])
        .arg(dir.join("ca.crt"))
        .arg(dir.join("client2.example.com.crt"))
        .args(["--key"])
        .arg(dir.join("client2.example.com.key"))
        .args(["--usage", "client"])
        .assert()
        .success();
    let foreign = dir.join("foreign");
    gen_bundle(&foreign, &[]);
    std::fs::copy(foreign.join("ca.key"), dir.join("ca.key")).unwrap();
    fails_with(
        certs()
            .args(["issue", "server", "--name", "x.example.com", "--ca-dir"])
            .arg(dir),
        "does not belong",
    );
    assert!(!dir.join("x.example.com.crt").exists());
}

fn secret_yaml(side: &str, dir: &Path) -> Vec<Value> {
    let out = certs()
        .args(["secret", side, "--dry-run=client", "-o", "yaml", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

#[test]
fn secret_manifests_have_istios_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen_bundle(dir, &[]);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    for (side, pairs) in [
        (
            "target",
            [
                ("cert", "server.crt"),
                ("key", "server.key"),
                ("cacert", "ca.crt"),
            ],
        ),
        (
            "client",
            [
                ("tls.crt", "client.crt"),
                ("tls.key", "client.key"),
                ("ca.crt", "ca.crt"),
            ],
        ),
    ] {
        let docs = secret_yaml(side, dir);
        assert_eq!(docs.len(), 1);
        let secret = &docs[0];
        for (key, file) in pairs {
            let b64 = secret["data"][key].as_str().unwrap();
            assert_eq!(decode_base64(b64), read(file), "{side} {key}");
        }
        // Key material is random: redact the values, keep the keys and everything else.
        let mut redacted = secret.clone();
        for value in redacted["data"].as_object_mut().unwrap().values_mut() {
            *value = Value::from("[redacted PEM, base64]");
        }
        insta::assert_yaml_snapshot!(format!("secret_{side}"), redacted);
    }
    // -o json is a List that kubectl apply -f - accepts.
    let out = certs()
        .args([
            "secret",
            "client",
            "--dry-run=client",
            "-o",
            "json",
            "-n",
            "mesh-egress",
            "--name",
            "partner-a",
            "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "mesh-egress");
    assert_eq!(list["items"][0]["metadata"]["name"], "partner-a");
}

/// The real kubectl reads our dry-run stream offline (its kustomize build parses every object).
#[test]
fn kubectl_accepts_the_dry_run_stream() {
    let version = Process::new(test_support::require_tool("kubectl"))
        .args(["version", "--client"])
        .output()
        .unwrap();
    assert!(version.status.success());
    let tmp = tempfile::tempdir().unwrap();
    gen_bundle(tmp.path(), &[]);
    let kustomize = tmp.path().join("k");
    std::fs::create_dir(&kustomize).unwrap();
    let out = certs()
        .args(["secret", "target", "--dry-run", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let ours = String::from_utf8(out.stdout).unwrap();
    std::fs::write(kustomize.join("secret.yaml"), &ours).unwrap();
    std::fs::write(
        kustomize.join("kustomization.yaml"),
        "resources:\n- secret.yaml\n",
    )
    .unwrap();
    let built = Process::new("kubectl")
        .arg("kustomize")
        .arg(&kustomize)
        .env("KUBECONFIG", tmp.path().join("none"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let theirs: Value = serde_saphyr::from_str(&String::from_utf8(built.stdout).unwrap()).unwrap();
    let ours: Value = serde_saphyr::from_str(&ours).unwrap();
    assert_eq!(theirs, ours, "kubectl reads back exactly what we wrote");
}

#[test]
fn inspect_managed_flags_are_checked_before_any_cluster_is_read() {
    // -A belongs to --managed; a path with it is bad input, nothing read.
    fails_with(
        certs().args(["inspect", "-A", "./does-not-exist"]),
        "-A lists the managed credential Secrets of all namespaces: use it with --managed",
    );
    // A threshold that is not a duration: exit 2 from the flag parser, before the kubeconfig.
    let out = certs()
        .args(["inspect", "--managed", "--expiry-warning", "soon"])
        .args(["--kubeconfig", "/does-not-exist"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'soon' for '--expiry-warning <DURATION>': invalid duration \"soon\": use days (30d, or 30) or hours (720h)"),
        "{stderr}"
    );
    // No cluster: a cluster error (exit 3), one line.
    let out = certs()
        .args(["inspect", "--managed", "--kubeconfig", "/does-not-exist"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        (out.status.code(), stderr.lines().count()),
        (Some(3), 1),
        "{stderr}"
    );
}

#[test]
fn inspect_describes_a_bundle_and_matches_keys() {
    let tmp = tempfile::tempdir().unwrap();
    gen_bundle(tmp.path(), &["--key-type", "rsa-2048"]);
    let out = certs()
        .args(["inspect", "-o", "json"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let by_name = |n: &str| {
        entries
            .iter()
            .find(|e| e["source"].as_str().unwrap().ends_with(n))
            .unwrap()
    };
    assert_eq!(by_name("server.key")["privateKey"], "RSA 2048");
    assert!(
        by_name("server.key")["belongsTo"]
            .as_str()
            .unwrap()
            .ends_with("server.crt")
    );
    let server = &by_name("server.crt")["certificates"][0];
    assert_eq!(server["extendedKeyUsage"][0], "serverAuth");
    assert_eq!(
        server["keyUsage"],
        serde_json::json!(["digitalSignature", "keyEncipherment"])
    );
    let table = certs()
        .arg("inspect")
        .arg(tmp.path().join("ca.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("(self-signed)") && text.contains("CA:             yes"),
        "{text}"
    );
}

#[test]
fn help_reads_as_a_kubectl_plugin() {
    let out = certs().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Usage: kubectl mtls-certs"), "{help}");
    insta::assert_snapshot!("help", help);
    let out = certs().args(["gen", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_gen", String::from_utf8(out.stdout).unwrap());
    for shell in ["bash", "zsh", "fish"] {
        let out = certs().args(["completion", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("kubectl-mtls_certs"), "{shell}");
        assert!(script.contains("inspect"), "{shell}");
    }
    certs().arg("frobnicate").assert().code(2);
}

fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The real kubectl finds the plugin on PATH and runs it as `kubectl mtls-certs`.
#[test]
fn kubectl_discovers_and_runs_the_plugin() {
    let kubectl = test_support::require_tool("kubectl");
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mtls_certs"));
    let only_ours = tempfile::tempdir().unwrap();
    std::fs::copy(bin, only_ours.path().join("kubectl-mtls_certs")).unwrap();
    let kubectl_run = |args: &[&str]| {
        Process::new(&kubectl)
            .args(args)
            .env("PATH", only_ours.path())
            .env("KUBECONFIG", only_ours.path().join("none"))
            .output()
            .unwrap()
    };
    let list = kubectl_run(&["plugin", "list"]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert!(list.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("kubectl-mtls_certs"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let help = kubectl_run(&["mtls-certs", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: kubectl mtls-certs"));
    let version = kubectl_run(&["mtls-certs", "--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kubectl-mtls_certs {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completion_kubectl_links_the_completer_beside_the_plugin_and_kubectl_uses_it() {
    let kubectl = test_support::require_tool("kubectl");
    let bin = tempfile::tempdir().unwrap();
    let plugin = bin.path().join("kubectl-mtls_certs");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("kubectl-mtls_certs"), &plugin)
        .unwrap();
    let link = bin.path().join("kubectl_complete-mtls_certs");
    // Twice: the second run finds its own link and keeps it.
    for _ in 0..2 {
        let out = Process::new(&plugin)
            .args(["completion", "kubectl"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("kubectl-mtls_certs"),
            "relative, so it follows the plugin link"
        );
    }
    // kubectl (1.26+) finds the completer on PATH and asks it.
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Process::new(kubectl)
        .env("PATH", path)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args(["__complete", "mtls-certs", ""])
        .output()
        .unwrap();
    let answer = String::from_utf8(out.stdout).unwrap();
    let words: Vec<&str> = answer
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for sub in ["gen", "issue", "inspect", "verify", "secret"] {
        assert!(words.contains(&sub), "{sub} not in {answer}");
    }
    // A file of that name that is not our link is left alone, with one error line.
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, "not a link").unwrap();
    let out = Process::new(&plugin)
        .args(["completion", "kubectl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("exists and is not a link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "not a link");
}
