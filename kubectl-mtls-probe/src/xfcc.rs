//! The `X-Forwarded-Client-Cert` (XFCC) header as Envoy writes it, and whether it names *our*
//! client certificate.
//!
//! Format (Envoy's `x-forwarded-client-cert` documentation): the header is a list of elements
//! separated by `,`, one per proxy hop that forwarded a client certificate; an element is a list
//! of `key=value` pairs separated by `;`. Values may be double-quoted, and then may contain `,`,
//! `;` and `=`, with `\"` (and `\\`) escaped. Keys: `By` (the proxy's own identity), `Hash`
//! (SHA-256 of the client certificate's DER, hex), `Cert` and `Chain` (URL-encoded PEM),
//! `Subject` (RFC 2253 DN, quoted), `URI` and `DNS` (SANs, may repeat). Unknown keys and
//! surrounding whitespace are tolerated; malformed text is an [`XfccError`], never a panic.
//!
//! Presence of the header proves nothing (an Istio sidecar appends an element for its own
//! mesh-mTLS hop; gateways set Subject, Cert, DNS and URI: istio/istio
//! `pilot/pkg/networking/core/gateway.go`): `find_client` says which element,
//! if any, carries our certificate, and by which evidence.
//!
//! ```
//! use kubectl_mtls_probe::xfcc;
//! let elements = xfcc::parse(r#"Hash=ab12;Subject="CN=client.example.com,O=Acme, Inc.";DNS=client.example.com"#).unwrap();
//! assert_eq!(elements.len(), 1);
//! assert_eq!(elements[0].subject.as_deref(), Some("CN=client.example.com,O=Acme, Inc."));
//! ```

use std::fmt;

use serde::Serialize;

use shared::pki::{Certificate, sha256_hex};

/// One element of the header: what one proxy hop saw of its downstream client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct XfccElement {
    /// `By`: the identity (SAN) of the proxy that added the element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `Hash`: hex SHA-256 of the client certificate's DER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// `Cert`: the client certificate, URL-encoded PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// `Chain`: the client certificate chain, URL-encoded PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `Subject`: the client certificate's subject DN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `URI`: URI SANs of the client certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uri: Vec<String>,
    /// `DNS`: DNS SANs of the client certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Any other `key=value` pairs, in order (keys as written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<(String, String)>,
}

/// Why a header value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Forwarded-Client-Cert is malformed at byte {position}: {problem}")]
pub struct XfccError {
    /// Byte offset into the header value.
    pub position: usize,
    /// What was wrong there.
    pub problem: &'static str,
}

/// Parses a header value into its elements. Empty elements and empty pairs (`,,` or a trailing
/// `;`) are skipped, so an empty value gives no element. When a single-valued key repeats within
/// an element, the first value is kept.
pub fn parse(header: &str) -> Result<Vec<XfccElement>, XfccError> {
    let bytes = header.as_bytes();
    let mut elements = Vec::new();
    let mut current = XfccElement::default();
    let mut has_pairs = false;
    let mut i = 0;
    loop {
        i = skip_space(bytes, i);
        if i >= bytes.len() {
            break;
        }
        match bytes[i] {
            b';' => {
                i += 1;
                continue;
            }
            b',' => {
                if has_pairs {
                    elements.push(std::mem::take(&mut current));
                    has_pairs = false;
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        // A key runs to `=`.
        let key_start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b';' | b',' | b'"') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(XfccError {
                position: i,
                problem: if bytes.get(i) == Some(&b'"') {
                    "a quote inside a key"
                } else {
                    "a key without `=value`"
                },
            });
        }
        let key = header[key_start..i].trim();
        if key.is_empty() {
            return Err(XfccError {
                position: key_start,
                problem: "an empty key before `=`",
            });
        }
        i = skip_space(bytes, i + 1);
        let value = if bytes.get(i) == Some(&b'"') {
            let (value, end) = quoted(header, i)?;
            i = skip_space(bytes, end);
            if i < bytes.len() && !matches!(bytes[i], b';' | b',') {
                return Err(XfccError {
                    position: i,
                    problem: "text after a closing quote (expected `;` or `,`)",
                });
            }
            value
        } else {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b';' | b',') {
                i += 1;
            }
            header[start..i].trim().to_string()
        };
        current.set(key, value);
        has_pairs = true;
    }
    if has_pairs {
        elements.push(current);
    }
    Ok(elements)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A quoted string starting at `open` (the `"`): its unescaped content and the index after the
/// closing quote. A backslash takes the next character literally.
fn quoted(header: &str, open: usize) -> Result<(String, usize), XfccError> {
    let mut out = String::new();
    let mut chars = header[open + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((out, open + 1 + offset + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(XfccError {
        position: open,
        problem: "a quoted value without its closing quote",
    })
}

impl XfccElement {
    fn set(&mut self, key: &str, value: String) {
        let single = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "by" => single(&mut self.by),
            "hash" => single(&mut self.hash),
            "cert" => single(&mut self.cert),
            "chain" => single(&mut self.chain),
            "subject" => single(&mut self.subject),
            "uri" => self.uri.push(value),
            "dns" => self.dns.push(value),
            _ => self.other.push((key.to_string(), value)),
        }
    }

    /// The `Cert` value decoded: the DER of the first certificate in its URL-encoded PEM, or
    /// `None` when absent or undecodable.
    pub fn cert_der(&self) -> Option<Vec<u8>> {
        let pem_text = percent_decode(self.cert.as_deref()?)?;
        let chain = Certificate::parse_chain(&pem_text, "XFCC Cert").ok()?;
        chain.into_iter().next().map(|c| c.der().to_vec())
    }
}

/// Writes the element back in Envoy's syntax, every value quoted; [`parse`] reads it back to an
/// equal element (the property the fuzz target checks).
impl fmt::Display for XfccElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut pair = |f: &mut fmt::Formatter<'_>, key: &str, value: &str| {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            write!(f, "{key}=\"")?;
            for c in value.chars() {
                if matches!(c, '"' | '\\') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        };
        let singles = [
            ("By", &self.by),
            ("Hash", &self.hash),
            ("Cert", &self.cert),
            ("Chain", &self.chain),
            ("Subject", &self.subject),
        ];
        for (key, value) in singles {
            if let Some(v) = value {
                pair(f, key, v)?;
            }
        }
        for v in &self.uri {
            pair(f, "URI", v)?;
        }
        for v in &self.dns {
            pair(f, "DNS", v)?;
        }
        for (k, v) in &self.other {
            pair(f, k, v)?;
        }
        Ok(())
    }
}

/// Writes a whole header value: the elements joined by `,`.
pub fn to_header(elements: &[XfccElement]) -> String {
    elements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes `%XX` escapes (as in URL-encoded PEM); `None` on a broken escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A distinguished name reduced to a comparable form: its `TYPE=value` attributes with types
/// upper-cased and escapes removed, sorted, so that RFC 2253 order (Envoy, nginx: last RDN
/// first) and X.509 order compare equal.
pub fn normalize_dn(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => in_quotes = !in_quotes,
            ',' | '+' | ';' if !in_quotes => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let mut out: Vec<String> = parts
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some(format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()))
        })
        .collect();
    out.sort();
    out
}

/// What we know of our own client certificate, to recognise it in XFCC.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    der: Vec<u8>,
    /// The subject as printed (for messages).
    pub subject: String,
    subject_normalized: Vec<String>,
    /// DNS SANs (lowercase).
    pub dns: Vec<String>,
}

impl ClientIdentity {
    /// The identity of `cert` (the leaf of `--cert` / `--client-cert`).
    pub fn from_certificate(cert: &Certificate) -> Self {
        let x = cert.x509();
        let subject = x.subject().to_string();
        let dns = cert
            .dns_sans()
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        Self {
            sha256: sha256_hex(cert.der()),
            der: cert.der().to_vec(),
            subject_normalized: normalize_dn(&subject),
            subject,
            dns,
        }
    }
}

/// How an element was recognised as our certificate, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Evidence {
    /// `Hash` equals the SHA-256 of our certificate: the very certificate.
    Hash,
    /// `Cert` decodes to our certificate's DER: the very certificate.
    Cert,
    /// `Subject` equals our certificate's subject (another certificate could share it).
    Subject,
    /// A `DNS` entry equals one of our DNS SANs (another certificate could share it).
    Dns,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Evidence::Hash => "Hash",
            Evidence::Cert => "Cert",
            Evidence::Subject => "Subject",
            Evidence::Dns => "DNS",
        })
    }
}

/// What one element says about our certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementVerdict {
    /// It is our certificate, by this evidence.
    Ours(Vec<Evidence>),
    /// `Hash` or `Cert` names another certificate (even if the names match: a look-alike).
    Other,
    /// Nothing in it relates to our certificate.
    Unrelated,
}

/// Judges one element. `Hash` and `Cert` identify a certificate exactly, so when either is
/// present it decides alone: a matching `Subject` with a different `Hash` is *not* ours. Without
/// them, a matching `Subject` or `DNS` counts.
pub fn judge(element: &XfccElement, id: &ClientIdentity) -> ElementVerdict {
    let mut evidence = Vec::new();
    let hash = element
        .hash
        .as_deref()
        .map(|h| h.replace(':', "").trim().to_ascii_lowercase());
    let cert = element.cert_der();
    match &hash {
        Some(h) if *h == id.sha256 => evidence.push(Evidence::Hash),
        Some(_) => return ElementVerdict::Other,
        None => {}
    }
    match &cert {
        Some(der) if *der == id.der => evidence.push(Evidence::Cert),
        Some(_) => return ElementVerdict::Other,
        None => {}
    }
    if element
        .subject
        .as_deref()
        .is_some_and(|s| normalize_dn(s) == id.subject_normalized)
    {
        evidence.push(Evidence::Subject);
    }
    if element
        .dns
        .iter()
        .any(|d| id.dns.contains(&d.to_ascii_lowercase()))
    {
        evidence.push(Evidence::Dns);
    }
    if evidence.is_empty() {
        ElementVerdict::Unrelated
    } else {
        ElementVerdict::Ours(evidence)
    }
}

/// The first element (index into `elements`) that carries our certificate, with its evidence.
pub(crate) fn find_client(
    elements: &[XfccElement],
    id: &ClientIdentity,
) -> Option<(usize, Vec<Evidence>)> {
    elements
        .iter()
        .enumerate()
        .find_map(|(i, e)| match judge(e, id) {
            ElementVerdict::Ours(ev) => Some((i, ev)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> XfccElement {
        let mut v = parse(header).unwrap_or_else(|e| panic!("{header}: {e}"));
        assert_eq!(v.len(), 1, "{header}: {v:?}");
        v.remove(0)
    }

    #[test]
    fn envoy_example_with_all_keys() {
        // The shape Envoy documents for an Istio gateway (SetCurrentClientCertDetails).
        let e = one(
            r#"By=spiffe://cluster.local/ns/foo/sa/bar;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=spiffe://lyft.com/test-team;DNS=lyft.com;DNS=www.lyft.com"#,
        );
        assert_eq!(
            e.by.as_deref(),
            Some("spiffe://cluster.local/ns/foo/sa/bar")
        );
        assert_eq!(
            e.hash.as_deref(),
            Some("468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688")
        );
        assert_eq!(
            e.subject.as_deref(),
            Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client")
        );
        assert_eq!(e.uri, ["spiffe://lyft.com/test-team"]);
        assert_eq!(e.dns, ["lyft.com", "www.lyft.com"]);
        assert!(e.other.is_empty());
    }

    #[test]
    fn several_elements_and_separators_inside_quotes() {
        let v = parse(
            r#"Hash=aa;Subject="CN=a,O=x;y=z";DNS=a.example.com, By=spiffe://b;Hash=bb;Subject="CN=b""#,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].subject.as_deref(), Some("CN=a,O=x;y=z"));
        assert_eq!(v[0].dns, ["a.example.com"]);
        assert_eq!(v[1].by.as_deref(), Some("spiffe://b"));
        assert_eq!(v[1].hash.as_deref(), Some("bb"));
        assert_eq!(v[1].subject.as_deref(), Some("CN=b"));
    }

    #[test]
    fn escaped_quotes_and_backslashes() {
        let e = one(r#"Subject="CN=\"quoted\" name,O=back\\slash";Hash=1"#);
        assert_eq!(
            e.subject.as_deref(),
            Some(r#"CN="quoted" name,O=back\slash"#)
        );
        assert_eq!(e.hash.as_deref(), Some("1"));
    }

    #[test]
    fn whitespace_unknown_keys_and_case_are_tolerated() {
        let e = one(" hash = AB ;  Foo=bar ; subject = \"CN=x\" ; dns=a ;");
        assert_eq!(e.hash.as_deref(), Some("AB"));
        assert_eq!(e.subject.as_deref(), Some("CN=x"));
        assert_eq!(e.dns, ["a"]);
        assert_eq!(e.other, [("Foo".to_string(), "bar".to_string())]);
    }

    #[test]
    fn empty_input_and_empty_parts() {
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("  , ;; ,").unwrap(), []);
        let v = parse(",Hash=a,,Hash=b,").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(one("Hash=").hash.as_deref(), Some(""));
    }

    #[test]
    fn repeated_single_key_keeps_the_first() {
        assert_eq!(one("Hash=a;Hash=b").hash.as_deref(), Some("a"));
    }

    #[test]
    fn garbage_is_an_error_with_a_position() {
        let cases: &[(&str, usize, &str)] = &[
            ("Hash", 4, "a key without `=value`"),
            ("Hash=a;junk,Hash=b", 11, "a key without `=value`"),
            ("=value", 0, "an empty key before `=`"),
            (
                "Subject=\"CN=x",
                8,
                "a quoted value without its closing quote",
            ),
            (
                "Subject=\"CN=x\\",
                8,
                "a quoted value without its closing quote",
            ),
            (
                "Subject=\"CN=x\"y;Hash=a",
                14,
                "text after a closing quote (expected `;` or `,`)",
            ),
            ("Su\"b=x", 2, "a quote inside a key"),
        ];
        for (input, position, problem) in cases {
            assert_eq!(
                parse(input),
                Err(XfccError {
                    position: *position,
                    problem
                }),
                "{input}"
            );
        }
        assert_eq!(
            parse("Hash").unwrap_err().to_string(),
            "X-Forwarded-Client-Cert is malformed at byte 4: a key without `=value`"
        );
    }

    #[test]
    fn display_round_trips() {
        for header in [
            r#"By=spiffe://x;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0A";Subject="CN=\"a\",O=b;c";URI=u1;URI=u2;DNS=d;X=y"#,
            r#"Hash=1,Hash=2;DNS="a,b""#,
            r#"Subject="back\\slash""#,
        ] {
            let parsed = parse(header).unwrap();
            let written = to_header(&parsed);
            assert_eq!(parse(&written).unwrap(), parsed, "{header} -> {written}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%0A").as_deref(), Some("a b\n"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
    }

    #[test]
    fn dn_normalization_ignores_order_spacing_and_escapes() {
        assert_eq!(
            normalize_dn("CN=client.example.com, O=Acme"),
            normalize_dn("O=Acme,cn=client.example.com")
        );
        assert_eq!(
            normalize_dn(r"O=Acme\, Inc.,CN=x"),
            normalize_dn("CN=x,O=\"Acme, Inc.\"")
        );
        assert_ne!(normalize_dn("CN=a"), normalize_dn("CN=b"));
        assert_eq!(normalize_dn(""), Vec::<String>::new());
    }

    mod matching {
        use super::*;
        use shared::names::DnsName;
        use shared::pki::{Bundle, BundleRequest, KeyType};

        fn bundle() -> Bundle {
            Bundle::generate(
                &BundleRequest {
                    domain: DnsName::parse("httpbin.example.com").unwrap(),
                    client: DnsName::parse("client.example.com").unwrap(),
                    days: 10,
                    key_type: KeyType::EcdsaP256,
                    ca_name: None,
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap()
        }

        fn url_encode(pem: &str) -> String {
            pem.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect()
        }

        #[test]
        fn hash_cert_subject_and_dns_evidence() {
            let ours = bundle();
            let id = ClientIdentity::from_certificate(&ours.client.cert);
            let hash = sha256_hex(ours.client.cert.der());
            assert_eq!(id.sha256, hash);

            // Istio's gateway element: Hash + Subject + DNS; the sidecar's element comes after.
            let header = format!(
                r#"Hash={};Subject="CN=client.example.com";DNS=client.example.com,By=spiffe://cluster.local/ns/default/sa/httpbin;Hash=00ff;Subject="";URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"#,
                hash.to_ascii_uppercase()
            );
            let v = parse(&header).unwrap();
            assert_eq!(
                find_client(&v, &id),
                Some((0, vec![Evidence::Hash, Evidence::Subject, Evidence::Dns]))
            );
            assert_eq!(judge(&v[1], &id), ElementVerdict::Other);

            // Cert (URL-encoded PEM, as Envoy and nginx's $ssl_client_escaped_cert write it).
            let header = format!(r#"Cert="{}""#, url_encode(&ours.client.cert.to_pem()));
            let v = parse(&header).unwrap();
            assert_eq!(find_client(&v, &id), Some((0, vec![Evidence::Cert])));

            // Names only: weaker evidence, still recognised.
            let v = parse("Subject=\"CN=client.example.com\"").unwrap();
            assert_eq!(find_client(&v, &id), Some((0, vec![Evidence::Subject])));
            let v = parse("DNS=CLIENT.example.com").unwrap();
            assert_eq!(find_client(&v, &id), Some((0, vec![Evidence::Dns])));
        }

        #[test]
        fn a_look_alike_certificate_is_not_ours() {
            let ours = bundle();
            let foreign = bundle(); // same names, other keys and CA
            let id = ClientIdentity::from_certificate(&ours.client.cert);
            let header = format!(
                r#"Hash={};Subject="CN=client.example.com";DNS=client.example.com"#,
                sha256_hex(foreign.client.cert.der())
            );
            let v = parse(&header).unwrap();
            assert_eq!(judge(&v[0], &id), ElementVerdict::Other);
            assert_eq!(find_client(&v, &id), None);
            let header = format!(
                r#"Cert="{}";Subject="CN=client.example.com""#,
                url_encode(&foreign.client.cert.to_pem())
            );
            assert_eq!(find_client(&parse(&header).unwrap(), &id), None);
            // Nothing related at all.
            let v = parse("Subject=\"CN=someone.else\";DNS=other.example.com").unwrap();
            assert_eq!(judge(&v[0], &id), ElementVerdict::Unrelated);
        }
    }
}
