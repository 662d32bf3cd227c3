//! `kubectl mtls-certs secret target|client`: the credential Secret a gateway reads, from a bundle.
//!
//! Everything is checked before anything is sent: the PEM parses, the key belongs to the
//! certificate, the chain is leaf-first, the certificate is current and has the EKU its side needs,
//! and the name is not one Istio would misread (`…-cacert`). A Secret of that name that holds
//! another certificate (another partner's credential, most likely) is not replaced without
//! `--force`.

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;

use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print, print_plan};
use shared::cluster::existing_credential_clash;
use shared::error::Error;
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::secret::{Side, credential_secret};
use shared::pki::{CredentialFiles, CredentialPem, Usage, load_credential};
use shared::plan::Plan;

/// Create the Istio credential Secret for the target (ingress) or client (egress) gateway
#[derive(clap::Args, Debug)]
#[command(
    after_help = "target: keys cert/key/cacert (server.crt, server.key, and ca.crt = the CA that signed the CLIENT
        certificates, so the ingress gateway can verify them); default name kyma-mtls-certs.
client: keys tls.crt/tls.key/ca.crt (client.crt, client.key, and ca.crt = the CA that signed the
        SERVER certificate, so the egress gateway can verify it); default name client-credential.
The namespace defaults to istio-system, where the gateways read credentials. A Secret of that name
holding another certificate is not replaced (each partner needs its own credential: --name)
unless --force.

Examples:
  kubectl mtls-certs secret target --dir ./mtls --context target --dry-run=client
  kubectl mtls-certs secret client --dir ./mtls --context client
  kubectl mtls-certs secret client --cert me.crt --key me.key --ca partner-ca.crt --dry-run=client -o yaml | kubectl apply -f -"
)]
pub(crate) struct SecretArgs {
    /// Which gateway the Secret is for
    #[arg(value_enum)]
    pub side: Side,
    /// Bundle directory written by `gen` (server.* for target, client.* for client, and ca.crt)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Secret name (default: kyma-mtls-certs for target, client-credential for client)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Certificate chain file, instead of <dir>/server.crt or <dir>/client.crt
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key file, instead of <dir>/server.key or <dir>/client.key
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// CA file the gateway verifies the peer with, instead of <dir>/ca.crt (<dir>/ca-bundle.crt during a rotate-ca)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Replace a Secret of that name that holds another certificate
    #[arg(long)]
    pub force: bool,
    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

struct Inputs {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl SecretArgs {
    fn inputs(&self) -> Inputs {
        let leaf = match self.side {
            Side::Target => "server",
            Side::Client => "client",
        };
        Inputs {
            cert: self
                .cert
                .clone()
                .unwrap_or_else(|| self.dir.join(format!("{leaf}.crt"))),
            key: self
                .key
                .clone()
                .unwrap_or_else(|| self.dir.join(format!("{leaf}.key"))),
            // During a CA rotation (`rotate-ca`, phases 1 and 2) the bundle holds both CAs.
            ca: self.ca.clone().unwrap_or_else(|| {
                let overlap = self.dir.join(crate::lifecycle::OVERLAP_BUNDLE);
                if overlap.is_file() {
                    overlap
                } else {
                    self.dir.join("ca.crt")
                }
            }),
        }
    }
}

/// Reads and checks the three inputs, for the gateway of `side`.
fn load(side: Side, inputs: &Inputs) -> Result<CredentialPem, Error> {
    let usage = match side {
        Side::Target => Usage::Server,
        Side::Client => Usage::Client,
    };
    let files = CredentialFiles {
        cert: &inputs.cert,
        key: &inputs.key,
        ca: &inputs.ca,
    };
    Ok(load_credential(usage, files, super::now())?)
}

/// Builds the Secret of `secret`, without touching a cluster.
pub(crate) fn secret(args: &SecretArgs, namespace: &str) -> Result<Secret, Error> {
    let pem = load(args.side, &args.inputs())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.side.default_name().to_string());
    Ok(credential_secret(args.side, &name, namespace, &pem)?)
}

/// Runs `secret`.
pub(crate) async fn run(
    args: &SecretArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let flags = &args.apply;
    // Check the inputs before the cluster is contacted: bad files fail fast and offline.
    let namespace = global
        .kube
        .namespace
        .clone()
        .unwrap_or_else(|| ISTIO_NAMESPACE.to_string());
    shared::cluster::validate_namespace(&namespace)?;
    let secret = secret(args, &namespace)?;
    let mut plan = Plan::new();
    plan.push(&secret)?;
    if flags.dry_run == DryRun::Client {
        return print_plan(&plan, flags.output, out);
    }
    let (client, _) = global
        .kube
        .connect_with_default_namespace(ISTIO_NAMESPACE)
        .await?;
    if !args.force {
        refuse_replacing(&client, &secret).await?;
    }
    apply_and_print(&client, &plan, flags, out).await
}

/// Refuses when `planned` exists and holds another certificate: most likely another partner's
/// credential, which this write would replace.
async fn refuse_replacing(client: &kube::Client, planned: &Secret) -> Result<(), Error> {
    match existing_credential_clash(client, planned).await? {
        Some(clash) => Err(Error::State(clash.message(
            "give each partner's credential its own --name (and pass that name to expose/enable --credential)",
        ))),
        None => Ok(()),
    }
}
