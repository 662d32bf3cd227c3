//! What `renew` and `rotate-ca` share: a bundle directory over its lifetime (its leaves, the trust
//! bundle of a CA rotation, old files kept as `*.prev`) and the credential Secrets built from it on
//! the target and client clusters.
//!
//! Sending follows one rule: every Secret is checked on its cluster (it must exist and hold one of
//! the certificates this directory knows, so another partner's credential is never replaced) and
//! validated by a server dry run on *both* clusters before anything — files or Secrets — is
//! written; after the write each Secret is read back and must hold exactly what was sent.
//!
//! Istio's gateways need no restart for an updated Secret: istiod watches every Secret through an
//! informer and notifies its handlers on each change (`pilot/pkg/credentials/kube/secrets.go`:
//! `NewCredentialsController` builds the informer, `AddEventHandler` registers the callback), and
//! pushes the new certificate to the gateways over SDS.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;

use shared::cli::{ApplyArgs, ApplyOutput, GlobalArgs, print_plan};
use shared::cluster::{Applied, ApplyMode, KubeArgs, apply_as, get_opt};
use shared::error::Error;
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::secret::{Side, credential_cert, credential_secret};
use shared::names::DnsName;
use shared::pki::{Certificate, CredentialPem, OutputFile, Usage, read_file};
use shared::plan::Plan;

/// The trust bundle during a CA rotation: the old and the new CA (phases 1 and 2).
pub(crate) const OVERLAP_BUNDLE: &str = "ca-bundle.crt";

/// What an Istio gateway does with an updated Secret, said after every update.
pub(crate) const SDS_NOTE: &str = "Istio's gateways pick updated Secrets up through SDS (istiod watches Secrets), without a restart.";

/// One leaf of the bundle directory: `server.*` (the target's) or `client.*` (the client's).
pub(crate) struct Leaf {
    /// Server or client.
    pub usage: Usage,
    /// The certificate chain as read (leaf first).
    pub chain: Vec<Certificate>,
    /// The key file's PEM.
    pub key_pem: String,
}

impl Leaf {
    /// `server` or `client`: the stem of the two files.
    pub fn stem(usage: Usage) -> &'static str {
        match usage {
            Usage::Server => "server",
            Usage::Client => "client",
        }
    }

    /// Reads `DIR/server.crt` + `.key` or `DIR/client.crt` + `.key`.
    pub fn read(dir: &Path, usage: Usage) -> Result<Self, Error> {
        let stem = Self::stem(usage);
        let crt = dir.join(format!("{stem}.crt"));
        let chain = Certificate::parse_chain(&read_file(&crt)?, &crt.display().to_string())?;
        let key_pem = read_file(&dir.join(format!("{stem}.key")))?;
        Ok(Self {
            usage,
            chain,
            key_pem,
        })
    }

    /// The leaf certificate.
    pub fn cert(&self) -> &Certificate {
        &self.chain[0]
    }

    /// The side whose gateway presents this leaf.
    pub fn side(&self) -> Side {
        match self.usage {
            Usage::Server => Side::Target,
            Usage::Client => Side::Client,
        }
    }
}

/// Refuses a bundle directory whose server certificate does not cover `host` (another host's
/// bundle, most likely).
pub(crate) fn check_host(dir: &Path, host: Option<&str>) -> Result<(), Error> {
    let Some(host) = host else { return Ok(()) };
    let host = DnsName::parse(host)?;
    let server = Leaf::read(dir, Usage::Server)?;
    let sans = server.cert().dns_sans();
    let covered = sans
        .iter()
        .any(|s| DnsName::parse(s).is_ok_and(|s| s.covers(host.as_str())));
    if covered {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}/server.crt is for {} and not for --host {host}: this is another host's bundle; pass the --dir of {host}'s bundle",
        dir.display(),
        sans.join(", ")
    )))
}

/// The first DNS SAN of the server certificate: the host the probes connect to.
pub(crate) fn host_of(dir: &Path) -> String {
    Leaf::read(dir, Usage::Server)
        .ok()
        .and_then(|l| l.cert().dns_sans().into_iter().next())
        .unwrap_or_else(|| "HOST".into())
}

/// `name` with `contents`, preceded by `name.prev` holding what `name` holds now (if anything):
/// the old file is kept when the new one replaces it.
pub(crate) fn replace_keeping_prev(
    dir: &Path,
    name: &str,
    contents: String,
    secret: bool,
) -> Vec<OutputFile> {
    let mut files = Vec::with_capacity(2);
    if let Ok(old) = std::fs::read_to_string(dir.join(name)) {
        files.push(OutputFile {
            name: format!("{name}.prev"),
            contents: old,
            secret,
        });
    }
    files.push(OutputFile {
        name: name.to_string(),
        contents,
        secret,
    });
    files
}

/// `target` or `client`, as the flags spell the side.
pub(crate) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Target => "target",
        Side::Client => "client",
    }
}

/// The Secrets of both clusters: which context and namespace, which Secret names.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ClusterArgs {
    /// Kubeconfig context of the target cluster: update its server credential Secret
    #[arg(long, value_name = "CONTEXT")]
    pub target_context: Option<String>,
    /// Kubeconfig context of the client cluster: update its client credential Secret
    #[arg(long, value_name = "CONTEXT")]
    pub client_context: Option<String>,
    /// Name of the target's credential Secret
    #[arg(long, value_name = "NAME", default_value = "kyma-mtls-certs")]
    pub target_secret: String,
    /// Name of the client's credential Secret
    #[arg(long, value_name = "NAME", default_value = "client-credential")]
    pub client_secret: String,
    /// Namespace of the target's Secret (default: -n, else istio-system)
    #[arg(long, value_name = "NAMESPACE")]
    pub target_namespace: Option<String>,
    /// Namespace of the client's Secret (default: -n, else istio-system)
    #[arg(long, value_name = "NAMESPACE")]
    pub client_namespace: Option<String>,
    /// Update a Secret even when it holds a certificate this directory does not know
    #[arg(long)]
    pub force: bool,
    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

impl ClusterArgs {
    /// The context given for `side`.
    pub fn context(&self, side: Side) -> Option<&String> {
        match side {
            Side::Target => self.target_context.as_ref(),
            Side::Client => self.client_context.as_ref(),
        }
    }

    /// The planned credential Secret of `side`.
    pub fn secret(
        &self,
        global: &GlobalArgs,
        side: Side,
        pem: &CredentialPem,
    ) -> Result<Secret, Error> {
        let (name, namespace) = match side {
            Side::Target => (&self.target_secret, &self.target_namespace),
            Side::Client => (&self.client_secret, &self.client_namespace),
        };
        let namespace = namespace
            .clone()
            .or_else(|| global.kube.namespace.clone())
            .unwrap_or_else(|| ISTIO_NAMESPACE.to_string());
        shared::cluster::validate_namespace(&namespace)?;
        Ok(credential_secret(side, name, &namespace, pem)?)
    }
}

/// One Secret to update on one cluster.
pub(crate) struct Update {
    /// Whose gateway reads it.
    pub side: Side,
    /// The kubeconfig context.
    pub context: String,
    /// The Secret as it should be.
    pub secret: Secret,
    /// SHA-256 of the certificates it may hold now (this directory's current, previous and new
    /// leaf): anything else is another credential, not replaced without `--force`.
    pub known: Vec<String>,
}

impl Update {
    fn where_(&self) -> String {
        format!(
            "{} (context {}) secret {}/{}",
            side_name(self.side),
            self.context,
            self.secret
                .metadata
                .namespace
                .as_deref()
                .unwrap_or_default(),
            self.secret.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// Updates validated on their clusters, ready to write.
pub(crate) struct Validated {
    updates: Vec<(Update, Client, Plan)>,
    /// The dry-run result lines.
    pub dry_run: Vec<String>,
}

/// `--dry-run=client`: nothing is sent or written. Stdout carries either the Secrets as
/// `kubectl apply -f -` reads them (`-o yaml`, the default when there are Secrets, `json`,
/// `name`), or with `-o table` (or no cluster) the `report` and one line per Secret.
pub(crate) fn client_dry_run(
    updates: &[Update],
    flags: &ApplyArgs,
    out: &mut dyn std::io::Write,
    report: impl FnOnce(&mut dyn std::io::Write) -> Result<(), Error>,
) -> Result<(), Error> {
    if updates.is_empty() || flags.output == Some(ApplyOutput::Table) {
        report(out)?;
        for u in updates {
            writeln!(out, "{}: would be configured (dry run)", u.where_())?;
        }
        return Ok(());
    }
    let mut plan = Plan::new();
    for u in updates {
        plan.push(&u.secret)?;
    }
    print_plan(&plan, flags.output, out)
}

/// Connects to each cluster, checks each Secret exists and holds a certificate of this directory
/// (unless `force`), and server-dry-runs every update; nothing is written.
pub(crate) async fn validate(
    global: &GlobalArgs,
    updates: Vec<Update>,
    flags: &ApplyArgs,
    force: bool,
) -> Result<Validated, Error> {
    let mut checked = Vec::with_capacity(updates.len());
    let mut dry_run = Vec::new();
    for u in updates {
        let client = KubeArgs {
            context: Some(u.context.clone()),
            namespace: None,
            ..global.kube.clone()
        }
        .client()
        .await?;
        let ns = u.secret.metadata.namespace.clone().unwrap_or_default();
        let name = u.secret.metadata.name.clone().unwrap_or_default();
        let Some(existing) = get_opt::<Secret>(&client, &ns, &name).await? else {
            return Err(Error::State(format!(
                "{} does not exist: renew and rotate-ca update the Secret `kubectl mtls-certs secret {}` created; name it with --{}-secret and --{}-namespace (or -n)",
                u.where_(),
                side_name(u.side),
                side_name(u.side),
                side_name(u.side)
            )));
        };
        let holds = credential_cert(&existing);
        let known = holds.as_ref().is_some_and(|c| u.known.contains(&c.sha256));
        if !known && !force {
            let holds = holds.map_or_else(
                || "no certificate this tool can read".to_string(),
                |c| format!("another certificate ({c})"),
            );
            return Err(Error::State(format!(
                "{} holds {holds} than this directory's: it may be another partner's credential; pass the right --{}-secret, or --force to replace it",
                u.where_(),
                side_name(u.side)
            )));
        }
        let mut plan = Plan::new();
        plan.push(&u.secret)?;
        let mode = ApplyMode::DryRunServer {
            force_conflicts: flags.force_conflicts,
        };
        for a in apply_as(&client, &plan, mode, &flags.field_manager).await? {
            dry_run.push(format!("{}: {} (server dry run)", u.where_(), a.outcome));
        }
        checked.push((u, client, plan));
    }
    Ok(Validated {
        updates: checked,
        dry_run,
    })
}

/// Writes the validated updates, then reads each Secret back: it must hold the certificate and
/// CA bundle that were sent. Returns one line per Secret.
pub(crate) async fn write(validated: Validated, flags: &ApplyArgs) -> Result<Vec<String>, Error> {
    let mode = ApplyMode::Apply {
        force_conflicts: flags.force_conflicts,
    };
    let mut lines = Vec::new();
    for (u, client, plan) in validated.updates {
        let applied: Vec<Applied> = apply_as(&client, &plan, mode, &flags.field_manager).await?;
        let outcome = applied.first().map(|a| a.outcome.to_string());
        let ns = u.secret.metadata.namespace.clone().unwrap_or_default();
        let name = u.secret.metadata.name.clone().unwrap_or_default();
        let stored = get_opt::<Secret>(&client, &ns, &name).await?;
        let [cert_key, _, ca_key] = u.side.layout().keys();
        let field =
            |s: &Secret, k: &str| s.data.as_ref().and_then(|d| d.get(k)).map(|b| b.0.clone());
        let landed = stored.as_ref().is_some_and(|s| {
            field(s, cert_key) == field(&u.secret, cert_key)
                && field(s, ca_key) == field(&u.secret, ca_key)
        });
        let sha = stored
            .as_ref()
            .and_then(credential_cert)
            .map(|c| c.sha256)
            .unwrap_or_default();
        if !landed {
            return Err(Error::CheckFailed(format!(
                "{} does not hold what was written (its certificate is sha256 {sha}): another controller may manage it; see `kubectl get secret {name} -n {ns} --show-managed-fields -o yaml`",
                u.where_()
            )));
        }
        lines.push(format!(
            "{}: {}; read back: certificate sha256 {sha}",
            u.where_(),
            outcome.unwrap_or_default()
        ));
    }
    Ok(lines)
}

/// The directory's files, checked to be a bundle directory.
pub(crate) fn bundle_dir(dir: &Path) -> Result<PathBuf, Error> {
    if !dir.join("ca.crt").is_file() {
        return Err(Error::Usage(format!(
            "{} holds no ca.crt: pass the --dir `kubectl mtls-certs gen` wrote",
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}
