//! `kubectl mtls-certs secret target|client`: the credential Secret a gateway reads, from a bundle.
//!
//! Everything is checked before anything is sent: the PEM parses, the key belongs to the
//! certificate, the chain is leaf-first, the certificate is current and has the EKU its side needs,
//! and the name is not one Istio would misread (`…-cacert`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print, print_plan};
use crate::error::Error;
use crate::manifest::secret::{CredentialPem, Side, credential_secret};
use crate::pki::{
    Certificate, PkiError, PrivateKey, Usage, VerifyRequest, check_chain_order, verify,
};
use crate::plan::Plan;

/// The namespace Istio's gateways run in, where `credentialName` is resolved.
pub const GATEWAY_NAMESPACE: &str = "istio-system";

/// Create the Istio credential Secret for the target (ingress) or client (egress) gateway
#[derive(clap::Args, Debug)]
#[command(
    after_help = "target: keys cert/key/cacert (server.crt, server.key, and ca.crt = the CA that signed the CLIENT
        certificates, so the ingress gateway can verify them); default name kyma-mtls-certs.
client: keys tls.crt/tls.key/ca.crt (client.crt, client.key, and ca.crt = the CA that signed the
        SERVER certificate, so the egress gateway can verify it); default name client-credential.
The namespace defaults to istio-system, where the gateways read credentials.

Examples:
  kubectl mtls-certs secret target --dir ./mtls --context target --dry-run=client
  kubectl mtls-certs secret client --dir ./mtls --context client
  kubectl mtls-certs secret client --cert me.crt --key me.key --ca partner-ca.crt --dry-run=client -o yaml | kubectl apply -f -"
)]
pub struct SecretArgs {
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
    /// CA file the gateway verifies the peer with, instead of <dir>/ca.crt
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
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
            ca: self.ca.clone().unwrap_or_else(|| self.dir.join("ca.crt")),
        }
    }
}

/// Reads and checks the three inputs; returns their PEM text.
fn load_credential(side: Side, inputs: &Inputs) -> Result<CredentialPem, Error> {
    let origin = |p: &Path| p.display().to_string();
    let chain_pem = super::read_text(&inputs.cert)?;
    let key_pem = super::read_text(&inputs.key)?;
    let ca_pem = super::read_text(&inputs.ca)?;
    let chain = Certificate::parse_chain(&chain_pem, &origin(&inputs.cert))?;
    check_chain_order(&chain, &origin(&inputs.cert))?;
    let key = PrivateKey::from_pem(&key_pem, &origin(&inputs.key))?;
    let ca = Certificate::parse_chain(&ca_pem, &origin(&inputs.ca))?;
    if ca.iter().any(|c| !c.is_ca()) {
        return Err(PkiError::NotCa {
            origin: origin(&inputs.ca),
        }
        .into());
    }
    if key.public_key_info() != chain[0].public_key_info() {
        return Err(PkiError::KeyMismatch {
            key: origin(&inputs.key),
            cert: origin(&inputs.cert),
        }
        .into());
    }
    let usage = match side {
        Side::Target => Usage::Server,
        Side::Client => Usage::Client,
    };
    // The chain is checked against itself only: on the target, cacert is the *client's* CA,
    // which need not have signed the server certificate.
    let checks = verify(&VerifyRequest {
        ca: &chain[chain.len() - 1..],
        chain: &chain,
        chain_origin: &origin(&inputs.cert),
        key: None,
        host: None,
        usage: Some(usage),
        now: super::now(),
    })?;
    if let Some(bad) = checks
        .iter()
        .find(|c| !c.ok && matches!(c.name, "validity" | "usage" | "san" | "version"))
    {
        return Err(Error::Usage(format!(
            "{} cannot serve as the {side:?} credential: {}: {}; issue a proper one with `kubectl mtls-certs issue {usage}`",
            origin(&inputs.cert),
            bad.name,
            bad.detail
        )));
    }
    Ok(CredentialPem {
        chain: chain_pem,
        key: key_pem,
        ca: ca_pem,
    })
}

/// Reads and checks a credential from three files (as `secret` does for its flags): the PEM
/// parses, the key belongs to the certificate, the chain is leaf-first and current, the
/// certificate has the EKU `side` needs, and `ca` holds CA certificates only.
pub fn load_credential_files(
    side: Side,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> Result<CredentialPem, Error> {
    load_credential(
        side,
        &Inputs {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: ca.to_path_buf(),
        },
    )
}

/// Builds the one-object plan of `secret`, without touching a cluster.
pub fn plan(args: &SecretArgs, namespace: &str) -> Result<Plan, Error> {
    let pem = load_credential(args.side, &args.inputs())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.side.default_name().to_string());
    let secret = credential_secret(args.side, &name, namespace, &pem)?;
    let mut plan = Plan::new();
    plan.push(&secret)?;
    Ok(plan)
}

/// Runs `secret`.
pub async fn run(args: &SecretArgs, global: &GlobalArgs, out: &mut dyn Write) -> Result<(), Error> {
    let flags = &args.apply;
    // Check the inputs before the cluster is contacted: bad files fail fast and offline.
    let namespace = global
        .kube
        .namespace
        .clone()
        .unwrap_or_else(|| GATEWAY_NAMESPACE.to_string());
    crate::cluster::validate_namespace(&namespace)?;
    let plan = plan(args, &namespace)?;
    if flags.dry_run == DryRun::Client {
        return print_plan(&plan, flags.output, out);
    }
    let (client, _) = global
        .kube
        .connect_with_default_namespace(GATEWAY_NAMESPACE)
        .await?;
    apply_and_print(&client, &plan, flags, out).await
}
