//! A small in-process fake API server (tower-test) for request-shape and command-flow tests:
//! objects stored by path, namespaces, GET / LIST (with equality label selectors, per namespace or
//! across all) / server-side-apply PATCH (a deep merge, honouring `dryRun=All`) / DELETE, discovery
//! of configured group-versions, and errors injected per request; pod creation (POST), pod logs,
//! and — over real HTTP with [`tcp_server`] — exec as a `v4.channel.k8s.io` websocket. It is a stand-in for request
//! flows, not for Kubernetes semantics (no field ownership, no admission, no defaulting).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// URI path.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl Seen {
    /// A query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Whether `dryRun=All` was sent (as a query parameter, or in a DELETE's DeleteOptions body).
    pub fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
            || self
                .body
                .as_ref()
                .and_then(|b| b["dryRun"].as_array())
                .is_some_and(|d| d.iter().any(|v| v == "All"))
    }
    /// `GET path`, `PATCH path (dry run)`, `PATCH path`, `DELETE path`.
    pub fn summary(&self) -> String {
        if matches!(self.method.as_str(), "PATCH" | "DELETE") && self.dry_run() {
            format!("{} {} (dry run)", self.method, self.path)
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// What a test wants the server to answer instead of the normal behaviour.
#[derive(Clone)]
pub enum Inject {
    /// A JSON `Status` with this code.
    Status(Value),
    /// A plain-text body with this code (like an unserved path: "404 page not found").
    Text(u16, &'static str),
}

/// The server's state; tests seed and inspect it.
#[derive(Default)]
pub struct State {
    /// Objects by path (`/apis/G/V/namespaces/NS/PLURAL/NAME`).
    pub objects: BTreeMap<String, Value>,
    /// Existing namespaces.
    pub namespaces: BTreeSet<String>,
    /// Served group-versions (`networking.istio.io/v1`, `v1` for core) → `(plural, kind, namespaced)`.
    pub served: BTreeMap<String, Vec<(String, String, bool)>>,
    /// Keyed by `summary()`; answered instead of the normal behaviour.
    pub inject: BTreeMap<String, Inject>,
    /// Every request, in order.
    pub seen: Vec<Seen>,
    /// Container logs by `POD_PATH/CONTAINER` (`/api/v1/namespaces/NS/pods/NAME/istio-proxy`).
    pub logs: BTreeMap<String, String>,
    /// Runs on every created pod (e.g. to add a sidecar and a Running status).
    pub on_pod_create: Option<PodHook>,
    /// Answers exec requests (only [`tcp_server`] serves exec); it may change the state, e.g.
    /// append a gateway access-log line for the request it "ran".
    pub on_exec: Option<ExecHandler>,
    next_rv: u64,
}

/// Changes a pod as it is created.
pub type PodHook = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// Answers an exec request.
pub type ExecHandler = Arc<dyn Fn(&ExecCall, &mut State) -> ExecReply + Send + Sync>;

/// An exec request as the server saw it.
#[derive(Debug, Clone)]
pub struct ExecCall {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The `container` parameter.
    pub container: String,
    /// The `command` parameters, in order.
    pub command: Vec<String>,
}

/// What an exec "printed", and its final status (channel 3).
#[derive(Debug, Clone)]
pub struct ExecReply {
    /// Channel 1.
    pub stdout: Vec<u8>,
    /// Channel 2.
    pub stderr: Vec<u8>,
    /// The exit code (`0` → `Success`); `Err(message)` for a command that could not run.
    pub exit: Result<i32, String>,
}

impl ExecReply {
    /// The status object the API server sends on channel 3.
    fn status(&self) -> Value {
        match &self.exit {
            Ok(0) => json!({"metadata": {}, "status": "Success"}),
            Ok(code) => json!({
                "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                "message": format!("command terminated with non-zero exit code: exit code {code}"),
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Err(message) => json!({
                "metadata": {}, "status": "Failure", "reason": "InternalError", "message": message,
            }),
        }
    }
}

impl State {
    /// Marks a kind as served.
    pub fn serve(&mut self, api_version: &str, plural: &str, kind: &str) {
        self.served
            .entry(api_version.to_string())
            .or_default()
            .push((plural.to_string(), kind.to_string(), true));
    }

    /// Stores an object at the path its apiVersion/kind/namespace/name give.
    pub fn put(&mut self, plural: &str, mut object: Value) {
        self.next_rv += 1;
        object["metadata"]["resourceVersion"] = json!(format!("{}", self.next_rv));
        let path = object_path(&object, plural);
        self.objects.insert(path, object);
    }
}

/// Shared handle to the state.
pub type Shared = Arc<Mutex<State>>;

/// The path of an object.
pub fn object_path(object: &Value, plural: &str) -> String {
    let api_version = object["apiVersion"].as_str().unwrap();
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let name = object["metadata"]["name"].as_str().unwrap();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    }
}

/// A `Status` body.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

/// The object without the fields the server owns.
pub fn strip_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        for f in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.remove(f);
        }
    }
    object
}

/// The namespace in a path like `/api/v1/namespaces/NS/secrets/NAME`, if it is namespaced.
fn namespace_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let i = parts.iter().position(|p| *p == "namespaces")?;
    // `/api/v1/namespaces/NAME` is the Namespace object itself.
    if parts.len() > i + 2 {
        Some(parts[i + 1].to_string())
    } else {
        None
    }
}

/// Maps merge key by key; anything else is replaced (close enough to SSA for one manager).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// `(group-version, plural, namespace)` of a collection path, or `None` for an object path.
fn collection(path: &str) -> Option<(String, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (gv, rest) = match parts.first() {
        Some(&"api") => (parts.get(1)?.to_string(), &parts[2..]),
        Some(&"apis") => (format!("{}/{}", parts.get(1)?, parts.get(2)?), &parts[3..]),
        _ => return None,
    };
    match rest {
        [plural] => Some((gv, plural.to_string(), None)),
        ["namespaces", ns, plural] => Some((gv, plural.to_string(), Some(ns.to_string()))),
        _ => None,
    }
}

fn matches_selector(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let label = |k: &str| object["metadata"]["labels"][k.trim()].as_str();
    selector_terms(selector).iter().all(|term| {
        let term = term.trim();
        if let Some(key) = term.strip_prefix('!') {
            return label(key).is_none();
        }
        let set = |op: &str| {
            term.split_once(op).map(|(k, values)| {
                let values = values.trim().trim_start_matches('(').trim_end_matches(')');
                (k, values.split(',').map(str::trim).collect::<Vec<_>>())
            })
        };
        if let Some((key, values)) = set(" notin ") {
            return label(key).is_none_or(|v| !values.contains(&v));
        }
        if let Some((key, values)) = set(" in ") {
            return label(key).is_some_and(|v| values.contains(&v));
        }
        if let Some((key, value)) = term.split_once("!=") {
            return label(key) != Some(value.trim());
        }
        match term.split_once('=') {
            Some((key, value)) => label(key) == Some(value.trim_start_matches('=').trim()),
            None => label(term).is_some(),
        }
    })
}

/// A label selector's terms: split at the commas outside `in (…)`/`notin (…)` sets.
fn selector_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
}

fn answer(state: &mut State, seen: &Seen) -> (u16, Result<Value, String>) {
    if let Some(inject) = state.inject.get(&seen.summary()) {
        return match inject {
            Inject::Status(s) => (s["code"].as_u64().unwrap() as u16, Ok(s.clone())),
            Inject::Text(code, text) => (*code, Err(text.to_string())),
        };
    }
    let name = seen.path.rsplit('/').next().unwrap().to_string();
    match seen.method.as_str() {
        "GET" => {
            // Discovery of a group-version.
            let gv = seen
                .path
                .strip_prefix("/apis/")
                .filter(|p| p.matches('/').count() == 1)
                .map(str::to_string)
                .or_else(|| (seen.path == "/api/v1").then(|| "v1".to_string()));
            if let Some(gv) = gv {
                return match state.served.get(&gv) {
                    Some(kinds) => (
                        200,
                        Ok(json!({
                            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                            "resources": kinds.iter().map(|(plural, kind, namespaced)| json!({
                                "name": plural, "singularName": "", "namespaced": namespaced,
                                "kind": kind, "verbs": ["get", "list", "patch", "delete"],
                            })).collect::<Vec<_>>(),
                        })),
                    ),
                    None => (404, Err("404 page not found".to_string())),
                };
            }
            if let Some(pod) = seen.path.strip_suffix("/log") {
                let container = seen.param("container").unwrap_or_default();
                return match state.objects.get(pod) {
                    Some(_) => (
                        200,
                        Err(state
                            .logs
                            .get(&format!("{pod}/{container}"))
                            .cloned()
                            .unwrap_or_default()),
                    ),
                    None => (
                        404,
                        Ok(status(
                            404,
                            "NotFound",
                            "pod not found",
                            Some(json!({"name": name})),
                        )),
                    ),
                };
            }
            if let Some((gv, plural, ns)) = collection(&seen.path) {
                let prefix = if gv.contains('/') {
                    format!("/apis/{gv}")
                } else {
                    format!("/api/{gv}")
                };
                let selector = seen.param("labelSelector").map(decode);
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(path, _)| {
                        path.starts_with(&prefix)
                            && path.split('/').rev().nth(1) == Some(plural.as_str())
                            && ns
                                .as_ref()
                                .is_none_or(|ns| namespace_of(path).as_deref() == Some(ns))
                    })
                    .map(|(_, o)| o.clone())
                    .filter(|o| matches_selector(o, selector.as_deref()))
                    .collect();
                return (
                    200,
                    Ok(
                        json!({"apiVersion": gv, "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                    ),
                );
            }
            match state.objects.get(&seen.path) {
                Some(o) => (200, Ok(o.clone())),
                None => (
                    404,
                    Ok(status(
                        404,
                        "NotFound",
                        &format!("object {name:?} not found"),
                        Some(json!({"name": name})),
                    )),
                ),
            }
        }
        "PATCH" => {
            if let Some(ns) = namespace_of(&seen.path) {
                let created = state
                    .objects
                    .contains_key(&format!("/api/v1/namespaces/{ns}"));
                if !state.namespaces.contains(&ns) && !created {
                    return (
                        404,
                        Ok(status(
                            404,
                            "NotFound",
                            &format!("namespaces {ns:?} not found"),
                            Some(json!({"name": ns, "kind": "namespaces"})),
                        )),
                    );
                }
            }
            let body = seen.body.clone().expect("an apply patch has a body");
            let result = match state.objects.get(&seen.path) {
                Some(existing) => {
                    let mut merged = existing.clone();
                    merge(&mut merged, &body);
                    if strip_server_fields(&merged) == strip_server_fields(existing) {
                        existing.clone()
                    } else {
                        state.next_rv += 1;
                        merged["metadata"]["resourceVersion"] =
                            json!(format!("{}", 100 + state.next_rv));
                        merged
                    }
                }
                None => {
                    let mut new = body.clone();
                    state.next_rv += 1;
                    let meta = &mut new["metadata"];
                    meta["resourceVersion"] = json!(format!("{}", 100 + state.next_rv));
                    meta["uid"] = json!(format!("uid-{name}"));
                    meta["managedFields"] = json!([{"manager": "kubectl-mtls"}]);
                    new
                }
            };
            if !seen.dry_run() {
                state.objects.insert(seen.path.clone(), result.clone());
                return (200, Ok(result));
            }
            // Like kube-apiserver, a dry run persists nothing and so assigns no version: a new
            // object comes back without one, an existing one with the version it has.
            let mut result = result;
            match state
                .objects
                .get(&seen.path)
                .and_then(|o| o["metadata"].get("resourceVersion"))
            {
                Some(version) => result["metadata"]["resourceVersion"] = version.clone(),
                None => {
                    if let Some(meta) = result["metadata"].as_object_mut() {
                        meta.remove("resourceVersion");
                    }
                }
            }
            (200, Ok(result))
        }
        "POST" => {
            let (_, plural, ns) = collection(&seen.path).expect("POST to a collection");
            if let Some(ns) = &ns
                && !state.namespaces.contains(ns)
            {
                return (
                    404,
                    Ok(status(
                        404,
                        "NotFound",
                        &format!("namespaces {ns:?} not found"),
                        Some(json!({"name": ns, "kind": "namespaces"})),
                    )),
                );
            }
            let mut new = seen.body.clone().expect("a create has a body");
            let name = new["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_string();
            let path = format!("{}/{name}", seen.path);
            if state.objects.contains_key(&path) {
                return (
                    409,
                    Ok(status(
                        409,
                        "AlreadyExists",
                        &format!("{plural} {name:?} already exists"),
                        Some(json!({"name": name})),
                    )),
                );
            }
            state.next_rv += 1;
            new["metadata"]["resourceVersion"] = json!(format!("{}", 100 + state.next_rv));
            new["metadata"]["uid"] = json!(format!("uid-{name}"));
            if plural == "pods"
                && let Some(hook) = state.on_pod_create.clone()
            {
                hook(&mut new);
            }
            if !seen.dry_run() {
                state.objects.insert(path, new.clone());
            }
            (201, Ok(new))
        }
        "DELETE" => match state.objects.get(&seen.path).cloned() {
            Some(o) => {
                if !seen.dry_run() {
                    state.objects.remove(&seen.path);
                }
                (200, Ok(o))
            }
            None => (
                404,
                Ok(status(
                    404,
                    "NotFound",
                    &format!("object {name:?} not found"),
                    Some(json!({"name": name})),
                )),
            ),
        },
        other => panic!("unexpected method {other}"),
    }
}

/// A query value as sent, percent- and `+`-decoded (a label selector, say).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A client talking to a fresh fake server (namespaces `default` and `istio-system` exist), and
/// the server's state.
pub fn fake_server(setup: impl FnOnce(&mut State)) -> (kube::Client, Shared) {
    let mut state = State::default();
    state
        .namespaces
        .extend(["default".into(), "istio-system".into()]);
    setup(&mut state);
    let shared: Shared = Arc::new(Mutex::new(state));
    let server_state = shared.clone();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let seen = seen_from(&parts, &bytes);
            let (code, reply) = {
                let mut state = server_state.lock().unwrap();
                state.seen.push(seen.clone());
                answer(&mut state, &seen)
            };
            let body = match reply {
                Ok(json) => serde_json::to_vec(&json).unwrap(),
                Err(text) => text.into_bytes(),
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(service, "default"), shared)
}

fn seen_from(parts: &http::request::Parts, bytes: &[u8]) -> Seen {
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string()),
        body: (!bytes.is_empty())
            .then(|| serde_json::from_slice(bytes).expect("request body is JSON")),
    }
}

/// Like [`fake_server`], but over real HTTP on 127.0.0.1, so that exec works: an exec request is
/// upgraded to a websocket speaking `v4.channel.k8s.io`, answered by [`State::on_exec`].
pub fn tcp_server(setup: impl FnOnce(&mut State)) -> (kube::Client, Shared) {
    let mut state = State::default();
    state
        .namespaces
        .extend(["default".into(), "istio-system".into()]);
    setup(&mut state);
    let shared: Shared = Arc::new(Mutex::new(state));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let server_state = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = server_state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve(state, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    (kube::Client::try_from(config).unwrap(), shared)
}

async fn serve(state: Shared, mut request: Request<hyper::body::Incoming>) -> Response<Body> {
    use http_body_util::BodyExt as _;
    let upgrade = request
        .uri()
        .path()
        .ends_with("/exec")
        .then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.expect("request body").to_bytes();
    let seen = seen_from(&parts, &bytes);
    if let Some(upgrade) = upgrade {
        return exec(state, &parts, seen, upgrade);
    }
    let (code, reply) = {
        let mut state = state.lock().unwrap();
        state.seen.push(seen.clone());
        answer(&mut state, &seen)
    };
    let body = match reply {
        Ok(json) => serde_json::to_vec(&json).unwrap(),
        Err(text) => text.into_bytes(),
    };
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn exec(
    state: Shared,
    parts: &http::request::Parts,
    seen: Seen,
    upgrade: hyper::upgrade::OnUpgrade,
) -> Response<Body> {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let segments: Vec<&str> = seen.path.split('/').collect();
    let call = ExecCall {
        namespace: segments[4].to_string(),
        pod: segments[6].to_string(),
        container: seen.param("container").unwrap_or_default().to_string(),
        command: seen
            .query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| decode(v))
            .collect(),
    };
    let reply = {
        let mut state = state.lock().unwrap();
        state.seen.push(seen.clone());
        if !state.objects.contains_key(&segments[..7].join("/")) {
            None
        } else {
            let handler = state.on_exec.clone().expect("State::on_exec is set");
            Some(handler(&call, &mut state))
        }
    };
    let Some(reply) = reply else {
        let body = status(404, "NotFound", "pod not found", None);
        return Response::builder()
            .status(404)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
    };
    let key = parts.headers[http::header::SEC_WEBSOCKET_KEY].as_bytes();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    tokio::spawn(async move {
        let upgraded = upgrade.await.expect("upgrade");
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let frame = |channel: u8, data: &[u8]| {
            let mut bytes = vec![channel];
            bytes.extend_from_slice(data);
            Message::Binary(bytes.into())
        };
        let status = serde_json::to_vec(&reply.status()).unwrap();
        for message in [
            frame(1, &reply.stdout),
            frame(2, &reply.stderr),
            frame(3, &status),
        ] {
            if ws.send(message).await.is_err() {
                return;
            }
        }
        let _ = ws.close(None).await;
    });
    Response::builder()
        .status(101)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, "v4.channel.k8s.io")
        .body(Body::empty())
        .unwrap()
}

/// Every request so far.
pub fn seen(state: &Shared) -> Vec<Seen> {
    state.lock().unwrap().seen.clone()
}

/// Every request so far, summarized.
pub fn summaries(state: &Shared) -> Vec<String> {
    seen(state).iter().map(Seen::summary).collect()
}
