//! [`ClusterError`]: every way talking to a cluster can fail, as one line a user can act on.
//!
//! The API server's own messages rarely say what to do next, and a `403` on its own does not say
//! which permission is missing. So every request we send carries an [`Operation`] (verb, resource,
//! namespace, name), and [`ClusterError::from_kube`] turns a [`kube::Error`] into a variant that
//! names what we were doing, the cause, and a hint. A `403` is read before it is called an RBAC
//! problem: a Terminating namespace and admission refusals (webhooks, policies, quota, Pod
//! Security) get their own lines, quoting the server where it says why. Messages never contain
//! request bodies (they may hold Secret data); server messages are flattened to one line and
//! shortened.

use std::fmt;

use crate::error::one_line;
use kube::core::{ApiResource, Status};

/// How long a server message may be before it is cut (a server message can echo a whole value).
const MAX_SERVER_MESSAGE: usize = 300;

/// What we were doing when a request failed: enough to name the missing permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The Kubernetes verb, as RBAC spells it: `get`, `list`, `create`, `patch`, `delete`, ….
    pub verb: String,
    /// The resource as `kubectl auth can-i` takes it: the plural, with `.group` for non-core groups
    /// (`secrets`, `gateways.networking.istio.io`).
    pub resource: String,
    /// The group/version the request went to, e.g. `v1` or `networking.istio.io/v1`.
    pub api_version: String,
    /// The namespace, for namespaced resources.
    pub namespace: Option<String>,
    /// The object's name, for requests about one object.
    pub name: Option<String>,
}

impl Operation {
    /// An operation with `verb` on the resource `api`, optionally in a namespace and on one object.
    pub fn new(verb: &str, api: &ApiResource, namespace: Option<&str>, name: Option<&str>) -> Self {
        let resource = if api.group.is_empty() {
            api.plural.clone()
        } else {
            format!("{}.{}", api.plural, api.group)
        };
        Self {
            verb: verb.to_string(),
            resource,
            api_version: api.api_version.clone(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        }
    }

    /// The API group of the resource (empty for the core group).
    fn group(&self) -> &str {
        self.resource.split_once('.').map_or("", |(_, g)| g)
    }

    /// `secrets/NAME in namespace NS`, `secrets in namespace NS`, `namespaces/NAME`.
    pub fn target(&self) -> String {
        let mut s = self.resource.clone();
        if let Some(name) = &self.name {
            s.push('/');
            s.push_str(name);
        }
        if let Some(ns) = &self.namespace {
            s.push_str(" in namespace ");
            s.push_str(ns);
        }
        s
    }

    /// `in namespace NS`, or `cluster-wide`.
    fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".into(),
        }
    }

    /// The `kubectl auth can-i` command that checks this permission.
    fn can_i(&self, verb: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("kubectl auth can-i {verb} {} -n {ns}", self.resource),
            None => format!("kubectl auth can-i {verb} {}", self.resource),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.target())
    }
}

/// A failure to load credentials for, reach, or get a request through a Kubernetes API server.
///
/// `Display` is always one line: cause, then a hint.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `-n/--namespace` is not a valid namespace name; nothing was sent.
    #[error(
        "invalid namespace {value:?}: {reason}; a namespace is a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters), fix -n/--namespace"
    )]
    InvalidNamespace {
        /// The value given (flattened to one line).
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No kubeconfig exists at all, and we are not running inside a cluster either.
    #[error(
        "no kubeconfig found ({looked}) and not running inside a cluster; pass --kubeconfig PATH or set KUBECONFIG"
    )]
    NoKubeconfig {
        /// Where we looked.
        looked: String,
    },

    /// A kubeconfig exists but cannot be read, parsed or used.
    #[error(
        "cannot load kubeconfig {file}: {reason}; choose a file with --kubeconfig or a context with --context (list them with `kubectl config get-contexts`)"
    )]
    Kubeconfig {
        /// The file(s) read: a path, or `KUBECONFIG=a:b`.
        file: String,
        /// What went wrong.
        reason: String,
    },

    /// The selected context does not exist in the kubeconfig.
    #[error(
        "context {context:?} not found in kubeconfig {file} (contexts: {available}); pick one with --context, list them with `kubectl config get-contexts`"
    )]
    ContextNotFound {
        /// The context asked for.
        context: String,
        /// The file(s) read.
        file: String,
        /// The contexts that do exist, comma-separated (`none` when empty).
        available: String,
        /// Whether the name came from `--context` (a usage error) rather than `current-context`.
        from_flag: bool,
    },

    /// The API server could not be reached (connection refused, DNS, TLS, proxy, …).
    #[error(
        "cannot reach the Kubernetes API server{} while trying to {operation}: {reason}; check your VPN/network and that the cluster is running, or choose another cluster with --context",
        server.as_deref().map(|s| format!(" at {s}")).unwrap_or_default()
    )]
    Unreachable {
        /// The server URL, when known.
        server: Option<String>,
        /// What we were doing.
        operation: Box<Operation>,
        /// The innermost cause, e.g. `Connection refused (os error 111)`.
        reason: String,
    },

    /// TLS to the API server failed because its certificate is not trusted for this connection
    /// (not valid for the name we asked for, an unknown CA, expired): a kubeconfig problem, not a
    /// network one.
    #[error(
        "the API server's certificate{} is not accepted while trying to {operation}: {reason}; check the cluster entry of your kubeconfig: its server URL, tls-server-name and certificate-authority(-data) (`kubectl config view --minify`)",
        server.as_deref().map(|s| format!(" at {s}")).unwrap_or_default()
    )]
    UntrustedServer {
        /// The server URL, when known.
        server: Option<String>,
        /// What we were doing.
        operation: Box<Operation>,
        /// Why, e.g. `it is not valid for the name x (it names 127.0.0.1, localhost)`.
        reason: String,
    },

    /// The request or the connection timed out.
    #[error(
        "timed out while trying to {operation}{}; the API server is slow or unreachable: retry, or allow more time with --request-timeout",
        server.as_deref().map(|s| format!(" (server {s})")).unwrap_or_default()
    )]
    Timeout {
        /// The server URL, when known.
        server: Option<String>,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// Credentials could not be obtained (exec plugin, token file, client certificate).
    #[error(
        "cannot get credentials for the cluster: {reason}; log in again or check the user entry of your kubeconfig (--user, --context)"
    )]
    Credentials {
        /// What went wrong.
        reason: String,
    },

    /// The kubeconfig's client certificate is X.509 version 1 or 2: kubectl (Go's TLS) accepts it,
    /// rustls takes only version 3.
    #[error(
        "the client certificate in kubeconfig {file} is an X.509 version {version} certificate: kubectl accepts it, but this plugin's TLS library (rustls) takes only version 3; have it issued again as a version 3 certificate (a CertificateSigningRequest approved with `kubectl certificate approve` gives one), or give this user a token or an exec credential plugin"
    )]
    ClientCertificateVersion {
        /// The kubeconfig file(s) read.
        file: String,
        /// The certificate's version (1 or 2).
        version: u32,
    },

    /// `401 Unauthorized`: the server does not accept our credentials.
    #[error(
        "the API server rejected our credentials (401 Unauthorized) while trying to {operation}; they have probably expired: log in again (refresh your kubeconfig), or choose other credentials with --context/--user"
    )]
    Unauthorized {
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// `403 Forbidden` from authorization: RBAC (or another authorizer) does not allow the
    /// operation. A 403 from admission or a Terminating namespace is
    /// [`Refused`](ClusterError::Refused) or [`NamespaceTerminating`](ClusterError::NamespaceTerminating).
    #[error(
        "forbidden: {who}may not {verb} {resource} {scope}; ask your cluster admin for RBAC permission to {verb} {resource}, check with `{can_i}`",
        who = user.as_deref().map(|u| format!("{u} ")).unwrap_or_default(),
        resource = operation.resource,
        scope = operation.scope(),
        can_i = operation.can_i(verb),
    )]
    Forbidden {
        /// The verb that was denied (from the server's message when it names one, else ours).
        verb: String,
        /// Who was denied, as the server put it (e.g. `User "alice"`), when it said.
        user: Option<String>,
        /// What we were doing (resource, namespace, object).
        operation: Box<Operation>,
    },

    /// `403` because the namespace is being deleted: the API server takes no new objects in a
    /// Terminating namespace, whatever the caller's permissions.
    #[error(
        "namespace {namespace} is being deleted (Terminating), so the API server refused to {operation}; this is not a permission problem: wait until the namespace is gone (`kubectl get namespace {namespace}` says NotFound; if it stays Terminating, its status.conditions say what holds it) and create it again, or use another namespace"
    )]
    NamespaceTerminating {
        /// The namespace being deleted.
        namespace: String,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// Admission control (a webhook, a ValidatingAdmissionPolicy, a ResourceQuota, Pod Security,
    /// …) refused the request: not an authorization denial, so the server's own words say why.
    #[error("the API server refused to {operation}: {message}; {}", by.hint(operation))]
    Refused {
        /// What refused it.
        by: RefusedBy,
        /// The server's message (one line, shortened).
        message: String,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// `404`: the namespace of the object does not exist.
    #[error(
        "namespace {namespace} does not exist (needed to {operation}); create it with `kubectl create namespace {namespace}` or choose another with -n"
    )]
    NamespaceNotFound {
        /// The missing namespace.
        namespace: String,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// `404`: the server does not serve this kind at all (e.g. a CRD is not installed).
    #[error(
        "the cluster does not serve {resource} ({api_version}) needed to {operation}; is the CRD installed? check with `kubectl api-resources --api-group={group}`"
    )]
    NotServed {
        /// The resource (`plural[.group]`).
        resource: String,
        /// The group/version asked for.
        api_version: String,
        /// The group (for the hint).
        group: String,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// `404`: the object does not exist.
    #[error("{} not found; check the name and the namespace (-n)", operation.target())]
    NotFound {
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// `409` on server-side apply: another field manager owns fields we set.
    #[error(
        "conflict applying {}: {message}; another tool manages these fields: re-run with --force-conflicts to take them over",
        operation.target()
    )]
    Conflict {
        /// What we were doing.
        operation: Box<Operation>,
        /// The server's conflict text (names the manager and the fields).
        message: String,
    },

    /// `422 Invalid`, or `400 BadRequest` from strict field validation: the object was rejected.
    #[error(
        "the API server rejected {} as invalid: {message}; fix the input, or if it names an unknown field, the cluster's CRD may be older or newer than this plugin expects",
        operation.target()
    )]
    Invalid {
        /// What we were doing.
        operation: Box<Operation>,
        /// The server's message.
        message: String,
    },

    /// Any other API error.
    #[error("API error {code} {reason} while trying to {operation}: {message}{}", hint_for_code(*code))]
    Api {
        /// The HTTP status code.
        code: u16,
        /// The machine-readable reason.
        reason: String,
        /// The server's message.
        message: String,
        /// What we were doing.
        operation: Box<Operation>,
    },

    /// A failure on our side of the connection that fits nothing above (bad response, request build).
    #[error("request failed while trying to {operation}: {reason}")]
    Client {
        /// What we were doing.
        operation: Box<Operation>,
        /// What went wrong.
        reason: String,
    },
}

/// What refused a request that authorization had allowed: each has its own hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// A validating or mutating admission webhook (`admission webhook "NAME" denied the request`).
    Webhook,
    /// A `ValidatingAdmissionPolicy` (CEL) with a binding that denies.
    Policy,
    /// A `ResourceQuota` of the namespace is used up (`exceeded quota`).
    Quota,
    /// The namespace's Pod Security level (`violates PodSecurity`).
    PodSecurity,
    /// Another admission plugin (`<resource> "<name>" is forbidden: <its reason>`).
    Admission,
}

impl RefusedBy {
    /// What the user can do about it, for a refused `operation`.
    fn hint(self, operation: &Operation) -> String {
        let hint = match self {
            RefusedBy::Webhook => {
                "an admission webhook of the cluster denied it, not RBAC: change what its message names, or ask whoever runs that webhook"
            }
            RefusedBy::Policy => {
                "a ValidatingAdmissionPolicy of the cluster denied it, not RBAC: change what its message names, or ask your cluster admin about the policy"
            }
            RefusedBy::Quota => {
                let namespace = operation.namespace.as_deref().unwrap_or("NAMESPACE");
                return format!(
                    "a ResourceQuota of the namespace is used up, not RBAC: free some of it or ask your cluster admin to raise it (`kubectl describe resourcequota -n {namespace}`)"
                );
            }
            RefusedBy::PodSecurity => {
                "the namespace's Pod Security level (label pod-security.kubernetes.io/enforce) forbids it, not RBAC: change what the message names, or use a namespace whose level allows it"
            }
            RefusedBy::Admission => {
                "an admission controller of the cluster refused it, not RBAC: change what the message names, or ask your cluster admin"
            }
        };
        hint.to_string()
    }

    /// Which admission step refused a request, from the server's message; `None` when the
    /// message does not show one (an authorization denial, or a message we cannot read).
    ///
    /// The authorizer words every denial `… is forbidden: User "NAME" cannot VERB …`; admission
    /// plugins put their own reason after `is forbidden: `, and webhooks start with
    /// `admission webhook "NAME" denied the request`.
    fn from_message(message: &str) -> Option<Self> {
        if message.contains("admission webhook \"") {
            return Some(RefusedBy::Webhook);
        }
        let (_, reason) = message.split_once("is forbidden: ")?;
        if is_authorization_denial(reason) {
            return None;
        }
        Some(if reason.starts_with("ValidatingAdmissionPolicy ") {
            RefusedBy::Policy
        } else if reason.starts_with("exceeded quota") {
            RefusedBy::Quota
        } else if reason.starts_with("violates PodSecurity") {
            RefusedBy::PodSecurity
        } else {
            RefusedBy::Admission
        })
    }
}

/// Whether the text after `is forbidden: ` is the authorizer's sentence,
/// `User "NAME" cannot VERB resource …` (ServiceAccounts are `User "system:serviceaccount:…"`).
fn is_authorization_denial(reason: &str) -> bool {
    reason.starts_with("User \"") && reason.contains(" cannot ")
}

/// The namespace a `403` names as being deleted, when that is the reason: the API server sets
/// the cause `NamespaceTerminating` (message `namespace NAME is being terminated`) and says
/// `unable to create new content in namespace NAME because it is being terminated`.
fn terminating_namespace(status: &Status) -> Option<String> {
    let causes = status.details.iter().flat_map(|d| d.causes.iter());
    let from_cause = causes
        .filter(|c| c.reason == "NamespaceTerminating")
        .find_map(|c| {
            c.message
                .strip_prefix("namespace ")
                .and_then(|rest| rest.strip_suffix(" is being terminated"))
                .map(str::to_string)
                .or_else(|| Some(String::new()))
        });
    let from_message = || {
        let (before, _) = status
            .message
            .split_once(" because it is being terminated")?;
        let (_, namespace) = before.rsplit_once("in namespace ")?;
        Some(namespace.to_string())
    };
    from_cause.or_else(from_message)
}

fn hint_for_code(code: u16) -> &'static str {
    match code {
        429 => "; the API server is rate-limiting us: retry in a moment",
        500..=599 => "; the API server is unhealthy: retry later or check the control plane",
        _ => "",
    }
}

impl ClusterError {
    /// The process exit code: 2 for bad flags (an invalid namespace name, an unknown `--context`),
    /// 3 for everything that happened while talking to (or finding) the cluster.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClusterError::InvalidNamespace { .. } => 2,
            ClusterError::ContextNotFound { from_flag, .. } if *from_flag => 2,
            _ => 3,
        }
    }

    /// Maps a [`kube::Error`] from `operation` to the variant that explains it.
    pub fn from_kube(err: kube::Error, operation: &Operation) -> Self {
        let operation = Box::new(operation.clone());
        match err {
            kube::Error::Api(status) => Self::from_status(&status, &operation),
            kube::Error::Auth(e) => ClusterError::Credentials {
                reason: innermost(&e),
            },
            kube::Error::InferKubeconfig(e) => ClusterError::Credentials {
                reason: one_line(&e.to_string(), MAX_SERVER_MESSAGE),
            },
            kube::Error::SerdeError(e) => ClusterError::Client {
                operation,
                reason: format!("unexpected response from the API server: {e}"),
            },
            e @ (kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::RustlsTls(_)
            | kube::Error::ProxyProtocolUnsupported { .. }
            | kube::Error::ProxyProtocolDisabled { .. }
            | kube::Error::TlsRequired) => {
                if timed_out(&e) {
                    ClusterError::Timeout {
                        server: None,
                        operation,
                    }
                } else if let Some(reason) = server_certificate_refused(&e) {
                    ClusterError::UntrustedServer {
                        server: None,
                        operation,
                        reason,
                    }
                } else {
                    ClusterError::Unreachable {
                        server: None,
                        operation,
                        reason: innermost(&e),
                    }
                }
            }
            e => ClusterError::Client {
                operation,
                reason: innermost(&e),
            },
        }
    }

    /// Maps a failed API response (a `metav1.Status`) from `operation`.
    pub(crate) fn from_status(status: &Status, operation: &Operation) -> Self {
        let operation = Box::new(operation.clone());
        let message = one_line(&status.message, MAX_SERVER_MESSAGE);
        let reason = status.reason.as_str();
        // A 403 is not always RBAC: read the Status before choosing the message.
        let terminating = terminating_namespace(status);
        let refused_by = RefusedBy::from_message(&status.message);
        match status.code {
            401 => ClusterError::Unauthorized { operation },
            403 if terminating.is_some() => {
                let namespace = terminating
                    .filter(|n| !n.is_empty())
                    .or_else(|| operation.namespace.clone())
                    .unwrap_or_default();
                ClusterError::NamespaceTerminating {
                    namespace: one_line(&namespace, 63),
                    operation,
                }
            }
            400 | 403 | 422 if refused_by.is_some() => ClusterError::Refused {
                by: refused_by.unwrap_or(RefusedBy::Admission),
                message,
                operation,
            },
            403 => {
                let (server_verb, user) = parse_forbidden(&status.message);
                let verb = server_verb.unwrap_or_else(|| operation.verb.clone());
                ClusterError::Forbidden {
                    verb,
                    user,
                    operation,
                }
            }
            404 => {
                let details_kind = status.details.as_ref().map(|d| d.kind.as_str());
                if details_kind == Some("namespaces") && operation.resource != "namespaces" {
                    let namespace = status
                        .details
                        .as_ref()
                        .map(|d| d.name.clone())
                        .filter(|n| !n.is_empty())
                        .or_else(|| operation.namespace.clone())
                        .unwrap_or_default();
                    ClusterError::NamespaceNotFound {
                        namespace: one_line(&namespace, 63),
                        operation,
                    }
                } else if reason == "NotFound" {
                    ClusterError::NotFound { operation }
                } else {
                    // A 404 that is not a `Status` ("404 page not found"): nothing serves the path.
                    ClusterError::NotServed {
                        resource: operation.resource.clone(),
                        api_version: operation.api_version.clone(),
                        group: operation.group().to_string(),
                        operation,
                    }
                }
            }
            409 if operation.verb == "patch" && reason != "AlreadyExists" => {
                ClusterError::Conflict { operation, message }
            }
            400 | 422 if reason != "Timeout" => ClusterError::Invalid { operation, message },
            504 => ClusterError::Timeout {
                server: None,
                operation,
            },
            _ if reason == "Timeout" => ClusterError::Timeout {
                server: None,
                operation,
            },
            code => ClusterError::Api {
                code,
                reason: if reason.is_empty() {
                    "Error".into()
                } else {
                    one_line(reason, 60)
                },
                message,
                operation,
            },
        }
    }

    /// Adds the API server URL to an [`Unreachable`](ClusterError::Unreachable),
    /// [`UntrustedServer`](ClusterError::UntrustedServer) or [`Timeout`](ClusterError::Timeout)
    /// error that does not name it yet; other errors pass through.
    ///
    /// A `kube::Client` does not reveal its server URL, so the cluster layer cannot fill it in by
    /// itself; a caller that has the [`kube::Config`] (see `KubeArgs::config`) can.
    pub fn with_server(self, url: &str) -> Self {
        match self {
            ClusterError::Unreachable {
                server: None,
                operation,
                reason,
            } => ClusterError::Unreachable {
                server: Some(url.to_string()),
                operation,
                reason,
            },
            ClusterError::Timeout {
                server: None,
                operation,
            } => ClusterError::Timeout {
                server: Some(url.to_string()),
                operation,
            },
            ClusterError::UntrustedServer {
                server: None,
                operation,
                reason,
            } => ClusterError::UntrustedServer {
                server: Some(url.to_string()),
                operation,
                reason,
            },
            other => other,
        }
    }
}

/// The verb and the user from a Forbidden message, e.g.
/// `secrets "x" is forbidden: User "alice" cannot patch resource "secrets" in API group "" …`.
fn parse_forbidden(message: &str) -> (Option<String>, Option<String>) {
    let verb = message.split_once(" cannot ").and_then(|(_, rest)| {
        let verb = rest.split_whitespace().next()?;
        let ok = !verb.is_empty() && verb.chars().all(|c| c.is_ascii_lowercase());
        ok.then(|| verb.to_string())
    });
    let user = message.split_once("is forbidden: ").and_then(|(_, rest)| {
        let (who, _) = rest.split_once(" cannot ")?;
        let who = one_line(who, 120);
        (!who.is_empty()).then_some(who)
    });
    (verb, user)
}

/// Why rustls refused the server's certificate, when a transport error chain holds that. An
/// `io::Error` hides the error it wraps from `source()` (and hyper nests them), so each one is
/// opened with `get_ref` as well.
fn server_certificate_refused(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    while let Some(e) = pending.pop() {
        if let Some(rustls::Error::InvalidCertificate(refused)) = e.downcast_ref() {
            return Some(certificate_refusal(refused));
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            pending.push(inner);
        }
        pending.extend(e.source());
    }
    None
}

/// A rustls certificate error in words, without its type names.
fn certificate_refusal(refused: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match refused {
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            // `presented` reads `IpAddress(127.0.0.1)`, `DnsName("localhost")`.
            let names: Vec<String> = presented
                .iter()
                .map(|p| {
                    let inner = p
                        .split_once('(')
                        .map_or(p.as_str(), |(_, rest)| rest.trim_end_matches(')'));
                    inner.trim_matches('"').to_string()
                })
                .collect();
            let expected = format!("{expected:?}");
            let expected = expected
                .split_once('(')
                .map_or(expected.as_str(), |(_, rest)| rest.trim_end_matches(')'))
                .trim_matches('"');
            one_line(
                &format!(
                    "it is not valid for the name {expected} (it names {})",
                    names.join(", ")
                ),
                MAX_SERVER_MESSAGE,
            )
        }
        E::NotValidForName => "it is not valid for the server's name".into(),
        E::UnknownIssuer => "it is signed by a CA the kubeconfig does not trust".into(),
        E::Expired | E::ExpiredContext { .. } => "it has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet".into(),
        other => one_line(&other.to_string(), MAX_SERVER_MESSAGE),
    }
}

/// Whether a transport error chain contains a timeout.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return true;
        }
        current = e.source();
    }
    false
}

/// The innermost message of an error chain (the actual cause), on one line.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(source) = e.source() {
        e = source;
    }
    one_line(&e.to_string(), MAX_SERVER_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets_op() -> Operation {
        let api = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        };
        Operation::new("patch", &api, Some("istio-system"), Some("s"))
    }

    #[test]
    fn forbidden_parses_verb_and_user() {
        let (verb, user) = parse_forbidden(
            r#"secrets "s" is forbidden: User "alice" cannot create resource "secrets" in API group "" in the namespace "x""#,
        );
        assert_eq!(verb.as_deref(), Some("create"));
        assert_eq!(user.as_deref(), Some(r#"User "alice""#));
        assert_eq!(parse_forbidden("forbidden"), (None, None));
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\n  b\r\nc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn with_server_fills_only_missing_urls() {
        let e = ClusterError::Unreachable {
            server: None,
            operation: Box::new(secrets_op()),
            reason: "Connection refused".into(),
        }
        .with_server("https://1.2.3.4:6443");
        assert!(
            e.to_string()
                .starts_with("cannot reach the Kubernetes API server at https://1.2.3.4:6443 while trying to patch secrets/s in namespace istio-system: Connection refused;"),
            "{e}"
        );
    }

    /// A Status exactly as the API server sent it (JSON).
    fn captured(json: &str) -> Status {
        serde_json::from_str(json).expect("a captured Status")
    }

    fn op(verb: &str, group: &str, plural: &str, namespace: &str, name: &str) -> Operation {
        let api = ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: if group.is_empty() {
                "v1".into()
            } else {
                format!("{group}/v1")
            },
            kind: String::new(),
            plural: plural.into(),
        };
        Operation::new(verb, &api, Some(namespace), Some(name))
    }

    // The Status bodies below were captured from kube-apiserver v1.32.13 (../shared/kapi) with
    // curl, as server-side apply requests (PATCH application/apply-patch+yaml,
    // fieldValidation=Strict) like the ones `apply` sends; only the indentation is changed.

    /// A namespace held in Terminating by a finalizer on a ConfigMap in it; SSA of a new object
    /// (the dry run answers the same).
    const TERMINATING: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "configmaps \"y\" is forbidden: unable to create new content in namespace term1 because it is being terminated",
        "reason": "Forbidden",
        "details": {"name": "y", "kind": "configmaps", "causes": [{"reason": "NamespaceTerminating",
            "message": "namespace term1 is being terminated", "field": "metadata.namespace"}]},
        "code": 403}"#;

    /// User `alice` (client certificate) bound to a Role that allows get/list on configmaps.
    const RBAC_DENIED: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "configmaps \"y\" is forbidden: User \"alice\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"rbac1\"",
        "reason": "Forbidden", "details": {"name": "y", "kind": "configmaps"}, "code": 403}"#;

    /// A ResourceQuota `q` with `secrets=0`.
    const QUOTA: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "secrets \"s\" is forbidden: exceeded quota: q, requested: secrets=1, used: secrets=0, limited: secrets=0",
        "reason": "Forbidden", "details": {"name": "s", "kind": "secrets"}, "code": 403}"#;

    /// A namespace labelled pod-security.kubernetes.io/enforce=restricted; a plain busybox pod.
    const POD_SECURITY: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
        "reason": "Forbidden", "details": {"name": "p", "kind": "pods"}, "code": 403}"#;

    /// A ValidatingAdmissionPolicy `vap-deny` (reason: Forbidden) requiring a `team` label.
    const POLICY: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "secrets \"s\" is forbidden: ValidatingAdmissionPolicy 'vap-deny' with binding 'vap-deny' denied request: every Secret needs a team label",
        "reason": "Forbidden",
        "details": {"name": "s", "kind": "secrets", "causes": [{"message": "ValidatingAdmissionPolicy 'vap-deny' with binding 'vap-deny' denied request: every Secret needs a team label"}]},
        "code": 403}"#;

    /// A validating webhook answering `allowed: false` with status code 403, reason Forbidden.
    const WEBHOOK_403: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "admission webhook \"require-team.example.com\" denied the request: label team is required",
        "reason": "Forbidden", "code": 403}"#;

    /// The same webhook answering `allowed: false` with a status that has only a message: the
    /// API server then replies 400 without a reason.
    const WEBHOOK_400: &str = r#"{"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": "admission webhook \"require-team.example.com\" denied the request: label team is required",
        "code": 400}"#;

    #[test]
    fn a_terminating_namespace_is_not_called_an_rbac_problem() {
        let e = ClusterError::from_status(
            &captured(TERMINATING),
            &op("patch", "", "configmaps", "term1", "y"),
        );
        assert_eq!(
            e.to_string(),
            "namespace term1 is being deleted (Terminating), so the API server refused to patch configmaps/y in namespace term1; this is not a permission problem: wait until the namespace is gone (`kubectl get namespace term1` says NotFound; if it stays Terminating, its status.conditions say what holds it) and create it again, or use another namespace"
        );
        assert_eq!(e.exit_code(), 3);
        // Without the cause (an older server), the message alone still tells.
        let mut status = captured(TERMINATING);
        status.details = None;
        let e = ClusterError::from_status(&status, &op("patch", "", "configmaps", "other", "y"));
        assert!(
            matches!(&e, ClusterError::NamespaceTerminating { namespace, .. } if namespace == "term1"),
            "{e:?}"
        );
    }

    #[test]
    fn an_authorization_denial_keeps_the_rbac_line() {
        let e = ClusterError::from_status(
            &captured(RBAC_DENIED),
            &op("patch", "", "configmaps", "rbac1", "y"),
        );
        assert_eq!(
            e.to_string(),
            r#"forbidden: User "alice" may not patch configmaps in namespace rbac1; ask your cluster admin for RBAC permission to patch configmaps, check with `kubectl auth can-i patch configmaps -n rbac1`"#
        );
    }

    #[test]
    fn admission_refusals_quote_the_server_and_say_it_is_not_rbac() {
        let cases = [
            (QUOTA, RefusedBy::Quota, "secrets", "ResourceQuota"),
            (POD_SECURITY, RefusedBy::PodSecurity, "pods", "Pod Security"),
            (
                POLICY,
                RefusedBy::Policy,
                "secrets",
                "ValidatingAdmissionPolicy",
            ),
            (
                WEBHOOK_403,
                RefusedBy::Webhook,
                "configmaps",
                "admission webhook",
            ),
            (
                WEBHOOK_400,
                RefusedBy::Webhook,
                "configmaps",
                "admission webhook",
            ),
        ];
        for (json, expected, plural, hint) in cases {
            let status = captured(json);
            let e = ClusterError::from_status(&status, &op("patch", "", plural, "ns1", "x"));
            let text = e.to_string();
            assert!(
                matches!(&e, ClusterError::Refused { by, .. } if *by == expected),
                "{e:?}"
            );
            let quoted = one_line(&status.message, MAX_SERVER_MESSAGE);
            assert!(
                text.starts_with(&format!(
                    "the API server refused to patch {plural}/x in namespace ns1: {quoted}; "
                )),
                "{text}"
            );
            assert!(text.contains(hint) && text.contains("not RBAC"), "{text}");
            if expected == RefusedBy::Quota {
                assert!(
                    text.ends_with("(`kubectl describe resourcequota -n ns1`)"),
                    "{text}"
                );
            }
            assert!(!text.contains("auth can-i"), "{text}");
            assert_eq!(text.lines().count(), 1);
            assert_eq!(e.exit_code(), 3);
        }
    }

    #[test]
    fn a_refused_server_certificate_is_a_kubeconfig_problem_in_words() {
        // As hyper nests it when tls-server-name names what the kapi certificate does not
        // (rustls 0.23's own `presented` strings).
        let refused =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("nope.example")
                    .unwrap()
                    .to_owned(),
                presented: vec![
                    "IpAddress(127.0.0.1)".into(),
                    r#"DnsName("localhost")"#.into(),
                ],
            });
        let io = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            refused,
        ));
        assert_eq!(
            server_certificate_refused(&io).as_deref(),
            Some("it is not valid for the name nope.example (it names 127.0.0.1, localhost)")
        );
        let unknown = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            server_certificate_refused(&unknown).as_deref(),
            Some("it is signed by a CA the kubeconfig does not trust")
        );
        let refused_elsewhere = std::io::Error::other("connection refused");
        assert_eq!(server_certificate_refused(&refused_elsewhere), None);
        let e = ClusterError::UntrustedServer {
            server: Some("https://127.0.0.1:6443".into()),
            operation: Box::new(secrets_op()),
            reason: "it has expired".into(),
        };
        assert_eq!(
            e.to_string(),
            "the API server's certificate at https://127.0.0.1:6443 is not accepted while trying to patch secrets/s in namespace istio-system: it has expired; check the cluster entry of your kubeconfig: its server URL, tls-server-name and certificate-authority(-data) (`kubectl config view --minify`)"
        );
    }

    #[test]
    fn server_errors_and_rate_limits_get_hints() {
        let status = Status::failure("etcd is down", "InternalError").with_code(500);
        let e = ClusterError::from_status(&status, &secrets_op());
        assert_eq!(
            e.to_string(),
            "API error 500 InternalError while trying to patch secrets/s in namespace istio-system: etcd is down; the API server is unhealthy: retry later or check the control plane"
        );
        assert_eq!(e.exit_code(), 3);
    }
}
