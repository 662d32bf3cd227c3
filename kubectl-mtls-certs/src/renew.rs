//! `kubectl mtls-certs renew`: the leaves of a bundle directory re-issued by the CA that signed
//! them — fresh serials, the same names and usages, the keys kept unless `--new-key` — written
//! atomically with the old files kept as `*.prev`, and, given a cluster, the credential Secret
//! updated in place and read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use shared::cli::{DryRun, GlobalArgs};
use shared::error::Error;
use shared::manifest::secret::Side;
use shared::pki::{
    Authority, CredentialPem, KeyType, MAX_DAYS, PrivateKey, Usage, read_file, sha256_hex,
    summarize, write_files,
};

use crate::lifecycle::{self, ClusterArgs, Leaf, OVERLAP_BUNDLE, SDS_NOTE, Update};
use crate::rotate::{NEXT_CRT, NEXT_KEY};

/// Re-issue the server and/or client certificate from the same CA: fresh serials, same names
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Renews server.crt and client.crt (or only --server / --client) in --dir with the CA that signed
them (ca.crt, or ca.next.crt during a CA rotation): same subject, SANs and extended key usage,
a fresh random serial, the same lifetime unless --days. The keys stay unless --new-key. The old
files are kept as server.crt.prev etc.; all files are written atomically.

With --target-context (server) or --client-context (client) — or --context when only one side
is renewed — the credential Secret on that cluster is updated in place by server-side apply
(after a server dry run) and read back. Istio's gateways pick the update up through SDS without
a restart. The Secret must hold this directory's certificate already (--force otherwise).

Examples:
  kubectl mtls-certs renew --dir ./mtls
  kubectl mtls-certs renew --dir ./mtls --server --context target --dry-run=server
  kubectl mtls-certs renew --dir ./mtls --client --new-key --days 90 --context client"
)]
pub(crate) struct RenewArgs {
    /// Bundle directory written by `gen`
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Renew the server certificate (default: both)
    #[arg(long)]
    pub server: bool,
    /// Renew the client certificate (default: both)
    #[arg(long)]
    pub client: bool,
    /// Generate new keys (of the same type) instead of keeping the old ones
    #[arg(long)]
    pub new_key: bool,
    /// Validity in days (1-3650; default: the current certificate's lifetime; never beyond the CA)
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// The target host this bundle is for: refuse a directory whose server certificate is for another
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Contexts, Secret names and namespaces, --dry-run.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One renewed leaf, before anything is written.
struct Renewed {
    leaf: Leaf,
    new: shared::pki::Issued,
    /// Whether the validity asked for was cut at the CA's expiry.
    cut_at_ca: bool,
}

/// Runs `renew`.
pub(crate) async fn run(
    args: &RenewArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let dir = lifecycle::bundle_dir(&args.dir)?;
    let usages: Vec<Usage> = match (args.server, args.client) {
        (true, false) => vec![Usage::Server],
        (false, true) => vec![Usage::Client],
        _ => vec![Usage::Server, Usage::Client],
    };
    let mut cluster = args.cluster.clone();
    if let Some(context) = &global.kube.context {
        match usages.as_slice() {
            [Usage::Server] if cluster.target_context.is_none() => {
                cluster.target_context = Some(context.clone())
            }
            [Usage::Client] if cluster.client_context.is_none() => {
                cluster.client_context = Some(context.clone())
            }
            _ => {
                return Err(Error::Usage(
                    "--context names one cluster, and the server and client Secrets live on two: renew --server --context TARGET and --client --context CLIENT, or use --target-context and --client-context".into(),
                ));
            }
        }
    }
    for (side, usage) in [(Side::Target, Usage::Server), (Side::Client, Usage::Client)] {
        if cluster.context(side).is_some() && !usages.contains(&usage) {
            return Err(Error::Usage(format!(
                "--{}-context is given, but the {usage} certificate is not renewed: add --{usage}",
                lifecycle::side_name(side)
            )));
        }
    }
    if let Some(days) = args.days {
        shared::pki::check_days(days)?;
    }
    lifecycle::check_host(&dir, args.host.as_deref())?;

    let now = crate::now();
    let mut renewed = Vec::new();
    for usage in usages {
        let leaf = Leaf::read(&dir, usage)?;
        let ca = signer(&dir, &leaf, now)?;
        let key = if args.new_key {
            PrivateKey::generate(key_type(&leaf.key_pem)?)?
        } else {
            PrivateKey::from_pem(&leaf.key_pem, "the current key")?
        };
        let v = leaf.cert().x509().validity().clone();
        let lifetime = (v.not_after.to_datetime() - v.not_before.to_datetime()).whole_days();
        let days = args
            .days
            .unwrap_or_else(|| lifetime.clamp(1, i64::from(MAX_DAYS)) as u32);
        let new = ca.reissue(leaf.cert(), days, key, now)?;
        let ca_end = ca.cert.x509().validity().not_after.to_datetime();
        // More than a day short of what was asked for (minutes are the CA's own backdating).
        let cut_at_ca = now + time::Duration::days(i64::from(days) - 1) > ca_end;
        renewed.push(Renewed {
            leaf,
            new,
            cut_at_ca,
        });
    }

    let trust = trust_bundle(&dir)?;
    let mut files = Vec::new();
    let mut updates = Vec::new();
    for r in &renewed {
        let stem = Leaf::stem(r.leaf.usage);
        // Intermediates (if the chain had any) stay behind the new leaf.
        let mut chain = r.new.cert.to_pem();
        for c in &r.leaf.chain[1..] {
            chain.push_str(&c.to_pem());
        }
        files.extend(lifecycle::replace_keeping_prev(
            &dir,
            &format!("{stem}.crt"),
            chain.clone(),
            false,
        ));
        if args.new_key {
            files.extend(lifecycle::replace_keeping_prev(
                &dir,
                &format!("{stem}.key"),
                r.new.key.to_pem(),
                true,
            ));
        }
        let side = r.leaf.side();
        if let Some(context) = cluster.context(side) {
            let pem = CredentialPem {
                chain,
                key: r.new.key.to_pem(),
                ca: trust.clone(),
            };
            updates.push(Update {
                side,
                context: context.clone(),
                secret: cluster.secret(global, side, &pem)?,
                known: known_fingerprints(&dir, stem, &r.new.cert),
            });
        }
    }

    let flags = &cluster.apply;
    let dry = flags.dry_run != DryRun::None;
    if flags.dry_run == DryRun::Client {
        return lifecycle::client_dry_run(&updates, flags, out, |out| {
            print_renewed(&renewed, &dir, args.new_key, dry, out)
        });
    }
    // The Secrets are checked on their clusters before anything is said to be done or written.
    let validated = lifecycle::validate(global, updates, flags, cluster.force).await?;
    print_renewed(&renewed, &dir, args.new_key, dry, out)?;
    if let Some(r) = renewed.iter().find(|r| r.cut_at_ca) {
        writeln!(
            out,
            "Note: {}.crt ends when its CA does ({}): to go further, replace the CA (kubectl mtls-certs rotate-ca --phase 1).",
            Leaf::stem(r.leaf.usage),
            summarize(&r.new.cert, now).not_after
        )?;
    }
    if flags.dry_run == DryRun::Server {
        for line in &validated.dry_run {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let paths = write_files(&dir, &files, true)?;
    for p in paths {
        writeln!(out, "wrote {}", p.display())?;
    }
    let lines = lifecycle::write(validated, flags).await?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    if !lines.is_empty() {
        writeln!(out, "{SDS_NOTE}")?;
    }
    Ok(())
}

/// The CA of the directory that signed `leaf` (ca.crt, or ca.next.crt during a rotation), loaded
/// with its key: the key must belong to it and it must be valid now.
fn signer(dir: &Path, leaf: &Leaf, now: time::OffsetDateTime) -> Result<Authority, Error> {
    for (crt, key) in [("ca.crt", "ca.key"), (NEXT_CRT, NEXT_KEY)] {
        let crt = dir.join(crt);
        let Ok(pem) = read_file(&crt) else { continue };
        let origin = crt.display().to_string();
        let ca = shared::pki::Certificate::parse_chain(&pem, &origin)?;
        if !leaf.cert().is_signed_by(&ca[0]) {
            continue;
        }
        let key_path = dir.join(key);
        let key_origin = key_path.display().to_string();
        let key = PrivateKey::from_pem(&read_file(&key_path)?, &key_origin)?;
        return Ok(Authority::load(&pem, &origin, key, &key_origin, now)?);
    }
    Err(Error::Usage(format!(
        "{}/{}.crt was not signed by {}/ca.crt: renew re-issues from the CA that signed the leaf; pass the --dir `gen` wrote it to",
        dir.display(),
        Leaf::stem(leaf.usage),
        dir.display()
    )))
}

/// The key type of a PEM key, so a new key is of the same kind.
pub(crate) fn key_type(pem: &str) -> Result<KeyType, Error> {
    let key = PrivateKey::from_pem(pem, "the current key")?;
    Ok(match key.describe().as_str() {
        "RSA 2048" => KeyType::Rsa2048,
        "RSA 3072" => KeyType::Rsa3072,
        "RSA 4096" => KeyType::Rsa4096,
        _ => KeyType::EcdsaP256,
    })
}

/// What the Secrets' CA bundle holds: both CAs during a rotation, else ca.crt.
pub(crate) fn trust_bundle(dir: &Path) -> Result<String, Error> {
    let overlap = dir.join(OVERLAP_BUNDLE);
    let path = if overlap.is_file() {
        overlap
    } else {
        dir.join("ca.crt")
    };
    Ok(read_file(&path)?)
}

/// The certificates the Secret of `stem` may hold now: the current, previous and new leaf.
pub(crate) fn known_fingerprints(
    dir: &Path,
    stem: &str,
    new: &shared::pki::Certificate,
) -> Vec<String> {
    let mut known = vec![sha256_hex(new.der())];
    for file in [format!("{stem}.crt"), format!("{stem}.crt.prev")] {
        if let Ok(text) = std::fs::read_to_string(dir.join(file))
            && let Ok(chain) = shared::pki::Certificate::parse_chain(&text, "")
        {
            known.push(sha256_hex(chain[0].der()));
        }
    }
    known
}

fn print_renewed(
    renewed: &[Renewed],
    dir: &Path,
    new_key: bool,
    dry: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let now = crate::now();
    for r in renewed {
        let (old, new) = (summarize(r.leaf.cert(), now), summarize(&r.new.cert, now));
        writeln!(
            out,
            "{}/{}.crt {} ({}, {}):",
            dir.display(),
            Leaf::stem(r.leaf.usage),
            if dry { "would be renewed" } else { "renewed" },
            new.subject,
            if new_key { "new key" } else { "key kept" }
        )?;
        writeln!(out, "  serial     {} -> {}", old.serial, new.serial)?;
        writeln!(out, "  not after  {} -> {}", old.not_after, new.not_after)?;
        writeln!(out, "  sha256     {} -> {}", old.sha256, new.sha256)?;
    }
    Ok(())
}
