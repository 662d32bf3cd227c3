//! `kubectl mtls-egress` as a user meets it: bad input gets exit 2 and one line before any cluster
//! is contacted; `--dry-run=client` streams are what kubectl reads; kubectl finds the plugin.

use std::path::Path;
use std::process::Command as Process;

use assert_cmd::Command;
use serde_json::Value;

fn egress() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mtls_egress").unwrap();
    // Help text wraps at COLUMNS when there is no terminal: pin it for the snapshots.
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("COLUMNS", "100")
        .env_remove("RUST_LOG");
    cmd
}

fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{needle:?} not in {stderr}"
    );
}

#[test]
fn bad_input_is_refused_before_the_cluster_is_contacted() {
    // KUBECONFIG points nowhere: reaching the cluster would be exit 3, not 2.
    fails_with(
        egress().args(["enable", "--host", "bad..host"]),
        "empty label",
    );
    fails_with(
        egress().args(["enable", "--host", "*.example.com"]),
        "wildcard",
    );
    fails_with(
        egress().args(["enable", "--host", "10.1.2.3"]),
        "IP address",
    );
    fails_with(
        egress().args(["enable", "--host", "h.example.com", "-n", "Bad_NS"]),
        "Bad_NS",
    );
    fails_with(
        egress().args([
            "enable",
            "--host",
            "h.example.com",
            "--hop",
            "plain",
            "--restrict-to-namespace",
        ]),
        "--hop istio-mutual",
    );
    fails_with(
        egress().args([
            "enable",
            "--host",
            "h.example.com",
            "--credential",
            "x-cacert",
        ]),
        "-cacert",
    );
    fails_with(
        egress().args(["enable", "--host", "h.example.com", "--istio-cr", "default"]),
        "NAMESPACE/NAME",
    );
    fails_with(
        egress().args(["expose", "--host", "h.example.com", "--service", "httpbin"]),
        "no port",
    );
    fails_with(
        egress().args([
            "expose",
            "--host",
            "h.example.com",
            "--service",
            "httpbin:0",
        ]),
        "1 to 65535",
    );
    fails_with(
        egress().args([
            "expose",
            "--host",
            "h.example.com",
            "--service",
            "httpbin:8000",
            "--methods",
            "FETCH",
        ]),
        "FETCH",
    );
    fails_with(
        egress().args(["disable", "--host", "h.example.com", "--dry-run=client"]),
        "--dry-run=server",
    );
    // clap's own usage errors are exit 2 too.
    egress()
        .args(["enable", "--host", "h.example.com", "--port", "0"])
        .assert()
        .code(2);
    egress().args(["enable"]).assert().code(2);
}

/// `connect` with every required flag; a flag in `extra` replaces the base flag of that name
/// (clap refuses an option given twice), other flags are added.
fn connect(certs: &Path, extra: &[&str]) -> Command {
    let certs = certs.to_str().unwrap();
    let mut pairs: Vec<(&str, Option<&str>)> = vec![
        ("--target-context", Some("target")),
        ("--client-context", Some("client")),
        ("--host", Some("httpbin.example.com")),
        ("--client-name", Some("client.example.com")),
        ("--service", Some("httpbin:8000")),
        ("-n", Some("mtls-demo")),
        ("--certs", Some(certs)),
    ];
    let mut rest = extra.iter().copied().peekable();
    while let Some(flag) = rest.next() {
        let value = rest.next_if(|v| !v.starts_with('-'));
        match pairs.iter_mut().find(|(k, _)| *k == flag) {
            Some(pair) => pair.1 = value,
            None => pairs.push((flag, value)),
        }
    }
    let mut cmd = egress();
    cmd.arg("connect");
    for (flag, value) in pairs {
        cmd.arg(flag).args(value);
    }
    cmd
}

#[test]
fn connect_and_disconnect_refuse_bad_input_before_anything_happens() {
    // KUBECONFIG points nowhere: reading it would be exit 3, so exit 2 means no cluster was
    // contacted; and the --certs directory must not appear.
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    fails_with(
        &mut connect(&certs, &["--client-context", "target"]),
        "both \"target\" and both sides would use namespace mtls-demo",
    );
    fails_with(
        &mut connect(&certs, &["--context", "target"]),
        "--context selects one cluster",
    );
    fails_with(
        &mut connect(&certs, &["--host", "bad..host"]),
        "empty label",
    );
    fails_with(&mut connect(&certs, &["--host", "10.1.2.3"]), "IP address");
    fails_with(
        &mut connect(&certs, &["--client-name", "httpbin.example.com"]),
        "--host and --client-name are both",
    );
    fails_with(&mut connect(&certs, &["--service", "httpbin"]), "no port");
    fails_with(
        &mut connect(&certs, &["--service", "httpbin:0"]),
        "1 to 65535",
    );
    fails_with(
        &mut connect(&certs, &["--target-namespace", "Bad_NS"]),
        "Bad_NS",
    );
    fails_with(
        &mut connect(&certs, &["--lockdown", "--dry-run=client"]),
        "--dns-ip",
    );
    assert!(!certs.exists(), "bad input wrote {}", certs.display());
    // A directory with part of a bundle is neither reused nor written into.
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), "keep me").unwrap();
    fails_with(&mut connect(&certs, &[]), "holds ca.crt but not server.crt");
    let left: Vec<_> = std::fs::read_dir(&certs).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(certs.join("ca.crt")).unwrap(),
        "keep me"
    );
    // clap's own errors (a missing context) are exit 2 too, and name the flag.
    let out = egress()
        .args([
            "connect",
            "--target-context",
            "a",
            "--host",
            "h.example.com",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--client-context"));

    let disconnect = |extra: &[&str]| {
        let mut cmd = egress();
        cmd.args([
            "disconnect",
            "--target-context",
            "target",
            "--client-context",
            "client",
            "-n",
            "mtls-demo",
        ])
        .args(extra);
        cmd
    };
    fails_with(
        &mut disconnect(&["--host", "h.example.com", "--dry-run"]),
        "--dry-run=server",
    );
    fails_with(&mut disconnect(&["--host", "*.example.com"]), "wildcard");
    fails_with(
        &mut disconnect(&["--host", "h.example.com", "--cluster", "c"]),
        "--cluster selects one cluster",
    );
    // With good flags and no kubeconfig, the cluster error names the cluster.
    let out = disconnect(&["--host", "h.example.com"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: target (context target): "),
        "{stderr}"
    );
}

#[test]
fn connect_dry_run_prints_one_stream_per_cluster_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let out = connect(
        &certs,
        &[
            "--target-namespace",
            "partner",
            "--lockdown",
            "--dns-ip",
            "10.96.0.10",
            "--dry-run=client",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("generated in memory only"), "{stderr}");
    assert!(!certs.exists());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let client_at = stdout
        .find("# cluster: client (context client), namespace mtls-demo\n")
        .expect("a client stream");
    assert!(stdout.starts_with("# cluster: target (context target), namespace partner\n"));
    let (target, client) = stdout.split_at(client_at);
    let kinds = |stream: &str| -> Vec<String> {
        serde_saphyr::from_multiple::<Value>(stream)
            .unwrap()
            .iter()
            .filter(|d| !d.is_null())
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(target), ["Secret", "Gateway", "VirtualService"]);
    assert_eq!(
        kinds(client),
        [
            "Secret",
            "ServiceEntry",
            "Gateway",
            "DestinationRule",
            "VirtualService",
            "DestinationRule",
            "Telemetry",
            "NetworkPolicy"
        ]
    );
    // Each stream is what `kubectl --context X apply -f -` reads.
    let kubectl = test_support::require_tool("kubectl");
    for (i, stream) in [target, client].iter().enumerate() {
        kustomize(&kubectl, &tmp.path().join(format!("k{i}")), stream);
    }
    // -o json: one object per cluster, each with a List.
    let out = connect(
        &certs,
        &[
            "--dry-run=client",
            "-o",
            "json",
            "--target-namespace",
            "partner",
        ],
    )
    .output()
    .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["target"]["context"], "target");
    assert_eq!(doc["client"]["manifests"]["kind"], "List");
    assert!(!certs.exists());
}

#[test]
fn without_a_kubeconfig_a_real_run_is_a_cluster_error() {
    let out = egress()
        .args(["enable", "--host", "h.example.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}

fn dry_run(args: &[&str]) -> String {
    let out = egress()
        .args(args)
        .arg("--dry-run=client")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl kustomize` of one dry-run stream, offline (in `dir`, which it creates): kubectl's
/// own parse of every object, as YAML.
fn kustomize(kubectl: &Path, dir: &Path, stream: &str) -> String {
    std::fs::create_dir(dir).unwrap();
    std::fs::write(dir.join("plan.yaml"), stream).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "resources:\n- plan.yaml\n").unwrap();
    let built = Process::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .env("KUBECONFIG", dir.join("none"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    String::from_utf8(built.stdout).unwrap()
}

#[test]
fn dry_run_streams_are_read_back_by_kubectl() {
    let kubectl = test_support::require_tool("kubectl");
    let tmp = tempfile::tempdir().unwrap();
    let streams = [
        dry_run(&[
            "enable",
            "--host",
            "httpbin.example.com",
            "-n",
            "mtls-demo",
            "--istio-cr",
            "kyma-system/default",
            "--restrict-to-namespace",
        ]),
        dry_run(&[
            "expose",
            "--host",
            "httpbin.example.com",
            "--service",
            "httpbin:8000",
            "-n",
            "mtls-demo",
            "--route",
            "apirule",
            "--label-namespace",
        ]),
    ];
    for (i, stream) in streams.iter().enumerate() {
        let built = kustomize(&kubectl, &tmp.path().join(format!("k{i}")), stream);
        let theirs: Vec<Value> = serde_saphyr::from_multiple(&built).unwrap();
        let ours: Vec<Value> = serde_saphyr::from_multiple(stream).unwrap();
        assert_eq!(theirs.len(), ours.len());
        // kustomize reorders documents (namespaces first, then by kind); compare as sets.
        for o in &ours {
            assert!(theirs.contains(o), "kubectl changed {o}");
        }
    }
    // -o json is a List.
    let list: Value = serde_json::from_str(&{
        let out = egress()
            .args([
                "enable",
                "--host",
                "h.example.com",
                "--dry-run=client",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    })
    .unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 6);
}

#[test]
fn help_reads_as_a_kubectl_plugin_and_kubectl_runs_it() {
    let out = egress().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Usage: kubectl mtls-egress"), "{help}");
    insta::assert_snapshot!("help", help);
    let out = egress().args(["enable", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_enable", String::from_utf8(out.stdout).unwrap());
    let out = egress().args(["connect", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_connect", String::from_utf8(out.stdout).unwrap());
    let out = egress().args(["disable", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_disable", String::from_utf8(out.stdout).unwrap());
    let out = egress().args(["expose", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_expose", String::from_utf8(out.stdout).unwrap());
    let out = egress().args(["status", "--help"]).output().unwrap();
    insta::assert_snapshot!("help_status", String::from_utf8(out.stdout).unwrap());
    for shell in ["bash", "zsh", "fish"] {
        let out = egress().args(["completion", shell]).output().unwrap();
        assert!(String::from_utf8(out.stdout).unwrap().contains("enable"));
    }
    let kubectl = test_support::require_tool("kubectl");
    let only_ours = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mtls_egress"));
    std::fs::copy(bin, only_ours.path().join("kubectl-mtls_egress")).unwrap();
    let run = Process::new(&kubectl)
        .args(["mtls-egress", "--help"])
        .env("PATH", only_ours.path())
        .output()
        .unwrap();
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("Usage: kubectl mtls-egress"));
}

#[test]
fn a_field_manager_the_api_server_would_refuse_is_refused_here() {
    for bad in ["", &"m".repeat(129), "bad\tmanager"] {
        let out = egress()
            .args(["enable", "--host", "h.example.com", "--field-manager", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(
            stderr.starts_with("error: invalid value")
                && stderr.contains("a field manager is 1 to 128 printable characters"),
            "{stderr}"
        );
    }
}

#[test]
fn o_name_prints_kind_group_name_of_every_planned_object_and_connect_refuses_it() {
    let names = dry_run(&[
        "enable",
        "--host",
        "h.example.com",
        "-n",
        "shop",
        "-o",
        "name",
    ]);
    let yaml = dry_run(&["enable", "--host", "h.example.com", "-n", "shop"]);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let expected: Vec<String> = docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let kind = d["kind"].as_str().unwrap().to_ascii_lowercase();
            let name = d["metadata"]["name"].as_str().unwrap();
            match d["apiVersion"].as_str().unwrap().split_once('/') {
                Some((group, _)) => format!("{kind}.{group}/{name}"),
                None => format!("{kind}/{name}"),
            }
        })
        .collect();
    assert!(expected.len() >= 5, "{yaml}");
    assert_eq!(names.lines().collect::<Vec<_>>(), expected);

    let tmp = tempfile::tempdir().unwrap();
    fails_with(
        &mut connect(tmp.path(), &["--dry-run=client", "-o", "name"]),
        "-o name lists the objects of one cluster",
    );
}

#[test]
fn help_examples_stay_whole_lines_in_a_narrow_terminal() {
    // The longest example of connect's help: wrapped, it would break when pasted.
    let example =
        "  kubectl mtls-egress connect --target-context kind-demo --client-context kind-demo \\";
    for columns in ["40", "80", "200"] {
        let out = egress()
            .env("COLUMNS", columns)
            .args(["connect", "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.lines().any(|l| l == example),
            "COLUMNS={columns}: {help}"
        );
    }
}
