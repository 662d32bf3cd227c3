//! `kubectl mtls-certs gen`: the tutorial's five openssl commands, done right, in one step.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use shared::cli::{OutputFormat, Table, write_output};
use shared::error::Error;
use shared::names::DnsName;
use shared::pki::{
    Bundle, BundleRequest, CertSummary, KeyType, bundle_files, summarize, write_files,
};

/// Generate a CA, a server certificate for --domain and a client certificate for --client
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes ca.crt ca.key server.crt server.key client.crt client.key (keys mode 0600).

Examples:
  kubectl mtls-certs gen --domain httpbin.example.com --client client.example.com --out ./mtls
  kubectl mtls-certs gen --domain httpbin.example.com --client client.example.com --key-type rsa-2048 --days 90"
)]
pub(crate) struct GenArgs {
    /// The target's host name: the server certificate's SAN (DNS), e.g. httpbin.example.com
    #[arg(long, value_name = "DOMAIN")]
    pub domain: String,
    /// The client identity: the client certificate's SAN (DNS), e.g. client.example.com
    #[arg(long, value_name = "NAME")]
    pub client: String,
    /// Directory to write the six files to (created if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Validity of all three certificates, in days (1-3650)
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Key algorithm
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Common name of the CA (default: "<domain> Root CA")
    #[arg(long, value_name = "NAME")]
    pub ca_name: Option<String>,
    /// Replace an existing bundle in --out
    #[arg(long)]
    pub force: bool,
    /// Output format of the summary
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Serialize)]
struct Written {
    file: String,
    #[serde(flatten)]
    summary: CertSummary,
}

/// Runs `gen`.
pub(crate) fn run(args: &GenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let domain = DnsName::parse(&args.domain)?;
    let client = DnsName::parse_exact(&args.client)?;
    let request = BundleRequest {
        domain,
        client,
        days: args.days,
        key_type: args.key_type,
        ca_name: args.ca_name.clone(),
    };
    let now = super::now();
    let bundle = Bundle::generate(&request, now)?;
    write_files(&args.out, &bundle_files(&bundle), args.force)?;

    let written: Vec<Written> = [
        ("ca.crt", &bundle.ca.cert),
        ("server.crt", &bundle.server.cert),
        ("client.crt", &bundle.client.cert),
    ]
    .into_iter()
    .map(|(file, cert)| Written {
        file: args.out.join(file).display().to_string(),
        summary: summarize(cert, now),
    })
    .collect();
    write_output(out, args.output, &written, |out| {
        let mut table = Table::new(["FILE", "SUBJECT", "SAN", "USAGE", "KEY", "EXPIRES"]);
        for w in &written {
            let usage = if w.summary.is_ca {
                "CA".to_string()
            } else {
                w.summary.extended_key_usage.join(",")
            };
            table.row([
                w.file.clone(),
                w.summary.subject.clone(),
                w.summary.sans.join(","),
                usage,
                w.summary.key.clone(),
                w.summary.not_after.clone(),
            ]);
        }
        let dir = args.out.display();
        write!(out, "{table}")?;
        writeln!(
            out,
            "Private keys ca.key, server.key, client.key are in {dir} (mode 0600); keep ca.key offline."
        )?;
        writeln!(out, "Next:")?;
        writeln!(
            out,
            "  kubectl mtls-certs secret target --dir {dir} --context <target-cluster>   # server credential for the ingress gateway"
        )?;
        writeln!(
            out,
            "  kubectl mtls-certs secret client --dir {dir} --context <client-cluster>   # client credential for the egress gateway"
        )?;
        Ok(())
    })
}
