//! `kubectl mtls-probe check` flags: every bad input is one `error:` line with exit 2, found
//! before the kubeconfig is read (KUBECONFIG points nowhere, so reaching for it would say so
//! instead), and `--help` shows the examples and exit codes.

use std::process::Command;

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_probe"))
        .arg("check")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn bad_input_is_one_line_and_exit_2_before_any_cluster_access() {
    let tmp = tempfile::tempdir().unwrap();
    let not_pem = tmp.path().join("client.crt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let cases: [(&[&str], &str); 10] = [
        (&["--host", "not a host"], "not a host"),
        (&["--host", "*.example.com"], "*.example.com"),
        (
            &["--host", "httpbin.example.com", "--path", "headers"],
            "--path",
        ),
        (
            &["--host", "httpbin.example.com", "--port", "0"],
            "--port 0",
        ),
        (
            &[
                "--host",
                "httpbin.example.com",
                "--external",
                "https://example.com/",
            ],
            "--external",
        ),
        (
            &["--host", "httpbin.example.com", "--start-timeout", "0"],
            "greater than 0",
        ),
        (
            &["--host", "httpbin.example.com", "--pod", "Not_A_Pod"],
            "--pod",
        ),
        (
            &[
                "--host",
                "httpbin.example.com",
                "--client-cert",
                "/nonexistent/client.crt",
            ],
            "/nonexistent/client.crt",
        ),
        (
            &["--host", "httpbin.example.com", "--client-cert", not_pem],
            "client.crt",
        ),
        (
            &["--host", "httpbin.example.com", "-n", "Bad_Namespace"],
            "Bad_Namespace",
        ),
    ];
    for (args, mentions) in cases {
        let (code, stdout, stderr) = check(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            lines[0].contains(mentions),
            "{args:?} should mention {mentions}: {stderr}"
        );
        assert!(
            !lines[0].contains("kubeconfig"),
            "{args:?}: flags come first: {stderr}"
        );
    }
    // clap's own usage errors (exit 2): conflicting and dependent flags.
    for args in [
        &["--host", "h.example.com", "--pod", "p", "--image", "curl:1"][..],
        &["--host", "h.example.com", "--container", "app"][..],
        &["--pod", "p"][..],
    ] {
        let (code, _, stderr) = check(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    // Good flags reach the kubeconfig, which is missing here: a cluster error (exit 3).
    let (code, _, stderr) = check(&["--host", "httpbin.example.com"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}

#[test]
fn help_shows_examples_exit_codes_and_the_cleanup_promise() {
    let (code, stdout, _) = check(&["--help"]);
    assert_eq!(code, 0);
    // clap wraps long lines; compare with whitespace collapsed.
    let stdout = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for wanted in [
        "kubectl mtls-probe check --host httpbin.example.com -n apps --client-cert",
        "Exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 cluster/API error, 130 interrupted",
        "deleted when the check ends",
        "--keep",
        kubectl_mtls_probe::check::pod::DEFAULT_IMAGE,
    ] {
        assert!(
            stdout.contains(wanted),
            "--help lacks {wanted:?}:\n{stdout}"
        );
    }
}
