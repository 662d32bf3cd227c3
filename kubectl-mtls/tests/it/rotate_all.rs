//! `kubectl mtls-certs rotate-ca --phase all` with the real probe: going through phases 1 → 2 → 3
//! with its traffic checks passing against a real endpoint — Debian's nginx on loopback requiring
//! client certificates — checked by the real `kubectl mtls-probe direct` that `rotate-ca` finds as
//! kubectl would (a `kubectl-mtls_probe` link on PATH, or this multi-call executable itself).
//!
//! No cluster runs here, so the part istiod and SDS play — a gateway picking up the credential a
//! phase installed — is played by a watcher: when `rotate-ca.json` records a new phase (up to a
//! limit), it copies the phase's server certificate, key and trust bundle (ca-bundle.crt in phases
//! 1-2, ca.crt after phase 3) to nginx's files and reloads nginx. Each check must catch a gateway
//! that did not pick a phase up:
//!
//! * nothing installed: after phase 1 nginx still trusts only the old CA, so the new CA's client
//!   certificate made for the check is refused, and `--phase all` stops after phase 1;
//! * phase 1 installed, phase 2 not: nginx still presents the old server certificate, which the
//!   new CA alone does not verify, and `--phase all` stops after phase 2;
//! * every phase installed: `--phase all` resumes and finishes, and nginx then refuses the old
//!   CA's client certificate.
//!
//! And Ctrl-C while it waits to retry a check: exit 130, how to resume, nothing left behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;
use test_support::nginx::{Nginx, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls");
const DOMAIN: &str = "nginx.example.com";
const CLIENT: &str = "client.example.com";

/// A directory with `names` linked to the multi-call executable (what krew creates).
fn plugin_dir(names: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::os::unix::fs::symlink(BIN, dir.path().join(name)).unwrap();
    }
    dir
}

/// `kubectl-mtls_certs ARGS` with `PATH` = `path` only, and a temporary directory of its own
/// that must be empty when it is done (the check's client certificate is removed).
fn certs(path: &Path, args: &[&str]) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(path.join("kubectl-mtls_certs"))
        .args(args)
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left {left:?} behind");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// nginx's own copies of the credential it serves, as a gateway holds the Secret's.
struct Live {
    dir: PathBuf,
}

impl Live {
    fn cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    fn client_ca(&self) -> PathBuf {
        self.dir.join("client-ca.crt")
    }

    /// Copies what the bundle in `bundle` installs at `phase` (0: before the rotation).
    fn install(&self, bundle: &Path, phase: u64) {
        let trust = if phase == 1 || phase == 2 {
            "ca-bundle.crt"
        } else {
            "ca.crt"
        };
        for (from, to) in [
            (bundle.join("server.crt"), self.cert()),
            (bundle.join("server.key"), self.key()),
            (bundle.join(trust), self.client_ca()),
        ] {
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
    }
}

fn nginx_conf(dir: &Path, port: u16, live: &Live) -> String {
    let d = dir.display();
    // A master process, so that SIGHUP (nginx -s reload) loads the new files.
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {DOMAIN};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location / {{
            return 200 "client_dn=$ssl_client_s_dn verify=$ssl_client_verify\n";
        }}
    }}
}}
"#,
        cert = live.cert().display(),
        key = live.key().display(),
        ca = live.client_ca().display(),
    )
}

/// `nginx -s SIGNAL` for the nginx whose prefix is `dir`.
fn signal(dir: &Path, signal: &str) -> Output {
    Command::new(require_tool("nginx"))
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-s", signal])
        .output()
        .unwrap()
}

/// Stops nginx's master and workers (SIGTERM via the pid file) before `Nginx`'s own kill.
struct StopNginx(PathBuf);

impl Drop for StopNginx {
    fn drop(&mut self) {
        let _ = signal(&self.0, "stop");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Plays istiod + SDS: installs each phase `rotate-ca.json` records and reloads nginx.
struct Sds {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u32>>,
}

impl Sds {
    /// Installs phases up to `last`.
    fn start(bundle: PathBuf, live: Arc<Live>, nginx_dir: PathBuf, last: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut installed = None;
            let mut reloads = 0;
            while !flag.load(Ordering::Relaxed) {
                let state = fs::read(bundle.join("rotate-ca.json")).ok();
                let phase = state.as_deref().map(|s| {
                    serde_json::from_slice::<serde_json::Value>(s).unwrap()["phase"]
                        .as_u64()
                        .unwrap()
                });
                if state.is_some() && state != installed && phase <= Some(last) {
                    live.install(&bundle, phase.unwrap());
                    let out = signal(&nginx_dir, "reload");
                    assert!(out.status.success(), "{out:?}");
                    reloads += 1;
                    installed = state;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            reloads
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; how many phases it installed.
    fn finish(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Sds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `kubectl mtls-probe direct` against nginx with these files: its exit code and output.
fn direct(plugins: &Path, port: u16, cert: &Path, key: &Path, ca: &Path) -> (i32, String) {
    let out = Command::new(plugins.join("kubectl-mtls_probe"))
        .args(["direct", "--host", DOMAIN, "--connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn phase_all_goes_through_when_the_endpoint_serves_each_phase() {
    require_tool("nginx");
    // Both links, as krew installs both plugins; then only the certs link: the probe is this
    // same multi-call executable, found as the running one.
    let both = plugin_dir(&["kubectl-mtls_certs", "kubectl-mtls_probe"]);
    let certs_only = plugin_dir(&["kubectl-mtls_certs"]);

    let bundle = tempfile::tempdir().unwrap();
    let b = bundle.path().join("mtls");
    let d = b.to_str().unwrap();
    let (code, _, err) = certs(
        both.path(),
        &["gen", "--domain", DOMAIN, "--client", CLIENT, "--out", d],
    );
    assert_eq!(code, 0, "{err}");
    let old_client = (b.join("client.crt"), b.join("client.key"));
    let old_client = (
        fs::read(&old_client.0).unwrap(),
        fs::read(&old_client.1).unwrap(),
    );

    let live_dir = tempfile::tempdir().unwrap();
    let live = Arc::new(Live {
        dir: live_dir.path().to_path_buf(),
    });
    live.install(&b, 0);
    let nginx = Nginx::start(|dir, port| nginx_conf(dir, port, &live));
    let _stop = StopNginx(nginx.dir.path().to_path_buf());
    let connect = format!("127.0.0.1:{}", nginx.port);
    let all = |path: &Path, extra: &[&str]| {
        certs(
            path,
            &[
                &[
                    "rotate-ca",
                    "--phase",
                    "all",
                    "--dir",
                    d,
                    "--connect",
                    &connect,
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let sds = |last| {
        Sds::start(
            b.clone(),
            live.clone(),
            nginx.dir.path().to_path_buf(),
            last,
        )
    };

    // Nothing installs what the phases write: the certificates in use still check out, the new
    // CA's client certificate is refused.
    let (code, out, err) = all(both.path(), &["--check-timeout", "3s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("Traffic after phase 1:\n  kubectl mtls-probe direct passed (attempt 1): the target accepts client.crt (the old CA's)"),
        "{out}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: stopped after phase 1: with a client certificate of the new CA (the target's gateway must trust it before phase 2): kubectl mtls-probe direct still fails after 3s: client-cert-accepted"),
        "{err}"
    );
    assert!(out.contains(&format!("--phase all --dir {d}")), "{out}");
    assert!(!out.contains("rotate-ca phase 2"), "{out}");

    // Phase 1 is installed, phase 2 is not: nginx still presents the old server certificate.
    let watcher = sds(1);
    let (code, out, err) = all(both.path(), &["--check-timeout", "8s"]);
    assert_eq!(code, 1, "{out}{err}\nerror.log: {}", nginx.error_log());
    assert!(out.contains("resuming at phase 1"), "{out}");
    assert!(
        out.contains("direct passed") && out.contains("it trusts both CAs"),
        "{out}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: stopped after phase 2: with the new CA alone as trust (the target must present the new server certificate before phase 3): kubectl mtls-probe direct still fails after 8s: server-trust"),
        "{err}"
    );
    assert_eq!(watcher.finish(), 1);

    // Every phase is installed: resumed, it goes through to the end.
    let watcher = sds(3);
    let (code, out, err) = all(certs_only.path(), &[]);
    assert_eq!(code, 0, "{out}{err}\nerror.log: {}", nginx.error_log());
    assert!(out.contains("resuming at phase 2"), "{out}");
    assert!(out.contains("files unchanged (phase 2 was done"), "{out}");
    assert!(
        out.contains("Traffic after phase 2:\n  kubectl mtls-probe direct passed"),
        "{out}"
    );
    assert!(out.contains("rotate-ca phase 3 in"), "{out}");
    assert!(
        out.contains("Traffic after phase 3:\n  kubectl mtls-probe direct passed"),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("The rotation is finished."),
        "{out}"
    );

    // Let the watcher see phase 3: nginx then trusts the new CA only: the old client certificate
    // (of the old CA, same key) is refused, the new one accepted.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(watcher.finish(), 2, "phases 2 and 3 installed");
    let old = tempfile::tempdir().unwrap();
    fs::write(old.path().join("client.crt"), &old_client.0).unwrap();
    fs::write(old.path().join("client.key"), &old_client.1).unwrap();
    let ca = b.join("ca.crt");
    let (code, report) = direct(
        both.path(),
        nginx.port,
        &old.path().join("client.crt"),
        &old.path().join("client.key"),
        &ca,
    );
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("client-cert-accepted"), "{report}");
    let (code, report) = direct(
        both.path(),
        nginx.port,
        &b.join("client.crt"),
        &b.join("client.key"),
        &ca,
    );
    assert_eq!(code, 0, "{report}");

    // A re-run after phase 3 changes nothing (and checks again).
    let before = files(&b);
    let (code, out, err) = all(both.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("files unchanged (phase 3 was done"), "{out}");
    assert_eq!(files(&b), before);
}

/// Ctrl-C while `--phase all` waits to retry a check: exit 130, the resume hint, and the check's
/// temporary client certificate removed.
#[test]
fn ctrl_c_during_the_check_cleans_up_and_says_how_to_resume() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let plugins = plugin_dir(&["kubectl-mtls_certs", "kubectl-mtls_probe"]);
    let bundle = tempfile::tempdir().unwrap();
    let b = bundle.path().join("mtls");
    let d = b.to_str().unwrap();
    let (code, _, err) = certs(
        plugins.path(),
        &["gen", "--domain", DOMAIN, "--client", CLIENT, "--out", d],
    );
    assert_eq!(code, 0, "{err}");
    // Nothing listens there: the check fails and waits to retry.
    let nothing = format!("127.0.0.1:{}", test_support::nginx::free_port());
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(plugins.path().join("kubectl-mtls_certs"))
        .args([
            "rotate-ca",
            "--phase",
            "all",
            "--dir",
            d,
            "--connect",
            &nothing,
        ])
        .env("PATH", plugins.path())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("retrying in") {
        let mut line = String::new();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
    }
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "the check's directory"
    );
    // The shell's builtin kill: no procps needed.
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.ends_with(&format!(
            "error: interrupted: rotate-ca --phase all stopped; {d}/rotate-ca.json records phase 1: run --phase all again to resume there\n"
        )),
        "{rest}"
    );
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
}
