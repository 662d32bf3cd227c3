#![allow(missing_docs)]
//! The cluster layer against a mock API server (tower-test): the exact requests `apply` sends, the
//! outcomes it computes, how API failures read, and how `KubeArgs` builds a client from a
//! kubeconfig. No real cluster is contacted.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http::{Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ObjectMeta;
use kube::client::Body;
use kube::core::ApiResource;
use serde_json::{Value, json};
use shared::cluster::{
    Applied, ApplyMode, ClusterError, KubeArgs, Outcome, apply, parse_request_timeout,
    validate_namespace,
};
use shared::plan::{Plan, PlannedObject};


// ---------------------------------------------------------------------------------------------
// A small fake API server: objects by path, namespaces, and errors injected per request.

/// One request as the mock server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    body: Option<Value>,
}

impl Seen {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }
    /// `GET path`, `PATCH path (dry run)`, `PATCH path`.
    fn summary(&self) -> String {
        if self.method == "PATCH" && self.dry_run() {
            format!("PATCH {} (dry run)", self.path)
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// What a test wants the server to answer instead of the normal behaviour.
#[derive(Clone)]
enum Inject {
    /// A JSON `Status` with this code.
    Status(Value),
    /// A plain-text body with this code (like an unserved path: "404 page not found").
    Text(u16, &'static str),
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    namespaces: BTreeSet<String>,
    /// Keyed by `summary()`; answered instead of the normal behaviour.
    inject: BTreeMap<String, Inject>,
    seen: Vec<Seen>,
    next_rv: u64,
}

type Shared = Arc<Mutex<State>>;

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn strip_server_fields(object: &Value) -> Value {
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

fn answer(state: &mut State, seen: &Seen) -> (u16, Result<Value, &'static str>) {
    if let Some(inject) = state.inject.get(&seen.summary()) {
        return match inject {
            Inject::Status(s) => (s["code"].as_u64().unwrap() as u16, Ok(s.clone())),
            Inject::Text(code, text) => (*code, Err(*text)),
        };
    }
    let name = seen.path.rsplit('/').next().unwrap().to_string();
    match seen.method.as_str() {
        "GET" => match state.objects.get(&seen.path) {
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
        },
        "PATCH" => {
            if let Some(ns) = namespace_of(&seen.path) {
                let created = state.objects.contains_key(&format!("/api/v1/namespaces/{ns}"));
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
                Some(existing) if strip_server_fields(existing) == strip_server_fields(&body) => {
                    existing.clone()
                }
                existing => {
                    let mut new = body.clone();
                    state.next_rv += 1;
                    let meta = &mut new["metadata"];
                    meta["resourceVersion"] = json!(format!("{}", 100 + state.next_rv));
                    meta["uid"] = existing
                        .map(|e| e["metadata"]["uid"].clone())
                        .unwrap_or_else(|| json!(format!("uid-{name}")));
                    meta["managedFields"] = json!([{"manager": "kubectl-mtls"}]);
                    new
                }
            };
            if !seen.dry_run() {
                state.objects.insert(seen.path.clone(), result.clone());
            }
            (200, Ok(result))
        }
        other => panic!("unexpected method {other}"),
    }
}

/// A client talking to the fake server, and the server's state.
fn fake_server(setup: impl FnOnce(&mut State)) -> (kube::Client, Shared) {
    let mut state = State::default();
    state.namespaces.extend(["default".into(), "istio-system".into()]);
    setup(&mut state);
    let shared: Shared = Arc::new(Mutex::new(state));
    let server_state = shared.clone();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let seen = Seen {
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
                    .then(|| serde_json::from_slice(&bytes).expect("request body is JSON")),
            };
            let (code, reply) = {
                let mut state = server_state.lock().unwrap();
                state.seen.push(seen.clone());
                answer(&mut state, &seen)
            };
            let body = match reply {
                Ok(json) => serde_json::to_vec(&json).unwrap(),
                Err(text) => text.as_bytes().to_vec(),
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

fn seen(state: &Shared) -> Vec<Seen> {
    state.lock().unwrap().seen.clone()
}

fn summaries(state: &Shared) -> Vec<String> {
    seen(state).iter().map(Seen::summary).collect()
}

// ---------------------------------------------------------------------------------------------
// Plans.

const SECRET_PATH: &str = "/api/v1/namespaces/istio-system/secrets/kyma-mtls-certs";
const GATEWAY_PATH: &str = "/apis/networking.istio.io/v1/namespaces/istio-system/gateways/mtls-gw";
const SECRET_DATA: &[u8] = b"-----BEGIN PRIVATE KEY----- not-for-logs";

fn secret(name: &str, value: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("istio-system".into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some([("key".to_string(), ByteString(value.to_vec()))].into()),
        ..Default::default()
    }
}

/// A hand-written custom resource, the way the crate writes its Istio kinds.
#[derive(Debug, Clone, serde::Serialize)]
struct Gateway {
    metadata: ObjectMeta,
    spec: Value,
}

impl kube::Resource for Gateway {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        "Gateway".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "networking.istio.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "gateways".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn gateway() -> Gateway {
    Gateway {
        metadata: ObjectMeta {
            name: Some("mtls-gw".into()),
            namespace: Some("istio-system".into()),
            ..Default::default()
        },
        spec: json!({"selector": {"istio": "egressgateway"}}),
    }
}

fn secret_plan() -> Plan {
    let mut plan = Plan::new();
    plan.push(&secret("kyma-mtls-certs", SECRET_DATA)).unwrap();
    plan
}

/// The server form of a plan object, as if it had been applied before (resourceVersion 7).
fn stored(object: &PlannedObject) -> Value {
    let mut o = object.body.clone();
    o["metadata"]["resourceVersion"] = json!("7");
    o["metadata"]["uid"] = json!("existing-uid");
    o["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    o
}

fn outcomes(applied: &[Applied]) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Request shape.

#[tokio::test]
async fn core_secret_is_preflighted_then_applied_with_the_right_request_shape() {
    let (client, state) = fake_server(|_| {});
    let applied = apply(
        &client,
        &secret_plan(),
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap();

    assert_eq!(
        summaries(&state),
        [
            format!("GET {SECRET_PATH}"),
            format!("PATCH {SECRET_PATH} (dry run)"),
            format!("PATCH {SECRET_PATH}"),
        ]
    );
    let seen = seen(&state);
    let q = |s: &Seen| {
        s.query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(&seen[1]),
        [
            "dryRun=All",
            "fieldManager=kubectl-mtls",
            "fieldValidation=Strict"
        ]
    );
    assert_eq!(
        q(&seen[2]),
        ["fieldManager=kubectl-mtls", "fieldValidation=Strict"]
    );
    for patch in &seen[1..] {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let body = patch.body.as_ref().unwrap();
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["kind"], "Secret");
        assert_eq!(body["metadata"]["name"], "kyma-mtls-certs");
        assert_eq!(body["metadata"]["namespace"], "istio-system");
        assert_eq!(body["type"], "Opaque");
    }

    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].outcome, Outcome::Created);
    assert!(!applied[0].dry_run);
    assert_eq!(applied[0].namespace.as_deref(), Some("istio-system"));
    assert_eq!(applied[0].to_string(), "secret/kyma-mtls-certs created");
    // The object is what the server returned (it carries the server-set resourceVersion).
    assert_eq!(applied[0].object["metadata"]["resourceVersion"], "102");
    assert!(state.lock().unwrap().objects.contains_key(SECRET_PATH));
}

