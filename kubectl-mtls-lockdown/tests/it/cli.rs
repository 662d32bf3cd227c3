//! `kubectl mtls-lockdown` as a user meets it, offline: `explain -f` on the tutorial's own policy
//! (TCP DNS denied) and on ours (allowed), the matrix, `apply --dry-run=client` piped into
//! `explain`, and bad input — exit 2, exactly one `error: ` line, nothing on stdout, no cluster.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn lockdown() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mtls_lockdown").unwrap();
    // Never let a developer's own cluster leak into a test.
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("RUST_LOG");
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Exit 2, one `error: ` line containing `needle`, nothing on stdout.
fn fails_with(cmd: &mut Command, needle: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
    lines[0].to_string()
}

/// Our policy, as `apply --dry-run=client` prints it (no cluster: --dns-ip given).
fn our_policy(dir: &Path) -> PathBuf {
    let yaml = stdout(lockdown().args([
        "apply",
        "-n",
        "mtls-demo",
        "--dns-ip",
        "10.96.0.10",
        "--dry-run=client",
    ]));
    let path = dir.join("ours.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn explain(files: &[&Path], extra: &[&str]) -> String {
    let mut cmd = lockdown();
    cmd.args(["explain", "-n", "mtls-demo"]);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    stdout(cmd.args(extra))
}

#[test]
fn tutorial_policy_denies_tcp_dns_and_ours_allows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = fixture("cluster.yaml");
    let tutorial = fixture("tutorial-policy.yaml");
    let dns_tcp = [
        "--pod",
        "curl",
        "--to",
        "kube-dns.kube-system:53",
        "--protocol",
        "TCP",
    ];
    let text = explain(&[&cluster, &tutorial], &dns_tcp);
    assert!(
        text.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/TCP: DENIED\n"),
        "{text}"
    );
    insta::assert_snapshot!("tutorial_dns_tcp", text);
    let udp = explain(
        &[&cluster, &tutorial],
        &[
            "--pod",
            "curl",
            "--to",
            "kube-dns.kube-system:53",
            "--protocol",
            "udp",
        ],
    );
    assert!(
        udp.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/UDP: ALLOWED\n"),
        "{udp}"
    );

    let ours = our_policy(tmp.path());
    let text = explain(&[&cluster, &ours], &dns_tcp);
    assert!(
        text.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/TCP: ALLOWED\n"),
        "{text}"
    );
    insta::assert_snapshot!("ours_dns_tcp", text);
}

#[test]
fn matrix_of_the_tutorial_and_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = fixture("cluster.yaml");
    let tutorial = explain(&[&cluster, &fixture("tutorial-policy.yaml")], &[]);
    insta::assert_snapshot!("matrix_tutorial", tutorial);
    let ours = explain(&[&cluster, &our_policy(tmp.path())], &[]);
    insta::assert_snapshot!("matrix_ours", ours);
    // Without any policy everything is allowed (default allow).
    let open = explain(&[&cluster], &["-o", "json"]);
    let v: Value = serde_json::from_str(&open).unwrap();
    let cells = v["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    assert!(cells.iter().all(|c| c == "allowed"), "{open}");
}

#[test]
fn json_and_yaml_output_carry_the_deciding_rule() {
    let cluster = fixture("cluster.yaml");
    let tutorial = fixture("tutorial-policy.yaml");
    let json = explain(
        &[&cluster, &tutorial],
        &["--to-ip", "1.1.1.1:443", "-o", "json"],
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["verdict"], "denied");
    assert_eq!(r["hops"][0]["egress"]["reason"], "noRuleAllows");
    assert_eq!(
        r["hops"][0]["egress"]["policies"][0]["name"],
        "network-policy-allow-egress-traffic"
    );
    let json = explain(
        &[&cluster, &tutorial],
        &[
            "--to",
            "istiod.istio-system.svc.cluster.local:15012",
            "-o",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let rule = &v["results"][0]["hops"][0]["egress"]["rules"][0];
    assert_eq!(
        (rule["rule"].as_u64(), rule["direction"].as_str()),
        (Some(1), Some("egress"))
    );
    let yaml = explain(
        &[&cluster, &tutorial],
        &["--to-ip", "1.1.1.1:443", "-o", "yaml"],
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(docs[0]["results"][0]["verdict"], "denied");
}

#[test]
fn explain_reads_stdin_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("cluster.yaml"), tmp.path().join("a.yaml")).unwrap();
    std::fs::copy(fixture("tutorial-policy.yaml"), tmp.path().join("b.yml")).unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not read").unwrap();
    let text = explain(&[tmp.path()], &["--to-ip", "1.1.1.1:443"]);
    assert!(text.contains("DENIED"), "{text}");
    let text = stdout(
        lockdown()
            .args([
                "explain",
                "-n",
                "mtls-demo",
                "-f",
                "-",
                "--to-ip",
                "1.1.1.1:443",
            ])
            .write_stdin(std::fs::read_to_string(fixture("cluster.yaml")).unwrap()),
    );
    assert!(
        text.contains("ALLOWED") && text.contains("no NetworkPolicy selects the pod"),
        "{text}"
    );
}

#[test]
fn apply_client_dry_run_prints_the_plan_offline() {
    let yaml = stdout(lockdown().args([
        "apply",
        "-n",
        "mtls-demo",
        "--dns-ip",
        "10.96.0.10",
        "--registry-only",
        "--namespace-wide",
        "--node-local-dns",
        "--dry-run=client",
    ]));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "NetworkPolicy");
    assert_eq!(
        docs[1]["spec"]["outboundTrafficPolicy"]["mode"],
        "REGISTRY_ONLY"
    );
    insta::assert_snapshot!("apply_namespace_wide_registry_only", yaml);
    let json = stdout(lockdown().args([
        "apply",
        "-n",
        "mtls-demo",
        "--dns-ip",
        "10.96.0.10",
        "--egress-gateway-port",
        "9443",
        "--dry-run=client",
        "-o",
        "json",
    ]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][0]["spec"]["egress"][2]["ports"][0]["port"], 9443);
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let cluster = fixture("cluster.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.yaml");
    std::fs::write(&text, "hello: world\n").unwrap();
    let explain_with = |extra: &[&str]| {
        let mut cmd = lockdown();
        cmd.args(["explain", "-n", "mtls-demo", "-f"])
            .arg(&cluster)
            .args(extra);
        cmd
    };
    fails_with(&mut explain_with(&["--to", "kube-dns"]), "missing :PORT");
    fails_with(
        &mut explain_with(&["--to", "kube-dns:99999"]),
        "not between 1 and 65535",
    );
    fails_with(
        &mut explain_with(&["--to", "Kube_DNS:53"]),
        "is not a Service name",
    );
    fails_with(
        &mut explain_with(&["--to-ip", "example.com:443"]),
        "is not an IP address",
    );
    fails_with(
        &mut explain_with(&["--to-ip", "2001:db8::1:443"]),
        "brackets",
    );
    fails_with(
        &mut explain_with(&["--to", "nope.kube-system:53"]),
        "service kube-system/nope not found",
    );
    fails_with(
        &mut explain_with(&["--to", "kube-dns.kube-system:54"]),
        "has no port 54/TCP (it has 53/UDP, 53/TCP)",
    );
    fails_with(
        &mut explain_with(&["--pod", "ghost"]),
        "pod mtls-demo/ghost not found",
    );
    fails_with(&mut explain_with(&["-l", "app"]), "is not KEY=VALUE");
    fails_with(
        &mut explain_with(&["-l", "app=none"]),
        "matching --selector",
    );
    fails_with(
        lockdown()
            .args(["explain", "-n", "elsewhere", "-f"])
            .arg(&cluster),
        "namespace elsewhere not found in the files given with -f",
    );
    fails_with(
        lockdown().args(["explain", "-f"]).arg(&text),
        "not a Kubernetes object",
    );
    fails_with(
        lockdown().args(["explain", "-f", "/nonexistent/x.yaml"]),
        "cannot read /nonexistent/x.yaml",
    );
    fails_with(
        lockdown()
            .args(["explain", "-n", "Bad_NS", "-f"])
            .arg(&cluster),
        "invalid namespace",
    );
    fails_with(
        lockdown().args([
            "apply",
            "-n",
            "Bad_NS",
            "--dry-run=client",
            "--dns-ip",
            "10.0.0.1",
        ]),
        "invalid namespace",
    );
    // clap's own errors: exit 2 too.
    let out = lockdown()
        .args(["apply", "--dns-ip", "not-an-ip"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = lockdown()
        .args(["explain", "--protocol", "ICMP"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn apply_without_a_cluster_says_so_and_exits_3() {
    let out = lockdown()
        .args(["apply", "-n", "mtls-demo"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: no kubeconfig found"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_shows_examples_and_completion_works() {
    let help = stdout(lockdown().arg("--help"));
    assert!(
        help.contains("Examples:") && help.contains("kubectl mtls-lockdown explain"),
        "{help}"
    );
    for sub in ["apply", "remove", "explain"] {
        let help = stdout(lockdown().args([sub, "--help"]));
        assert!(help.contains("Example"), "{sub}: {help}");
        assert!(help.contains("--kubeconfig"), "{sub}: global flags");
    }
    let bash = stdout(lockdown().args(["completion", "bash"]));
    assert!(bash.contains("kubectl-mtls_lockdown"), "{bash}");
}

#[test]
fn on_gardener_the_tutorials_udp_dns_works_only_through_the_cluster_ip() {
    // Gardener: kube-dns Service port 53 → CoreDNS pod port 8053 (gardener/gardener
    // `pkg/component/networking/coredns/constants/constants.go`).
    let tmp = tempfile::tempdir().unwrap();
    let cluster = std::fs::read_to_string(fixture("cluster.yaml"))
        .unwrap()
        .replace("containerPort: 53,", "containerPort: 8053,");
    let path = tmp.path().join("gardener.yaml");
    std::fs::write(&path, cluster).unwrap();
    let udp = ["--to", "kube-dns.kube-system:53", "--protocol", "UDP"];
    let text = explain(&[&path, &fixture("tutorial-policy.yaml")], &udp);
    assert!(
        text.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/UDP: PARTIAL\n"),
        "{text}"
    );
    assert!(
        text.contains("pod kube-system/coredns-0 port 8053 (Service backend): denied"),
        "{text}"
    );
    assert!(
        text.contains("ClusterIP 10.96.0.10 port 53 (before DNAT): allowed"),
        "{text}"
    );
    let ours = our_policy(tmp.path());
    let text = explain(&[&path, &ours], &udp);
    assert!(
        text.starts_with("mtls-demo/curl -> kube-dns.kube-system:53/UDP: ALLOWED\n"),
        "{text}"
    );
}
