//! A fake client cluster with a mesh, for `check` (and `connect`, which runs it): egress gateway
//! replicas, pods that start (with a sidecar when injection is asked for), and an exec that
//! "runs" curl. `curl http://HOST/headers?…` answers like httpbin behind the egress gateway would
//! and appends the access-log line the gateway would write (with the request id and path the
//! probe sent) to one replica's log; `curl https://EXTERNAL/` exits as the scenario says for the
//! injected and the plain pod. Needs [`crate::fake_api::tcp_server`] (exec is a websocket).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::envoy_log::Request;
use crate::fake_api::{ExecCall, ExecReply, State};

/// The pod label Istio's sidecar injector honours per pod (what `check` sets on its probe pods).
const INJECT_LABEL: &str = "sidecar.istio.io/inject";

/// The egress gateway replicas in istio-system.
pub const GATEWAYS: [&str; 2] = ["istio-egressgateway-7f-a", "istio-egressgateway-7f-b"];

/// How the fake cluster behaves.
#[derive(Clone)]
pub struct Mesh {
    /// The target host.
    pub host: String,
    /// The namespace the probe runs in (created).
    pub namespace: String,
    /// Whether our lockdown NetworkPolicy (selecting `app: client`) is in the namespace.
    pub lockdown: bool,
    /// The HTTP status the target answers.
    pub status: u16,
    /// curl's exit code for the request (0 = it got a response).
    pub curl_exit: i32,
    /// The SHA-256 the gateway puts into XFCC's Hash...
    pub xfcc_hash: String,
    /// ...or, when set, the SHA-256 of the certificate in this file, read at request time.
    pub xfcc_cert_file: Option<PathBuf>,
    /// Which replica logs the request (`None`: no access log at all).
    pub logging_replica: Option<usize>,
    /// The code and flags the gateway logs.
    pub logged: (u16, &'static str),
    /// Exit codes of `curl https://EXTERNAL/` from the injected and the plain pod.
    pub reach: (i32, i32),
    /// Whether created pods start (otherwise: ImagePullBackOff).
    pub pods_start: bool,
    /// Whether the gateway logs a request id of its own.
    pub regenerates_request_id: bool,
    /// Whether the gateway logs in Istio's default TEXT format (plain Istio) instead of JSON
    /// (Kyma's `accessLogEncoding: JSON`).
    pub text_log: bool,
}

impl Mesh {
    /// Everything works: 200, XFCC with `hash`, logged by the second replica, outside blocked.
    pub fn working(host: &str, namespace: &str, hash: &str) -> Self {
        Self {
            host: host.into(),
            namespace: namespace.into(),
            lockdown: false,
            status: 200,
            curl_exit: 0,
            xfcc_hash: hash.to_string(),
            xfcc_cert_file: None,
            logging_replica: Some(1),
            logged: (200, "-"),
            reach: (28, 28),
            pods_start: true,
            regenerates_request_id: false,
            text_log: false,
        }
    }
}

/// The key of a gateway replica's sidecar log in [`State::logs`].
pub fn gateway_log_key(gateway: &str) -> String {
    format!("/api/v1/namespaces/istio-system/pods/{gateway}/istio-proxy")
}

/// Puts the mesh into `state`.
pub fn install(state: &mut State, mesh: Mesh) {
    let host = mesh.host.clone();
    state.namespaces.insert(mesh.namespace.clone());
    for gw in GATEWAYS {
        state.put(
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": gw, "namespace": "istio-system", "labels": {"istio": "egressgateway", "app": "istio-egressgateway"}},
                "spec": {"containers": [{"name": "istio-proxy"}]},
                "status": {"phase": "Running"}}),
        );
        // Earlier traffic to the same host: must not be mistaken for the probe's request.
        let mut earlier = Request::ok(&host, "/headers", "someone-else");
        earlier.response_code = 503;
        earlier.response_flags = Some("UF".into());
        let line = if mesh.text_log {
            earlier.text()
        } else {
            earlier.json()
        };
        state.logs.insert(gateway_log_key(gw), format!("{line}\n"));
    }
    if mesh.lockdown {
        state.put(
            "networkpolicies",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "mtls-lockdown", "namespace": mesh.namespace, "labels": {
                    "app.kubernetes.io/managed-by": "kubectl-mtls", "app.kubernetes.io/component": "lockdown"}},
                "spec": {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"]}}),
        );
    }
    let starts = mesh.pods_start;
    state.on_pod_create = Some(Arc::new(move |pod: &mut Value| {
        let injected = pod["metadata"]["labels"][INJECT_LABEL] == "true";
        if injected {
            pod["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "istio-proxy", "image": "istio/proxyv2"}));
        }
        let state = if starts {
            json!({"running": {"startedAt": "2026-11-27T00:00:00Z"}})
        } else {
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
        };
        let mut statuses = vec![json!({"name": "probe", "ready": false, "restartCount": 0,
            "image": "curl", "imageID": "", "state": state})];
        if injected {
            statuses.push(
                json!({"name": "istio-proxy", "ready": starts, "restartCount": 0,
                "image": "proxy", "imageID": "", "state": {"running": {}}}),
            );
        }
        pod["status"] =
            json!({"phase": if starts {"Running"} else {"Pending"}, "containerStatuses": statuses});
    }));
    state.on_exec = Some(Arc::new(move |call: &ExecCall, state: &mut State| {
        run_curl(&mesh, call, state)
    }));
}

/// What curl in a probe pod would print, and the gateway line it would cause.
fn run_curl(s: &Mesh, call: &ExecCall, state: &mut State) -> ExecReply {
    let host = s.host.as_str();
    let url = call.command.last().unwrap().clone();
    if url.starts_with("https://") {
        let exit = if call.pod.contains("plain") {
            s.reach.1
        } else {
            s.reach.0
        };
        let (stdout, stderr) = match exit {
            0 => ("200".to_string(), String::new()),
            28 => (
                "000".into(),
                "curl: (28) Connection timed out after 5002 milliseconds".into(),
            ),
            code => ("000".into(), format!("curl: ({code}) failed")),
        };
        return ExecReply {
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
            exit: Ok(exit),
        };
    }
    let (path, query) = url
        .strip_prefix(&format!("http://{host}"))
        .unwrap()
        .split_once('?')
        .unwrap();
    assert_eq!(path, "/headers");
    let path = format!("{path}?{query}");
    if s.curl_exit != 0 {
        return ExecReply {
            stdout: b"\nkubectl-mtls-status:000".to_vec(),
            stderr: format!("curl: ({}) Could not resolve host: {host}\n", s.curl_exit)
                .into_bytes(),
            exit: Ok(s.curl_exit),
        };
    }
    let h = call.command.iter().position(|a| a == "-H").unwrap();
    let sent_id = call.command[h + 1].strip_prefix("x-request-id: ").unwrap();
    assert_eq!(query, format!("kubectl-mtls-probe={sent_id}"));
    // A gateway that regenerates x-request-id still logs the path with the query.
    let request_id = if s.regenerates_request_id {
        "1b9c-regenerated"
    } else {
        sent_id
    };
    if let Some(replica) = s.logging_replica {
        let mut logged = Request::ok(host, &path, request_id);
        logged.start_time = "2026-11-27T10:00:00.000Z".into();
        logged.response_code = s.logged.0;
        logged.response_flags = (s.logged.1 != "-").then(|| s.logged.1.to_string());
        if s.logged.0 != 200 {
            logged.response_code_details =
                Some("upstream_reset_before_response_started{connection_failure}".into());
            logged.upstream_transport_failure_reason = Some(
                "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end".into(),
            );
        }
        let line = if s.text_log {
            logged.text()
        } else {
            logged.json()
        };
        state
            .logs
            .entry(gateway_log_key(GATEWAYS[replica]))
            .or_default()
            .push_str(&format!("{line}\n"));
    }
    let hash = match &s.xfcc_cert_file {
        Some(file) => {
            let pem = std::fs::read_to_string(file).unwrap();
            let cert = shared::pki::Certificate::parse_chain(&pem, "client.crt").unwrap();
            shared::pki::sha256_hex(cert[0].der())
        }
        None => s.xfcc_hash.clone(),
    };
    let body = json!({"headers": {"Host": [host], "X-Forwarded-Client-Cert": [
        format!("By=spiffe://cluster.local/ns/default/sa/httpbin;Hash={hash};Subject=\"CN=client.example.com\";URI=;DNS=client.example.com")
    ]}});
    ExecReply {
        stdout: format!("{body}\nkubectl-mtls-status:{}", s.status).into_bytes(),
        stderr: Vec::new(),
        exit: Ok(0),
    }
}
