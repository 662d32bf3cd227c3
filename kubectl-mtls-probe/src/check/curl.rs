//! The curl commands `check` runs inside probe pods (argv, no shell), and what their output and
//! exit codes mean.

/// The marker line `-w` appends after the body, followed by the HTTP status.
const STATUS_MARKER: &str = "\nkubectl-mtls-status:";

/// `curl http://HOST{path}` through the pod's sidecar, tagged with our request id so the
/// egress gateway's access-log line can be told apart from other traffic to the same host.
pub(crate) fn request_command(
    host: &str,
    path: &str,
    request_id: &str,
    timeout_secs: u64,
) -> Vec<String> {
    [
        "curl",
        "-sS",
        "--max-time",
        &timeout_secs.to_string(),
        "-H",
        &format!("x-request-id: {request_id}"),
        "-w",
        &format!("{STATUS_MARKER}%{{http_code}}"),
        &format!("http://{host}{path}"),
    ]
    .map(str::to_string)
    .to_vec()
}

/// `curl https://EXTERNAL/`: can this pod open a TLS connection to a host outside the mesh?
pub(crate) fn reach_command(external: &str, timeout_secs: u64) -> Vec<String> {
    [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "--max-time",
        &timeout_secs.to_string(),
        "-w",
        "%{http_code}",
        &format!("https://{external}/"),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Splits the output of [`request_command`] into the body and the HTTP status (`None` when curl
/// got no response: status `000`, or no marker at all).
pub(crate) fn split_response(stdout: &[u8]) -> (&[u8], Option<u16>) {
    let marker = STATUS_MARKER.as_bytes();
    let Some(at) = stdout.windows(marker.len()).rposition(|w| w == marker) else {
        return (stdout, None);
    };
    let status = std::str::from_utf8(&stdout[at + marker.len()..])
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|s| *s != 0);
    (&stdout[..at], status)
}

/// What an attempt to reach an outside host showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A server answered (TLS completed, or its certificate was at least presented).
    Reachable(String),
    /// No connection (refused, reset, timed out): what a lockdown should produce.
    Blocked(String),
    /// The name did not resolve: proves nothing about the network path.
    Unresolved(String),
}

/// Judges [`reach_command`]'s outcome from curl's exit code, stdout and stderr.
pub(crate) fn judge_reach(exit_code: Option<i32>, stdout: &str, stderr: &str) -> Reach {
    let said = first_line(stderr);
    match exit_code {
        Some(0) => Reach::Reachable(format!("HTTP {}", stdout.trim())),
        // The peer's certificate was presented and refused: a server answered.
        Some(code @ (51 | 60)) => {
            Reach::Reachable(format!("TLS server answered (curl exit {code}: {said})"))
        }
        Some(6) => Reach::Unresolved(format!("curl exit 6: {said}")),
        Some(code) => Reach::Blocked(format!(
            "curl exit {code}: {}",
            if said.is_empty() { meaning(code) } else { said }
        )),
        None => Reach::Blocked("the command ended without an exit status".into()),
    }
}

/// The first non-empty line of curl's stderr.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// What a curl exit code means on the mesh path, with the likely cause.
pub fn meaning(code: i32) -> &'static str {
    match code {
        6 => {
            "the host does not resolve in the pod: the ServiceEntry is missing or not exported to this namespace (kubectl mtls-egress enable)"
        }
        7 => {
            "connection refused: nothing accepts port 80 for the host (check the ServiceEntry's http port and the sidecar)"
        }
        28 => {
            "timed out: a NetworkPolicy or firewall drops the traffic (kubectl mtls-lockdown explain --to HOST:80)"
        }
        35 => "TLS handshake failed",
        52 => "the connection closed without a reply",
        56 => {
            "the connection was reset: the sidecar sent it to its BlackHole cluster (REGISTRY_ONLY without a ServiceEntry) or a policy reset it"
        }
        _ => "curl failed (see `man curl`, EXIT CODES)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_command_is_argv_with_our_id() {
        let cmd = request_command("httpbin.example.com", "/headers", "kubectl-mtls-0123", 10);
        assert_eq!(cmd[0], "curl");
        assert!(cmd.contains(&"x-request-id: kubectl-mtls-0123".to_string()));
        assert_eq!(cmd.last().unwrap(), "http://httpbin.example.com/headers");
        let w = cmd.iter().position(|a| a == "-w").unwrap();
        assert_eq!(cmd[w + 1], "\nkubectl-mtls-status:%{http_code}");
        assert_eq!(
            reach_command("example.com", 5).last().unwrap(),
            "https://example.com/"
        );
    }

    #[test]
    fn split_response_finds_the_last_marker() {
        let (body, status) = split_response(b"{\"headers\":{}}\nkubectl-mtls-status:200");
        assert_eq!(body, b"{\"headers\":{}}");
        assert_eq!(status, Some(200));
        // A body that itself contains the marker text: the last one is curl's.
        let tricky = b"a\nkubectl-mtls-status:999\nb\nkubectl-mtls-status:503";
        assert_eq!(
            split_response(tricky),
            (&b"a\nkubectl-mtls-status:999\nb"[..], Some(503))
        );
        assert_eq!(
            split_response(b"\nkubectl-mtls-status:000"),
            (&b""[..], None)
        );
        assert_eq!(split_response(b"garbage"), (&b"garbage"[..], None));
    }

    #[test]
    fn reach_outcomes() {
        assert_eq!(
            judge_reach(Some(0), "200", ""),
            Reach::Reachable("HTTP 200".into())
        );
        assert!(matches!(
            judge_reach(Some(60), "000", "curl: (60) SSL certificate problem"),
            Reach::Reachable(_)
        ));
        assert_eq!(
            judge_reach(
                Some(28),
                "000",
                "curl: (28) Connection timed out after 5001 milliseconds\n"
            ),
            Reach::Blocked(
                "curl exit 28: curl: (28) Connection timed out after 5001 milliseconds".into()
            )
        );
        assert!(
            matches!(judge_reach(Some(56), "000", ""), Reach::Blocked(d) if d.contains("BlackHole"))
        );
        assert!(matches!(
            judge_reach(
                Some(6),
                "000",
                "curl: (6) Could not resolve host: example.com"
            ),
            Reach::Unresolved(_)
        ));
        assert!(matches!(judge_reach(None, "", ""), Reach::Blocked(_)));
    }
}
