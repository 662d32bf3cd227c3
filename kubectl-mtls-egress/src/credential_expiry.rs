//! The certificates behind `status`'s hosts: what the credential Secret a host's Gateway or
//! origination DestinationRule names holds ([`CredentialState`]), an expired leaf as a problem of
//! the host (the peer refuses it), and a `warning:`/`error:` line on stderr for each certificate
//! of it that ends within `--expiry-warning`.

use std::collections::BTreeSet;
use std::io::Write;

use k8s_openapi::api::core::v1::Secret;
use time::{Duration, OffsetDateTime};

use shared::manifest::credential_state::CredentialState;
use shared::pki::Expiry;

use super::status::HostStatus;

/// Records what `secret` (the host's credential) holds as of `now`; an expired leaf certificate
/// makes the host not ready.
pub(crate) fn record(row: &mut HostStatus, secret: &Secret, now: OffsetDateTime) {
    let state = CredentialState::read(secret, now);
    if let Some(leaf) = &state.certificate
        && leaf.expiry(now, Duration::ZERO) == Expiry::Expired
    {
        row.problems.push(format!(
            "certificate in secret {} expired {}",
            state.id(),
            leaf.not_after
        ));
    }
    row.credential_secret = Some(state);
}

/// Writes one line per certificate of the hosts' credentials that expires within `warning` as of
/// `now` (`warning:`), or has expired (`error:`), each Secret once, with the hosts that use it.
pub(crate) fn warn(
    rows: &[HostStatus],
    now: OffsetDateTime,
    warning: Duration,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let mut seen = BTreeSet::new();
    for state in rows.iter().filter_map(|r| r.credential_secret.as_ref()) {
        if !seen.insert(state.id()) {
            continue;
        }
        let hosts: Vec<&str> = rows
            .iter()
            .filter(|r| r.credential_secret.as_ref().map(CredentialState::id) == Some(state.id()))
            .map(|r| r.host.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for notice in state.expiry_notices(now, warning) {
            let level = if notice.expired { "error" } else { "warning" };
            writeln!(
                err,
                "{level}: {} (used by {})",
                notice.message,
                hosts.join(", ")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::manifest::secret::{Side, credential_secret};
    use shared::names::DnsName;
    use shared::pki::{Bundle, BundleRequest, CredentialPem, KeyType};

    /// The client credential of `host`, valid for `days` from `issued`.
    fn client_secret(name: &str, host: &str, days: u32, issued: OffsetDateTime) -> Secret {
        let b = Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse(host).unwrap(),
                client: DnsName::parse("client.example.com").unwrap(),
                days,
                key_type: KeyType::EcdsaP256,
                ca_name: Some(format!("{host} CA")),
            },
            issued,
        )
        .unwrap();
        let pem = CredentialPem {
            chain: b.client.cert.to_pem(),
            key: b.client.key.to_pem(),
            ca: b.ca.cert.to_pem(),
        };
        credential_secret(Side::Client, name, "istio-system", &pem).unwrap()
    }

    fn row(host: &str, secret: &Secret, now: OffsetDateTime) -> HostStatus {
        let mut row = HostStatus::default();
        row.host = host.into();
        row.credential = secret.metadata.name.clone();
        record(&mut row, secret, now);
        row
    }

    #[test]
    fn an_expired_leaf_is_a_problem_and_near_ends_are_warned_once_per_secret() {
        let now = OffsetDateTime::now_utc();
        let soon = client_secret("client-a", "a.example.com", 5, now);
        let long = client_secret("client-b", "b.example.com", 400, now);
        let gone = client_secret("client-c", "c.example.com", 30, now - Duration::days(31));
        let rows = [
            row("a.example.com", &soon, now),
            // A second host on the same Secret: one line naming both.
            row("a2.example.com", &soon, now),
            row("b.example.com", &long, now),
            row("c.example.com", &gone, now),
        ];
        assert!(rows[0].problems.is_empty() && rows[2].problems.is_empty());
        assert_eq!(rows[3].problems.len(), 1);
        assert!(
            rows[3].problems[0].starts_with("certificate in secret istio-system/client-c expired "),
            "{:?}",
            rows[3].problems
        );
        let json = serde_json::to_value(&rows[2]).unwrap();
        assert_eq!(
            json["credentialSecret"]["certificate"]["subject"],
            "CN=client.example.com"
        );
        assert_eq!(json["credentialSecret"]["certificate"]["daysLeft"], 399);

        let mut err = Vec::new();
        warn(&rows, now, Duration::days(30), &mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        let ca = |row: &HostStatus| {
            let state = row.credential_secret.as_ref().unwrap();
            state.trust_bundle[0].short_fingerprint()
        };
        for (line, start) in lines.iter().zip([
            "warning: secret istio-system/client-a: certificate CN=client.example.com for client.example.com expires in 4 days (".to_string(),
            format!("warning: secret istio-system/client-a: CA CN=a.example.com CA ({}) in ca.crt expires in 4 days (", ca(&rows[0])),
            "error: secret istio-system/client-c: certificate CN=client.example.com for client.example.com EXPIRED 1 days ago (".to_string(),
            format!("error: secret istio-system/client-c: CA CN=c.example.com CA ({}) in ca.crt EXPIRED 1 days ago (", ca(&rows[3])),
        ]) {
            assert!(line.starts_with(&start), "{line}\n  does not start with\n{start}");
        }
        assert!(
            lines[0].ends_with(") (used by a.example.com, a2.example.com)"),
            "{}",
            lines[0]
        );
        assert!(
            lines[2].ends_with(") (used by c.example.com)"),
            "{}",
            lines[2]
        );

        // A smaller threshold leaves only the expired ones.
        let mut err = Vec::new();
        warn(&rows, now, Duration::days(3), &mut err).unwrap();
        assert_eq!(String::from_utf8(err).unwrap().lines().count(), 2);
    }
}
