//! `kubectl mtls-certs issue server|client`: another leaf from an existing CA (a second client
//! identity, a renewed server certificate).

use std::io::Write;
use std::path::PathBuf;

use shared::error::Error;
use shared::names::DnsName;
use shared::pki::{Authority, KeyType, OutputFile, PrivateKey, Usage, summarize, write_files};

/// Sign another server or client certificate with an existing CA
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes <name>.crt and <name>.key (mode 0600). The CA must be valid, and ca.key must belong to ca.crt.

Examples:
  kubectl mtls-certs issue client --name client2.example.com --ca-dir ./mtls
  kubectl mtls-certs issue server --name httpbin.example.com --ca-dir ./mtls --out ./renewed --force"
)]
pub(crate) struct IssueArgs {
    /// What the certificate is for (decides EKU serverAuth or clientAuth)
    #[arg(value_enum)]
    pub usage: Usage,
    /// Host name or client identity: the certificate's CN and DNS SAN
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Directory holding ca.crt and ca.key
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Directory to write to (default: --ca-dir)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Validity in days (1-3650; never beyond the CA's own expiry)
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Key algorithm
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Replace existing <name>.crt/<name>.key
    #[arg(long)]
    pub force: bool,
}

/// Runs `issue`.
pub(crate) fn run(args: &IssueArgs, out: &mut dyn Write) -> Result<(), Error> {
    let name = match args.usage {
        Usage::Server => DnsName::parse(&args.name)?,
        Usage::Client => DnsName::parse_exact(&args.name)?,
    };
    shared::pki::check_days(args.days)?;
    let ca_crt = args.ca_dir.join("ca.crt");
    let ca_key = args.ca_dir.join("ca.key");
    let key_origin = ca_key.display().to_string();
    let key = PrivateKey::from_pem(&shared::pki::read_file(&ca_key)?, &key_origin)?;
    let now = super::now();
    let ca = Authority::load(
        &shared::pki::read_file(&ca_crt)?,
        &ca_crt.display().to_string(),
        key,
        &key_origin,
        now,
    )?;
    let leaf = ca.issue(
        args.usage,
        &name,
        args.days,
        PrivateKey::generate(args.key_type)?,
        now,
    )?;
    // A wildcard's '*' is a poor file name character; name the files after the rest.
    let stem = name.as_str().replace('*', "wildcard");
    let dir = args.out.clone().unwrap_or_else(|| args.ca_dir.clone());
    let paths = write_files(
        &dir,
        &[
            OutputFile {
                name: format!("{stem}.crt"),
                contents: leaf.cert.to_pem(),
                secret: false,
            },
            OutputFile {
                name: format!("{stem}.key"),
                contents: leaf.key.to_pem(),
                secret: true,
            },
        ],
        args.force,
    )?;
    let s = summarize(&leaf.cert, now);
    writeln!(
        out,
        "Wrote {} ({} certificate for {}, {}, expires {}) and {} (mode 0600).",
        paths[0].display(),
        args.usage,
        name,
        s.key,
        s.not_after,
        paths[1].display()
    )?;
    if s.days_left < i64::from(args.days) - 1 {
        writeln!(
            out,
            "Note: valid for {} days only: a certificate cannot outlive its CA.",
            s.days_left
        )?;
    }
    Ok(())
}
