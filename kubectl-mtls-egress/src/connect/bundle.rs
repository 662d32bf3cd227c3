//! Stage 1 of `connect`: the certificate bundle. Reused from `--certs DIR` when DIR holds one;
//! generated when DIR holds none of its files (and written there, never over an existing file,
//! unless this is a dry run); refused when DIR holds part of one.

use std::path::{Path, PathBuf};

use shared::error::Error;
use shared::names::DnsName;
use shared::pki::{
    BUNDLE_FILES, Bundle, BundleRequest, Certificate, CredentialFiles, CredentialPem, KeyType,
    Usage, bundle_files, load_credential, write_files,
};

/// The files a bundle must have to be reused. `ca.key` is not among them: `gen` advises keeping
/// it offline, and neither Secret needs it.
pub(crate) const REUSED_FILES: [&str; 5] = [
    "ca.crt",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

/// Where the bundle comes from and what it must be for.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// `--certs DIR`.
    pub dir: PathBuf,
    /// The target host: the server certificate's SAN.
    pub domain: DnsName,
    /// The client identity: the client certificate's SAN.
    pub client: DnsName,
    /// Validity of generated certificates, in days.
    pub days: u32,
    /// Key algorithm of generated keys.
    pub key_type: KeyType,
}

/// What DIR holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    /// Every file of `REUSED_FILES`: reuse it.
    Complete,
    /// None of the six files `gen` writes (or no DIR yet): generate.
    Empty,
    /// Some but not all: neither reusable nor safe to generate into.
    Partial {
        /// The bundle files present.
        present: Vec<&'static str>,
        /// The files reuse would need and that are missing.
        missing: Vec<&'static str>,
    },
}

/// Looks at DIR (file names only; nothing is read or written).
pub fn dir_state(dir: &Path) -> Result<DirState, Error> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--certs {}: not a directory; pass a directory holding a bundle from `kubectl mtls-certs gen`, or a new one to generate into",
            dir.display()
        )));
    }
    let present: Vec<&'static str> = BUNDLE_FILES
        .into_iter()
        .filter(|f| dir.join(f).symlink_metadata().is_ok())
        .collect();
    let missing: Vec<&'static str> = REUSED_FILES
        .into_iter()
        .filter(|f| !present.contains(f))
        .collect();
    Ok(if missing.is_empty() {
        DirState::Complete
    } else if present.is_empty() {
        DirState::Empty
    } else {
        DirState::Partial { present, missing }
    })
}

/// Refuses a DIR that holds part of a bundle, before anything else happens.
pub fn check_dir(dir: &Path) -> Result<DirState, Error> {
    let state = dir_state(dir)?;
    if let DirState::Partial { present, missing } = &state {
        return Err(Error::Usage(format!(
            "--certs {} holds {} but not {}: connect reuses a complete bundle or generates one into a directory without any, and never overwrites; complete it (kubectl mtls-certs issue), or pass another --certs",
            dir.display(),
            present.join(", "),
            missing.join(", ")
        )));
    }
    Ok(state)
}

/// The two credentials the Secrets are built from.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The target's (server) credential: server chain and key, and the CA that signed the client.
    pub target: CredentialPem,
    /// The client's credential: client chain and key, and the CA that signed the server.
    pub client: CredentialPem,
}

/// How stage 1 came by the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from DIR.
    Reused,
    /// Generated and written to DIR.
    Generated,
    /// Generated for a dry run; DIR was not written.
    InMemory,
}

impl Source {
    /// One line for the progress output.
    pub fn describe(self, dir: &Path) -> String {
        let dir = dir.display();
        match self {
            Source::Reused => format!("reused the bundle in {dir}"),
            Source::Generated => format!(
                "generated a CA, a server and a client certificate in {dir} (keys mode 0600; keep ca.key offline)"
            ),
            Source::InMemory => format!(
                "generated in memory only (dry run): {dir} is not written, a real run generates its own"
            ),
        }
    }
}

/// Reuses or generates the bundle; writes the generated files only when `write`.
pub fn obtain(spec: &BundleSpec, write: bool) -> Result<(Credentials, Source), Error> {
    match check_dir(&spec.dir)? {
        DirState::Complete => Ok((load(spec)?, Source::Reused)),
        DirState::Empty => {
            let bundle = Bundle::generate(
                &BundleRequest {
                    domain: spec.domain.clone(),
                    client: spec.client.clone(),
                    days: spec.days,
                    key_type: spec.key_type,
                    ca_name: None,
                },
                time::OffsetDateTime::now_utc(),
            )?;
            let source = if write {
                write_files(&spec.dir, &bundle_files(&bundle), false)?;
                Source::Generated
            } else {
                Source::InMemory
            };
            Ok((credentials(&bundle), source))
        }
        DirState::Partial { .. } => unreachable!("check_dir refuses a partial bundle"),
    }
}

/// The credentials of a freshly generated bundle (one CA signed both leaves).
pub fn credentials(bundle: &Bundle) -> Credentials {
    let ca = bundle.ca.cert.to_pem();
    Credentials {
        target: CredentialPem {
            chain: bundle.server.cert.to_pem(),
            key: bundle.server.key.to_pem(),
            ca: ca.clone(),
        },
        client: CredentialPem {
            chain: bundle.client.cert.to_pem(),
            key: bundle.client.key.to_pem(),
            ca,
        },
    }
}

/// Reads and checks the bundle in DIR, as `kubectl mtls-certs secret` would, and that its
/// certificates are for `--host` and `--client-name`.
fn load(spec: &BundleSpec) -> Result<Credentials, Error> {
    let dir = &spec.dir;
    let file = |name: &str| dir.join(name);
    let ca = file("ca.crt");
    let now = time::OffsetDateTime::now_utc();
    let leaf = |usage, cert: &Path, key: &Path| {
        load_credential(usage, CredentialFiles { cert, key, ca: &ca }, now)
    };
    let target = leaf(Usage::Server, &file("server.crt"), &file("server.key"))?;
    let client = leaf(Usage::Client, &file("client.crt"), &file("client.key"))?;
    require_san(&target.chain, &file("server.crt"), &spec.domain, "--host")?;
    require_san(
        &client.chain,
        &file("client.crt"),
        &spec.client,
        "--client-name",
    )?;
    Ok(Credentials { target, client })
}

fn require_san(chain_pem: &str, path: &Path, name: &DnsName, flag: &str) -> Result<(), Error> {
    let origin = path.display().to_string();
    let chain = Certificate::parse_chain(chain_pem, &origin)?;
    let sans = chain[0].dns_sans();
    let covered = sans
        .iter()
        .filter_map(|s| DnsName::parse(s).ok())
        .any(|s| s.covers(name.as_str()));
    if covered {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{origin} is for {}, not {flag} {name}: pass the {flag} it was made for, or a --certs directory without a bundle to generate one for {name}",
        if sans.is_empty() {
            "no DNS name".to_string()
        } else {
            sans.join(", ")
        }
    )))
}
