//! Whether a host resolves from this workstation: the question `connect` and `rotate-ca --phase
//! all` ask before they run `kubectl mtls-probe direct` against a partner's endpoint, so a host
//! that is not in DNS yet gets one line saying so (and which command to run once it is) instead of
//! a probe failure.

use std::time::Duration;

/// How long the name lookup of a host may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `host` cannot be reached from here, if it does not resolve within [`RESOLVE_TIMEOUT`];
/// `None` when it resolves to an address.
pub async fn unresolvable(host: &str, port: u16) -> Option<String> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .is_none()
            .then(|| format!("{host} resolves to no address from this workstation")),
        Ok(Err(e)) => Some(format!(
            "{host} does not resolve from this workstation ({e})"
        )),
        Err(_) => Some(format!(
            "looking up {host} took longer than {}s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reserved_invalid_name_does_not_resolve_and_localhost_does() {
        // RFC 2606/6761: .invalid never resolves.
        let why = unresolvable("partner.invalid", 443).await.unwrap();
        assert!(why.starts_with("partner.invalid "), "{why}");
        assert_eq!(unresolvable("localhost", 443).await, None);
    }
}
