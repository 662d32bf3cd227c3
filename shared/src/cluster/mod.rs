//! The thin cluster layer: connect with kubectl's flags, send a [`crate::plan::Plan`], and turn
//! every API failure into one line a user can act on.
//!
//! - [`KubeArgs`] (`connect`): `--kubeconfig`, `--context`, `-n`, `--request-timeout`, … and a
//!   `kube::Client` built from them the way kubectl builds one (no request is sent).
//! - [`apply()`] (`apply`): server-side apply (field manager [`FIELD_MANAGER`], strict field
//!   validation) after a server dry run of the whole plan, so nothing is half-applied; returns a
//!   created / configured / unchanged [`Applied`] per object.
//! - [`delete_labelled()`] (`delete`): remove exactly the objects we labelled, nothing else.
//! - [`get_opt`], [`list`], [`list_dynamic`], [`served`] (`read`): reads with the same error mapping.
//! - [`detect`]: the reads several plugins decide on (Kyma's Istio CRs, the egress gateway).
//! - [`existing_credential_clash`] (`credential`): whether a credential Secret about to be written
//!   holds another certificate already.
//! - [`create_pod`], [`exec`], [`logs_since`], [`delete_pod`] (`pods`): what a probe does with pods.
//! - [`ClusterError`] (`error`): cause + hint for each failure (no kubeconfig, unknown context,
//!   unreachable, 401, 403 naming verb/resource/namespace, a Terminating namespace, admission
//!   refusals quoting the server, 404, 409 conflicts, invalid objects, timeouts), with its exit
//!   code; [`Operation`] says what a request was doing.
//!
//! Decisions live elsewhere: this layer only sends plans and reads state.

mod apply;
mod client;
mod connect;
mod credential;
mod delete;
pub mod detect;
mod error;
mod pods;
mod read;

pub use apply::{
    Applied, ApplyMode, DEFAULT_MAX_IN_FLIGHT, FIELD_MANAGER, Outcome, apply, apply_as,
    apply_limited,
};
pub use connect::{KubeArgs, parse_request_timeout, validate_namespace};
pub use credential::existing_credential_clash;
pub use delete::{delete_labelled, delete_object, display_kind};
pub use error::{ClusterError, Operation, RefusedBy};
pub use pods::{ExecOutput, create_pod, delete_pod, exec, exit_status, logs_since};
pub use read::{api, get_cluster_opt, get_opt, list, list_dynamic, served};
