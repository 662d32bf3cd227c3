//! `kubectl mtls-certs rotate-ca --phase all`: the remaining phases of a CA rotation in order,
//! each exactly as its own `--phase N` run, with a traffic check between them (see [`traffic`]).
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

use crate::lifecycle;
use crate::rotate::{
    CHECK_TIMEOUT, Ran, RotateArgs, next_steps, read_state, run_phase, trust_after,
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
    let host = lifecycle::host_of(dir);
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
    for phase in first..=3 {
        let ran = run_phase(phase, args, global, dir, out).await?;
        debug_assert_eq!(ran, Ran::Done, "phase {phase} from phase {reached}");
        writeln!(out, "Traffic after phase {phase}:")?;
        let files = DirectFiles {
            cert: dir.join("client.crt"),
            key: dir.join("client.key"),
            ca: dir.join(trust_after(phase)),
        };
        match traffic::check(&host, args.connect.as_deref(), &files, timeout, err).await? {
            Verdict::Passed(line) => writeln!(out, "  {line}")?,
            Verdict::Skipped => writeln!(out, "  not checked (--check-timeout 0)")?,
            Verdict::Stopped(why) => {
                writeln!(out, "  not passed: {why}")?;
                next_steps(phase, args, global, dir, "all", out)?;
                return Err(Error::CheckFailed(if phase < 3 {
                    format!(
                        "stopped after phase {phase}: {why}; run the probe commands above, then the `Then:` command (--phase all again) to resume"
                    )
                } else {
                    format!(
                        "phase 3 is done and the rotation finished, but the traffic was not checked: {why}; run the probe commands above"
                    )
                }));
            }
        }
    }
    if timeout.is_zero() {
        next_steps(3, args, global, dir, "all", out)?;
    } else {
        writeln!(out, "The rotation is finished.")?;
    }
    Ok(())
}
