//! The NetworkPolicy evaluator behind `kubectl mtls-lockdown explain` and `doctor`: Kubernetes
//! `networking.k8s.io/v1` semantics, offline and deterministic.
//!
//! - [`selector`]: label selectors (`matchLabels`, `matchExpressions` with In/NotIn/Exists/DoesNotExist).
//! - [`cidr`]: `ipBlock` CIDRs and `except`, IPv4 and IPv6.
//! - [`policy`]: a NetworkPolicy compiled with the API server's defaulting (`policyTypes`,
//!   protocol TCP) and validation (`endPort`, peers, operators).
//! - [`inventory`]: the pods, namespaces, Services and policies an evaluation sees, from YAML/JSON
//!   documents or typed objects.
//! - [`evaluate`]: the verdict — default allow when nothing isolates a pod, union of policies,
//!   named ports, which rule allows, and near misses when none does.
//! - [`target`]: `--to HOST:PORT` / `--to-ip IP:PORT` resolved to the paths traffic takes (Service
//!   backends after DNAT, the ClusterIP itself, a bare address).
//! - [`matrix`]: verdicts per path, and pods × the well-known destinations of a lockdown.
//! - [`load`]: an [`Inventory`] from `-f` files or from the cluster (the only module with I/O).
//!
//! What a CNI plugin does is not always what the API says (ipBlocks and pod IPs, ClusterIPs
//! before or after DNAT); the evaluator follows the API and [`target`] shows both Service paths.

pub mod cidr;
pub mod evaluate;
pub mod inventory;
pub mod load;
pub mod matrix;
pub mod policy;
pub mod selector;
pub mod target;

pub use cidr::Cidr;
pub use evaluate::{Connection, Decision, NearMiss, PolicyRef, Reason, RuleRef, decide};
pub use inventory::{Inventory, LoadError, PodInfo, ServiceInfo};
pub use policy::{Direction, Endpoint, NamedPort, PodRef, Policy, Protocol};
pub use selector::{Labels, Selector};
pub use target::{Destination, Hop, HopKind, Resolved, resolve};
