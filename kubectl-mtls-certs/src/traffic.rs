//! The traffic check `rotate-ca --phase all` runs between two phases: `kubectl mtls-probe direct`
//! (this workstation → the target, with the phase's client certificate and trust bundle), retried
//! for a bounded time while the gateways pick the updated Secrets up through SDS.
//!
//! The probe runs as the separate plugin it is, found the way kubectl finds plugins (the first
//! executable `kubectl-mtls_probe` in `PATH` order), or through the multi-call `kubectl-mtls`
//! (this executable when it is that one, else the first on `PATH`), run under the probe's name.
//! The mtls-certs plugin is installed on its own (`kubectl krew install mtls-certs`), so the probe
//! may be missing; then, as when the host does not resolve from here, the rotation stops and says
//! which commands to run. The check is exactly the command the user is told to run by hand.

use std::ffi::OsString;
use std::io::Read;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use shared::error::{Error, one_line};

/// The probe plugin's executable name (`kubectl mtls-probe`).
pub(crate) const PROBE_BIN: &str = "kubectl-mtls_probe";
/// The multi-call executable that is every plugin, chosen by the name it runs under.
const MULTI_CALL_BIN: &str = "kubectl-mtls";
/// How long one `direct` attempt may take at most (DNS to the last byte).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two attempts.
const RETRY: Duration = Duration::from_secs(5);
/// How often a running probe's exit is looked for.
const POLL: Duration = Duration::from_millis(20);

/// What the check is run with: the phase's files.
pub(crate) struct DirectFiles {
    /// Our client certificate.
    pub cert: PathBuf,
    /// Its key (read by the probe only, never printed).
    pub key: PathBuf,
    /// The CAs the target's server certificate must chain to.
    pub ca: PathBuf,
}

/// The outcome of the traffic check after a phase.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `direct` passed, at this attempt.
    Passed(u32),
    /// Not checked (`--check-timeout 0`).
    Skipped,
    /// Not passed, or not run: why, in a few words.
    Stopped(String),
}

/// An executable that answers as `kubectl mtls-probe`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The file to run.
    pub program: PathBuf,
    /// The name to run it under (the multi-call executable picks the plugin by it).
    pub arg0: Option<&'static str>,
}

impl Probe {
    /// The command to run.
    fn command(&self) -> Command {
        #[allow(unused_mut)] // arg0 needs it on unix only
        let mut cmd = Command::new(&self.program);
        #[cfg(unix)]
        if let Some(name) = self.arg0 {
            use std::os::unix::process::CommandExt as _;
            cmd.arg0(name);
        }
        cmd
    }
}

/// A running probe, ended when dropped before it exits (Ctrl-C drops the future awaiting it).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `cmd` to its end with its output captured, without blocking the runtime: std's process
/// API with the pipes read on two threads and the exit polled (tokio's process driver would add
/// to the one binary's size for a command that runs a few times per rotation).
async fn output(mut cmd: Command) -> std::io::Result<Output> {
    let mut child = Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read(child.0.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.0.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// A file kubectl would run: a regular file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// `name` in `dir` as the platform spells executables.
fn executable_in(dir: &Path, name: &str) -> Option<PathBuf> {
    let file = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    is_executable(&file).then_some(file)
}

/// The probe, from `path` (a `PATH` value) and `current_exe` (this executable, symlinks resolved).
pub(crate) fn find_probe(path: Option<&OsString>, current_exe: Option<&Path>) -> Option<Probe> {
    let dirs: Vec<PathBuf> = path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .collect();
    // What `kubectl mtls-probe` runs: the first kubectl-mtls_probe on PATH.
    if let Some(program) = dirs.iter().find_map(|d| executable_in(d, PROBE_BIN)) {
        return Some(Probe {
            program,
            arg0: None,
        });
    }
    // The multi-call executable can run under another name only where argv[0] can be chosen.
    if !cfg!(unix) {
        return None;
    }
    let multi_call = |p: &Path| {
        p.file_stem()
            .is_some_and(|s| s == MULTI_CALL_BIN && p.extension().is_none_or(|e| e == "exe"))
    };
    let program = current_exe
        .filter(|p| multi_call(p))
        .map(Path::to_path_buf)
        .or_else(|| dirs.iter().find_map(|d| executable_in(d, MULTI_CALL_BIN)))?;
    Some(Probe {
        program,
        arg0: Some(PROBE_BIN),
    })
}

/// The failed checks of a `direct -o json` report, as `name (detail)`.
fn failed_checks(json: &[u8]) -> Option<String> {
    let report: serde_json::Value = serde_json::from_slice(json).ok()?;
    let failed: Vec<String> = report
        .get("checks")?
        .as_array()?
        .iter()
        .filter(|c| c.get("status").and_then(|s| s.as_str()) == Some("failed"))
        .map(|c| {
            let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let detail = c.get("detail").and_then(|d| d.as_str()).unwrap_or("");
            format!("{name} ({})", one_line(detail, 160))
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// Runs `kubectl mtls-probe direct` against `host` (or `connect`) with `files` until it passes or
/// `timeout` is spent; attempts and retries are told on `progress`.
pub(crate) async fn check(
    host: &str,
    connect: Option<&str>,
    files: &DirectFiles,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<Verdict, Error> {
    if timeout.is_zero() {
        return Ok(Verdict::Skipped);
    }
    if connect.is_none()
        && let Some(why) = shared::resolve::unresolvable(host, 443).await
    {
        return Ok(Verdict::Stopped(why));
    }
    let path = std::env::var_os("PATH");
    let exe = std::env::current_exe().ok();
    let Some(probe) = find_probe(path.as_ref(), exe.as_deref()) else {
        return Ok(Verdict::Stopped(format!(
            "kubectl mtls-probe is not installed ({PROBE_BIN} is not on PATH; install it with `kubectl krew install mtls-probe`)"
        )));
    };
    let target = connect.map_or_else(|| host.to_string(), |c| format!("{host} at {c}"));
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let each = ATTEMPT_TIMEOUT.min(left).max(Duration::from_secs(1));
        writeln!(
            progress,
            "  direct: this workstation -> {target} (attempt {attempt})"
        )?;
        let mut cmd = probe.command();
        cmd.args(["direct", "--host", host])
            .args(connect.map(|c| ["--connect", c]).into_iter().flatten())
            .arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key)
            .arg("--ca")
            .arg(&files.ca)
            .args(["-o", "json", "--timeout", &format!("{}s", each.as_secs())]);
        let out = match output(cmd).await {
            Ok(out) => out,
            Err(e) => {
                return Ok(Verdict::Stopped(format!(
                    "cannot run {}: {e}",
                    probe.program.display()
                )));
            }
        };
        match out.status.code() {
            Some(0) => return Ok(Verdict::Passed(attempt)),
            Some(1) => {
                let failed = failed_checks(&out.stdout)
                    .unwrap_or_else(|| one_line(&String::from_utf8_lossy(&out.stderr), 300));
                if start.elapsed() + RETRY >= timeout {
                    return Ok(Verdict::Stopped(format!(
                        "kubectl mtls-probe direct still fails after {}s: {failed}",
                        timeout.as_secs()
                    )));
                }
                writeln!(
                    progress,
                    "  direct failed: {failed}; the gateways may still be loading the Secrets (SDS), retrying in {}s",
                    RETRY.as_secs()
                )?;
                tokio::time::sleep(RETRY).await;
                attempt += 1;
            }
            _ => {
                let why = String::from_utf8_lossy(&out.stderr);
                return Ok(Verdict::Stopped(format!(
                    "kubectl mtls-probe direct could not run ({}): {}",
                    probe.program.display(),
                    one_line(why.trim_start_matches("error: "), 300)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        p
    }

    fn path_of(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).unwrap()
    }

    #[test]
    #[cfg(unix)]
    fn the_first_executable_probe_on_path_wins_like_kubectl() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        touch(a.path(), PROBE_BIN, 0o644); // not executable: kubectl skips it too
        let in_b = touch(b.path(), PROBE_BIN, 0o755);
        touch(c.path(), PROBE_BIN, 0o755);
        let path = path_of(&[a.path(), b.path(), c.path()]);
        assert_eq!(
            find_probe(Some(&path), None),
            Some(Probe {
                program: in_b,
                arg0: None
            })
        );
    }

    #[test]
    #[cfg(unix)]
    fn the_multi_call_executable_answers_under_the_probes_name() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let multi = touch(b.path(), MULTI_CALL_BIN, 0o755);
        let path = path_of(&[a.path(), b.path()]);
        let on_path = find_probe(Some(&path), Some(Path::new("/opt/bin/kubectl-mtls_certs")));
        assert_eq!(
            on_path,
            Some(Probe {
                program: multi,
                arg0: Some(PROBE_BIN)
            })
        );
        // This executable, when it is the multi-call one, comes before another on PATH.
        let this = Path::new("/opt/kubectl-mtls/kubectl-mtls");
        assert_eq!(
            find_probe(Some(&path), Some(this)).unwrap().program,
            this.to_path_buf()
        );
        // A probe plugin of its own still comes first.
        let own = touch(a.path(), PROBE_BIN, 0o755);
        assert_eq!(find_probe(Some(&path), Some(this)).unwrap().program, own);
        // Nothing that answers: none.
        let empty = path_of(&[tempfile::tempdir().unwrap().path()]);
        assert_eq!(
            find_probe(Some(&empty), Some(Path::new("/x/kubectl-mtls_certs"))),
            None
        );
        assert_eq!(find_probe(None, None), None);
    }

    #[test]
    fn failed_checks_name_each_failure_with_its_detail() {
        let json = br#"{"host":"h","port":443,"ok":false,"checks":[
            {"name":"dns","status":"passed","detail":"ok"},
            {"name":"server-trust","status":"failed","detail":"signed by\nanother CA"},
            {"name":"http","status":"skipped","detail":"not run"}]}"#;
        assert_eq!(
            failed_checks(json).as_deref(),
            Some("server-trust (signed by another CA)")
        );
        assert_eq!(failed_checks(b"not json"), None);
    }
}
