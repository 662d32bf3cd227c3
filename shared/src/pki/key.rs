//! Private keys: generate (ECDSA P-256 or RSA 2048/3072/4096), read from PEM, write as PKCS#8.
//!
//! ring (our only crypto provider) signs with RSA keys but cannot generate them, so RSA keys come
//! from the pure-Rust `rsa` crate and are handed to rcgen as PKCS#8. Keys read from disk may be
//! PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`, as cert-manager writes) or SEC1
//! (`EC PRIVATE KEY`); encrypted keys are refused with a hint instead of a password prompt.
//! A [`PrivateKey`] never prints its material: its `Debug` shows only the key type.

use std::fmt;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;

use super::PkiError;
use super::pem::{self, PemBlock};

/// The key algorithms `gen` and `issue` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256: small, fast, accepted by Envoy and every TLS stack.
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// RSA 2048 (what the tutorial's partners use).
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 3072.
    #[value(name = "rsa-3072")]
    Rsa3072,
    /// RSA 4096.
    #[value(name = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::EcdsaP256 => None,
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
        }
    }

    /// Whether this is an RSA key type.
    pub(crate) fn is_rsa(self) -> bool {
        self.rsa_bits().is_some()
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        })
    }
}

/// A private key able to sign certificates, with its public half.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.describe())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key of the given type from the operating system's random source.
    pub fn generate(key_type: KeyType) -> Result<Self, PkiError> {
        let pair = match key_type.rsa_bits() {
            None => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                .map_err(|e| PkiError::Crypto(format!("cannot generate an ECDSA key: {e}")))?,
            Some(bits) => {
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| {
                    PkiError::Crypto(format!("cannot generate an RSA-{bits} key: {e}"))
                })?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| PkiError::Crypto(format!("cannot encode an RSA key: {e}")))?;
                KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &PKCS_RSA_SHA256)
                    .map_err(|e| PkiError::Crypto(format!("ring refused an RSA key: {e}")))?
            }
        };
        Ok(Self { pair })
    }

    /// Reads one private key from PEM text; `origin` names the file or Secret key in errors.
    pub fn from_pem(text: &str, origin: &str) -> Result<Self, PkiError> {
        let blocks = pem::parse_blocks(text, origin)?;
        let mut keys = blocks.iter().filter(|b| b.label.contains("PRIVATE KEY"));
        let block = keys.next().ok_or_else(|| {
            if blocks.iter().any(|b| b.label == "CERTIFICATE") {
                PkiError::WrongPemKind {
                    origin: origin.to_string(),
                    expected: "a private key",
                    found: "a certificate".into(),
                }
            } else {
                PkiError::WrongPemKind {
                    origin: origin.to_string(),
                    expected: "a private key",
                    found: blocks
                        .first()
                        .map_or_else(|| "nothing".into(), |b| format!("{:?}", b.label)),
                }
            }
        })?;
        if keys.next().is_some() {
            return Err(PkiError::Unsupported {
                origin: origin.to_string(),
                what: "more than one private key in one file".into(),
            });
        }
        Self::from_block(block, origin)
    }

    fn from_block(block: &PemBlock, origin: &str) -> Result<Self, PkiError> {
        if block.encrypted || block.label == "ENCRYPTED PRIVATE KEY" {
            return Err(PkiError::EncryptedKey {
                origin: origin.to_string(),
            });
        }
        let unsupported = |what: String| PkiError::Unsupported {
            origin: origin.to_string(),
            what,
        };
        let pkcs8: Vec<u8> = match block.label.as_str() {
            "PRIVATE KEY" => block.der.clone(),
            "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(&block.der)
                .map_err(|e| unsupported(format!("an unreadable PKCS#1 RSA key ({e})")))?
                .to_pkcs8_der()
                .map_err(|e| unsupported(format!("an RSA key that cannot be re-encoded ({e})")))?
                .as_bytes()
                .to_vec(),
            "EC PRIVATE KEY" => sec1_to_pkcs8(&block.der)
                .ok_or_else(|| unsupported("an EC key on a curve other than P-256/P-384".into()))?,
            other => return Err(unsupported(format!("a {other:?} PEM block"))),
        };
        let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|_| {
            unsupported(
                "a key type other than ECDSA P-256/P-384, Ed25519 or RSA 2048–8192".to_string(),
            )
        })?;
        Ok(Self { pair })
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        self.pair.serialize_pem()
    }

    /// The DER `SubjectPublicKeyInfo` of the public half, to compare with a certificate's.
    pub fn public_key_info(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// A short human description such as `ECDSA P-256` or `RSA 2048`.
    pub fn describe(&self) -> String {
        super::inspect::describe_spki(&self.public_key_info())
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// Wraps a SEC1 `ECPrivateKey` into a PKCS#8 `PrivateKeyInfo` (what ring reads). The curve is told by
/// the private scalar's length: 32 bytes P-256, 48 bytes P-384.
fn sec1_to_pkcs8(sec1: &[u8]) -> Option<Vec<u8>> {
    // ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING, ... }
    let body = der_sequence_body(sec1)?;
    let scalar_len = match body {
        [0x02, 0x01, 0x01, 0x04, len, ..] => *len as usize,
        _ => return None,
    };
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let curve = match scalar_len {
        32 => P256,
        48 => P384,
        _ => return None,
    };
    let algorithm = der_wrap(0x30, &[EC_PUBLIC_KEY, curve].concat());
    let key = der_wrap(0x04, sec1);
    Some(der_wrap(
        0x30,
        &[&[0x02, 0x01, 0x00][..], &algorithm, &key].concat(),
    ))
}

fn der_sequence_body(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    rest.get(..len)
}

fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_each_key_type_and_round_trips_through_pem() {
        for (kt, expect) in [
            (KeyType::EcdsaP256, "ECDSA P-256"),
            (KeyType::Rsa2048, "RSA 2048"),
        ] {
            let key = PrivateKey::generate(kt).unwrap();
            assert_eq!(key.describe(), expect);
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = PrivateKey::from_pem(&pem, "k").unwrap();
            assert_eq!(back.public_key_info(), key.public_key_info());
            assert!(!format!("{key:?}").contains("BEGIN"));
        }
    }

    #[test]
    fn reads_pkcs1_rsa_and_sec1_ec_keys() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let rsa_key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
        let pkcs1 = rsa_key.to_pkcs1_pem(Default::default()).unwrap();
        let k = PrivateKey::from_pem(&pkcs1, "pkcs1.key").unwrap();
        assert_eq!(k.describe(), "RSA 2048");

        // A SEC1 key: extract the ECPrivateKey that ring's PKCS#8 wraps, and read it back.
        let ec = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let pkcs8 = ec.pair().serialize_der();
        let sec1 = extract_pkcs8_inner(&pkcs8);
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            pem::base64_encode(&sec1)
        );
        let back = PrivateKey::from_pem(&pem, "sec1.key").unwrap();
        assert_eq!(back.public_key_info(), ec.public_key_info());
    }

    /// The OCTET STRING content at the end of a PKCS#8 PrivateKeyInfo.
    fn extract_pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
        let body = der_sequence_body(pkcs8).unwrap();
        // version (3 bytes), then the algorithm SEQUENCE, then OCTET STRING.
        let alg_len = body[4] as usize;
        let rest = &body[3 + 2 + alg_len..];
        assert_eq!(rest[0], 0x04);
        let (len, start) = if rest[1] < 0x80 {
            (rest[1] as usize, 2)
        } else {
            (rest[2] as usize, 3)
        };
        rest[start..start + len].to_vec()
    }

    #[test]
    fn refuses_encrypted_and_unsupported_keys() {
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(encrypted, "e.key"),
            Err(PkiError::EncryptedKey { .. })
        ));
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(legacy, "l.key"),
            Err(PkiError::EncryptedKey { .. })
        ));
        let dsa = "-----BEGIN DSA PRIVATE KEY-----\nMIIB\n-----END DSA PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(dsa, "d.key"),
            Err(PkiError::Unsupported { .. })
        ));
        assert!(matches!(
            PrivateKey::from_pem("", "empty.key"),
            Err(PkiError::Empty { .. })
        ));
        assert!(matches!(
            PrivateKey::from_pem("garbage", "g.key"),
            Err(PkiError::NotPem { .. })
        ));
    }
}
