//! The live cluster of the e2e tests (`MTLS_E2E_KUBECONFIG`), and the rules that let them run in
//! parallel on one API server.
//!
//! - [`kubeconfig`]: the path, or a visible skip; under CI (`CI=true`) a missing variable fails
//!   the test instead, so a broken harness cannot pass silently.
//! - Shared state is never deleted by a test: the namespaces in [`SHARED_NAMESPACES`], the CRDs
//!   from `../shared/crds` ([`install_crds`]) and the Kyma Istio CR ([`ensure_istio_cr`]) are
//!   created when missing and left for the next test, since another test may be using them right
//!   now (deleting a CRD deletes every object of its kind, deleting `istio-system` every Secret in
//!   it).
//! - Each test's own objects live in uniquely named namespaces ([`Scratch::namespace`]) or are
//!   recorded in its [`Scratch`], which deletes exactly those when dropped, also after a failed
//!   assertion.
//! - [`mesh_lock`]: kubectl-mtls keeps some state per cluster, not per host: the access-log
//!   Telemetry that all hosts share and the Kyma Istio CR's egress gateway switch. Tests that
//!   enable hosts hold the lock shared; a test that asserts on or flips that state holds it
//!   exclusively. It is a file lock per kubeconfig, so it holds across test binaries too.
//! - [`user_certificate`]: a client certificate for a new user from the cluster's own CSR API
//!   (signer `kubernetes.io/kube-apiserver-client`), and [`write_kubeconfig`] to use it;
//!   [`NamespacedUser`] bound to a Role in its own namespace; [`forbidden_line`] and
//!   [`kubectl_can_i`] to check what a plugin says it may not do against the server.
//! - [`hold_terminating`]: a namespace kept in Terminating by a finalizer on an object in it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The field manager of what the tests themselves write (never `kubectl-mtls`, the plugins').
pub const TEST_MANAGER: &str = "kubectl-mtls-e2e";

/// Namespaces that tests share: created when missing, never deleted by a test.
pub const SHARED_NAMESPACES: [&str; 3] = ["istio-system", "kyma-system", "kube-system"];

/// The finalizer [`hold_terminating`] and [`Scratch::hold`] put on objects; the [`Scratch`]
/// removes it again when dropped.
pub const HOLD_FINALIZER: &str = "e2e.kubectl-mtls.io/hold";

/// The kubeconfig path from `MTLS_E2E_KUBECONFIG`. Without it, says that `test` is skipped on
/// the process's stderr (not captured by the test harness) and returns `None`; under CI
/// (`CI=true`) it panics instead: CI must run the e2e tests, not skip them.
pub fn kubeconfig(test: &str) -> Option<String> {
    match std::env::var("MTLS_E2E_KUBECONFIG") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if in_ci() => panic!(
            "{test}: MTLS_E2E_KUBECONFIG is not set, and under CI (CI=true) an e2e test must run, not skip; start an API server (../shared/kapi/up DIR) and export MTLS_E2E_KUBECONFIG=DIR/kubeconfig, as .ci/run does"
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: set MTLS_E2E_KUBECONFIG to the kubeconfig of a disposable cluster to run it"
            );
            None
        }
    }
}

/// Whether we run under CI: `CI=true` (or `1`), as CI services and `.ci/run` set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A small runtime for the test's own API calls (setup, assertions, cleanup).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A client for the kubeconfig at `path` (its current context).
pub async fn client(path: &str) -> Client {
    client_for(path, None).await
}

/// A client for `context` of the kubeconfig at `path` (its current context for `None`).
pub async fn client_for(path: &str, context: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read MTLS_E2E_KUBECONFIG");
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("a usable kubeconfig context");
    Client::try_from(config).expect("a client")
}

/// Eight hex digits that differ between tests and test processes, for names of namespaces,
/// hosts and users.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .subsec_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}",
        std::process::id().rotate_left(16) ^ nanos ^ count.wrapping_mul(0x9e37_79b9)
    )
}

/// The API of a kind (`("networking.istio.io", "v1", "Gateway")`, its plural) in `namespace`, or
/// cluster-wide for `None`.
pub fn dynamic(
    client: &Client,
    gvk: (&str, &str, &str),
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource = resource(gvk, plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The [`ApiResource`] of a kind and its plural.
pub fn resource(gvk: (&str, &str, &str), plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural)
}

/// The API that serves `object` (from its `apiVersion` and `kind`, by discovery), in its
/// `metadata.namespace` when it has one.
pub async fn api_for(client: &Client, object: &Value) -> (Api<DynamicObject>, ApiResource) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovery of {api_version} {kind}: {e}"));
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    (api, resource)
}

/// Server-side applies `object` as [`TEST_MANAGER`] (forcing conflicts) and returns it.
pub async fn apply(client: &Client, object: &Value) -> DynamicObject {
    apply_as(client, TEST_MANAGER, object).await
}

/// Server-side applies `object` as field manager `manager` (forcing conflicts).
pub async fn apply_as(client: &Client, manager: &str, object: &Value) -> DynamicObject {
    let (api, _) = api_for(client, object).await;
    let name = object["metadata"]["name"].as_str().expect("metadata.name");
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {} {name}: {e}", object["kind"]))
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `timeout`; panics with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the shared namespaces `names` (each one of [`SHARED_NAMESPACES`]) that do not exist
/// yet. They are never deleted: another test may be writing into them.
pub async fn ensure_shared_namespaces(client: &Client, names: &[&str]) {
    let namespaces = dynamic(client, ("", "v1", "Namespace"), "namespaces", None);
    for name in names {
        assert!(
            SHARED_NAMESPACES.contains(name),
            "{name} is not a shared namespace: use Scratch::namespace for a test's own"
        );
        if namespaces.get_opt(name).await.unwrap().is_none() {
            apply(
                client,
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .await;
        }
    }
}

/// The CustomResourceDefinitions in `../shared/crds`, by name (read once per process).
fn crd_documents() -> &'static HashMap<String, Value> {
    static CRDS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/crds");
        let mut crds = HashMap::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(
                &text,
                serde_saphyr::options! { budget: serde_saphyr::budget! { max_nodes: 10_000_000, max_reader_input_bytes: Some(64 * 1024 * 1024) } },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for doc in docs {
                if doc["kind"] == "CustomResourceDefinition" {
                    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
                    crds.insert(name, doc);
                }
            }
        }
        crds
    })
}

/// Installs the CRDs `names` from `../shared/crds` that the cluster does not have, and waits
/// until each one is Established. They are never removed: other tests use them at the same time,
/// and deleting a CRD deletes every object of its kind.
pub async fn install_crds(client: &Client, names: &[&str]) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        if crds.get_opt(name).await.unwrap().is_some() {
            continue;
        }
        let doc = crd_documents()
            .get(*name)
            .unwrap_or_else(|| panic!("CRD {name} is not in ../shared/crds"));
        crds.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(doc),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
    }
    for name in names {
        wait_for(
            &format!("CRD {name} to be Established"),
            Duration::from_secs(30),
            || async {
                let crd = crds.get(name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            },
        )
        .await;
    }
}

/// The Istio and Kyma CRDs `enable`, `expose`, `connect` and `doctor` read and write.
pub const MESH_CRDS: [&str; 9] = [
    "serviceentries.networking.istio.io",
    "gateways.networking.istio.io",
    "destinationrules.networking.istio.io",
    "virtualservices.networking.istio.io",
    "sidecars.networking.istio.io",
    "telemetries.telemetry.istio.io",
    "authorizationpolicies.security.istio.io",
    "istios.operator.kyma-project.io",
    "apirules.gateway.kyma-project.io",
];

/// The Kyma Istio CR kind.
pub const ISTIO_CR: (&str, &str, &str) = ("operator.kyma-project.io", "v1alpha2", "Istio");

/// Makes the cluster look like Kyma for `enable`: the [`MESH_CRDS`], the shared namespaces, and
/// one Istio CR (`kyma-system/default`, created when there is none). Returns the CR as
/// `(namespace, name)`. Nothing of it is ever deleted.
pub async fn ensure_istio_cr(client: &Client) -> (String, String) {
    install_crds(client, &MESH_CRDS).await;
    ensure_shared_namespaces(client, &SHARED_NAMESPACES).await;
    let existing = dynamic(client, ISTIO_CR, "istios", None)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    if let Some(cr) = existing.first() {
        return (
            cr.metadata.namespace.clone().unwrap_or_default(),
            cr.metadata.name.clone().unwrap_or_default(),
        );
    }
    apply(
        client,
        &json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
                "metadata": {"name": "default", "namespace": "kyma-system"}, "spec": {}}),
    )
    .await;
    ("kyma-system".into(), "default".into())
}

/// How a test uses kubectl-mtls's per-cluster state (see [`mesh_lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshAccess {
    /// Enables or disables hosts of its own; other such tests may run at the same time.
    Shared,
    /// Asserts on or changes the state all hosts share (the access-log Telemetry, the Istio CR's
    /// egress gateway switch): no other test may enable or disable a host meanwhile.
    Exclusive,
}

/// Held while a test uses kubectl-mtls's per-cluster state; released when dropped.
#[derive(Debug)]
pub struct MeshLock {
    _file: File,
}

/// Takes the mesh lock of the cluster at `kubeconfig` (a file lock in the temp directory, one
/// per kubeconfig path), blocking until it is free for `access`.
pub fn mesh_lock(kubeconfig: &str, access: MeshAccess) -> MeshLock {
    let canonical = std::fs::canonicalize(kubeconfig).unwrap_or_else(|_| kubeconfig.into());
    let name: String = canonical
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = std::env::temp_dir().join(format!("kubectl-mtls-e2e-mesh{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match access {
        MeshAccess::Shared => file.lock_shared(),
        MeshAccess::Exclusive => file.lock(),
    }
    .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    MeshLock { _file: file }
}

/// What one test created; dropped, it removes exactly that, in reverse order (finalizers it put
/// on objects first, so that nothing it leaves stays stuck).
#[derive(Debug)]
pub struct Scratch {
    kubeconfig: String,
    context: Option<String>,
    /// Objects to delete: resource, namespace, name.
    objects: Vec<(ApiResource, Option<String>, String)>,
    /// Objects to take [`HOLD_FINALIZER`] off again.
    held: Vec<(ApiResource, Option<String>, String)>,
}

impl Scratch {
    /// An empty record for the current context of `kubeconfig`.
    pub fn new(kubeconfig: &str) -> Self {
        Self::for_context(kubeconfig, None)
    }

    /// An empty record for `context` of `kubeconfig`.
    pub fn for_context(kubeconfig: &str, context: Option<&str>) -> Self {
        Self {
            kubeconfig: kubeconfig.to_string(),
            context: context.map(str::to_string),
            objects: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Creates a namespace named `mtls-e2e-PURPOSE-SUFFIX` and records it; returns its name.
    pub async fn namespace(&mut self, client: &Client, purpose: &str) -> String {
        let name = format!("mtls-e2e-{purpose}-{}", unique_suffix());
        self.create(
            client,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
        name
    }

    /// Server-side applies `object` (as [`TEST_MANAGER`]) and records it for deletion.
    pub async fn create(&mut self, client: &Client, object: &Value) -> DynamicObject {
        let (_, resource) = api_for(client, object).await;
        let created = apply(client, object).await;
        self.record(
            resource,
            created.metadata.namespace.as_deref(),
            created.metadata.name.as_deref().unwrap_or_default(),
        );
        created
    }

    /// Records an object made some other way (e.g. by a plugin) for deletion.
    pub fn record(&mut self, resource: ApiResource, namespace: Option<&str>, name: &str) {
        self.objects
            .push((resource, namespace.map(str::to_string), name.to_string()));
    }

    /// Puts [`HOLD_FINALIZER`] on an existing object (as [`TEST_MANAGER`]), so that deleting it
    /// leaves it in place with a deletion timestamp; dropping the record takes the finalizer off.
    pub async fn hold(
        &mut self,
        client: &Client,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        let patch = json!({"apiVersion": resource.api_version, "kind": resource.kind,
                           "metadata": {"name": name, "finalizers": [HOLD_FINALIZER]}});
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap_or_else(|e| panic!("holding {name} with a finalizer: {e}"));
        self.held.push((
            resource.clone(),
            namespace.map(str::to_string),
            name.to_string(),
        ));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let context = self.context.take();
        let objects = std::mem::take(&mut self.objects);
        let held = std::mem::take(&mut self.held);
        // A fresh thread: drop may run while a runtime is active on this one.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let client = client_for(&kubeconfig, context.as_deref()).await;
                let api = |resource: &ApiResource, ns: &Option<String>| -> Api<DynamicObject> {
                    match ns {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
                        None => Api::all_with(client.clone(), resource),
                    }
                };
                for (resource, ns, name) in &held {
                    // Our finalizer is the only one these objects carry.
                    let release = json!({"metadata": {"finalizers": null}});
                    let _ = api(resource, ns)
                        .patch(name, &PatchParams::default(), &Patch::Merge(&release))
                        .await;
                }
                for (resource, ns, name) in objects.iter().rev() {
                    let _ = api(resource, ns)
                        .delete(name, &DeleteParams::default())
                        .await;
                }
            })
        })
        .join();
    }
}

/// Keeps the scratch namespace `namespace` in Terminating: a ConfigMap in it carries
/// [`HOLD_FINALIZER`], then the namespace is deleted. Returns once its phase is Terminating. The
/// [`Scratch`] takes the finalizer off when dropped, and the namespace goes.
pub async fn hold_terminating(client: &Client, scratch: &mut Scratch, namespace: &str) {
    let holder = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mtls-e2e-hold", "namespace": namespace}});
    apply(client, &holder).await;
    let configmaps = resource(("", "v1", "ConfigMap"), "configmaps");
    scratch
        .hold(client, &configmaps, Some(namespace), "mtls-e2e-hold")
        .await;
    let namespaces = dynamic(client, ("", "v1", "Namespace"), "namespaces", None);
    namespaces
        .delete(namespace, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting namespace {namespace}: {e}"));
    wait_for(
        &format!("namespace {namespace} to be Terminating"),
        Duration::from_secs(30),
        || async {
            let ns = namespaces.get(namespace).await.ok()?;
            (ns.data["status"]["phase"] == "Terminating").then_some(())
        },
    )
    .await;
}

/// A client certificate and key (PEM) for `user` in `groups`, issued by the cluster's CSR API:
/// a CertificateSigningRequest for `kubernetes.io/kube-apiserver-client`, approved by the test
/// (the kubeconfig's user must be allowed to), signed by the controller-manager. The CSR object
/// is recorded in `scratch`. The key never leaves the test: write it only to a 0600 file.
pub async fn user_certificate(
    client: &Client,
    scratch: &mut Scratch,
    user: &str,
    groups: &[&str],
) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("an ECDSA key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    for group in groups {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *group);
    }
    let request = params
        .serialize_request(&key)
        .expect("a CSR")
        .pem()
        .expect("a CSR in PEM");
    let name = format!("mtls-e2e-{user}");
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: "kubernetes.io/kube-apiserver-client".into(),
            usages: Some(vec!["client auth".into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    api.create(&Default::default(), &csr)
        .await
        .unwrap_or_else(|e| panic!("creating CSR {name}: {e}"));
    scratch.record(
        ApiResource::erase::<CertificateSigningRequest>(&()),
        None,
        &name,
    );
    let approval = json!({"status": {"conditions": [{"type": "Approved", "status": "True",
        "reason": "KubectlMtlsE2E", "message": "a user for an e2e test"}]}});
    api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .unwrap_or_else(|e| panic!("approving CSR {name}: {e}"));
    let certificate = wait_for(
        &format!("CSR {name} to be signed"),
        Duration::from_secs(30),
        || async {
            let csr = api.get(&name).await.ok()?;
            csr.status?.certificate.map(|c| c.0)
        },
    )
    .await;
    (
        String::from_utf8(certificate).expect("a PEM certificate"),
        key.serialize_pem(),
    )
}

/// The `cluster` entry of the current context of `kubeconfig`, as kubeconfig JSON
/// (`server`, `certificate-authority-data`, …), to build other kubeconfigs for the same server.
pub fn current_cluster(kubeconfig: &str) -> Value {
    let config = Kubeconfig::read_from(kubeconfig).expect("read MTLS_E2E_KUBECONFIG");
    let current = config.current_context.clone().expect("a current-context");
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.clone())
        .expect("the current context");
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .expect("the current context's cluster");
    let mut value = serde_json::to_value(cluster).expect("a cluster as JSON");
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// The CA certificates the current context of `kubeconfig` trusts for its server, as PEM (from
/// `certificate-authority` or `certificate-authority-data`).
pub async fn cluster_ca_pem(kubeconfig: &str) -> String {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("read MTLS_E2E_KUBECONFIG"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("a usable kubeconfig");
    let mut pem = String::new();
    for der in config.root_cert.expect("the cluster names its CA") {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in base64(&der).as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// Writes a kubeconfig (JSON, which is YAML) with one context `e2e` for `cluster` and `user`
/// (kubeconfig `cluster` and `user` entries), mode 0600; returns its path.
pub fn write_kubeconfig(dir: &Path, file: &str, cluster: &Value, user: &Value) -> PathBuf {
    write_kubeconfig_in(dir, file, cluster, user, None)
}

/// [`write_kubeconfig`] with the context's default namespace.
pub fn write_kubeconfig_in(
    dir: &Path,
    file: &str,
    cluster: &Value,
    user: &Value,
    namespace: Option<&str>,
) -> PathBuf {
    let mut context = json!({"cluster": "e2e", "user": "e2e-user"});
    if let Some(ns) = namespace {
        context["namespace"] = json!(ns);
    }
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "e2e-user", "user": user}],
        "contexts": [{"name": "e2e", "context": context}],
        "current-context": "e2e",
    });
    write_private(
        &dir.join(file),
        serde_json::to_string_pretty(&config).unwrap().as_bytes(),
    )
}

/// Writes `bytes` to `path` with mode 0600 (it may hold a private key or a token).
pub fn write_private(path: &Path, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(bytes).unwrap();
    path.to_path_buf()
}

/// A user bound to a Role in one namespace of its own (by default: everything there) and allowed
/// nothing elsewhere, with a client certificate from the cluster's CSR API.
#[derive(Debug)]
pub struct NamespacedUser {
    /// The user name (the certificate's CN), `mtls-e2e-PURPOSE-SUFFIX`.
    pub name: String,
    /// Its namespace (a scratch namespace); also the kubeconfig context's namespace.
    pub namespace: String,
    /// A kubeconfig for the user (client certificate and key as data), mode 0600.
    pub kubeconfig: PathBuf,
}

impl NamespacedUser {
    /// Creates the namespace, the Role (everything in it), the RoleBinding and the certificate
    /// (all recorded in `scratch`) and writes the kubeconfig into `dir`, for the cluster of
    /// `admin_kubeconfig`.
    pub async fn create(
        client: &Client,
        scratch: &mut Scratch,
        admin_kubeconfig: &str,
        dir: &Path,
        purpose: &str,
    ) -> Self {
        let everything = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        Self::with_rules(client, scratch, admin_kubeconfig, dir, purpose, everything).await
    }

    /// [`create`](Self::create) with the Role's `rules` (RBAC PolicyRules) instead of everything.
    pub async fn with_rules(
        client: &Client,
        scratch: &mut Scratch,
        admin_kubeconfig: &str,
        dir: &Path,
        purpose: &str,
        rules: Value,
    ) -> Self {
        let namespace = scratch.namespace(client, purpose).await;
        let name = format!("mtls-e2e-{purpose}-{}", unique_suffix());
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "own-namespace", "namespace": namespace},
                    "rules": rules}),
            )
            .await;
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "own-namespace", "namespace": namespace},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "own-namespace"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]}),
            )
            .await;
        let (cert, key) = user_certificate(client, scratch, &name, &[]).await;
        let kubeconfig = write_kubeconfig_in(
            dir,
            &format!("{name}.kubeconfig"),
            &current_cluster(admin_kubeconfig),
            &json!({"client-certificate-data": base64(cert.as_bytes()),
                    "client-key-data": base64(key.as_bytes())}),
            Some(&namespace),
        );
        Self {
            name,
            namespace,
            kubeconfig,
        }
    }

    /// Grants the user `verbs` on `resources` (`plural` or `plural.group`) in `namespace` too,
    /// by a Role and RoleBinding recorded in `scratch` (also in a shared namespace: they are the
    /// test's own objects there).
    pub async fn grant(
        &self,
        client: &Client,
        scratch: &mut Scratch,
        namespace: &str,
        resources: &[&str],
        verbs: &[&str],
    ) {
        let name = format!("{}-{}", self.name, unique_suffix());
        let rules = rbac_rules(resources, verbs);
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": name, "namespace": namespace}, "rules": rules}),
            )
            .await;
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": self.name}]}),
            )
            .await;
    }

    /// Grants the user `verbs` on `resources` cluster-wide (a ClusterRole and ClusterRoleBinding
    /// recorded in `scratch`).
    pub async fn grant_cluster_wide(
        &self,
        client: &Client,
        scratch: &mut Scratch,
        resources: &[&str],
        verbs: &[&str],
    ) {
        let name = format!("{}-{}", self.name, unique_suffix());
        let rules = rbac_rules(resources, verbs);
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": name}, "rules": rules}),
            )
            .await;
        scratch
            .create(
                client,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": self.name}]}),
            )
            .await;
    }
}

/// What a plugin's RBAC line (`forbidden: User "U" may not VERB RESOURCE in namespace NS; …`)
/// names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The user the server named.
    pub user: String,
    /// The verb.
    pub verb: String,
    /// `plural` or `plural.group`.
    pub resource: String,
    /// The namespace, or `None` for cluster-wide.
    pub namespace: Option<String>,
}

/// Reads a plugin's stderr that must be exactly one RBAC line,
/// `error: forbidden: User "U" may not VERB RESOURCE (in namespace NS|cluster-wide); ask your
/// cluster admin for RBAC permission to VERB RESOURCE, check with `kubectl auth can-i …``,
/// and returns what it names; panics (quoting it) when it is anything else.
pub fn forbidden_line(stderr: &str) -> Denied {
    let fail = || -> ! { panic!("not one RBAC line: {stderr:?}") };
    let mut lines = stderr.lines();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        fail()
    };
    let Some(rest) = line.strip_prefix("error: forbidden: User \"") else {
        fail()
    };
    let Some((user, rest)) = rest.split_once("\" may not ") else {
        fail()
    };
    let Some((what, hint)) = rest.split_once("; ask your cluster admin for RBAC permission to ")
    else {
        fail()
    };
    let (verb_resource, namespace) = match what.split_once(" in namespace ") {
        Some((vr, ns)) => (vr, Some(ns.to_string())),
        None => match what.strip_suffix(" cluster-wide") {
            Some(vr) => (vr, None),
            None => fail(),
        },
    };
    let Some((verb, resource)) = verb_resource.split_once(' ') else {
        fail()
    };
    let can_i = match &namespace {
        Some(ns) => format!("kubectl auth can-i {verb} {resource} -n {ns}`"),
        None => format!("kubectl auth can-i {verb} {resource}`"),
    };
    if !hint.starts_with(&format!("{verb} {resource}, check with `")) || !hint.ends_with(&can_i) {
        fail()
    }
    Denied {
        user: user.to_string(),
        verb: verb.to_string(),
        resource: resource.to_string(),
        namespace,
    }
}

/// Asks the API server, through the real kubectl with `kubeconfig`, whether its user may do what
/// `denied` names (`kubectl auth can-i`): the plugin's line must name a permission the user
/// really lacks.
pub fn kubectl_can_i(kubeconfig: &Path, denied: &Denied) -> bool {
    let mut command = std::process::Command::new(crate::require_tool("kubectl"));
    command.arg("--kubeconfig").arg(kubeconfig).args([
        "auth",
        "can-i",
        &denied.verb,
        &denied.resource,
    ]);
    match &denied.namespace {
        Some(ns) => command.args(["-n", ns]),
        None => command.arg("--all-namespaces"),
    };
    let out = command.output().expect("kubectl runs");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl auth can-i said {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Standard base64, as kubeconfig `*-data` fields hold PEM.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RBAC rules granting `verbs` on `resources` (`plural` or `plural.group`).
fn rbac_rules(resources: &[&str], verbs: &[&str]) -> Vec<Value> {
    resources
        .iter()
        .map(|r| {
            let (plural, group) = r.split_once('.').unwrap_or((r, ""));
            json!({"apiGroups": [group], "resources": [plural], "verbs": verbs})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn suffixes_differ() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_eq!(a.len(), 8);
        assert_ne!(a, b);
    }
}
