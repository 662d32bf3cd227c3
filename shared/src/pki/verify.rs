//! `verify`: the checks a TLS peer will make, run before the peer makes them — chain to the CA,
//! key belongs to the certificate, SAN covers the host, EKU fits the usage, dates are current.

use serde::Serialize;
use time::OffsetDateTime;

use super::PkiError;
use super::cert::{Certificate, check_chain_order};
use super::inspect::format_time;
use super::issue::Usage;
use super::key::PrivateKey;
use crate::names::DnsName;

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Short name: `chain`, `validity`, `key`, `san`, `usage`, ...
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (or what is wrong).
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// What to verify.
#[derive(Debug)]
pub struct VerifyRequest<'a> {
    /// The trusted CA certificate(s).
    pub ca: &'a [Certificate],
    /// The certificate to check, leaf first, then any intermediates.
    pub chain: &'a [Certificate],
    /// Where the chain came from (for the chain-order error).
    pub chain_origin: &'a str,
    /// The private key that should belong to the leaf.
    pub key: Option<&'a PrivateKey>,
    /// The host name the leaf must cover.
    pub host: Option<&'a DnsName>,
    /// The role the leaf must be allowed to play.
    pub usage: Option<Usage>,
    /// The moment to check validity at.
    pub now: OffsetDateTime,
}

/// Runs every applicable check. Only input that cannot be checked at all (a chain in the wrong
/// order) is an error; failed checks are results.
pub fn verify(req: &VerifyRequest<'_>) -> Result<Vec<Check>, PkiError> {
    check_chain_order(req.chain, req.chain_origin)?;
    let leaf = &req.chain[0];
    let x = leaf.x509();
    let mut checks = Vec::new();

    checks.push(chain_check(req));

    let v = x.validity();
    let (nb, na) = (v.not_before.to_datetime(), v.not_after.to_datetime());
    let days = (na - req.now).whole_days();
    checks.push(if req.now < nb {
        Check::new(
            "validity",
            false,
            format!("not valid before {}", format_time(nb)),
        )
    } else if req.now > na {
        Check::new("validity", false, format!("expired on {}", format_time(na)))
    } else {
        Check::new(
            "validity",
            true,
            format!("valid until {} ({days} days left)", format_time(na)),
        )
    });

    checks.push(Check::new(
        "version",
        x.version().0 == 2,
        format!("X.509 v{}", x.version().0 + 1),
    ));

    if let Some(key) = req.key {
        let ok = key.public_key_info() == leaf.public_key_info();
        checks.push(Check::new(
            "key",
            ok,
            if ok {
                format!("the {} key belongs to the certificate", key.describe())
            } else {
                "the key does not belong to the certificate".to_string()
            },
        ));
    }

    let dns_sans = leaf.dns_sans();
    checks.push(match req.host {
        Some(host) => {
            let covered = dns_sans
                .iter()
                .any(|san| DnsName::parse(san).is_ok_and(|s| s.covers(host.as_str())));
            Check::new(
                "san",
                covered,
                if covered {
                    format!("{host} is covered by DNS SAN {}", dns_sans.join(", "))
                } else if dns_sans.is_empty() {
                    format!("no DNS SAN at all: {host} is not covered (a CN is not checked by Envoy or rustls)")
                } else {
                    format!("{host} is not among the DNS SANs {}", dns_sans.join(", "))
                },
            )
        }
        None => Check::new(
            "san",
            !dns_sans.is_empty() || leaf.is_ca(),
            if dns_sans.is_empty() {
                "no DNS SAN: TLS clients that check host names will refuse it".to_string()
            } else {
                format!("DNS SAN {}", dns_sans.join(", "))
            },
        ),
    });

    if let Some(usage) = req.usage {
        let eku = x
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|e| e.value.clone());
        let (server, client) = eku.as_ref().map_or((false, false), |e| {
            (e.server_auth || e.any, e.client_auth || e.any)
        });
        checks.push(match usage {
            Usage::Server if server => Check::new("usage", true, "EKU serverAuth"),
            Usage::Server => Check::new(
                "usage",
                false,
                "no EKU serverAuth: TLS clients will refuse it as a server certificate",
            ),
            Usage::Client if client && server && !eku.as_ref().is_some_and(|e| e.any) => Check::new(
                "usage",
                false,
                "EKU has clientAuth and also serverAuth: Kyma requires client certificates without serverAuth",
            ),
            Usage::Client if client => Check::new("usage", true, "EKU clientAuth"),
            Usage::Client => Check::new(
                "usage",
                false,
                "no EKU clientAuth: the server will refuse it as a client certificate",
            ),
        });
    }
    Ok(checks)
}

fn chain_check(req: &VerifyRequest<'_>) -> Check {
    let chain = req.chain;
    for pair in chain.windows(2) {
        if !pair[0].is_signed_by(&pair[1]) {
            return Check::new(
                "chain",
                false,
                format!(
                    "{} is not signed by the next certificate in the file",
                    pair[0].x509().subject()
                ),
            );
        }
    }
    let top = chain.last().expect("a chain has a leaf");
    let Some(ca) = req.ca.iter().find(|ca| top.is_signed_by(ca)) else {
        let issuer = top.x509().issuer().to_string();
        let cas: Vec<String> = req
            .ca
            .iter()
            .map(|c| c.x509().subject().to_string())
            .collect();
        return Check::new(
            "chain",
            false,
            format!(
                "issued by {issuer}, not by the given CA ({}): wrong CA file?",
                cas.join("; ")
            ),
        );
    };
    let cx = ca.x509();
    if !ca.is_ca() {
        return Check::new(
            "chain",
            false,
            format!(
                "{} signed it but is not a CA (basicConstraints)",
                cx.subject()
            ),
        );
    }
    if !cx
        .validity()
        .is_valid_at(x509_parser::time::ASN1Time::from(req.now))
    {
        return Check::new(
            "chain",
            false,
            format!(
                "the CA {} is not valid now (until {})",
                cx.subject(),
                format_time(cx.validity().not_after.to_datetime())
            ),
        );
    }
    Check::new("chain", true, format!("signed by {}", cx.subject()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Bundle, BundleRequest, KeyType};

    fn bundle(domain: &str) -> Bundle {
        Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse(domain).unwrap(),
                client: DnsName::parse("client.example.com").unwrap(),
                days: 30,
                key_type: KeyType::EcdsaP256,
                ca_name: None,
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap()
    }

    fn run(
        ca: &Certificate,
        chain: &[Certificate],
        key: Option<&PrivateKey>,
        host: Option<&str>,
        usage: Option<Usage>,
        now: OffsetDateTime,
    ) -> Vec<Check> {
        let host = host.map(|h| DnsName::parse(h).unwrap());
        verify(&VerifyRequest {
            ca: std::slice::from_ref(ca),
            chain,
            chain_origin: "cert",
            key,
            host: host.as_ref(),
            usage,
            now,
        })
        .unwrap()
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn good_bundle_passes_every_check() {
        let b = bundle("httpbin.example.com");
        let now = OffsetDateTime::now_utc();
        let server = run(
            &b.ca.cert,
            std::slice::from_ref(&b.server.cert),
            Some(&b.server.key),
            Some("httpbin.example.com"),
            Some(Usage::Server),
            now,
        );
        assert_eq!(failed(&server), Vec::<&str>::new(), "{server:?}");
        assert_eq!(server.len(), 6);
        let client = run(
            &b.ca.cert,
            std::slice::from_ref(&b.client.cert),
            Some(&b.client.key),
            None,
            Some(Usage::Client),
            now,
        );
        assert_eq!(failed(&client), Vec::<&str>::new(), "{client:?}");
    }

    #[test]
    fn each_defect_fails_its_own_check() {
        let b = bundle("httpbin.example.com");
        let other = bundle("other.example.com");
        let now = OffsetDateTime::now_utc();
        let server = std::slice::from_ref(&b.server.cert);
        assert_eq!(
            failed(&run(&other.ca.cert, server, None, None, None, now)),
            ["chain"]
        );
        assert_eq!(
            failed(&run(
                &b.ca.cert,
                server,
                Some(&b.client.key),
                None,
                None,
                now
            )),
            ["key"]
        );
        assert_eq!(
            failed(&run(
                &b.ca.cert,
                server,
                None,
                Some("evil.example.com"),
                None,
                now
            )),
            ["san"]
        );
        assert_eq!(
            failed(&run(
                &b.ca.cert,
                server,
                None,
                None,
                Some(Usage::Client),
                now
            )),
            ["usage"]
        );
        assert_eq!(
            failed(&run(
                &b.ca.cert,
                std::slice::from_ref(&b.client.cert),
                None,
                None,
                Some(Usage::Server),
                now
            )),
            ["usage"]
        );
        let later = now + time::Duration::days(40);
        assert_eq!(
            failed(&run(&b.ca.cert, server, None, None, None, later)),
            ["chain", "validity"]
        );
    }

    #[test]
    fn reversed_chain_is_an_input_error() {
        let b = bundle("httpbin.example.com");
        let reversed = [b.ca.cert.clone(), b.server.cert.clone()];
        let err = verify(&VerifyRequest {
            ca: std::slice::from_ref(&b.ca.cert),
            chain: &reversed,
            chain_origin: "server.crt",
            key: None,
            host: None,
            usage: None,
            now: OffsetDateTime::now_utc(),
        })
        .unwrap_err();
        assert!(matches!(err, PkiError::ChainOrder { .. }));
        // Leaf first, then the issuer: accepted.
        let forward = [b.server.cert.clone(), b.ca.cert.clone()];
        let checks = run(
            &b.ca.cert,
            &forward,
            None,
            None,
            None,
            OffsetDateTime::now_utc(),
        );
        assert!(checks.iter().find(|c| c.name == "chain").unwrap().ok);
    }
}
