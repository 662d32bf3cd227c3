//! Host names as they appear in certificates and Istio hosts: validated once, carried as [`DnsName`].
//!
//! The rules are RFC 1123 host names as Kubernetes and Istio accept them: 1–253 characters in all,
//! labels of 1–63 characters from `a-z`, `0-9` and `-` (not at either end), and an optional `*` that
//! must be the whole leftmost label. IP addresses are refused: a certificate for an IP needs an IP SAN,
//! not a DNS SAN, and a typo like `10.0.0.1` for a domain is better caught here than by a TLS failure.

use std::fmt;
use std::net::IpAddr;

/// Why a string is not a usable DNS name. The `Display` text is one line with a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty: give a host name such as httpbin.example.com")]
    Empty,
    /// The name is longer than 253 characters.
    #[error("{0:?} is {1} characters long: a DNS name has at most 253")]
    TooLong(String, usize),
    /// A label is longer than 63 characters.
    #[error("{name:?} has a label of {len} characters ({label:?}): a DNS label has at most 63")]
    LabelTooLong {
        /// The whole name.
        name: String,
        /// The offending label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// Two dots in a row, or a leading or trailing dot.
    #[error("{0:?} has an empty label (a leading, trailing or double dot)")]
    EmptyLabel(String),
    /// A character outside `a-z0-9-` (after lowercasing).
    #[error("{name:?} contains {ch:?}: DNS names use only letters, digits, '-' and '.'")]
    BadCharacter {
        /// The whole name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// A label starts or ends with a hyphen.
    #[error("{name:?} has a label that starts or ends with '-' ({label:?})")]
    Hyphen {
        /// The whole name.
        name: String,
        /// The offending label.
        label: String,
    },
    /// A `*` somewhere other than as the whole leftmost label.
    #[error(
        "{0:?}: a wildcard '*' is allowed only as the whole leftmost label, as in *.example.com"
    )]
    Wildcard(String),
    /// A wildcard where the name must identify exactly one host.
    #[error("{0:?}: a wildcard cannot name a single client identity; give a concrete name")]
    WildcardNotAllowed(String),
    /// An IP address where a DNS name was expected.
    #[error(
        "{0:?} is an IP address, not a DNS name: certificates here name hosts by DNS (SAN DNS:...)"
    )]
    IpAddress(String),
    /// The top-level label is all digits, which no public or cluster domain uses.
    #[error("{0:?} ends in an all-numeric label: that is not a host name")]
    NumericTld(String),
}

/// A validated, lowercased DNS name, optionally with a leading `*.` wildcard label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// Validates `input` as a DNS name; a single `*` leftmost label is accepted.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.parse::<IpAddr>().is_ok()
            || name
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .is_ok()
        {
            return Err(NameError::IpAddress(input.to_string()));
        }
        if name.len() > 253 {
            return Err(NameError::TooLong(input.to_string(), name.len()));
        }
        let labels: Vec<&str> = name.split('.').collect();
        for (i, label) in labels.iter().enumerate() {
            if label.is_empty() {
                return Err(NameError::EmptyLabel(input.to_string()));
            }
            if label.contains('*') {
                if *label != "*" || i != 0 || labels.len() < 2 {
                    return Err(NameError::Wildcard(input.to_string()));
                }
                continue;
            }
            if label.len() > 63 {
                return Err(NameError::LabelTooLong {
                    name: input.to_string(),
                    label: label.to_string(),
                    len: label.len(),
                });
            }
            if let Some(ch) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(NameError::BadCharacter {
                    name: input.to_string(),
                    ch,
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(NameError::Hyphen {
                    name: input.to_string(),
                    label: label.to_string(),
                });
            }
        }
        let last = labels[labels.len() - 1];
        if labels.len() > 1 && last.chars().all(|c| c.is_ascii_digit()) {
            return Err(NameError::NumericTld(input.to_string()));
        }
        Ok(Self(name))
    }

    /// Like [`DnsName::parse`], but refuses wildcards: for names that identify one host or client.
    pub fn parse_exact(input: &str) -> Result<Self, NameError> {
        let name = Self::parse(input)?;
        if name.is_wildcard() {
            return Err(NameError::WildcardNotAllowed(input.to_string()));
        }
        Ok(name)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the leftmost label is `*`.
    pub(crate) fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether this name (as a certificate SAN) covers `host`: equal, or a wildcard matching
    /// exactly one leftmost label of `host` (RFC 6125 §6.4.3, as browsers and Envoy apply it).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            None => self.0 == host,
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        }
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DnsName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_wildcard_names() {
        for ok in [
            "httpbin.example.com",
            "a",
            "x-1.y-2.example",
            "*.example.com",
            "HTTPBIN.Example.COM",
        ] {
            assert!(DnsName::parse(ok).is_ok(), "{ok} should be accepted");
        }
        assert_eq!(
            DnsName::parse("HTTPBIN.Example.COM").unwrap().as_str(),
            "httpbin.example.com"
        );
    }

    #[test]
    fn refuses_each_malformed_shape_with_its_own_reason() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        type Expect = fn(&NameError) -> bool;
        let cases: Vec<(&str, Expect)> = vec![
            ("", |e| matches!(e, NameError::Empty)),
            ("  ", |e| matches!(e, NameError::Empty)),
            ("a..b", |e| matches!(e, NameError::EmptyLabel(_))),
            (".a.b", |e| matches!(e, NameError::EmptyLabel(_))),
            ("a.b.", |e| matches!(e, NameError::EmptyLabel(_))),
            (&long_label, |e| {
                matches!(e, NameError::LabelTooLong { len: 64, .. })
            }),
            (&long_name, |e| matches!(e, NameError::TooLong(..))),
            ("foo.*.com", |e| matches!(e, NameError::Wildcard(_))),
            ("f*o.example.com", |e| matches!(e, NameError::Wildcard(_))),
            ("*", |e| matches!(e, NameError::Wildcard(_))),
            ("has space.com", |e| {
                matches!(e, NameError::BadCharacter { ch: ' ', .. })
            }),
            ("under_score.com", |e| {
                matches!(e, NameError::BadCharacter { ch: '_', .. })
            }),
            ("-lead.com", |e| matches!(e, NameError::Hyphen { .. })),
            ("trail-.com", |e| matches!(e, NameError::Hyphen { .. })),
            ("10.0.0.1", |e| matches!(e, NameError::IpAddress(_))),
            ("::1", |e| matches!(e, NameError::IpAddress(_))),
            ("[2001:db8::1]", |e| matches!(e, NameError::IpAddress(_))),
            ("10.0.0.256", |e| matches!(e, NameError::NumericTld(_))),
        ];
        for (input, expected) in cases {
            let err = DnsName::parse(input).expect_err(input);
            assert!(expected(&err), "{input:?} gave {err:?}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn exact_names_refuse_wildcards() {
        assert!(matches!(
            DnsName::parse_exact("*.example.com"),
            Err(NameError::WildcardNotAllowed(_))
        ));
        assert!(DnsName::parse_exact("client.example.com").is_ok());
    }

    #[test]
    fn wildcard_covers_exactly_one_label() {
        let w = DnsName::parse("*.example.com").unwrap();
        assert!(w.covers("a.example.com"));
        assert!(w.covers("A.Example.com."));
        assert!(!w.covers("example.com"));
        assert!(!w.covers("a.b.example.com"));
        let n = DnsName::parse("a.example.com").unwrap();
        assert!(n.covers("a.example.com"));
        assert!(!n.covers("b.example.com"));
    }
}
