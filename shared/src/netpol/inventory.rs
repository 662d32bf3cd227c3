//! [`Inventory`]: the namespaces, pods, Services and NetworkPolicies an evaluation sees — loaded
//! from YAML/JSON documents (offline `-f`, where a workload stands for its pods) or from typed
//! objects read from a cluster.
//!
//! Namespaces get `kubernetes.io/metadata.name` as the API server sets it; a namespace that only
//! appears as the namespace of a pod, Service or policy gets just that label.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::policy::{Endpoint, NamedPort, PodRef, Policy, Protocol};
use super::selector::Labels;
use crate::documents;

/// The label the API server puts on every namespace, with the namespace's name.
pub(crate) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A pod, as far as policies care.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// `status.podIP`, when known.
    pub ip: Option<IpAddr>,
    /// Named container ports (for named policy ports and named Service target ports).
    pub ports: Vec<NamedPort>,
}

/// A Service, as far as `--to` resolution cares.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.clusterIP` (`None` for headless or unset).
    pub cluster_ip: Option<IpAddr>,
    /// `spec.selector`; `None` when the Service selects no pods (manual endpoints, ExternalName).
    pub selector: Option<Labels>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
}

/// One `spec.ports[]` entry of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name`.
    pub name: Option<String>,
    /// `port`.
    pub port: u16,
    /// `protocol` (TCP when absent).
    pub protocol: Protocol,
    /// `targetPort` (`port` when absent).
    pub target: TargetPort,
}

/// A Service's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A number.
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

/// Why documents could not be loaded. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct LoadError {
    /// The file (or `-`), with the document number when it helps.
    pub origin: String,
    /// What is wrong, with a hint.
    pub reason: String,
}

/// Everything an evaluation looks at.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    namespaces: BTreeMap<String, Labels>,
    pods: Vec<PodInfo>,
    services: Vec<ServiceInfo>,
    policies: Vec<Policy>,
    policies_by_namespace: HashMap<String, Vec<usize>>,
    defaulted: usize,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Namespace (its labels; `kubernetes.io/metadata.name` is added when missing).
    pub(crate) fn add_namespace(&mut self, ns: &Namespace) {
        let Some(name) = ns.metadata.name.clone() else {
            return;
        };
        let mut labels = ns.metadata.labels.clone().unwrap_or_default();
        labels
            .entry(NAMESPACE_NAME_LABEL.to_string())
            .or_insert_with(|| name.clone());
        self.namespaces.insert(name, labels);
    }

    fn ensure_namespace(&mut self, ns: &str) {
        if !self.namespaces.contains_key(ns) {
            self.namespaces.insert(
                ns.to_string(),
                Labels::from([(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())]),
            );
        }
    }

    /// Adds a pod (in `default_namespace` when it names none).
    pub(crate) fn add_pod(&mut self, pod: &Pod, default_namespace: &str) {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string());
        let mut ports = Vec::new();
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            for p in c.ports.iter().flatten() {
                if let (Some(name), Ok(port)) = (&p.name, u16::try_from(p.container_port)) {
                    ports.push(NamedPort {
                        name: name.clone(),
                        port,
                        protocol: Protocol::parse(p.protocol.as_deref()).unwrap_or(Protocol::Tcp),
                    });
                }
            }
        }
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        self.ensure_namespace(&namespace);
        self.pods.push(PodInfo {
            namespace,
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            ports,
        });
    }

    /// Adds a Service (in `default_namespace` when it names none).
    pub(crate) fn add_service(&mut self, svc: &Service, default_namespace: &str) {
        let namespace = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string());
        let spec = svc.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let target = match &p.target_port {
                    None => TargetPort::Number(port),
                    Some(IntOrString::Int(n)) => TargetPort::Number(u16::try_from(*n).ok()?),
                    Some(IntOrString::String(s)) => match s.parse::<u16>() {
                        Ok(n) => TargetPort::Number(n),
                        Err(_) => TargetPort::Name(s.clone()),
                    },
                };
                Some(ServicePort {
                    name: p.name.clone(),
                    port,
                    protocol: Protocol::parse(p.protocol.as_deref()).unwrap_or(Protocol::Tcp),
                    target,
                })
            })
            .collect();
        self.ensure_namespace(&namespace);
        self.services.push(ServiceInfo {
            namespace,
            name: svc.metadata.name.clone().unwrap_or_default(),
            cluster_ip: spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()),
            selector: spec.selector.filter(|s| !s.is_empty()),
            ports,
        });
    }

    /// Adds a NetworkPolicy (in `default_namespace` when it names none); refuses one the API
    /// server would refuse, with a one-line reason.
    pub(crate) fn add_policy(
        &mut self,
        policy: &NetworkPolicy,
        default_namespace: &str,
    ) -> Result<(), String> {
        let compiled = Policy::compile(policy, default_namespace)?;
        self.add_compiled_policy(compiled);
        Ok(())
    }

    /// Adds an already compiled policy.
    pub(crate) fn add_compiled_policy(&mut self, policy: Policy) {
        self.ensure_namespace(&policy.namespace);
        self.policies_by_namespace
            .entry(policy.namespace.clone())
            .or_default()
            .push(self.policies.len());
        self.policies.push(policy);
    }

    /// Adds one parsed document: a Pod, Namespace, Service, NetworkPolicy or workload (as the pod
    /// its template describes, see [`crate::documents::workload_pod`]), or a `List` or typed list
    /// of them. Other Kubernetes kinds are skipped; anything without `apiVersion` and `kind` is
    /// refused.
    pub fn add_document(&mut self, doc: Value, default_namespace: &str) -> Result<(), String> {
        for object in documents::objects(doc)? {
            self.add_object(object, default_namespace)?;
        }
        Ok(())
    }

    fn add_object(&mut self, doc: Value, default_namespace: &str) -> Result<(), String> {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let invalid = |e: serde_json::Error| format!("{kind} is not valid: {e}");
        let unnamespaced = doc["metadata"]["namespace"].as_str().is_none();
        let placed = match (
            doc["apiVersion"].as_str().unwrap_or_default(),
            kind.as_str(),
        ) {
            ("v1", "Pod") => {
                let pod: Pod = documents::typed(&doc).map_err(invalid)?;
                self.add_pod(&pod, default_namespace);
                true
            }
            ("v1", "Namespace") => {
                let ns: Namespace = documents::typed(&doc).map_err(invalid)?;
                self.add_namespace(&ns);
                false
            }
            ("v1", "Service") => {
                let svc: Service = documents::typed(&doc).map_err(invalid)?;
                self.add_service(&svc, default_namespace);
                true
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                let policy: NetworkPolicy = documents::typed(&doc).map_err(invalid)?;
                self.add_policy(&policy, default_namespace)?;
                true
            }
            // A workload, or another kind (not what an evaluation looks at).
            _ => match documents::workload_pod(&doc)? {
                Some(pod) => {
                    self.add_pod(&pod, default_namespace);
                    true
                }
                None => false,
            },
        };
        self.defaulted += usize::from(placed && unnamespaced);
        Ok(())
    }

    /// Parses a YAML (multi-document) or JSON text and adds every document; `origin` names the
    /// source in errors.
    pub fn add_text(
        &mut self,
        text: &str,
        origin: &str,
        default_namespace: &str,
    ) -> Result<(), LoadError> {
        let docs = documents::parse(text).map_err(|reason| LoadError {
            origin: origin.to_string(),
            reason,
        })?;
        self.add_documents(docs, origin, default_namespace)
    }

    /// Adds the documents of one source; `origin` names it in errors (with the document's
    /// number when there are several).
    pub fn add_documents(
        &mut self,
        docs: Vec<Value>,
        origin: &str,
        default_namespace: &str,
    ) -> Result<(), LoadError> {
        let many = docs.len() > 1;
        for (i, doc) in docs.into_iter().enumerate() {
            self.add_document(doc, default_namespace)
                .map_err(|reason| LoadError {
                    origin: if many {
                        format!("{origin} (document {})", i + 1)
                    } else {
                        origin.to_string()
                    },
                    reason,
                })?;
        }
        Ok(())
    }

    /// How many of the added pods, workloads, Services and policies named no namespace (and so
    /// were put in the default one).
    pub fn defaulted_namespaces(&self) -> usize {
        self.defaulted
    }

    /// Whether the namespace is known: declared, or holding a pod, Service or policy.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    /// All pods, in load order.
    pub fn pods(&self) -> &[PodInfo] {
        &self.pods
    }

    /// All Services, in load order.
    pub fn services(&self) -> &[ServiceInfo] {
        &self.services
    }

    /// All policies, in load order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policies of one namespace.
    pub fn policies_in(&self, namespace: &str) -> impl Iterator<Item = &Policy> {
        self.policies_by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|&i| &self.policies[i])
    }

    /// Indices of the pods in `namespace`, in load order.
    pub fn pods_in(&self, namespace: &str) -> Vec<usize> {
        (0..self.pods.len())
            .filter(|&i| self.pods[i].namespace == namespace)
            .collect()
    }

    /// The index of pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<usize> {
        self.pods
            .iter()
            .position(|p| p.namespace == namespace && p.name == name)
    }

    /// The index of a pod with this IP.
    pub(crate) fn pod_by_ip(&self, ip: IpAddr) -> Option<usize> {
        self.pods.iter().position(|p| p.ip == Some(ip))
    }

    /// Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// Indices of the pods a Service selects (none for a Service without a selector).
    pub(crate) fn service_pods(&self, svc: &ServiceInfo) -> Vec<usize> {
        let Some(selector) = &svc.selector else {
            return Vec::new();
        };
        (0..self.pods.len())
            .filter(|&i| {
                let p = &self.pods[i];
                p.namespace == svc.namespace
                    && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .collect()
    }

    /// Pod `index` as a selector sees it.
    pub(crate) fn pod_ref(&self, index: usize) -> PodRef<'_> {
        let p = &self.pods[index];
        PodRef {
            namespace: &p.namespace,
            namespace_labels: self.namespace_labels(&p.namespace),
            labels: &p.labels,
            ports: &p.ports,
        }
    }

    /// Pod `index` as an evaluation endpoint: its identity and its pod IP.
    pub fn pod_endpoint(&self, index: usize) -> Endpoint<'_> {
        Endpoint {
            pod: Some(self.pod_ref(index)),
            ip: self.pods[index].ip,
        }
    }

    /// A namespace's labels (with `kubernetes.io/metadata.name`; empty when it is unknown).
    pub(crate) fn namespace_labels(&self, namespace: &str) -> &Labels {
        static EMPTY: Labels = Labels::new();
        self.namespaces.get(namespace).unwrap_or(&EMPTY)
    }
}
