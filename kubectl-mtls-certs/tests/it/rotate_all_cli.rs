//! `rotate-ca --phase all` without a cluster and without network: it stops after a finished
//! phase when the traffic cannot be checked (the host does not resolve, no probe plugin on PATH),
//! with one line on stderr, exit 1, the probe commands and the command that resumes; a second
//! `--phase all` resumes from rotate-ca.json (the finished phase changes nothing); with
//! `--check-timeout 0` it goes through to the end, and a re-run after phase 3 changes nothing.
//! A dry run validates the next phase only and says so.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_certs");
/// Never resolves (RFC 6761 reserves .invalid), with or without network.
const HOST: &str = "httpbin.rotate.invalid";

fn gen_bundle() -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["gen", "--domain", HOST, "--client", "client.example.com"])
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmp
}

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

/// `rotate-ca --phase all ARGS --dir DIR` with `PATH` as given (None: the test's own), and a
/// temporary directory of its own that must be empty when it is done (the check's client
/// certificate of the new CA is removed, also when the check stops it).
fn all(dir: &Path, args: &[&str], path: Option<&Path>) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["rotate-ca", "--phase", "all"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("TMPDIR", tmp.path());
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap();
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left {left:?} behind");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn phase_recorded(dir: &Path) -> u64 {
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("rotate-ca.json")).unwrap()).unwrap();
    state["phase"].as_u64().unwrap()
}

/// The one stderr line of a stop after `phase`, naming `why`.
#[track_caller]
fn stopped(result: &(i32, String, String), phase: u8, why: &str) {
    let (code, out, err) = result;
    assert_eq!(*code, 1, "stdout: {out}\nstderr: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: stopped after phase {phase}: ")) && last.contains(why),
        "{err}"
    );
    assert!(last.contains("--phase all again"), "{last}");
    assert!(!err.contains("PRIVATE KEY") && !out.contains("PRIVATE KEY"));
    // The probe commands with the phase's files, and the command that resumes.
    let d = out
        .lines()
        .find_map(|l| l.strip_prefix("rotate-ca --phase all in "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    assert!(
        out.contains(&format!(
            "--cert {d}/client.crt --key {d}/client.key --ca {d}/ca-bundle.crt\n"
        )) && out.contains(&format!("  kubectl mtls-probe direct --host {HOST} ")),
        "{out}"
    );
    assert!(
        out.contains("  kubectl mtls-probe check --context <client-context>"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Then: kubectl mtls-certs rotate-ca --phase all --dir {d} --target-context <target-context> --client-context <client-context>"
        )),
        "{out}"
    );
}

#[test]
fn phase_all_stops_after_phase_1_when_the_host_does_not_resolve_and_resumes() {
    let b = gen_bundle();
    let dir = b.path();
    let before = files(dir);

    let first = all(dir, &[], None);
    stopped(
        &first,
        1,
        &format!("{HOST} does not resolve from this workstation"),
    );
    let (_, out, _) = &first;
    assert!(out.contains("phases 1, 2 and 3"), "{out}");
    assert!(out.contains("rotate-ca phase 1 in"), "{out}");
    assert!(!out.contains("rotate-ca phase 2 in"), "went on: {out}");
    assert!(out.contains("no Secret was touched"), "{out}");
    assert_eq!(phase_recorded(dir), 1);
    let after_1 = files(dir);
    assert!(after_1.contains_key("ca.next.crt") && after_1.contains_key("ca-bundle.crt"));
    // Phase 1 keeps the leaves.
    assert_eq!(after_1["server.crt"], before["server.crt"]);
    assert_eq!(after_1["client.crt"], before["client.crt"]);

    // Again: phase 1 is found done (nothing changes) and the check stops it again.
    let again = all(dir, &[], None);
    stopped(&again, 1, "does not resolve");
    assert!(again.1.contains("resuming at phase 1"), "{}", again.1);
    assert!(
        again.1.contains("files unchanged (phase 1 was done"),
        "{}",
        again.1
    );
    assert_eq!(
        files(dir),
        after_1,
        "a resumed finished phase changed files"
    );

    // Without the check, it resumes and goes through phases 2 and 3.
    let (code, out, err) = all(dir, &["--check-timeout", "0"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.matches("not checked (--check-timeout 0)").count(),
        3,
        "{out}"
    );
    for phase in ["1", "2", "3"] {
        assert!(
            out.contains(&format!("rotate-ca phase {phase} in")),
            "{out}"
        );
    }
    assert!(out.contains("server.crt from the new CA"), "{out}");
    assert!(out.contains("The rotation is finished."), "{out}");
    assert_eq!(phase_recorded(dir), 3);
    let done = files(dir);
    assert_eq!(done["ca.crt"], after_1["ca.next.crt"]);
    assert_eq!(done["ca.crt.prev"], before["ca.crt"]);
    assert_ne!(done["server.crt"], before["server.crt"]);

    // After phase 3, --phase all changes nothing: with the check (which cannot run, exit 1 and
    // says the rotation is finished) and without it.
    let (code, out, err) = all(dir, &[], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("the rotation is finished (rotate-ca.json: phase 3)"),
        "{out}"
    );
    assert!(out.contains("files unchanged (phase 3 was done"), "{out}");
    assert!(
        err.contains(
            "error: phase 3 is done and the rotation finished, but the traffic check did not pass"
        ),
        "{err}"
    );
    assert!(!out.contains("Then:"), "{out}");
    let (code, out, err) = all(dir, &["--check-timeout", "0"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("files unchanged (phase 3 was done"), "{out}");
    assert!(!out.contains("wrote "), "{out}");
    assert_eq!(files(dir), done, "a re-run after phase 3 changed files");
}

#[test]
fn phase_all_stops_when_no_probe_plugin_is_installed() {
    let b = gen_bundle();
    let dir = b.path();
    // --connect skips the name lookup; PATH holds no kubectl-mtls_probe (nor kubectl-mtls).
    let empty = tempfile::tempdir().unwrap();
    let result = all(dir, &["--connect", "127.0.0.1:9"], Some(empty.path()));
    stopped(
        &result,
        1,
        "kubectl mtls-probe is not installed (kubectl-mtls_probe is not on PATH; install it with `kubectl krew install mtls-probe`)",
    );
    // The probe command and the resume command carry --connect.
    assert!(
        result.1.contains(&format!(
            "direct --host {HOST} --connect 127.0.0.1:9 --cert"
        )),
        "{}",
        result.1
    );
    assert!(result.1.contains("--connect 127.0.0.1:9\n"), "{}", result.1);
    assert_eq!(phase_recorded(dir), 1);

    // A non-executable file of that name is not a plugin (kubectl skips it too).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fake = empty.path().join("kubectl-mtls_probe");
        fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o644)).unwrap();
        let result = all(dir, &["--connect", "127.0.0.1:9"], Some(empty.path()));
        stopped(&result, 1, "kubectl mtls-probe is not installed");
    }
    assert_eq!(phase_recorded(dir), 1);
}

#[test]
fn phase_all_dry_run_validates_the_next_phase_only() {
    let b = gen_bundle();
    let dir = b.path();
    let before = files(dir);
    let (code, out, err) = all(dir, &["--dry-run=client"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "--dry-run with --phase all validates phase 1 only: the phases after it build on the files it writes\n"
    );
    assert!(
        out.starts_with("rotate-ca phase 1 in ") && out.contains("(dry run: nothing is written)"),
        "{out}"
    );
    assert_eq!(files(dir), before);
    // After phase 1 (stopped by the check), the next is phase 2; -o yaml stays pure YAML.
    let (code, ..) = all(dir, &[], None);
    assert_eq!(code, 1);
    let after_1 = files(dir);
    let (code, yaml, err) = all(
        dir,
        &[
            "--dry-run=client",
            "--target-context",
            "t",
            "--client-context",
            "c",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("validates phase 2 only"), "{err}");
    assert!(yaml.starts_with("apiVersion: v1\nkind: Secret"), "{yaml}");
    assert_eq!(files(dir), after_1);
}

#[test]
fn check_flags_belong_to_phase_all() {
    let b = gen_bundle();
    let dir = b.path();
    let before = files(dir);
    for extra in [
        &["--check-timeout", "10s"][..],
        &["--connect", "127.0.0.1"][..],
    ] {
        let out = Command::new(BIN)
            .args(["rotate-ca", "--phase", "1"])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("apply to --phase all"), "{err}");
    }
    // A --connect the probe could not use is refused before phase 1 writes anything.
    let (code, out, err) = all(dir, &["--connect", "gateway.example.com"], None);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (2, "", 1),
        "{err}"
    );
    assert!(
        err.contains("--connect \"gateway.example.com\" is not an address"),
        "{err}"
    );
    assert_eq!(files(dir), before);
}

#[test]
fn a_wildcard_bundle_needs_host_to_say_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = Command::new(BIN)
        .args([
            "gen",
            "--domain",
            "*.rotate.invalid",
            "--client",
            "client.example.com",
        ])
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let before = files(dir);
    let (code, out, err) = all(dir, &[], None);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (2, "", 1),
        "{err}"
    );
    assert!(
        err.contains("server.crt is for *.rotate.invalid: pass --host with the name the check connects to (e.g. api.rotate.invalid)"),
        "{err}"
    );
    assert_eq!(files(dir), before);
    // With --host, that name is checked (and printed in the probe commands).
    let (code, out, err) = all(dir, &["--host", "httpbin.rotate.invalid"], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("stopped after phase 1: httpbin.rotate.invalid does not resolve"),
        "{err}"
    );
    assert!(
        out.contains("kubectl mtls-probe direct --host httpbin.rotate.invalid --cert"),
        "{out}"
    );
    assert!(
        out.contains("--host httpbin.rotate.invalid\n"),
        "resume: {out}"
    );
}
