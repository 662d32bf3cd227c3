//! A gateway credential read from files: a certificate chain, its private key and the CA bundle
//! the gateway verifies its peer with — checked as the gateway would before anything is built
//! from it (`kubectl mtls-certs secret`, and `kubectl mtls-egress connect` reusing a bundle).

use std::path::Path;

use time::OffsetDateTime;

use super::PkiError;
use super::cert::{Certificate, check_chain_order};
use super::files::read_file;
use super::issue::Usage;
use super::key::PrivateKey;
use super::verify::{VerifyRequest, verify};

/// The PEM texts of a credential, as a credential Secret holds them.
#[derive(Clone)]
pub struct CredentialPem {
    /// Leaf certificate first, then intermediates.
    pub chain: String,
    /// The leaf's private key.
    pub key: String,
    /// The CA bundle the gateway uses to verify the peer.
    pub ca: String,
}

impl std::fmt::Debug for CredentialPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialPem { .. }")
    }
}

/// The three files of a credential.
#[derive(Debug, Clone, Copy)]
pub struct CredentialFiles<'a> {
    /// The certificate chain, leaf first.
    pub cert: &'a Path,
    /// The leaf's private key.
    pub key: &'a Path,
    /// The CA certificate(s) the gateway verifies its peer with.
    pub ca: &'a Path,
}

/// Reads and checks a credential whose leaf serves as `usage`: the PEM parses, the key belongs
/// to the certificate, the chain is leaf-first and current at `now`, the leaf has the EKU
/// `usage` needs (and a SAN, as v3), and `ca` holds CA certificates only.
pub fn load_credential(
    usage: Usage,
    files: CredentialFiles<'_>,
    now: OffsetDateTime,
) -> Result<CredentialPem, PkiError> {
    let origin = |p: &Path| p.display().to_string();
    let chain_pem = read_file(files.cert)?;
    let key_pem = read_file(files.key)?;
    let ca_pem = read_file(files.ca)?;
    let chain = Certificate::parse_chain(&chain_pem, &origin(files.cert))?;
    check_chain_order(&chain, &origin(files.cert))?;
    let key = PrivateKey::from_pem(&key_pem, &origin(files.key))?;
    let ca = Certificate::parse_chain(&ca_pem, &origin(files.ca))?;
    if ca.iter().any(|c| !c.is_ca()) {
        return Err(PkiError::NotCa {
            origin: origin(files.ca),
        });
    }
    if key.public_key_info() != chain[0].public_key_info() {
        return Err(PkiError::KeyMismatch {
            key: origin(files.key),
            cert: origin(files.cert),
        });
    }
    // The chain is checked against itself only: on the target, cacert is the *client's* CA,
    // which need not have signed the server certificate.
    let checks = verify(&VerifyRequest {
        ca: &chain[chain.len() - 1..],
        chain: &chain,
        chain_origin: &origin(files.cert),
        key: None,
        host: None,
        usage: Some(usage),
        now,
    })?;
    if let Some(bad) = checks
        .iter()
        .find(|c| !c.ok && matches!(c.name, "validity" | "usage" | "san" | "version"))
    {
        return Err(PkiError::UnfitCredential {
            origin: origin(files.cert),
            usage,
            check: bad.name,
            detail: bad.detail.clone(),
        });
    }
    Ok(CredentialPem {
        chain: chain_pem,
        key: key_pem,
        ca: ca_pem,
    })
}
