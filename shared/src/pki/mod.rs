//! Stage 1 of the procedure: the PKI. Generate a CA with a server and a client certificate, issue
//! more leaves, parse and describe certificates, verify them, and write bundles to disk safely.
//!
//! What the tutorial's openssl commands get wrong, and this module gets right: every certificate
//! is X.509 v3; leaves carry a DNS SAN
//! (Envoy's SAN check and rustls need it) and the right EKU (serverAuth or clientAuth); the CA has
//! its own CN, `basicConstraints CA:TRUE` (critical), `keyCertSign`+`cRLSign` and a subject key
//! identifier that the leaves' authority key identifier points at; serials are random, positive
//! and 128 bits wide.

mod cert;
mod credential;
mod expiry;
mod files;
mod inspect;
mod issue;
mod key;
mod pem;
mod verify;

use std::path::PathBuf;

pub use cert::{Certificate, check_chain_order};
pub use credential::{CredentialFiles, CredentialPem, load_credential};
pub use expiry::{
    DEFAULT_EXPIRY_WARNING, Expiry, days_left, describe_days_left, parse_expiry_warning,
};
pub use files::{BUNDLE_FILES, OutputFile, bundle_files, read_file, write_files};
pub(crate) use inspect::format_time;
pub use inspect::{CertSummary, describe_spki, sha256_hex, summarize};
pub use issue::{Authority, Bundle, BundleRequest, Issued, MAX_DAYS, Usage, check_days};
pub use key::{KeyType, PrivateKey};
pub use verify::{Check, VerifyRequest, verify};

/// Why certificates, keys or their files could not be used. Each `Display` is one line with a hint.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The input is empty.
    #[error("{origin} is empty: expected PEM data (-----BEGIN ...-----)")]
    Empty {
        /// File path or Secret key.
        origin: String,
    },
    /// The input is not PEM.
    #[error(
        "{origin} is not PEM ({reason}): expected -----BEGIN CERTIFICATE----- or a private key"
    )]
    NotPem {
        /// File path or Secret key.
        origin: String,
        /// What the PEM parser said.
        reason: String,
    },
    /// PEM of the wrong kind (a key where a certificate was expected, or the reverse).
    #[error("{origin} holds {found}, but {expected} was expected here")]
    WrongPemKind {
        /// File path or Secret key.
        origin: String,
        /// What was wanted.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// A CERTIFICATE block that is not a valid X.509 certificate.
    #[error("{origin}: the certificate cannot be parsed ({reason}): is the file truncated?")]
    BadCertificate {
        /// File path or Secret key.
        origin: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A password-protected key.
    #[error(
        "{origin} is an encrypted private key: decrypt it first (openssl pkey -in KEY -out KEY.plain) and keep the result private (chmod 600)"
    )]
    EncryptedKey {
        /// File path or Secret key.
        origin: String,
    },
    /// A key or structure we do not support.
    #[error("{origin} holds {what}: use an ECDSA P-256 or RSA (2048-4096) key in PEM")]
    Unsupported {
        /// File path or Secret key.
        origin: String,
        /// What was found.
        what: String,
    },
    /// The private key's public half differs from the certificate's.
    #[error(
        "the private key {key} does not belong to the certificate {cert}: pass the key that was generated with that certificate"
    )]
    KeyMismatch {
        /// Where the key came from.
        key: String,
        /// Where the certificate came from.
        cert: String,
    },
    /// A chain whose certificates are not leaf-first.
    #[error(
        "{origin}: the certificate chain is in the wrong order: put the leaf certificate first, then each issuer (intermediates), as TLS sends it"
    )]
    ChainOrder {
        /// File path or Secret key.
        origin: String,
    },
    /// A certificate used as a CA that is not one.
    #[error(
        "{origin} is not a CA certificate (no basicConstraints CA:TRUE): pass the CA that signed the leaves, not a leaf"
    )]
    NotCa {
        /// File path or Secret key.
        origin: String,
    },
    /// An expired (or not yet valid) CA.
    #[error(
        "the CA {origin} is not valid now (valid {not_before} to {not_after}): create a new CA with `kubectl mtls-certs gen`"
    )]
    CaNotValid {
        /// File path.
        origin: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// `--days` out of range.
    #[error("--days {0} is out of range: certificates here are valid for 1 to {max} days", max = MAX_DAYS)]
    Days(u32),
    /// Server and client given the same identity.
    #[error(
        "--domain and --client are both {0}: the server and the client need different names (e.g. httpbin.example.com and client.example.com)"
    )]
    SameName(String),
    /// Files that `gen`/`issue` would overwrite.
    #[error("{} already exist(s) in {}: pass --force to replace the bundle, or choose another --out", .files.join(", "), .dir.display())]
    Exists {
        /// The output directory.
        dir: PathBuf,
        /// The existing file names.
        files: Vec<String>,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}{}", .path.display(), hint_for(.source))]
    Io {
        /// What we tried (e.g. "write", "read").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate that cannot serve as the leaf of a gateway credential.
    #[error(
        "{origin} cannot serve as a {usage} credential: {check}: {detail}; issue a proper one with `kubectl mtls-certs issue {usage}`"
    )]
    UnfitCredential {
        /// The certificate file.
        origin: String,
        /// What the credential is for.
        usage: Usage,
        /// The failed check (`validity`, `usage`, `san` or `version`).
        check: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A Secret with neither of Istio's key layouts.
    #[error(
        "secret {secret} has {found}: Istio reads cert/key/cacert or tls.crt/tls.key/ca.crt; recreate it with `kubectl mtls-certs secret target|client --dir DIR`"
    )]
    SecretLayout {
        /// `namespace/name`.
        secret: String,
        /// What keys it has, or what is missing.
        found: String,
    },
    /// The crypto library failed (not caused by user input).
    #[error("{0}")]
    Crypto(String),
}

fn hint_for(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (choose a writable directory with --out, or fix its permissions)"
        }
        std::io::ErrorKind::NotFound => " (check the path)",
        _ => "",
    }
}

impl PkiError {
    /// A file-system error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
