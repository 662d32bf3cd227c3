//! `kubectl mtls-certs verify`: the checks a TLS peer will make, before it makes them.

use std::io::Write;
use std::path::PathBuf;

use shared::cli::{OutputFormat, Table, write_output};
use shared::error::Error;
use shared::names::DnsName;
use shared::pki::{Certificate, PrivateKey, Usage, VerifyRequest, verify};

/// Check a certificate against a CA: chain, key, SAN, EKU and validity (exit 1 if any fails)
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl mtls-certs verify --ca ./mtls/ca.crt ./mtls/server.crt --key ./mtls/server.key --host httpbin.example.com --usage server
  kubectl mtls-certs verify --ca partner-ca.crt ./mtls/client.crt --usage client -o json")]
pub(crate) struct VerifyArgs {
    /// The CA certificate(s) to trust (PEM; several may be concatenated)
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// The certificate to check (PEM; leaf first, then intermediates)
    #[arg(value_name = "CERT")]
    pub cert: PathBuf,
    /// The private key that must belong to CERT
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A host name CERT's DNS SANs must cover
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The role CERT must be allowed by its EKU
    #[arg(long, value_enum)]
    pub usage: Option<Usage>,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Runs `verify`.
pub(crate) fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<(), Error> {
    let host = args.host.as_deref().map(DnsName::parse).transpose()?;
    let ca_origin = args.ca.display().to_string();
    let ca = Certificate::parse_chain(&shared::pki::read_file(&args.ca)?, &ca_origin)?;
    let cert_origin = args.cert.display().to_string();
    let chain = Certificate::parse_chain(&shared::pki::read_file(&args.cert)?, &cert_origin)?;
    let key = match &args.key {
        Some(path) => Some(PrivateKey::from_pem(
            &shared::pki::read_file(path)?,
            &path.display().to_string(),
        )?),
        None => None,
    };
    let checks = verify(&VerifyRequest {
        ca: &ca,
        chain: &chain,
        chain_origin: &cert_origin,
        key: key.as_ref(),
        host: host.as_ref(),
        usage: args.usage,
        now: super::now(),
    })?;
    let value = serde_json::json!({
        "certificate": cert_origin,
        "ok": checks.iter().all(|c| c.ok),
        "checks": checks,
    });
    write_output(out, args.output, &value, |out| {
        let mut table = Table::new(["CHECK", "RESULT", "DETAIL"]);
        for c in &checks {
            table.row([
                c.name,
                if c.ok { "ok" } else { "FAILED" },
                c.detail.as_str(),
            ]);
        }
        write!(out, "{table}")?;
        Ok(())
    })?;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed(format!(
            "{cert_origin}: {} of {} checks failed ({})",
            failed.len(),
            checks.len(),
            failed.join(", ")
        )))
    }
}
