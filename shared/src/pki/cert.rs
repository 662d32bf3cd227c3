//! Parsed X.509 certificates and chains read from PEM.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::PkiError;
use super::pem;

/// A DER certificate known to parse as X.509.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({})", self.x509().subject())
    }
}

impl Certificate {
    /// Wraps DER bytes after checking that they parse.
    pub fn from_der(der: Vec<u8>, origin: &str) -> Result<Self, PkiError> {
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { der })
    }

    /// Every `CERTIFICATE` block of `text`, in file order (for a chain: leaf first).
    /// Fails when there is none, or when one does not parse.
    pub fn parse_chain(text: &str, origin: &str) -> Result<Vec<Self>, PkiError> {
        let blocks = pem::parse_blocks(text, origin)?;
        let certs: Vec<_> = blocks
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| Self::from_der(b.der, origin))
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err(PkiError::WrongPemKind {
                origin: origin.to_string(),
                expected: "a certificate",
                found: if text.contains("PRIVATE KEY") {
                    "a private key".into()
                } else {
                    "no CERTIFICATE block".into()
                },
            });
        }
        Ok(certs)
    }

    /// The parsed view. Parsing was checked when the value was made.
    pub fn x509(&self) -> X509Certificate<'_> {
        X509Certificate::from_der(&self.der)
            .expect("checked at construction")
            .1
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// Whether `basicConstraints` says CA:TRUE.
    pub fn is_ca(&self) -> bool {
        self.x509().is_ca()
    }

    /// The DER `SubjectPublicKeyInfo`, to compare with a private key's.
    pub fn public_key_info(&self) -> Vec<u8> {
        self.x509().public_key().raw.to_vec()
    }

    /// Whether `issuer` signed this certificate: names chain and the signature verifies.
    pub fn is_signed_by(&self, issuer: &Certificate) -> bool {
        let me = self.x509();
        let ca = issuer.x509();
        me.issuer() == ca.subject() && me.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// The DNS names among the subject alternative names, as written in the certificate.
    pub fn dns_sans(&self) -> Vec<String> {
        self.x509()
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the certificate is self-signed (a root).
    #[cfg(test)]
    pub(crate) fn is_self_signed(&self) -> bool {
        self.is_signed_by(self)
    }
}

/// Checks that a chain is leaf-first: each certificate is issued by the next one. A chain that is
/// plainly reversed (or starts with the CA) gives [`PkiError::ChainOrder`].
pub fn check_chain_order(chain: &[Certificate], origin: &str) -> Result<(), PkiError> {
    if chain.len() < 2 {
        return Ok(());
    }
    let names_chain = |a: &Certificate, b: &Certificate| a.x509().issuer() == b.x509().subject();
    let forward = chain.windows(2).all(|w| names_chain(&w[0], &w[1]));
    if forward {
        return Ok(());
    }
    Err(PkiError::ChainOrder {
        origin: origin.to_string(),
    })
}
