//! `kubectl mtls-certs rotate-ca --phase 1|2|3|all`: replace the CA of a bundle directory without an
//! outage, on both clusters, in three resumable phases.
//!
//! 1. **trust**: a new CA next to the old one (`ca.next.crt`, `ca.next.key`); both trust bundles
//!    (`cacert` on the target, `ca.crt` on the client) hold the old and the new CA (`ca-bundle.crt`).
//! 2. **switch**: new server and client certificates from the new CA, in the files and Secrets;
//!    the bundles still hold both CAs, so either side may still present an old certificate.
//! 3. **finish**: the old CA leaves both bundles; the new CA becomes `ca.crt` (the old files kept
//!    as `ca.crt.prev`, `ca.key.prev`).
//!
//! The phase reached is recorded in `rotate-ca.json` in the directory: a phase re-run finds its
//! work done (the files unchanged, each Secret `unchanged`), a phase that was interrupted after the
//! files were written resumes with the Secrets, and phase 3 before phase 2 is refused.
//! `--phase all` runs the remaining phases through [`run_phase`] with traffic checks between
//! them (`rotate_all`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use shared::cli::{DryRun, GlobalArgs};
use shared::error::Error;
use shared::manifest::secret::Side;
use shared::pki::{
    Authority, Certificate, CredentialPem, KeyType, OutputFile, PrivateKey, Usage, read_file,
    sha256_hex, summarize, write_files,
};

use crate::lifecycle::{self, ClusterArgs, Leaf, OVERLAP_BUNDLE, SDS_NOTE, Update};
use crate::renew::known_fingerprints;

/// The new CA's certificate during a rotation.
pub(crate) const NEXT_CRT: &str = "ca.next.crt";
/// The new CA's key during a rotation.
pub(crate) const NEXT_KEY: &str = "ca.next.key";
/// The phase a rotation has reached.
pub(crate) const STATE: &str = "rotate-ca.json";

/// Replace the CA without an outage, on both clusters, in three phases (one at a time, or all)
#[derive(clap::Args, Debug)]
#[command(after_help = "Phases (run them in order; check traffic between them):
  1  a new CA is generated next to the old one (ca.next.crt, ca.next.key); both trust bundles —
     cacert on the target, ca.crt on the client — hold the old AND the new CA (ca-bundle.crt)
  2  new server and client certificates from the new CA replace server.crt and client.crt (old
     files kept as *.prev) and are installed in both Secrets; the bundles still hold both CAs
  3  the old CA is removed from both bundles; the new CA becomes ca.crt (old: ca.crt.prev)
The phase reached is recorded in DIR/rotate-ca.json: a re-run of a finished phase changes nothing,
an interrupted phase resumes, and phase 3 before phase 2 is refused. Every phase checks the
Secrets on both clusters and validates them by server dry run before anything is written.
Without --target-context/--client-context only the files change (`secret target|client --dir DIR`
then uses ca-bundle.crt while it exists). Istio's gateways pick the Secrets up through SDS.

--phase all runs the remaining phases in order, from the one DIR/rotate-ca.json records (that one
is re-run first: it changes nothing if it was finished), each exactly as its own --phase N run.
After each phase it runs `kubectl mtls-probe direct` against the host (the mtls-probe plugin on
PATH, or the multi-call kubectl-mtls), retried for --check-timeout while the gateways load the
Secrets, and goes on only when it passes. After 1: client.crt with ca-bundle.crt, and a client
certificate of the new CA made for the check (1 day, removed after it, never in a Secret): the
target must trust the new CA. After 2: the new client.crt with ca.next.crt alone: the target must
present the new server certificate. After 3: with ca.crt. `kubectl mtls-probe check` (the client
cluster's side) is not run: its command is printed. When the probe is not installed, the host
does not resolve from here, or the check fails, it stops after the finished phase (exit 1) with
the reason, the probe commands to run, and the command that resumes: --phase all again.
--check-timeout 0 goes through all phases without checking. With --dry-run, --phase all validates
only the next phase (the later ones build on the files it writes) and says so on stderr.

Examples:
  kubectl mtls-certs rotate-ca --phase 1 --dir ./mtls --target-context target --client-context client
  kubectl mtls-probe direct --host httpbin.example.com --cert ./mtls/client.crt --key ./mtls/client.key --ca ./mtls/ca-bundle.crt
  kubectl mtls-certs rotate-ca --phase 2 --dir ./mtls --target-context target --client-context client --dry-run=server
  kubectl mtls-certs rotate-ca --phase 3 --dir ./mtls --target-context target --client-context client

  # All phases, checked between them; stops (exit 1) and says what to run when it cannot check
  kubectl mtls-certs rotate-ca --phase all --dir ./mtls --target-context target --client-context client")]
pub(crate) struct RotateArgs {
    /// Which phase to run: 1 trust both CAs, 2 switch to certificates of the new CA, 3 drop the old CA, all the remaining ones with a traffic check between them
    #[arg(long, value_name = "1|2|3|all", value_parser = parse_phase)]
    pub phase: Phases,
    /// Bundle directory written by `gen`
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Validity of the new CA in days (phase 1; 1-3650)
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Key algorithm of the new CA (phase 1)
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Common name of the new CA (phase 1; default: the old CA's name with the date)
    #[arg(long, value_name = "NAME")]
    pub ca_name: Option<String>,
    /// Generate new leaf keys in phase 2 instead of keeping the old ones
    #[arg(long)]
    pub new_key: bool,
    /// The target host this bundle is for: refuse a directory whose server certificate is for another (and the host the probes check; default: the server certificate's first DNS name)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// With --phase all: how long `kubectl mtls-probe direct` may keep failing after a phase while the gateways load the Secrets, e.g. 60s, 2m (default 60s; 0 = do not check)
    #[arg(long, value_name = "DURATION", value_parser = parse_check_timeout)]
    pub check_timeout: Option<Duration>,
    /// With --phase all: the address the check connects to instead of resolving the host (IP or IP:PORT, e.g. the ingress gateway's), as `kubectl mtls-probe direct --connect`
    #[arg(long, value_name = "IP[:PORT]")]
    pub connect: Option<String>,
    /// Contexts, Secret names and namespaces, --dry-run.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `--phase`: one phase, or all the remaining ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phases {
    /// Phase 1, 2 or 3.
    One(u8),
    /// The remaining phases, checked between them.
    All,
}

fn parse_phase(value: &str) -> Result<Phases, String> {
    match value {
        "1" | "2" | "3" => Ok(Phases::One(value.parse().expect("a digit"))),
        "all" => Ok(Phases::All),
        _ => Err(format!("{value:?} is not a phase: use 1, 2, 3 or all")),
    }
}

fn parse_check_timeout(value: &str) -> Result<Duration, String> {
    shared::cluster::parse_request_timeout(value).map_err(|_| {
        format!(
            "invalid duration {value:?}: use a number with a unit, like 60s or 2m (a plain number means seconds, 0 means do not check)"
        )
    })
}

/// How long `--phase all` lets the check fail by default.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// `rotate-ca.json`: the phase reached and the two CAs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    pub phase: u8,
    old_ca_sha256: String,
    new_ca_sha256: String,
}

/// What a phase does: the files to write (none on a re-run) and the Secrets' contents.
struct Step {
    /// Files to write atomically, the state file among them.
    files: Vec<OutputFile>,
    /// Files to remove afterwards (phase 3: the rotation's leftovers).
    remove: Vec<&'static str>,
    /// What each Secret's CA bundle holds.
    bundle: String,
    /// The server and client chains and keys the Secrets hold.
    leaves: Vec<(Usage, String, String)>,
    /// One line per change, for the report.
    changes: Vec<String>,
}

pub(crate) fn read_state(dir: &Path) -> Result<Option<State>, Error> {
    let path = dir.join(STATE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "{} is not a rotate-ca state file ({e}): restore it, or remove it to start over with --phase 1",
            path.display()
        ))
    })
}

fn state_file(state: &State) -> OutputFile {
    OutputFile {
        name: STATE.into(),
        contents: serde_json::to_string_pretty(state).expect("a plain struct serializes") + "\n",
        secret: false,
    }
}

/// Refuses a directory whose CA files are not the ones `state` recorded (e.g. `gen --force` ran
/// in it since): the bundles built from it would not hold the CA in use.
fn check_state(dir: &Path, state: &State) -> Result<(), Error> {
    let sha = |name: &str| cert_file(dir, name).map(|c| sha256_hex(c.der()));
    let expected = match state.phase {
        1 | 2 => vec![
            ("ca.crt", &state.old_ca_sha256),
            (NEXT_CRT, &state.new_ca_sha256),
        ],
        _ => vec![("ca.crt", &state.new_ca_sha256)],
    };
    for (name, want) in &expected {
        if sha(name)? != **want {
            return Err(Error::Usage(format!(
                "{}/{name} is not the CA {STATE} recorded in phase {}: the directory changed since (gen --force?); restore it, or remove {STATE} to start a new rotation with --phase 1",
                dir.display(),
                state.phase
            )));
        }
    }
    if state.phase < 3 {
        let bundle =
            Certificate::parse_chain(&read_file(&dir.join(OVERLAP_BUNDLE))?, OVERLAP_BUNDLE)?;
        let shas: Vec<String> = bundle.iter().map(|c| sha256_hex(c.der())).collect();
        if shas != [state.old_ca_sha256.clone(), state.new_ca_sha256.clone()] {
            return Err(Error::Usage(format!(
                "{}/{OVERLAP_BUNDLE} does not hold the old and the new CA {STATE} recorded: restore it (ca.crt followed by {NEXT_CRT})",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn cert_file(dir: &Path, name: &str) -> Result<Certificate, Error> {
    let path = dir.join(name);
    let pem = read_file(&path)?;
    Ok(Certificate::parse_chain(&pem, &path.display().to_string())?.remove(0))
}

pub(crate) fn load_ca(dir: &Path, crt: &str, key: &str) -> Result<Authority, Error> {
    let (crt, key) = (dir.join(crt), dir.join(key));
    let key_origin = key.display().to_string();
    let pk = PrivateKey::from_pem(&read_file(&key)?, &key_origin)?;
    Ok(Authority::load(
        &read_file(&crt)?,
        &crt.display().to_string(),
        pk,
        &key_origin,
        crate::now(),
    )?)
}

/// Both leaves must come from `ca` (`which` names it in the error).
fn check_leaves_signed_by(dir: &Path, ca: &Certificate, which: &str) -> Result<(), Error> {
    for usage in [Usage::Server, Usage::Client] {
        let leaf = Leaf::read(dir, usage)?;
        if !leaf.cert().is_signed_by(ca) {
            return Err(Error::Usage(format!(
                "{}/{}.crt was not signed by {which}: the directory is not in the state rotate-ca left it in; restore it (the *.prev files hold the previous certificates)",
                dir.display(),
                Leaf::stem(usage)
            )));
        }
    }
    Ok(())
}

fn current_leaves(dir: &Path) -> Result<Vec<(Usage, String, String)>, Error> {
    [Usage::Server, Usage::Client]
        .into_iter()
        .map(|u| {
            let stem = Leaf::stem(u);
            Ok((
                u,
                read_file(&dir.join(format!("{stem}.crt")))?,
                read_file(&dir.join(format!("{stem}.key")))?,
            ))
        })
        .collect()
}

/// The default name of the new CA: the old one's, with the moment of the rotation.
fn next_ca_name(old: &Certificate, now: time::OffsetDateTime) -> String {
    let x = old.x509();
    let cn = x
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("kubectl-mtls CA")
        .to_string();
    let base = cn.split(" (rotated ").next().unwrap_or(&cn).to_string();
    format!(
        "{base} (rotated {:04}-{:02}-{:02} {:02}:{:02}:{:02}Z)",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn phase1(args: &RotateArgs, dir: &Path, state: Option<&State>) -> Result<Step, Error> {
    if state.is_some_and(|s| s.phase == 1) {
        return Ok(Step {
            files: vec![],
            remove: vec![],
            bundle: read_file(&dir.join(OVERLAP_BUNDLE))?,
            leaves: current_leaves(dir)?,
            changes: vec![format!(
                "files unchanged (phase 1 was done: {NEXT_CRT} is the new CA)"
            )],
        });
    }
    let now = crate::now();
    let old = cert_file(dir, "ca.crt")?;
    if !old.is_ca() {
        return Err(shared::pki::PkiError::NotCa {
            origin: dir.join("ca.crt").display().to_string(),
        }
        .into());
    }
    check_leaves_signed_by(dir, &old, "ca.crt")?;
    let name = args
        .ca_name
        .clone()
        .unwrap_or_else(|| next_ca_name(&old, now));
    if old.x509().subject().to_string() == format!("CN={name}") {
        return Err(Error::Usage(format!(
            "--ca-name {name:?} is the old CA's name: the two CAs must have different names, or TLS peers cannot tell them apart"
        )));
    }
    let next = Authority::create(&name, args.days, PrivateKey::generate(args.key_type)?, now)?;
    let bundle = format!("{}{}", old.to_pem(), next.cert.to_pem());
    let s = summarize(&next.cert, now);
    let state = State {
        phase: 1,
        old_ca_sha256: sha256_hex(old.der()),
        new_ca_sha256: s.sha256.clone(),
    };
    Ok(Step {
        files: vec![
            OutputFile {
                name: NEXT_CRT.into(),
                contents: next.cert.to_pem(),
                secret: false,
            },
            OutputFile {
                name: NEXT_KEY.into(),
                contents: next.key.to_pem(),
                secret: true,
            },
            OutputFile {
                name: OVERLAP_BUNDLE.into(),
                contents: bundle.clone(),
                secret: false,
            },
            state_file(&state),
        ],
        remove: vec![],
        bundle,
        leaves: current_leaves(dir)?,
        changes: vec![
            format!(
                "new CA {} (sha256 {}, valid until {}) in {NEXT_CRT}, key {NEXT_KEY} (mode 0600)",
                s.subject, s.sha256, s.not_after
            ),
            format!("{OVERLAP_BUNDLE}: the old and the new CA, for both trust bundles"),
        ],
    })
}

fn phase2(args: &RotateArgs, dir: &Path, state: &State) -> Result<Step, Error> {
    let next_cert = cert_file(dir, NEXT_CRT)?;
    let bundle = read_file(&dir.join(OVERLAP_BUNDLE))?;
    if state.phase == 2 {
        check_leaves_signed_by(dir, &next_cert, NEXT_CRT)?;
        return Ok(Step {
            files: vec![],
            remove: vec![],
            bundle,
            leaves: current_leaves(dir)?,
            changes: vec![
                "files unchanged (phase 2 was done: server.crt and client.crt come from the new CA)"
                    .into(),
            ],
        });
    }
    let now = crate::now();
    let next = load_ca(dir, NEXT_CRT, NEXT_KEY)?;
    let mut files = Vec::new();
    let mut leaves = Vec::new();
    let mut changes = Vec::new();
    for usage in [Usage::Server, Usage::Client] {
        let leaf = Leaf::read(dir, usage)?;
        let stem = Leaf::stem(usage);
        let key = if args.new_key {
            PrivateKey::generate(crate::renew::key_type(&leaf.key_pem)?)?
        } else {
            PrivateKey::from_pem(&leaf.key_pem, "the current key")?
        };
        let v = leaf.cert().x509().validity().clone();
        let lifetime = (v.not_after.to_datetime() - v.not_before.to_datetime()).whole_days();
        let days = lifetime.clamp(1, i64::from(shared::pki::MAX_DAYS)) as u32;
        let new = next.reissue(leaf.cert(), days, key, now)?;
        let (o, n) = (summarize(leaf.cert(), now), summarize(&new.cert, now));
        changes.push(format!(
            "{stem}.crt from the new CA: serial {} -> {}, sha256 {} -> {}, not after {}{}",
            o.serial,
            n.serial,
            o.sha256,
            n.sha256,
            n.not_after,
            if args.new_key { ", new key" } else { "" }
        ));
        let key_pem = new.key.to_pem();
        files.extend(lifecycle::replace_keeping_prev(
            dir,
            &format!("{stem}.crt"),
            new.cert.to_pem(),
            false,
        ));
        if args.new_key {
            files.extend(lifecycle::replace_keeping_prev(
                dir,
                &format!("{stem}.key"),
                key_pem.clone(),
                true,
            ));
        }
        leaves.push((usage, new.cert.to_pem(), key_pem));
    }
    files.push(state_file(&State {
        phase: 2,
        ..state.clone()
    }));
    Ok(Step {
        files,
        remove: vec![],
        bundle,
        leaves,
        changes,
    })
}

fn phase3(dir: &Path, state: &State) -> Result<Step, Error> {
    if state.phase == 3 {
        let ca = cert_file(dir, "ca.crt")?;
        check_leaves_signed_by(dir, &ca, "ca.crt")?;
        return Ok(Step {
            files: vec![],
            remove: vec![],
            bundle: read_file(&dir.join("ca.crt"))?,
            leaves: current_leaves(dir)?,
            changes: vec![
                "files unchanged (phase 3 was done: ca.crt is the new CA, the old one is ca.crt.prev)"
                    .into(),
            ],
        });
    }
    // The new CA must still be usable: its key belongs to it and it is valid.
    let next = load_ca(dir, NEXT_CRT, NEXT_KEY)?;
    check_leaves_signed_by(dir, &next.cert, NEXT_CRT)?;
    let new_pem = next.cert.to_pem();
    let mut files = lifecycle::replace_keeping_prev(dir, "ca.crt", new_pem.clone(), false);
    files.extend(lifecycle::replace_keeping_prev(
        dir,
        "ca.key",
        next.key.to_pem(),
        true,
    ));
    files.push(state_file(&State {
        phase: 3,
        ..state.clone()
    }));
    Ok(Step {
        files,
        remove: vec![NEXT_CRT, NEXT_KEY, OVERLAP_BUNDLE],
        bundle: new_pem,
        leaves: current_leaves(dir)?,
        changes: vec![
            format!(
                "ca.crt, ca.key: the new CA (sha256 {}); the old one kept as ca.crt.prev, ca.key.prev",
                state.new_ca_sha256
            ),
            format!(
                "both trust bundles: the new CA only (the old CA, sha256 {}, removed)",
                state.old_ca_sha256
            ),
        ],
    })
}

/// What a phase run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ran {
    /// The phase is done: files and Secrets as it leaves them.
    Done,
    /// A dry run: nothing was written.
    DryRun,
    /// The rotation is past this phase: nothing was done.
    Past,
}

/// Runs `rotate-ca`.
pub(crate) async fn run(
    args: &RotateArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if global.kube.context.is_some() {
        return Err(Error::Usage(
            "--context selects one cluster, and rotate-ca works on two: use --target-context and --client-context".into(),
        ));
    }
    let dir = lifecycle::bundle_dir(&args.dir)?;
    shared::pki::check_days(args.days)?;
    lifecycle::check_host(&dir, args.host.as_deref())?;
    match args.phase {
        Phases::All => crate::rotate_all::run(args, global, &dir, out, err).await,
        Phases::One(phase) => {
            if args.check_timeout.is_some() || args.connect.is_some() {
                return Err(Error::Usage(format!(
                    "--check-timeout and --connect apply to --phase all: --phase {phase} runs no check (it prints the probe commands to run); drop them, or use --phase all"
                )));
            }
            if run_phase(phase, args, global, &dir, out).await? == Ran::Done {
                next_steps(
                    phase,
                    args,
                    global,
                    &dir,
                    &phase.saturating_add(1).to_string(),
                    out,
                )?;
            }
            Ok(())
        }
    }
}

/// Runs one phase on `dir`: validates both clusters, then writes files and Secrets, and reports.
pub(crate) async fn run_phase(
    phase: u8,
    args: &RotateArgs,
    global: &GlobalArgs,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<Ran, Error> {
    let dir = dir.to_path_buf();
    let state = read_state(&dir)?;
    let reached = state.as_ref().map_or(0, |s| s.phase);
    // A finished rotation's record only matters to a re-run of phase 3 (or 2, which says so).
    if let Some(s) = &state
        && !(s.phase == 3 && phase == 1)
    {
        check_state(&dir, s)?;
    }
    let step = match (phase, state.as_ref()) {
        (1, None) => phase1(args, &dir, None)?,
        (1, Some(s)) if s.phase != 2 => phase1(args, &dir, Some(s))?,
        (2, Some(s)) if s.phase <= 2 => phase2(args, &dir, s)?,
        (3, Some(s)) if s.phase >= 2 => phase3(&dir, s)?,
        (3, _) => {
            return Err(Error::Usage(format!(
                "phase 3 before phase 2 ({}): the certificates in use still come from the old CA, and removing it from the trust bundles would stop traffic; run --phase {} first",
                if reached == 0 {
                    format!("{} has no rotation in progress", dir.display())
                } else {
                    format!("the rotation in {} is at phase {reached}", dir.display())
                },
                reached + 1
            )));
        }
        (2, None) => {
            return Err(Error::Usage(format!(
                "phase 2 before phase 1: {} has no rotation in progress ({STATE}); run --phase 1 first",
                dir.display()
            )));
        }
        (phase, _) => {
            writeln!(
                out,
                "Nothing to do: the rotation in {} is at phase {reached}, past phase {phase}; next: {}",
                dir.display(),
                if reached == 3 {
                    "nothing (it is finished; --phase 1 starts a new rotation)".to_string()
                } else {
                    format!("--phase {}", reached + 1)
                }
            )?;
            return Ok(Ran::Past);
        }
    };

    let cluster = &args.cluster;
    let mut updates = Vec::new();
    for (usage, chain, key) in &step.leaves {
        let side = match usage {
            Usage::Server => Side::Target,
            Usage::Client => Side::Client,
        };
        let Some(context) = cluster.context(side) else {
            continue;
        };
        let pem = CredentialPem {
            chain: chain.clone(),
            key: key.clone(),
            ca: step.bundle.clone(),
        };
        let new = Certificate::parse_chain(chain, "the new certificate")?.remove(0);
        updates.push(Update {
            side,
            context: context.clone(),
            secret: cluster.secret(global, side, &pem)?,
            known: known_fingerprints(&dir, Leaf::stem(*usage), &new),
        });
    }

    let flags = &cluster.apply;
    let dry = flags.dry_run != DryRun::None;
    let report = |out: &mut dyn Write| -> Result<(), Error> {
        let note = if dry {
            " (dry run: nothing is written)"
        } else {
            ""
        };
        writeln!(out, "rotate-ca phase {phase} in {}{note}:", dir.display())?;
        for c in &step.changes {
            writeln!(out, "  {c}")?;
        }
        Ok(())
    };
    if flags.dry_run == DryRun::Client {
        lifecycle::client_dry_run(&updates, flags, out, report)?;
        return Ok(Ran::DryRun);
    }
    // Both clusters are checked before anything is said to be done or written.
    let validated = lifecycle::validate(global, updates, flags, cluster.force).await?;
    report(out)?;
    if flags.dry_run == DryRun::Server {
        for line in &validated.dry_run {
            writeln!(out, "{line}")?;
        }
        return Ok(Ran::DryRun);
    }
    if !step.files.is_empty() {
        let written = write_files(&dir, &step.files, true)?;
        let names: Vec<_> = written
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        writeln!(out, "wrote {} in {}", names.join(", "), dir.display())?;
        for name in &step.remove {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    let lines = lifecycle::write(validated, flags).await?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    if !lines.is_empty() {
        writeln!(out, "{SDS_NOTE}")?;
    } else {
        writeln!(
            out,
            "No cluster given (--target-context, --client-context): no Secret was touched."
        )?;
    }
    Ok(Ran::Done)
}

/// The CA(s) the traffic check after `phase` trusts for the target's server certificate: both
/// after phase 1 (the target still presents the old CA's), the new one only after phase 2 (the
/// target must present the new CA's before phase 3 drops the old) and 3.
pub(crate) fn trust_after(phase: u8) -> &'static str {
    match phase {
        1 => OVERLAP_BUNDLE,
        2 => NEXT_CRT,
        _ => "ca.crt",
    }
}

/// What to check before the next phase, and the command that goes on (`--phase then`).
pub(crate) fn next_steps(
    phase: u8,
    args: &RotateArgs,
    global: &GlobalArgs,
    dir: &Path,
    then: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let d = dir.display();
    let host = args.host.clone().unwrap_or_else(|| lifecycle::host_of(dir));
    let ca = trust_after(phase);
    let what = match phase {
        1 => "both sides trust both CAs; the certificates in use are still the old CA's",
        2 => "both sides present certificates of the new CA and still trust both",
        _ => "only the new CA is trusted",
    };
    let c = &args.cluster;
    let ctx = |side: Side| {
        c.context(side)
            .cloned()
            .unwrap_or_else(|| format!("<{}-context>", lifecycle::side_name(side)))
    };
    writeln!(out, "Now {what}. Check the traffic:")?;
    let connect = args
        .connect
        .as_ref()
        .map(|c| format!(" --connect {c}"))
        .unwrap_or_default();
    writeln!(
        out,
        "  kubectl mtls-probe direct --host {host}{connect} --cert {d}/client.crt --key {d}/client.key --ca {d}/{ca}"
    )?;
    writeln!(
        out,
        "  kubectl mtls-probe check --context {} --host {host} --client-cert {d}/client.crt",
        ctx(Side::Client)
    )?;
    if phase < 3 {
        // The flags that name the Secrets, as given, so the next phase finds the same ones.
        let mut same = String::new();
        for (flag, value) in [
            (
                "--kubeconfig",
                global
                    .kube
                    .kubeconfig
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            ("-n", global.kube.namespace.clone()),
            ("--host", args.host.clone()),
            ("--target-namespace", c.target_namespace.clone()),
            ("--client-namespace", c.client_namespace.clone()),
            (
                "--target-secret",
                Some(c.target_secret.clone()).filter(|n| n != Side::Target.default_name()),
            ),
            (
                "--client-secret",
                Some(c.client_secret.clone()).filter(|n| n != Side::Client.default_name()),
            ),
        ] {
            if let Some(value) = value {
                same.push_str(&format!(" {flag} {value}"));
            }
        }
        if then == "all" {
            if let Some(t) = args.check_timeout {
                same.push_str(&format!(" --check-timeout {}s", t.as_secs()));
            }
            same.push_str(&connect);
        }
        writeln!(
            out,
            "Then: kubectl mtls-certs rotate-ca --phase {then} --dir {d} --target-context {} --client-context {}{same}",
            ctx(Side::Target),
            ctx(Side::Client)
        )?;
    } else {
        writeln!(out, "The rotation is finished.")?;
    }
    Ok(())
}
