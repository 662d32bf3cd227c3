//! Envoy access-log lines in Istio's default JSON format, as the egress gateway writes them.
//!
//! With Kyma's `envoy` provider (and any `envoyFileAccessLog` without labels) Istio logs one JSON
//! object per line with keys such as `authority`, `upstream_cluster`, `response_code`,
//! `response_flags`, `start_time`, `upstream_transport_failure_reason`, `requested_server_name`,
//! `upstream_host`, `path` and `method` (istio/istio `pilot/pkg/model/telemetry_logging.go`,
//! `EnvoyJSONLogFormatIstio`). A request that
//! left through the egress gateway towards `D` has `"upstream_cluster":"outbound|443||D"`.
//!
//! Parsing is tolerant, because gateway logs mix in other lines: non-JSON lines (Envoy's own
//! startup text), JSON that is not an object, and unknown keys are skipped; a value Envoy had
//! none for (`null` or `"-"`) is `None`; `response_code` may be a number or a string; a line may
//! carry the `RFC3339 ` timestamp prefix `kubectl logs --timestamps` adds.
//!
//! ```
//! use kubectl_mtls_probe::access_log;
//! let log = "starting envoy\n{\"upstream_cluster\":\"outbound|443||httpbin.example.com\",\"response_code\":200}\n";
//! let entries = access_log::parse_lines(log);
//! assert_eq!(entries.len(), 1);
//! let ours: Vec<_> = access_log::for_upstream(&entries, "httpbin.example.com", 443).collect();
//! assert_eq!(ours[0].response_code, Some(200));
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

/// One access-log entry: the fields a diagnosis reads. Missing fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogEntry {
    /// 1-based line number in the text it was parsed from.
    pub line: usize,
    /// `start_time` (as logged, RFC 3339).
    pub start_time: Option<String>,
    /// `method`.
    pub method: Option<String>,
    /// `path`.
    pub path: Option<String>,
    /// `authority` (the Host header).
    pub authority: Option<String>,
    /// `response_code`: the HTTP status; `Some(0)` when Envoy sent no response.
    pub response_code: Option<u16>,
    /// `response_flags`, e.g. `UF,URX`, `NR`.
    pub response_flags: Option<String>,
    /// `response_code_details`.
    pub response_code_details: Option<String>,
    /// `upstream_cluster`, e.g. `outbound|443||httpbin.example.com`.
    pub upstream_cluster: Option<String>,
    /// `upstream_host` (`IP:port`).
    pub upstream_host: Option<String>,
    /// `upstream_transport_failure_reason`, e.g. a TLS verification error.
    pub upstream_transport_failure_reason: Option<String>,
    /// `requested_server_name` (SNI the downstream asked for).
    pub requested_server_name: Option<String>,
    /// `x_forwarded_for`.
    pub x_forwarded_for: Option<String>,
    /// `request_id` (`x-request-id`), to correlate sidecar and gateway lines.
    pub request_id: Option<String>,
}

/// Parses one line; `None` when it is not a JSON object (after an optional timestamp prefix).
/// `line` is the line number to record.
pub fn parse_line(text: &str, line: usize) -> Option<AccessLogEntry> {
    let text = text.trim();
    let object = json_object(text).or_else(|| {
        // `kubectl logs --timestamps`: "2025-01-01T00:00:00.000000000Z {...}".
        let (prefix, rest) = text.split_once(' ')?;
        if prefix.contains('{') {
            return None;
        }
        json_object(rest.trim_start())
    })?;
    Some(AccessLogEntry {
        line,
        start_time: string(&object, "start_time"),
        method: string(&object, "method"),
        path: string(&object, "path"),
        authority: string(&object, "authority"),
        response_code: object.get("response_code").and_then(status_code),
        response_flags: string(&object, "response_flags"),
        response_code_details: string(&object, "response_code_details"),
        upstream_cluster: string(&object, "upstream_cluster"),
        upstream_host: string(&object, "upstream_host"),
        upstream_transport_failure_reason: string(&object, "upstream_transport_failure_reason"),
        requested_server_name: string(&object, "requested_server_name"),
        x_forwarded_for: string(&object, "x_forwarded_for"),
        request_id: string(&object, "request_id"),
    })
}

/// Every entry of a log text, one per JSON-object line; other lines are skipped.
pub fn parse_lines(text: &str) -> Vec<AccessLogEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l, i + 1))
        .collect()
}

/// The Envoy cluster name of the egress gateway's route to `host:port`: `outbound|PORT||HOST`.
pub fn upstream_cluster(host: &str, port: u16) -> String {
    format!(
        "outbound|{port}||{}",
        host.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// The entries whose `upstream_cluster` is `outbound|PORT||HOST` (host compared case-insensitively).
pub fn for_upstream<'a>(
    entries: &'a [AccessLogEntry],
    host: &str,
    port: u16,
) -> impl Iterator<Item = &'a AccessLogEntry> + 'a {
    let wanted = upstream_cluster(host, port);
    entries.iter().filter(move |e| {
        e.upstream_cluster
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&wanted))
    })
}

fn json_object(text: &str) -> Option<Map<String, Value>> {
    if !text.starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A string field; `null`, `"-"` (Envoy's "no value") and non-strings are `None`, except
/// numbers, which are kept as text.
fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if s != "-" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn status_code(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as Istio's default JSON format writes it (keys of EnvoyJSONLogFormatIstio).
    const GATEWAY_LINE: &str = r#"{"authority":"httpbin.example.com","bytes_received":0,"bytes_sent":612,"connection_termination_details":null,"downstream_local_address":"10.0.1.5:8443","downstream_remote_address":"10.0.2.7:51234","duration":34,"method":"GET","path":"/headers","protocol":"HTTP/1.1","request_id":"6f1c1f6e-0d3a-4a3b-9a5e-1c2f3e4d5a6b","requested_server_name":"outbound_.443_.egress_.istio-egressgateway.istio-system.svc.cluster.local","response_code":"200","response_code_details":"via_upstream","response_flags":"-","route_name":null,"start_time":"2025-05-01T10:00:00.123Z","upstream_cluster":"outbound|443||httpbin.example.com","upstream_host":"203.0.113.10:443","upstream_local_address":"10.0.1.5:40000","upstream_service_time":"33","upstream_transport_failure_reason":null,"user_agent":"curl/8.16.0","x_forwarded_for":"10.0.2.7"}"#;

    #[test]
    fn istio_default_format() {
        let e = parse_line(GATEWAY_LINE, 7).expect("an entry");
        assert_eq!(
            e,
            AccessLogEntry {
                line: 7,
                start_time: Some("2025-05-01T10:00:00.123Z".into()),
                method: Some("GET".into()),
                path: Some("/headers".into()),
                authority: Some("httpbin.example.com".into()),
                response_code: Some(200),
                response_flags: None,
                response_code_details: Some("via_upstream".into()),
                upstream_cluster: Some("outbound|443||httpbin.example.com".into()),
                upstream_host: Some("203.0.113.10:443".into()),
                upstream_transport_failure_reason: None,
                requested_server_name: Some(
                    "outbound_.443_.egress_.istio-egressgateway.istio-system.svc.cluster.local"
                        .into()
                ),
                x_forwarded_for: Some("10.0.2.7".into()),
                request_id: Some("6f1c1f6e-0d3a-4a3b-9a5e-1c2f3e4d5a6b".into()),
            }
        );
    }

    #[test]
    fn response_code_as_number_or_string() {
        let n = parse_line(r#"{"response_code":503,"response_flags":"UF,URX"}"#, 1).unwrap();
        assert_eq!(n.response_code, Some(503));
        assert_eq!(n.response_flags.as_deref(), Some("UF,URX"));
        let s = parse_line(r#"{"response_code":" 404 "}"#, 1).unwrap();
        assert_eq!(s.response_code, Some(404));
        let z = parse_line(r#"{"response_code":0}"#, 1).unwrap();
        assert_eq!(z.response_code, Some(0));
        for bad in [r#""abc""#, "70000", "-1", "null", "true", "[200]", "2.5"] {
            let e = parse_line(&format!(r#"{{"response_code":{bad}}}"#), 1).unwrap();
            assert_eq!(e.response_code, None, "{bad}");
        }
    }

    #[test]
    fn failure_reason_and_flags() {
        let line = r#"{"upstream_cluster":"outbound|443||httpbin.example.com","response_code":"503","response_flags":"UF,URX","upstream_transport_failure_reason":"TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"}"#;
        let e = parse_line(line, 1).unwrap();
        assert_eq!(e.response_code, Some(503));
        assert!(
            e.upstream_transport_failure_reason
                .as_deref()
                .unwrap()
                .contains("CERTIFICATE_VERIFY_FAILED")
        );
    }

    #[test]
    fn other_lines_are_skipped() {
        let text = format!(
            "2025-05-01T10:00:00.000Z\tinfo\tEnvoy proxy is ready\n\n[1, 2]\n\"string\"\n{{ truncated\n{GATEWAY_LINE}\n{{\"authority\":\"other.example.com\",\"upstream_cluster\":\"outbound|443||other.example.com\"}}\nnull\n"
        );
        let entries = parse_lines(&text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 6);
        assert_eq!(entries[1].authority.as_deref(), Some("other.example.com"));
    }

    #[test]
    fn timestamp_prefix_of_kubectl_logs() {
        let e = parse_line(&format!("2025-05-01T10:00:00.123456789Z {GATEWAY_LINE}"), 3).unwrap();
        assert_eq!(e.response_code, Some(200));
        assert_eq!(parse_line("prefix {\"a\":1} trailing", 1), None);
    }

    #[test]
    fn empty_and_garbage_input() {
        assert!(parse_lines("").is_empty());
        assert!(parse_lines("\n\n  \n").is_empty());
        assert!(parse_lines("\u{0}\u{1}{{{{}}}}\"\\").is_empty());
        // A JSON object with none of the keys is still an entry (all fields unknown).
        assert_eq!(
            parse_line("{}", 1),
            Some(AccessLogEntry {
                line: 1,
                ..Default::default()
            })
        );
        // Wrong types are not fatal: the field is unknown.
        let e = parse_line(
            r#"{"authority":["x"],"path":{"a":1},"method":"-","duration":5,"upstream_host":5}"#,
            1,
        )
        .unwrap();
        assert_eq!(e.authority, None);
        assert_eq!(e.path, None);
        assert_eq!(e.method, None);
        assert_eq!(e.upstream_host.as_deref(), Some("5"));
    }

    #[test]
    fn finds_entries_for_the_upstream_cluster() {
        assert_eq!(
            upstream_cluster("HTTPBIN.example.com.", 443),
            "outbound|443||httpbin.example.com"
        );
        let text = format!(
            "{GATEWAY_LINE}\n{}\n{}\n{}\n",
            r#"{"upstream_cluster":"outbound|8443||httpbin.example.com","response_code":200}"#,
            r#"{"upstream_cluster":"outbound|443||httpbin.example.com.evil","response_code":200}"#,
            r#"{"upstream_cluster":"OUTBOUND|443||HTTPBIN.EXAMPLE.COM","response_code":"503","response_flags":"UF"}"#,
        );
        let entries = parse_lines(&text);
        assert_eq!(entries.len(), 4);
        let found: Vec<usize> = for_upstream(&entries, "httpbin.example.com", 443)
            .map(|e| e.line)
            .collect();
        assert_eq!(found, [1, 4]);
        let found: Vec<usize> = for_upstream(&entries, "httpbin.example.com", 8443)
            .map(|e| e.line)
            .collect();
        assert_eq!(found, [2]);
        assert_eq!(
            for_upstream(&entries, "nothing.example.com", 443).count(),
            0
        );
    }
}
