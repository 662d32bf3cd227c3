//! `kubectl mtls-certs inspect FILE|DIR|secret/NAME`: what is in a certificate, a bundle, or a
//! credential Secret on the cluster — and, for Secrets, which gateway and CA direction it serves.

use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::ApiResource;
use serde::Serialize;

use shared::cli::{ExpiryArgs, GlobalArgs, OutputFormat, write_output};
use shared::cluster::{ClusterError, Operation};
use shared::error::Error;
use shared::manifest::secret::Layout;
use shared::pki::{CertSummary, Certificate, PkiError, PrivateKey, summarize};

use shared::manifest::ISTIO_NAMESPACE;

/// Describe certificates in a file, a directory, a Secret (secret/NAME), or all our credential Secrets (--managed)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "For a Secret, both Istio layouts are understood (cert/key/cacert and tls.crt/tls.key/ca.crt), and
the output says which gateway it serves and which CA it must hold. -n defaults to istio-system.

--managed lists every credential Secret kubectl-mtls manages (label app.kubernetes.io/managed-by=kubectl-mtls)
in the namespace (-n, default istio-system, where the gateways read them) or all namespaces (-A): side, hosts,
subject, expiry, days left, and each CA its trust bundle holds (several during a CA rotation). Certificates
that expire within --expiry-warning are named on stderr (warning), expired ones too (error).

Examples:
  kubectl mtls-certs inspect ./mtls
  kubectl mtls-certs inspect ./mtls/server.crt -o json
  kubectl mtls-certs inspect secret/kyma-mtls-certs --context target
  kubectl mtls-certs inspect --managed -A --expiry-warning 60d"
)]
pub(crate) struct InspectArgs {
    /// A PEM file, a directory of .crt/.pem/.key files, or secret/NAME on the cluster
    #[arg(value_name = "PATH|DIR|secret/NAME", value_hint = clap::ValueHint::AnyPath,
          required_unless_present = "managed", conflicts_with = "managed")]
    pub target: Option<String>,
    /// Every credential Secret kubectl-mtls manages on the cluster, with expiry and trust bundle CAs
    #[arg(long)]
    pub managed: bool,
    /// With --managed: all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// One file or Secret key and what it holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    certificates: Vec<CertSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    /// For a key: which certificate entry it belongs to (or `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    belongs_to: Option<String>,
    #[serde(skip)]
    spki: Vec<u8>,
}

/// Everything `inspect` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serves: Option<String>,
    entries: Vec<Entry>,
}

/// Runs `inspect`.
pub(crate) async fn run(
    args: &InspectArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if args.all_namespaces && !args.managed {
        return Err(Error::Usage(
            "-A lists the managed credential Secrets of all namespaces: use it with --managed"
                .into(),
        ));
    }
    let Some(target) = args.target.as_deref().filter(|_| !args.managed) else {
        return super::managed::run(args, global, out, err).await;
    };
    let report = match target
        .strip_prefix("secret/")
        .or_else(|| target.strip_prefix("secrets/"))
    {
        Some(name) => inspect_secret(name, global).await?,
        None => inspect_path(Path::new(target))?,
    };
    write_output(out, args.output, &report, |out| Ok(render(&report, out)?))
}

fn entry_from_pem(text: &str, source: String) -> Result<Entry, PkiError> {
    let holds_cert = text.contains("-----BEGIN CERTIFICATE-----");
    if !holds_cert && text.contains("PRIVATE KEY-----") {
        let key = PrivateKey::from_pem(text, &source)?;
        return Ok(Entry {
            source,
            certificates: Vec::new(),
            private_key: Some(key.describe()),
            belongs_to: None,
            spki: key.public_key_info(),
        });
    }
    let chain = Certificate::parse_chain(text, &source)?;
    let now = super::now();
    Ok(Entry {
        spki: chain[0].public_key_info(),
        certificates: chain.iter().map(|c| summarize(c, now)).collect(),
        source,
        private_key: None,
        belongs_to: None,
    })
}

/// Marks each key entry with the certificate entry whose leaf has the same public key.
fn match_keys(entries: &mut [Entry]) {
    let certs: Vec<(String, Vec<u8>)> = entries
        .iter()
        .filter(|e| !e.certificates.is_empty())
        .map(|e| (e.source.clone(), e.spki.clone()))
        .collect();
    for e in entries.iter_mut().filter(|e| e.private_key.is_some()) {
        e.belongs_to = Some(certs.iter().find(|(_, spki)| *spki == e.spki).map_or_else(
            || "none of these certificates".to_string(),
            |(s, _)| s.clone(),
        ));
    }
}

fn inspect_path(path: &Path) -> Result<Report, Error> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| PkiError::io("read directory", path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.')
                    && p.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| matches!(x, "crt" | "pem" | "cer" | "key"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Usage(format!(
                "{} has no .crt, .pem, .cer or .key files: pass a file, or the directory `gen` wrote",
                path.display()
            )));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut entries = files
        .iter()
        .map(|f| entry_from_pem(&shared::pki::read_file(f)?, f.display().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    match_keys(&mut entries);
    Ok(Report {
        target: path.display().to_string(),
        layout: None,
        serves: None,
        entries,
    })
}

async fn inspect_secret(name: &str, global: &GlobalArgs) -> Result<Report, Error> {
    let (client, namespace) = global
        .kube
        .connect_with_default_namespace(ISTIO_NAMESPACE)
        .await?;
    let secret = Api::<Secret>::namespaced(client, &namespace)
        .get(name)
        .await
        .map_err(|e| {
            ClusterError::from_kube(
                e,
                &Operation::new(
                    "get",
                    &ApiResource::erase::<Secret>(&()),
                    Some(&namespace),
                    Some(name),
                ),
            )
        })?;
    report_for_secret(&secret)
}

/// The report for a Secret object (pure: used for live Secrets and in tests).
fn report_for_secret(secret: &Secret) -> Result<Report, Error> {
    let id = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or(""),
        secret.metadata.name.as_deref().unwrap_or("")
    );
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    let layout = Layout::detect(keys.iter().copied()).ok_or_else(|| PkiError::SecretLayout {
        secret: id.clone(),
        found: if keys.is_empty() {
            "no data".to_string()
        } else {
            format!("only the keys {}", keys.join(", "))
        },
    })?;
    let [cert_key, key_key, ca_key] = layout.keys();
    let missing: Vec<&str> = layout
        .keys()
        .into_iter()
        .filter(|k| !data.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(PkiError::SecretLayout {
            secret: id,
            found: format!("no {}", missing.join(", no ")),
        }
        .into());
    }
    let text = |k: &str| String::from_utf8_lossy(&data[k].0).into_owned();
    let mut entries = vec![
        entry_from_pem(&text(cert_key), cert_key.to_string())?,
        entry_from_pem(&text(key_key), key_key.to_string())?,
        entry_from_pem(&text(ca_key), ca_key.to_string())?,
    ];
    match_keys(&mut entries);
    let leaf = &entries[0].certificates[0];
    let server = leaf.extended_key_usage.iter().any(|u| u == "serverAuth");
    let client = leaf.extended_key_usage.iter().any(|u| u == "clientAuth");
    let serves = match (server, client, layout) {
        (true, false, _) | (false, false, Layout::Generic) => format!(
            "target side: the ingress gateway's server credential (Gateway credentialName); {cert_key}/{key_key} identify the server, {ca_key} must be the CA that signed the CLIENT certificates"
        ),
        _ => format!(
            "client side: the egress gateway's client credential (DestinationRule credentialName); {cert_key}/{key_key} identify this cluster, {ca_key} must be the CA that signed the SERVER certificate"
        ),
    };
    Ok(Report {
        target: format!("secret/{id}"),
        layout: Some(layout.keys().join("/")),
        serves: Some(serves),
        entries,
    })
}

fn render(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let now = super::now();
    writeln!(out, "{}", report.target)?;
    if let Some(layout) = &report.layout {
        writeln!(out, "  Layout:         {layout}")?;
    }
    if let Some(serves) = &report.serves {
        writeln!(out, "  Serves:         {serves}")?;
    }
    for e in &report.entries {
        if let Some(key) = &e.private_key {
            writeln!(out, "\n{}: private key, {key}", e.source)?;
            if let Some(b) = &e.belongs_to {
                writeln!(out, "  Belongs to:     {b}")?;
            }
            continue;
        }
        for (i, c) in e.certificates.iter().enumerate() {
            let label = if e.certificates.len() > 1 {
                format!("{} [{}]", e.source, i)
            } else {
                e.source.clone()
            };
            let none = || "-".to_string();
            let join = |v: &[String]| if v.is_empty() { none() } else { v.join(", ") };
            writeln!(out, "\n{label}")?;
            writeln!(out, "  Subject:        {}", c.subject)?;
            writeln!(out, "  SANs:           {}", join(&c.sans))?;
            writeln!(
                out,
                "  Issuer:         {}{}",
                c.issuer,
                if c.issuer == c.subject {
                    " (self-signed)"
                } else {
                    ""
                }
            )?;
            writeln!(out, "  Serial:         {}", c.serial)?;
            writeln!(out, "  Valid:          {} to {}", c.not_before, c.not_after)?;
            writeln!(out, "  Days left:      {}", c.days_left_cell(now))?;
            writeln!(out, "  Key:            {}", c.key)?;
            writeln!(
                out,
                "  CA:             {}",
                if c.is_ca { "yes" } else { "no" }
            )?;
            writeln!(out, "  Key usage:      {}", join(&c.key_usage))?;
            writeln!(out, "  Ext. key usage: {}", join(&c.extended_key_usage))?;
            writeln!(out, "  SHA-256:        {}", c.sha256)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::manifest::secret::{Side, credential_secret};
    use shared::names::DnsName;
    use shared::pki::CredentialPem;
    use shared::pki::{Bundle, BundleRequest, KeyType};

    fn bundle() -> Bundle {
        Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse("httpbin.example.com").unwrap(),
                client: DnsName::parse("client.example.com").unwrap(),
                days: 30,
                key_type: KeyType::EcdsaP256,
                ca_name: None,
            },
            super::super::now(),
        )
        .unwrap()
    }

    #[test]
    fn secrets_in_both_layouts_say_which_side_they_serve() {
        let b = bundle();
        for (side, leaf, expect) in [
            (Side::Target, &b.server, "target side"),
            (Side::Client, &b.client, "client side"),
        ] {
            let pem = CredentialPem {
                chain: leaf.cert.to_pem(),
                key: leaf.key.to_pem(),
                ca: b.ca.cert.to_pem(),
            };
            let s = credential_secret(side, side.default_name(), "istio-system", &pem).unwrap();
            let r = report_for_secret(&s).unwrap();
            assert!(
                r.serves.as_deref().unwrap().starts_with(expect),
                "{:?}",
                r.serves
            );
            assert_eq!(r.entries.len(), 3);
            assert_eq!(
                r.entries[1].belongs_to.as_deref(),
                Some(side.layout().keys()[0])
            );
            assert!(r.entries[2].certificates[0].is_ca);
        }
    }

    #[test]
    fn secret_missing_keys_is_bad_input() {
        let b = bundle();
        let pem = CredentialPem {
            chain: b.client.cert.to_pem(),
            key: b.client.key.to_pem(),
            ca: b.ca.cert.to_pem(),
        };
        let mut s = credential_secret(Side::Client, "c", "istio-system", &pem).unwrap();
        s.data.as_mut().unwrap().remove("ca.crt");
        let err = report_for_secret(&s).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("no ca.crt"), "{err}");
        s.data.as_mut().unwrap().clear();
        assert!(
            report_for_secret(&s)
                .unwrap_err()
                .to_string()
                .contains("no data")
        );
    }
}
