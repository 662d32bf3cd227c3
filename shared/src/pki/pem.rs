//! PEM blocks: the text framing of certificates and keys, with the few checks users trip over
//! (empty input, not PEM at all, legacy `Proc-Type: 4,ENCRYPTED` keys).

use super::PkiError;

/// One decoded `-----BEGIN LABEL-----` block.
pub(crate) struct PemBlock {
    /// The label, e.g. `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded DER bytes.
    pub der: Vec<u8>,
    /// Whether legacy PEM encryption headers are present.
    pub encrypted: bool,
}

/// Parses every PEM block of `text`; `origin` names the source in errors.
pub(crate) fn parse_blocks(text: &str, origin: &str) -> Result<Vec<PemBlock>, PkiError> {
    if text.trim().is_empty() {
        return Err(PkiError::Empty {
            origin: origin.to_string(),
        });
    }
    let not_pem = |reason: String| PkiError::NotPem {
        origin: origin.to_string(),
        reason,
    };
    if !text.contains("-----BEGIN ") {
        return Err(not_pem("no -----BEGIN line".into()));
    }
    let blocks = pem::parse_many(text).map_err(|e| not_pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(not_pem("no complete PEM block".into()));
    }
    Ok(blocks
        .into_iter()
        .map(|b| PemBlock {
            encrypted: b
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED")),
            label: b.tag().to_string(),
            der: b.into_contents(),
        })
        .collect())
}

/// Encodes DER bytes as a PEM block with the given label (64-column lines, `\n` endings).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
pub(crate) fn base64_encode(der: &[u8]) -> String {
    let block = encode("X", der);
    block
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n")
}
