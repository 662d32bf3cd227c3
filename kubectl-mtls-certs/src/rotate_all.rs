//! `kubectl mtls-certs rotate-ca --phase all`: the remaining phases of a CA rotation in order,
//! each exactly as its own `--phase N` run, with a traffic check between them (see [`traffic`]).
//!
//! What is checked after each phase is what the next one relies on, on the target's side (the
//! client cluster's side needs `kubectl mtls-probe check`, whose command is printed):
//!
//! 1. the client certificate in use is accepted and the server chain verifies with the overlap
//!    bundle; and a client certificate of the *new* CA is accepted — made for this check with the
//!    client certificate's names (1 day, a fresh key in a private temporary directory removed
//!    after the check, never in a Secret) — so the target trusts the new CA before phase 2 makes
//!    the client present one;
//! 2. the server chain verifies with the new CA alone (`ca.next.crt`) and the new client
//!    certificate is accepted: the target switched before phase 3 drops the old CA;
//! 3. the same with `ca.crt`, the new CA.
//!
//! Where to start comes from `rotate-ca.json`: the phase it records is run again first (a
//! finished phase changes nothing; one interrupted after its files were written gets its
//! Secrets), and its traffic checked, before the next one starts. So a stopped `--phase all`
//! resumes by running it again. It stops after a finished phase, exit 1, when the check cannot
//! run (no probe plugin, the host does not resolve from here) or keeps failing, with the probe
//! commands to run by hand and the command that resumes.
//!
//! [`traffic`]: crate::traffic

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use shared::cli::{DryRun, GlobalArgs};
use shared::error::Error;

use shared::pki::{OutputFile, Usage, write_files};

use crate::lifecycle::{self, Leaf, OVERLAP_BUNDLE};
use crate::rotate::{
    CHECK_TIMEOUT, NEXT_CRT, NEXT_KEY, Ran, RotateArgs, load_ca, next_steps, read_state, run_phase,
    trust_after,
};
use crate::traffic::{self, DirectFiles, Verdict};

/// Runs `rotate-ca --phase all` on `dir` (checked to be a bundle directory).
pub(crate) async fn run(
    args: &RotateArgs,
    global: &GlobalArgs,
    dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if let Some(c) = &args.connect
        && c.parse::<SocketAddr>().is_err()
        && c.parse::<IpAddr>().is_err()
    {
        return Err(Error::Usage(format!(
            "--connect {c:?} is not an address: give an IP or IP:PORT (e.g. the ingress gateway's 203.0.113.10)"
        )));
    }
    let reached = read_state(dir)?.map_or(0, |s| s.phase);
    let d = dir.display();
    if args.cluster.apply.dry_run != DryRun::None {
        // Phase 2 signs with the CA phase 1 writes, phase 3 needs phase 2's leaves: only the
        // next phase can be validated now. stdout stays the dry run's own (it may be YAML).
        let next = (reached + 1).min(3);
        writeln!(
            err,
            "--dry-run with --phase all validates phase {next} only: the phases after it build on the files it writes"
        )?;
        run_phase(next, args, global, dir, out).await?;
        return Ok(());
    }
    let timeout = args.check_timeout.unwrap_or(CHECK_TIMEOUT);
    let host = args.host.clone().unwrap_or_else(|| lifecycle::host_of(dir));
    if host.starts_with("*.") && !timeout.is_zero() {
        return Err(Error::Usage(format!(
            "{d}/server.crt is for {host}: pass --host with the name the check connects to (e.g. {})",
            host.replacen('*', "api", 1)
        )));
    }
    let first = reached.max(1);
    match reached {
        0 => writeln!(
            out,
            "rotate-ca --phase all in {d}: phases 1, 2 and 3, the traffic checked after each"
        )?,
        3 => writeln!(
            out,
            "rotate-ca --phase all in {d}: the rotation is finished (rotate-ca.json: phase 3); phase 3 again changes nothing (--phase 1 starts a new rotation)"
        )?,
        n => writeln!(
            out,
            "rotate-ca --phase all in {d}: resuming at phase {n} (rotate-ca.json), run again (it changes nothing if it was finished), then phases {}..3",
            n + 1
        )?,
    }
    // Ctrl-C stops at once, as without this, but the check's temporary files are removed and
    // the probe process ended; a phase cut short is finished by its re-run.
    tokio::select! {
        done = phases(args, global, dir, first, &host, timeout, out, err) => done,
        () = ctrl_c() => {
            let at = read_state(dir).ok().flatten().map_or(0, |s| s.phase);
            Err(Error::Interrupted(format!(
                "rotate-ca --phase all stopped; {d}/rotate-ca.json records phase {at}: run --phase all again to resume there"
            )))
        }
    }
}

/// Resolves when the user presses Ctrl-C; never, when SIGINT cannot be watched.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The phases from `first` to 3, each followed by its traffic check.
#[allow(clippy::too_many_arguments)]
async fn phases(
    args: &RotateArgs,
    global: &GlobalArgs,
    dir: &Path,
    first: u8,
    host: &str,
    timeout: std::time::Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    for phase in first..=3 {
        let ran = run_phase(phase, args, global, dir, out).await?;
        debug_assert_eq!(ran, Ran::Done, "phase {phase}");
        writeln!(out, "Traffic after phase {phase}:")?;
        if timeout.is_zero() {
            writeln!(out, "  not checked (--check-timeout 0)")?;
            continue;
        }
        // Held until the checks are done: the new CA's client certificate for the check.
        let (gates, _made) = gates(phase, dir)?;
        for gate in &gates {
            let verdict =
                traffic::check(host, args.connect.as_deref(), &gate.files, timeout, err).await?;
            let why = match verdict {
                Verdict::Passed(attempt) => {
                    writeln!(
                        out,
                        "  kubectl mtls-probe direct passed (attempt {attempt}): {}",
                        gate.shows
                    )?;
                    continue;
                }
                Verdict::Skipped => {
                    writeln!(out, "  not checked")?;
                    continue;
                }
                Verdict::Stopped(why) => format!("{}{why}", gate.failing),
            };
            writeln!(out, "  not passed: {why}")?;
            next_steps(phase, args, global, dir, "all", out)?;
            return Err(Error::CheckFailed(if phase < 3 {
                format!(
                    "stopped after phase {phase}: {why}; run the probe commands above, then the `Then:` command (--phase all again) to resume"
                )
            } else {
                format!(
                    "phase 3 is done and the rotation finished, but the traffic check did not pass: {why}; run the probe commands above (--phase all again changes nothing and checks again)"
                )
            }));
        }
    }
    if timeout.is_zero() {
        next_steps(3, args, global, dir, "all", out)?;
    } else {
        writeln!(out, "The rotation is finished.")?;
    }
    Ok(())
}

/// One `direct` check after a phase: its files, what its passing shows, and what its failing
/// means (a prefix of the reason).
struct Gate {
    files: DirectFiles,
    shows: String,
    failing: &'static str,
}

/// The checks after `phase` (see the module docs), and the temporary directory holding the new
/// CA's client certificate for the check after phase 1 (removed when dropped).
fn gates(phase: u8, dir: &Path) -> Result<(Vec<Gate>, Option<tempfile::TempDir>), Error> {
    let in_use = DirectFiles {
        cert: dir.join("client.crt"),
        key: dir.join("client.key"),
        ca: dir.join(trust_after(phase)),
    };
    match phase {
        1 => {
            let (made, files) = new_ca_client(dir)?;
            Ok((
                vec![
                    Gate {
                        files: in_use,
                        shows: format!(
                            "the target accepts client.crt (the old CA's) and its chain verifies with {OVERLAP_BUNDLE}"
                        ),
                        failing: "",
                    },
                    Gate {
                        files,
                        shows: "the target accepts a client certificate of the new CA (made for this check, removed): it trusts both CAs".into(),
                        failing: "with a client certificate of the new CA (the target's gateway must trust it before phase 2): ",
                    },
                ],
                Some(made),
            ))
        }
        2 => Ok((
            vec![Gate {
                files: in_use,
                shows: format!(
                    "the target presents the new CA's server certificate ({NEXT_CRT} alone verifies it) and accepts the new client.crt"
                ),
                failing: "with the new CA alone as trust (the target must present the new server certificate before phase 3): ",
            }],
            None,
        )),
        _ => Ok((
            vec![Gate {
                files: in_use,
                shows: "the target works with the new CA alone (ca.crt), client.crt accepted"
                    .into(),
                failing: "",
            }],
            None,
        )),
    }
}

/// A client certificate of the new CA with client.crt's names and key type, valid for 1 day, its
/// key fresh, both in a private temporary directory (mode 0700, the key 0600).
fn new_ca_client(dir: &Path) -> Result<(tempfile::TempDir, DirectFiles), Error> {
    let next = load_ca(dir, NEXT_CRT, NEXT_KEY)?;
    let leaf = Leaf::read(dir, Usage::Client)?;
    let key = shared::pki::PrivateKey::generate(crate::renew::key_type(&leaf.key_pem)?)?;
    let made = next.reissue(leaf.cert(), 1, key, crate::now())?;
    let tmp = tempfile::Builder::new()
        .prefix("rotate-ca-check-")
        .tempdir()?;
    write_files(
        tmp.path(),
        &[
            OutputFile {
                name: "client.crt".into(),
                contents: made.cert.to_pem(),
                secret: false,
            },
            OutputFile {
                name: "client.key".into(),
                contents: made.key.to_pem(),
                secret: true,
            },
        ],
        false,
    )?;
    let files = DirectFiles {
        cert: tmp.path().join("client.crt"),
        key: tmp.path().join("client.key"),
        ca: dir.join(OVERLAP_BUNDLE),
    };
    Ok((tmp, files))
}
