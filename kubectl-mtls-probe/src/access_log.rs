//! Envoy access-log lines as an Istio egress gateway writes them, in either of Istio's two
//! default formats (istio/istio `pilot/pkg/model/telemetry_logging.go`):
//!
//! - **TEXT**, `EnvoyTextLogFormat` — what the `envoy` provider writes on plain Istio, where
//!   `meshConfig.accessLogEncoding` keeps its default `TEXT` (`pkg/config/mesh/mesh.go`):
//!   `[START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS TERMINATION "FAILURE_REASON"
//!   RECEIVED SENT DURATION SERVICE_TIME "XFF" "USER_AGENT" "REQUEST_ID" "AUTHORITY"
//!   "UPSTREAM_HOST" UPSTREAM_CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE SNI ROUTE`.
//! - **JSON**, `EnvoyJSONLogFormatIstio` — Kyma sets `accessLogEncoding: JSON`: one object per
//!   line with keys such as `authority`, `upstream_cluster`, `response_code`, `response_flags`,
//!   `start_time`, `upstream_transport_failure_reason`, `requested_server_name`,
//!   `upstream_host`, `path` and `method`.
//!
//! A request that left through the egress gateway towards `D` has the upstream cluster
//! `outbound|443||D`; its path keeps the query (`X-ENVOY-ORIGINAL-PATH?:PATH`), which is where
//! `check` puts its run id.
//!
//! Parsing is tolerant, because gateway logs mix in other lines: lines in neither format
//! (Envoy's and pilot-agent's own text, a user's custom format), JSON that is not an object, and
//! unknown keys are skipped; a value Envoy had none for (`null` or `-`) is `None`;
//! `response_code` may be a number or a string; a line may carry the `RFC3339 ` timestamp prefix
//! `kubectl logs --timestamps` adds.
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

/// Parses one line in Istio's JSON or default TEXT format; `None` when it is in neither (after
/// an optional timestamp prefix). `line` is the line number to record.
pub fn parse_line(text: &str, line: usize) -> Option<AccessLogEntry> {
    let text = text.trim();
    entry(text, line).or_else(|| {
        // `kubectl logs --timestamps`: "2025-01-01T00:00:00.000000000Z {...}" or "... [...] ...".
        let (prefix, rest) = text.split_once(' ')?;
        if prefix.contains(['{', '[']) {
            return None;
        }
        entry(rest.trim_start(), line)
    })
}

fn entry(text: &str, line: usize) -> Option<AccessLogEntry> {
    if text.starts_with('[') {
        return text_entry(text, line);
    }
    let object = json_object(text)?;
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

/// A line in `EnvoyTextLogFormat`, or `None` when it does not have that format's shape.
///
/// Bare fields never contain spaces (Envoy writes `_` for spaces in response code details), and
/// quoted ones do not contain quotes — except the user agent, which is the client's to choose.
/// So the fields before the user agent are read from the left, those after it from the right,
/// and the user agent is what remains in between.
fn text_entry(text: &str, line: usize) -> Option<AccessLogEntry> {
    let (start_time, rest) = text.strip_prefix('[')?.split_once("] ")?;
    let mut left = Fields(rest);
    let request = left.quoted()?;
    let response_code = left.bare()?;
    let response_flags = left.bare()?;
    let response_code_details = left.bare()?;
    let _termination_details = left.bare()?;
    let failure_reason = left.quoted()?;
    for _bytes_received_sent_duration_service_time in 0..4 {
        left.bare()?;
    }
    let x_forwarded_for = left.quoted()?;
    let mut right = RevFields(left.0);
    let _route_name = right.bare()?;
    let requested_server_name = right.bare()?;
    for _downstream_remote_downstream_local_upstream_local in 0..3 {
        right.bare()?;
    }
    let upstream_cluster = right.bare()?;
    let upstream_host = right.quoted()?;
    let authority = right.quoted()?;
    let request_id = right.quoted()?;
    // What is left is the quoted user agent.
    let user_agent = right.0;
    if user_agent.len() < 2 || !user_agent.starts_with('"') || !user_agent.ends_with('"') {
        return None;
    }
    let (method, target) = request.split_once(' ')?;
    let (path, _protocol) = target.rsplit_once(' ')?;
    let response_code = response_code.parse::<u16>().ok()?;
    Some(AccessLogEntry {
        line,
        start_time: value(start_time),
        method: value(method),
        path: value(path),
        authority: value(authority),
        response_code: Some(response_code),
        response_flags: value(response_flags),
        response_code_details: value(response_code_details),
        upstream_cluster: value(upstream_cluster),
        upstream_host: value(upstream_host),
        upstream_transport_failure_reason: value(failure_reason),
        requested_server_name: value(requested_server_name),
        x_forwarded_for: value(x_forwarded_for),
        request_id: value(request_id),
    })
}

/// A text field's value: Envoy writes `-` when it has none.
fn value(field: &str) -> Option<String> {
    (!field.is_empty() && field != "-").then(|| field.to_string())
}

/// The fields of a TEXT line, read from the left: each is followed by one space.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn bare(&mut self) -> Option<&'a str> {
        let (field, rest) = self.0.split_once(' ')?;
        (!field.is_empty() && !field.contains('"')).then_some(())?;
        self.0 = rest;
        Some(field)
    }

    fn quoted(&mut self) -> Option<&'a str> {
        let (field, rest) = self.0.strip_prefix('"')?.split_once("\" ")?;
        (!field.contains('"')).then_some(())?;
        self.0 = rest;
        Some(field)
    }
}

/// The fields of a TEXT line, read from the right: each is preceded by one space.
struct RevFields<'a>(&'a str);

impl<'a> RevFields<'a> {
    fn bare(&mut self) -> Option<&'a str> {
        let (rest, field) = self.0.rsplit_once(' ')?;
        (!field.is_empty() && !field.contains('"')).then_some(())?;
        self.0 = rest;
        Some(field)
    }

    fn quoted(&mut self) -> Option<&'a str> {
        let (rest, field) = self.0.strip_suffix('"')?.rsplit_once(" \"")?;
        (!field.contains('"')).then_some(())?;
        self.0 = rest;
        Some(field)
    }
}

/// Every entry of a log text, one per line in the JSON or the default TEXT format; other lines
/// are skipped.
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

    use test_support::envoy_log::{ENVOY_TEXT_LOG_FORMAT, Request};

    /// A line as Istio's default JSON format writes it (keys of EnvoyJSONLogFormatIstio). The
    /// SNI is what the sidecar sends over `enable`'s Istio-mTLS hop: the host (the subset rule
    /// sets `sni: HOST`).
    const GATEWAY_LINE: &str = r#"{"authority":"httpbin.example.com","bytes_received":0,"bytes_sent":612,"connection_termination_details":null,"downstream_local_address":"10.0.1.5:8443","downstream_remote_address":"10.0.2.7:51234","duration":34,"method":"GET","path":"/headers","protocol":"HTTP/1.1","request_id":"6f1c1f6e-0d3a-4a3b-9a5e-1c2f3e4d5a6b","requested_server_name":"httpbin.example.com","response_code":"200","response_code_details":"via_upstream","response_flags":"-","route_name":null,"start_time":"2025-05-01T10:00:00.123Z","upstream_cluster":"outbound|443||httpbin.example.com","upstream_host":"203.0.113.10:443","upstream_local_address":"10.0.1.5:40000","upstream_service_time":"33","upstream_transport_failure_reason":null,"user_agent":"curl/8.16.0","x_forwarded_for":"10.0.2.7"}"#;

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
                requested_server_name: Some("httpbin.example.com".into()),
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

    /// Istio's default TEXT format (istio/istio 1.30.3 `pilot/pkg/model/telemetry_logging.go`,
    /// `EnvoyTextLogFormat`, rendered by test-support): the same request gives the same entry as
    /// in the JSON format.
    #[test]
    fn istio_default_text_format() {
        let request = Request::ok(
            "httpbin.example.com",
            "/headers?kubectl-mtls-probe=r1",
            "6f1c1f6e-0d3a-4a3b-9a5e-1c2f3e4d5a6b",
        );
        let line = request.text();
        assert!(line.starts_with("[2026-11-27T10:00:00.123Z] \"GET /headers?kubectl-mtls-probe=r1 HTTP/1.1\" 200 - via_upstream - \"-\" 0 612 34 33 \"10.0.2.7\" \"curl/8.16.0\""), "{line}");
        let text = parse_line(&line, 4).expect("a TEXT entry");
        assert_eq!(
            text,
            AccessLogEntry {
                line: 4,
                start_time: Some("2026-11-27T10:00:00.123Z".into()),
                method: Some("GET".into()),
                path: Some("/headers?kubectl-mtls-probe=r1".into()),
                authority: Some("httpbin.example.com".into()),
                response_code: Some(200),
                response_flags: None,
                response_code_details: Some("via_upstream".into()),
                upstream_cluster: Some("outbound|443||httpbin.example.com".into()),
                upstream_host: Some("203.0.113.10:443".into()),
                upstream_transport_failure_reason: None,
                requested_server_name: Some("httpbin.example.com".into()),
                x_forwarded_for: Some("10.0.2.7".into()),
                request_id: Some("6f1c1f6e-0d3a-4a3b-9a5e-1c2f3e4d5a6b".into()),
            }
        );
        assert_eq!(parse_line(&request.json(), 4), Some(text));
    }

    #[test]
    fn text_failure_plain_hop_and_odd_user_agents() {
        let mut failed = Request::ok("httpbin.example.com", "/headers", "r2");
        failed.response_code = 503;
        failed.response_flags = Some("UF,URX".into());
        failed.response_code_details =
            Some("upstream_reset_before_response_started{remote_connection_failure}".into());
        failed.upstream_transport_failure_reason = Some(
            "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end".into(),
        );
        // The plain hop (`--hop plain`): no TLS from the sidecar, so no SNI.
        failed.requested_server_name = None;
        failed.user_agent = Some("Mozilla/5.0 (X11; \"quoted\" part) \"x\"".into());
        for line in [failed.text(), failed.json()] {
            let e = parse_line(&line, 1).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(e.response_code, Some(503));
            assert_eq!(e.response_flags.as_deref(), Some("UF,URX"));
            assert!(
                e.upstream_transport_failure_reason
                    .as_deref()
                    .unwrap()
                    .contains("CERTIFICATE_VERIFY_FAILED")
            );
            assert_eq!(e.requested_server_name, None);
            assert_eq!(e.request_id.as_deref(), Some("r2"));
            assert_eq!(
                e.upstream_cluster.as_deref(),
                Some("outbound|443||httpbin.example.com")
            );
        }
        let mut no_response = Request::ok("httpbin.example.com", "/headers", "r3");
        no_response.response_code = 0;
        no_response.upstream_host = None;
        no_response.upstream_cluster = None;
        no_response.user_agent = None;
        let e = parse_line(&no_response.text(), 1).unwrap();
        assert_eq!(e.response_code, Some(0));
        assert_eq!((e.upstream_host, e.upstream_cluster), (None, None));
    }

    #[test]
    fn text_lines_of_another_shape_are_skipped() {
        let good = Request::ok("httpbin.example.com", "/headers", "r4").text();
        assert_eq!(ENVOY_TEXT_LOG_FORMAT.matches('%').count() % 2, 0);
        let mut lines = vec![
            // pilot-agent's and Envoy's own lines in the istio-proxy container.
            "2026-11-27T10:00:00.000000Z\tinfo\tEnvoy proxy is ready".to_string(),
            "[2026-11-27 10:00:00.000][15][warning][config] gRPC config stream closed".to_string(),
            // A user's custom TEXT format: fewer fields.
            "[2026-11-27T10:00:00.123Z] \"GET /headers HTTP/1.1\" 200".to_string(),
            // A status that is not a number.
            good.replacen(" 200 ", " OK ", 1),
            // Cut short.
            good[..good.len() - 20].to_string(),
        ];
        lines.push(format!("{good} extra"));
        for line in &lines {
            assert_eq!(parse_line(line, 1), None, "{line}");
        }
        let text = format!("{}\n{good}\n", lines.join("\n"));
        let entries = parse_lines(&text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, lines.len() + 1);
        // `kubectl logs --timestamps` in front of a TEXT line.
        let e = parse_line(&format!("2026-11-27T10:00:00.123456789Z {good}"), 2).unwrap();
        assert_eq!(e.request_id.as_deref(), Some("r4"));
        assert_eq!(
            for_upstream(&entries, "httpbin.example.com", 443).count(),
            1
        );
    }
}
