//! The cluster layer against a mock API server (tower-test): the exact requests `apply` sends, the
//! outcomes it computes, how API failures read, and how `KubeArgs` builds a client from a
//! kubeconfig. No real cluster is contacted.

use std::borrow::Cow;
use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use shared::cluster::{
    Applied, ApplyMode, ClusterError, KubeArgs, Outcome, apply, apply_as, parse_request_timeout,
    validate_namespace,
};
use shared::plan::{Plan, PlannedObject};
use test_support::fake_api::{Inject, Seen, fake_server, seen, status, summaries};

// ---------------------------------------------------------------------------------------------
// Plans.

const SECRET_PATH: &str = "/api/v1/namespaces/istio-system/secrets/kyma-mtls-certs";
const GATEWAY_PATH: &str = "/apis/networking.istio.io/v1/namespaces/istio-system/gateways/mtls-gw";
const SECRET_DATA: &[u8] = b"-----BEGIN PRIVATE KEY----- not-for-logs";

/// The requests as a sequential run would list them: the concurrent preflight regrouped per
/// object (its GET, then its dry-run PATCH, objects in the order first seen), then the writes in
/// the order they were sent. Fails if any write came before the last dry run.
fn phased(state: &test_support::fake_api::Shared) -> Vec<String> {
    let all = seen(state);
    let split = all.iter().rposition(Seen::dry_run).map_or(0, |i| i + 1);
    let (pre, writes) = all.split_at(split);
    assert!(
        pre.iter().all(|s| s.method == "GET" || s.dry_run()),
        "a write before the preflight ended: {:?}",
        summaries(state)
    );
    let mut order: Vec<&str> = Vec::new();
    for s in pre {
        if !order.contains(&s.path.as_str()) {
            order.push(&s.path);
        }
    }
    let mut pre: Vec<&Seen> = pre.iter().collect();
    pre.sort_by_key(|s| (order.iter().position(|p| *p == s.path), s.method != "GET"));
    pre.into_iter().chain(writes).map(Seen::summary).collect()
}

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
        // No GET: the dry run's resourceVersion says whether the object exists.
        [
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
        q(&seen[0]),
        [
            "dryRun=All",
            "fieldManager=kubectl-mtls",
            "fieldValidation=Strict"
        ]
    );
    assert_eq!(
        q(&seen[1]),
        ["fieldManager=kubectl-mtls", "fieldValidation=Strict"]
    );
    for patch in &seen[..] {
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

#[tokio::test]
async fn another_field_manager_is_sent_on_the_dry_run_and_the_write() {
    let (client, state) = fake_server(|_| {});
    apply_as(
        &client,
        &secret_plan(),
        ApplyMode::Apply {
            force_conflicts: false,
        },
        "platform-gitops",
    )
    .await
    .unwrap();
    let patches: Vec<Option<String>> = seen(&state)
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.param("fieldManager").map(str::to_string))
        .collect();
    assert_eq!(
        patches,
        [
            Some("platform-gitops".into()),
            Some("platform-gitops".into())
        ]
    );
}
#[tokio::test]
async fn custom_kinds_and_cluster_scoped_objects_use_their_paths_and_force_only_when_asked() {
    let mut plan = Plan::new();
    plan.push(&Namespace {
        metadata: ObjectMeta {
            name: Some("mtls-demo".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    plan.push(&gateway()).unwrap();
    let (client, state) = fake_server(|_| {});
    let applied = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: true,
        },
    )
    .await
    .unwrap();

    // Preflight for every object first, then the real pass, in plan order.
    assert_eq!(
        phased(&state),
        [
            "PATCH /api/v1/namespaces/mtls-demo (dry run)".to_string(),
            format!("PATCH {GATEWAY_PATH} (dry run)"),
            "PATCH /api/v1/namespaces/mtls-demo".into(),
            format!("PATCH {GATEWAY_PATH}"),
        ]
    );
    let patches: Vec<Seen> = seen(&state)
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 4);
    for s in &patches {
        assert_eq!(s.param("force"), Some("true"), "{}", s.summary());
        assert_eq!(s.param("fieldManager"), Some("kubectl-mtls"));
        assert_eq!(s.param("fieldValidation"), Some("Strict"));
        assert_eq!(
            s.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
    }
    assert_eq!(
        patches[1].body.as_ref().unwrap()["apiVersion"],
        "networking.istio.io/v1"
    );
    assert_eq!(
        outcomes(&applied),
        [
            "namespace/mtls-demo created",
            "gateway.networking.istio.io/mtls-gw created"
        ]
    );
    assert_eq!(applied[0].namespace, None);
    assert_eq!(applied[1].namespace.as_deref(), Some("istio-system"));
}

#[tokio::test]
async fn force_is_absent_unless_asked_also_in_a_server_dry_run() {
    let (client, state) = fake_server(|_| {});
    apply(
        &client,
        &secret_plan(),
        ApplyMode::DryRunServer {
            force_conflicts: false,
        },
    )
    .await
    .unwrap();
    apply(
        &client,
        &secret_plan(),
        ApplyMode::DryRunServer {
            force_conflicts: true,
        },
    )
    .await
    .unwrap();
    let forces: Vec<Option<String>> = seen(&state)
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.param("force").map(str::to_string))
        .collect();
    assert_eq!(forces, [None, Some("true".to_string())]);
}

// ---------------------------------------------------------------------------------------------
// Outcomes.

/// Three secrets: `same` exists exactly as planned, `old` exists with other data, `new` is absent.
fn three_secrets() -> (Plan, Vec<PlannedObject>) {
    let mut plan = Plan::new();
    plan.push(&secret("same", b"v1")).unwrap();
    plan.push(&secret("old", b"v2")).unwrap();
    plan.push(&secret("new", b"v3")).unwrap();
    let mut previous = Plan::new();
    previous.push(&secret("same", b"v1")).unwrap();
    previous.push(&secret("old", b"v1-outdated")).unwrap();
    (plan, previous.objects().to_vec())
}

fn path(name: &str) -> String {
    format!("/api/v1/namespaces/istio-system/secrets/{name}")
}

#[tokio::test]
async fn real_apply_reports_created_configured_unchanged_from_resource_versions() {
    let (plan, previous) = three_secrets();
    let (client, state) = fake_server(|s| {
        for o in &previous {
            s.objects.insert(path(&o.name), stored(o));
        }
    });
    let applied = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&applied),
        [
            "secret/same unchanged",
            "secret/old configured",
            "secret/new created"
        ]
    );
    // No GET: created, configured or unchanged follow from the resourceVersions the dry run
    // (none for a new object, the current one for an existing object) and the write return.
    assert_eq!(
        phased(&state),
        [
            format!("PATCH {} (dry run)", path("same")),
            format!("PATCH {} (dry run)", path("old")),
            format!("PATCH {} (dry run)", path("new")),
            format!("PATCH {}", path("same")),
            format!("PATCH {}", path("old")),
            format!("PATCH {}", path("new")),
        ]
    );
    // The unchanged object kept its resourceVersion; the configured one got a new one.
    assert_eq!(applied[0].object["metadata"]["resourceVersion"], "7");
    assert_ne!(applied[1].object["metadata"]["resourceVersion"], "7");
}

#[tokio::test]
async fn server_dry_run_compares_content_and_writes_nothing() {
    let (plan, previous) = three_secrets();
    let (client, state) = fake_server(|s| {
        for o in &previous {
            s.objects.insert(path(&o.name), stored(o));
        }
    });
    let before = state.lock().unwrap().objects.clone();
    let applied = apply(
        &client,
        &plan,
        ApplyMode::DryRunServer {
            force_conflicts: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&applied),
        [
            "secret/same unchanged (server dry run)",
            "secret/old configured (server dry run)",
            "secret/new created (server dry run)"
        ]
    );
    assert!(applied.iter().all(|a| a.dry_run));
    let seen = seen(&state);
    assert_eq!(seen.len(), 6, "{:?}", summaries(&state));
    assert!(
        seen.iter()
            .filter(|s| s.method == "PATCH")
            .all(|s| s.dry_run() && s.param("force").is_none())
    );
    assert_eq!(state.lock().unwrap().objects, before);
}

#[tokio::test]
async fn an_object_whose_namespace_the_plan_creates_first_passes_the_preflight() {
    let mut plan = Plan::new();
    plan.push(&Namespace {
        metadata: ObjectMeta {
            name: Some("fresh".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let mut s = secret("creds", b"x");
    s.metadata.namespace = Some("fresh".into());
    plan.push(&s).unwrap();

    let (client, state) = fake_server(|_| {});
    let applied = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&applied),
        ["namespace/fresh created", "secret/creds created"]
    );
    assert!(
        state
            .lock()
            .unwrap()
            .objects
            .contains_key("/api/v1/namespaces/fresh/secrets/creds")
    );

    // Without the Namespace in the plan, the same Secret in a missing namespace fails the preflight.
    s.metadata.namespace = Some("missing".into());
    let mut alone = Plan::new();
    alone.push(&s).unwrap();
    let err = apply(
        &client,
        &alone,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClusterError::NamespaceNotFound { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// All or nothing.

#[tokio::test]
async fn a_failing_preflight_on_the_second_object_writes_nothing() {
    let (plan, _) = three_secrets();
    let (client, state) = fake_server(|s| {
        s.inject.insert(
            format!("PATCH {} (dry run)", path("old")),
            Inject::Status(status(
                422,
                "Invalid",
                r#"Secret "old" is invalid: type: Invalid value: "Bogus": field is immutable"#,
                None,
            )),
        );
    });
    let err = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClusterError::Invalid { .. }), "{err:?}");
    // The preflight runs concurrently, so the third object may have been read and dry-run too;
    // what matters is that nothing was written.
    let sums = phased(&state);
    assert_eq!(
        sums[..2],
        [
            format!("PATCH {} (dry run)", path("same")),
            format!("PATCH {} (dry run)", path("old")),
        ]
    );
    assert!(
        seen(&state)
            .iter()
            .all(|s| s.method != "PATCH" || s.dry_run())
    );
    assert!(state.lock().unwrap().objects.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Error mapping: one line, cause + hint, and what we were doing.

/// Applies the one-secret plan against a server that answers `inject` to the preflight PATCH.
async fn apply_error(on: &str, inject: Inject) -> ClusterError {
    let on = on.to_string();
    let (client, _state) = fake_server(move |s| {
        s.inject.insert(on, inject);
    });
    let err = apply(
        &client,
        &secret_plan(),
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    assert!(!text.contains("not-for-logs"), "secret data leaked: {text}");
    err
}

fn dry_patch() -> String {
    format!("PATCH {SECRET_PATH} (dry run)")
}

#[tokio::test]
async fn unauthorized_says_log_in_again() {
    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(401, "Unauthorized", "Unauthorized", None)),
    )
    .await;
    assert!(matches!(err, ClusterError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the API server rejected our credentials (401 Unauthorized) while trying to patch secrets/kyma-mtls-certs in namespace istio-system; they have probably expired: log in again (refresh your kubeconfig), or choose other credentials with --context/--user"
    );
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test]
async fn forbidden_names_verb_resource_namespace_and_the_can_i_check() {
    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(
            403,
            "Forbidden",
            r#"secrets "kyma-mtls-certs" is forbidden: User "alice" cannot patch resource "secrets" in API group "" in the namespace "istio-system""#,
            Some(json!({"name": "kyma-mtls-certs", "kind": "secrets"})),
        )),
    )
    .await;
    assert_eq!(
        err.to_string(),
        r#"forbidden: User "alice" may not patch secrets in namespace istio-system; ask your cluster admin for RBAC permission to patch secrets, check with `kubectl auth can-i patch secrets -n istio-system`"#
    );

    // The server's message is not needed: we know the operation ourselves (here the write,
    // after a dry run that passed).
    let err = apply_error(
        &format!("PATCH {SECRET_PATH}"),
        Inject::Status(status(403, "Forbidden", "", None)),
    )
    .await;
    assert_eq!(
        err.to_string(),
        "forbidden: may not patch secrets in namespace istio-system; ask your cluster admin for RBAC permission to patch secrets, check with `kubectl auth can-i patch secrets -n istio-system`"
    );
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test]
async fn forbidden_on_a_custom_kind_names_the_group() {
    let mut plan = Plan::new();
    plan.push(&gateway()).unwrap();
    let (client, _) = fake_server(|s| {
        s.inject.insert(
            format!("PATCH {GATEWAY_PATH} (dry run)"),
            Inject::Status(status(403, "Forbidden", "denied", None)),
        );
    });
    let err = apply(
        &client,
        &plan,
        ApplyMode::DryRunServer {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("may not patch gateways.networking.istio.io in namespace istio-system"),
        "{text}"
    );
    assert!(
        text.contains("`kubectl auth can-i patch gateways.networking.istio.io -n istio-system`"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_namespace_says_how_to_create_it() {
    let mut plan = Plan::new();
    let mut s = secret("kyma-mtls-certs", SECRET_DATA);
    s.metadata.namespace = Some("team-x".into());
    plan.push(&s).unwrap();
    // The fake answers a PATCH into an unknown namespace like the API server does.
    let (client, state) = fake_server(|_| {});
    let err = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClusterError::NamespaceNotFound { ref namespace, .. } if namespace == "team-x"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "namespace team-x does not exist (needed to patch secrets/kyma-mtls-certs in namespace team-x); create it with `kubectl create namespace team-x` or choose another with -n"
    );
    assert!(
        seen(&state)
            .iter()
            .all(|s| s.method != "PATCH" || s.dry_run())
    );
}

#[tokio::test]
async fn an_unserved_kind_asks_whether_the_crd_is_installed() {
    let mut plan = Plan::new();
    plan.push(&gateway()).unwrap();
    let (client, state) = fake_server(|s| {
        s.inject.insert(
            format!("PATCH {GATEWAY_PATH} (dry run)"),
            Inject::Text(404, "404 page not found"),
        );
    });
    let err = apply(
        &client,
        &plan,
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClusterError::NotServed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the cluster does not serve gateways.networking.istio.io (networking.istio.io/v1) needed to patch gateways.networking.istio.io/mtls-gw in namespace istio-system; is the CRD installed? check with `kubectl api-resources --api-group=networking.istio.io`"
    );
    // A plain-text 404 is not "object absent": the dry run already stops the run.
    assert_eq!(
        summaries(&state),
        [format!("PATCH {GATEWAY_PATH} (dry run)")]
    );
}

#[tokio::test]
async fn a_field_manager_conflict_quotes_the_server_and_suggests_force_conflicts() {
    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(
            409,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"helm\" using v1: .data.key",
            None,
        )),
    )
    .await;
    assert!(matches!(err, ClusterError::Conflict { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "conflict applying secrets/kyma-mtls-certs in namespace istio-system: Apply failed with 1 conflict: conflict with \"helm\" using v1: .data.key; another tool manages these fields: re-run with --force-conflicts to take them over"
    );
}

#[tokio::test]
async fn invalid_and_strict_validation_errors_name_the_object_and_quote_the_server() {
    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(
            422,
            "Invalid",
            "Secret \"kyma-mtls-certs\" is invalid:\n data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters",
            None,
        )),
    )
    .await;
    assert!(matches!(err, ClusterError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "the API server rejected secrets/kyma-mtls-certs in namespace istio-system as invalid: Secret \"kyma-mtls-certs\" is invalid: data[bad key]: Invalid value:"
        ),
        "{err}"
    );

    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(
            400,
            "BadRequest",
            r#".spec.tls.credentialNam: field not declared in schema"#,
            None,
        )),
    )
    .await;
    assert!(matches!(err, ClusterError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("as invalid: .spec.tls.credentialNam: field not declared in schema; "),
        "{err}"
    );
}

#[tokio::test]
async fn other_api_errors_keep_code_and_message() {
    let err = apply_error(
        &dry_patch(),
        Inject::Status(status(
            500,
            "InternalError",
            "Internal error occurred: failed calling webhook \"validation.istio.io\"",
            None,
        )),
    )
    .await;
    assert_eq!(
        err.to_string(),
        "API error 500 InternalError while trying to patch secrets/kyma-mtls-certs in namespace istio-system: Internal error occurred: failed calling webhook \"validation.istio.io\"; the API server is unhealthy: retry later or check the control plane"
    );
}

// ---------------------------------------------------------------------------------------------
// Flags.

#[derive(Parser, Debug)]
#[command(name = "t")]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Run,
}

#[test]
fn request_timeout_takes_kubectl_durations() {
    let ok = [
        ("30s", 30_000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("45", 45_000),
        ("0", 0),
        ("1.5h", 5_400_000),
        ("500ms", 500),
        ("2h3m4s", 7_384_000),
    ];
    for (text, millis) in ok {
        assert_eq!(
            parse_request_timeout(text),
            Ok(Duration::from_millis(millis)),
            "{text}"
        );
    }
    for bad in ["", "abc", "10x", "-1s", "1 m", "s", "1.2.3s", "m5"] {
        let err = parse_request_timeout(bad).unwrap_err();
        assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        assert!(err.contains("like 30s, 1m or 1m30s"), "{err}");
    }
}

#[test]
fn kube_flags_parse_as_kubectl_spells_them_and_are_global() {
    let cli = Cli::try_parse_from([
        "t",
        "run",
        "--kubeconfig",
        "/tmp/kc",
        "--context",
        "dev",
        "--cluster",
        "c1",
        "--user",
        "u1",
        "-n",
        "team-a",
        "--request-timeout",
        "1m",
        "--as",
        "bob",
        "--as-group",
        "g1",
        "--as-group",
        "g2",
    ])
    .unwrap();
    let k = cli.kube;
    assert!(matches!(cli.command, Some(Sub::Run)));
    assert_eq!(
        k.kubeconfig.as_deref(),
        Some(std::path::Path::new("/tmp/kc"))
    );
    assert_eq!(k.context.as_deref(), Some("dev"));
    assert_eq!(k.cluster.as_deref(), Some("c1"));
    assert_eq!(k.user.as_deref(), Some("u1"));
    assert_eq!(k.namespace.as_deref(), Some("team-a"));
    assert_eq!(k.request_timeout, Some(Duration::from_secs(60)));
    assert_eq!(k.as_user.as_deref(), Some("bob"));
    assert_eq!(k.as_group, ["g1", "g2"]);

    let err = Cli::try_parse_from(["t", "--request-timeout", "soon"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(
        err.to_string().contains("invalid duration \"soon\""),
        "{err}"
    );

    let none = Cli::try_parse_from(["t"]).unwrap().kube;
    assert!(none.kubeconfig.is_none() && none.namespace.is_none());
}

#[test]
fn namespaces_must_be_rfc1123_labels() {
    for ok in ["istio-system", "a", "0-x", &"a".repeat(63)] {
        assert!(validate_namespace(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Istio",
        "a_b",
        "a.b",
        "-a",
        "a-",
        "a b",
        &"a".repeat(64),
    ] {
        let err = validate_namespace(bad).unwrap_err();
        assert!(
            matches!(err, ClusterError::InvalidNamespace { .. }),
            "{bad}"
        );
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("fix -n/--namespace"), "{text}");
        assert!(!text.contains('\n'));
    }
    assert_eq!(
        validate_namespace("Istio_System").unwrap_err().to_string(),
        "invalid namespace \"Istio_System\": it contains 'I'; a namespace is a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters), fix -n/--namespace"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig.

const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: dev
  context:
    cluster: fake
    user: token-user
    namespace: team-a
- name: prod
  context:
    cluster: fake
    user: token-user
users:
- name: token-user
  user:
    token: not-a-real-token
"#;

fn kubeconfig_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn args(file: &tempfile::NamedTempFile) -> KubeArgs {
    KubeArgs {
        kubeconfig: Some(file.path().to_path_buf()),
        ..Default::default()
    }
}

/// The error of a result whose success type has no `Debug` (a `kube::Client`).
fn expect_err<T>(result: Result<T, ClusterError>) -> ClusterError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn a_kubeconfig_flag_selects_file_context_and_namespace() {
    install_crypto();
    let file = kubeconfig_file(KUBECONFIG);

    let config = args(&file).config().await.unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:1/");
    assert_eq!(config.read_timeout, None);

    let client = args(&file).client().await.unwrap();
    assert_eq!(client.default_namespace(), "team-a");

    let (_, ns) = args(&file).connect().await.unwrap();
    assert_eq!(ns, "team-a", "the context's namespace");

    let prod = KubeArgs {
        context: Some("prod".into()),
        ..args(&file)
    };
    assert_eq!(prod.connect().await.unwrap().1, "default");

    let explicit = KubeArgs {
        namespace: Some("other".into()),
        ..args(&file)
    };
    assert_eq!(explicit.connect().await.unwrap().1, "other");
    assert_eq!(
        explicit
            .connect_with_default_namespace("istio-system")
            .await
            .unwrap()
            .1,
        "other"
    );
    assert_eq!(
        args(&file)
            .connect_with_default_namespace("istio-system")
            .await
            .unwrap()
            .1,
        "istio-system"
    );

    let timed = KubeArgs {
        request_timeout: Some(Duration::from_secs(7)),
        as_user: Some("bob".into()),
        ..args(&file)
    };
    let config = timed.config().await.unwrap();
    assert_eq!(config.read_timeout, Some(Duration::from_secs(7)));
    assert_eq!(config.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(config.write_timeout, Some(Duration::from_secs(7)));
    assert_eq!(config.auth_info.impersonate.as_deref(), Some("bob"));
}

#[tokio::test]
async fn an_unknown_context_lists_the_known_ones() {
    let file = kubeconfig_file(KUBECONFIG);
    let missing = KubeArgs {
        context: Some("staging".into()),
        ..args(&file)
    };
    let err = expect_err(missing.connect().await);
    assert!(
        matches!(err, ClusterError::ContextNotFound { ref context, .. } if context == "staging"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "context \"staging\" not found in kubeconfig {} (contexts: dev, prod); pick one with --context, list them with `kubectl config get-contexts`",
            file.path().display()
        )
    );
    assert_eq!(err.exit_code(), 2);

    // A current-context that points nowhere is the kubeconfig's fault, not a flag's.
    let broken =
        kubeconfig_file(&KUBECONFIG.replace("current-context: dev", "current-context: gone"));
    let err = expect_err(args(&broken).client().await);
    assert!(
        matches!(err, ClusterError::ContextNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test]
async fn a_missing_or_broken_kubeconfig_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = expect_err(
        KubeArgs {
            kubeconfig: Some(missing.clone()),
            ..Default::default()
        }
        .client()
        .await,
    );
    assert!(matches!(err, ClusterError::Kubeconfig { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot load kubeconfig {}: ", missing.display())),
        "{text}"
    );
    assert!(text.contains("--kubeconfig") && text.contains("kubectl config get-contexts"));

    let garbage = kubeconfig_file("clusters: [unclosed");
    let err = expect_err(args(&garbage).client().await);
    assert!(matches!(err, ClusterError::Kubeconfig { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[tokio::test]
async fn the_namespace_flag_is_checked_before_anything_is_read() {
    let err = expect_err(
        KubeArgs {
            kubeconfig: Some("/definitely/not/here".into()),
            namespace: Some("Bad_NS".into()),
            ..Default::default()
        }
        .connect()
        .await,
    );
    assert!(
        matches!(err, ClusterError::InvalidNamespace { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_reported_with_the_reason() {
    install_crypto();
    let file = kubeconfig_file(KUBECONFIG);
    let (client, _) = args(&file).connect().await.unwrap();
    let err = apply(
        &client,
        &secret_plan(),
        ApplyMode::DryRunServer {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
    let text = err.with_server("https://127.0.0.1:1/").to_string();
    assert!(
        text.starts_with("cannot reach the Kubernetes API server at https://127.0.0.1:1/ while trying to get secrets/kyma-mtls-certs in namespace istio-system: "),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(
        text.ends_with("or choose another cluster with --context"),
        "{text}"
    );
}

#[tokio::test]
async fn request_timeout_cuts_a_silent_server() {
    install_crypto();
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let file = kubeconfig_file(
        &KUBECONFIG.replace("https://127.0.0.1:1", &format!("http://127.0.0.1:{port}")),
    );
    let timed = KubeArgs {
        request_timeout: Some(Duration::from_millis(300)),
        ..args(&file)
    };
    let (client, _) = timed.connect().await.unwrap();
    let started = std::time::Instant::now();
    let err = apply(
        &client,
        &secret_plan(),
        ApplyMode::Apply {
            force_conflicts: false,
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "timed out while trying to patch secrets/kyma-mtls-certs in namespace istio-system; the API server is slow or unreachable: retry, or allow more time with --request-timeout"
    );
    silent.abort();
}
