//! Access-log lines exactly as an Istio gateway's Envoy writes them, rendered from Istio's own
//! format definitions (istio/istio 1.30.3 `pilot/pkg/model/telemetry_logging.go`):
//! [`ENVOY_TEXT_LOG_FORMAT`] is `EnvoyTextLogFormat` verbatim — what the `envoy` provider logs
//! with `meshConfig.accessLogEncoding` at its default `TEXT` (`pkg/config/mesh/mesh.go`) — and
//! [`JSON_LOG_KEYS`] are the keys of `EnvoyJSONLogFormatIstio` with their command operators
//! (Kyma sets `accessLogEncoding: JSON`). A fixture names values by command operator
//! ([`Request`]); the renderers substitute them into those definitions, so a test line has the
//! upstream shape by construction, and Envoy's `-` for a value it does not have.

use serde_json::{Map, Value};

/// `EnvoyTextLogFormat` of istio/istio 1.30.3 `pilot/pkg/model/telemetry_logging.go`, verbatim.
pub const ENVOY_TEXT_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \
%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% \
%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \
\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" \
%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% \
%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// The keys of `EnvoyJSONLogFormatIstio` (same file) and the command operator of each.
pub const JSON_LOG_KEYS: [(&str, &str); 24] = [
    ("start_time", "%START_TIME%"),
    ("route_name", "%ROUTE_NAME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
];

/// One request as the egress gateway saw it; `None` is what Envoy logs as `-`.
#[derive(Debug, Clone)]
pub struct Request {
    /// `%START_TIME%`.
    pub start_time: String,
    /// `%REQ(:METHOD)%`.
    pub method: String,
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` (with the query).
    pub path: String,
    /// `%RESPONSE_CODE%` (0 when no response was sent).
    pub response_code: u16,
    /// `%RESPONSE_FLAGS%`.
    pub response_flags: Option<String>,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub response_code_details: Option<String>,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    pub upstream_transport_failure_reason: Option<String>,
    /// `%REQ(X-FORWARDED-FOR)%`.
    pub x_forwarded_for: Option<String>,
    /// `%REQ(USER-AGENT)%`.
    pub user_agent: Option<String>,
    /// `%REQ(X-REQUEST-ID)%`.
    pub request_id: Option<String>,
    /// `%REQ(:AUTHORITY)%`.
    pub authority: String,
    /// `%UPSTREAM_HOST%`.
    pub upstream_host: Option<String>,
    /// `%UPSTREAM_CLUSTER_RAW%`, e.g. `outbound|443||httpbin.example.com`.
    pub upstream_cluster: Option<String>,
    /// `%REQUESTED_SERVER_NAME%`: the SNI the sidecar sent on the hop to the gateway — the host
    /// over `enable`'s Istio-mTLS hop (its subset rule sets `sni: HOST`), none over the plain hop.
    pub requested_server_name: Option<String>,
}

impl Request {
    /// A `GET` of `path` that the gateway sent to `host:443` and that got 200, with the SNI of
    /// `enable`'s Istio-mTLS hop.
    pub fn ok(host: &str, path: &str, request_id: &str) -> Self {
        Self {
            start_time: "2026-11-27T10:00:00.123Z".into(),
            method: "GET".into(),
            path: path.into(),
            response_code: 200,
            response_flags: None,
            response_code_details: Some("via_upstream".into()),
            upstream_transport_failure_reason: None,
            x_forwarded_for: Some("10.0.2.7".into()),
            user_agent: Some("curl/8.16.0".into()),
            request_id: Some(request_id.into()),
            authority: host.into(),
            upstream_host: Some("203.0.113.10:443".into()),
            upstream_cluster: Some(format!("outbound|443||{host}")),
            requested_server_name: Some(host.into()),
        }
    }

    /// The value of each command operator, as Envoy prints it (`-` for none).
    fn operators(&self) -> Vec<(&'static str, String)> {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        vec![
            ("%START_TIME%", self.start_time.clone()),
            ("%REQ(:METHOD)%", self.method.clone()),
            ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", self.path.clone()),
            ("%PROTOCOL%", "HTTP/1.1".into()),
            ("%RESPONSE_CODE%", self.response_code.to_string()),
            ("%RESPONSE_FLAGS%", dash(&self.response_flags)),
            ("%RESPONSE_CODE_DETAILS%", dash(&self.response_code_details)),
            ("%CONNECTION_TERMINATION_DETAILS%", "-".into()),
            (
                "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
                dash(&self.upstream_transport_failure_reason),
            ),
            ("%BYTES_RECEIVED%", "0".into()),
            ("%BYTES_SENT%", "612".into()),
            ("%DURATION%", "34".into()),
            ("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "33".into()),
            ("%REQ(X-FORWARDED-FOR)%", dash(&self.x_forwarded_for)),
            ("%REQ(USER-AGENT)%", dash(&self.user_agent)),
            ("%REQ(X-REQUEST-ID)%", dash(&self.request_id)),
            ("%REQ(:AUTHORITY)%", self.authority.clone()),
            ("%UPSTREAM_HOST%", dash(&self.upstream_host)),
            ("%UPSTREAM_CLUSTER_RAW%", dash(&self.upstream_cluster)),
            ("%UPSTREAM_LOCAL_ADDRESS%", "10.0.1.5:40000".into()),
            ("%DOWNSTREAM_LOCAL_ADDRESS%", "10.0.1.5:8443".into()),
            ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.2.7:51234".into()),
            ("%REQUESTED_SERVER_NAME%", dash(&self.requested_server_name)),
            ("%ROUTE_NAME%", "-".into()),
        ]
    }

    /// The line in Istio's default TEXT format (without the trailing newline).
    pub fn text(&self) -> String {
        let mut line = ENVOY_TEXT_LOG_FORMAT.to_string();
        for (operator, value) in self.operators() {
            line = line.replace(operator, &value);
        }
        assert!(
            !line.contains('%'),
            "an operator of EnvoyTextLogFormat has no value: {line}"
        );
        line.trim_end_matches('\n').to_string()
    }

    /// The line in Istio's JSON format: strings, `null` for a value Envoy does not have (but
    /// `"-"` for no response flags, which is the flags' own text), and numbers for
    /// `%RESPONSE_CODE%`, `%BYTES_*%` and `%DURATION%` (Envoy keeps a lone operator's type).
    pub fn json(&self) -> String {
        let operators = self.operators();
        let mut object = Map::new();
        for (key, operator) in JSON_LOG_KEYS {
            let value = &operators
                .iter()
                .find(|(o, _)| *o == operator)
                .unwrap_or_else(|| panic!("no value for {operator}"))
                .1;
            let value = match operator {
                "%RESPONSE_FLAGS%" => Value::from(value.clone()),
                _ if value == "-" => Value::Null,
                "%RESPONSE_CODE%" | "%BYTES_RECEIVED%" | "%BYTES_SENT%" | "%DURATION%" => {
                    Value::from(value.parse::<u64>().unwrap())
                }
                _ => Value::from(value.clone()),
            };
            object.insert(key.to_string(), value);
        }
        Value::Object(object).to_string()
    }
}
