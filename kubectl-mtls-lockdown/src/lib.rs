//! `kubectl mtls-lockdown`: stage 5 — the namespace may leave only through the egress gateway
//! (plus DNS and istiod) — and `explain` for any namespace's NetworkPolicies.
//!
//! - [`apply`]: detect DNS, node-local DNS, the egress gateway's ports and Kyma's
//!   `networkPoliciesEnabled` (`detect`), then apply the plan of [`shared::manifest::lockdown`].
//! - [`remove`]: delete exactly what `apply` created (by label).
//! - [`explain`]: load pods, namespaces, Services and policies ([`shared::netpol::load`]: files or
//!   cluster), evaluate them with [`shared::netpol`], and render (`report`).

pub mod apply;
mod detect;
pub mod explain;
pub mod remove;
mod report;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use shared::cli::{CompletionArgs, GlobalArgs, Plugin, VersionArgs};
use shared::error::Error;

/// The executable's file name; kubectl runs it for `kubectl mtls-lockdown`.
pub const BIN_NAME: &str = "kubectl-mtls_lockdown";

/// `kubectl mtls-lockdown` — a namespace may leave only through the egress gateway.
#[derive(Parser, Debug)]
#[command(
    name = BIN_NAME,
    bin_name = "kubectl mtls-lockdown",
    // Like kubectl's help, never wrapped: examples stay whole lines to copy and paste.
    term_width = 0,
    version,
    about = "Let a namespace leave the cluster only through the Istio egress gateway (plus DNS and istiod), and explain which NetworkPolicy rule allows or denies a pod's traffic",
    after_help = "Examples:
  # Preview, then apply the lockdown policy (DNS on UDP and TCP, istiod, the egress gateway)
  kubectl mtls-lockdown apply -n mtls-demo --dry-run=client
  kubectl mtls-lockdown apply -n mtls-demo --registry-only

  # Which rule decides? Pods × DNS, istiod, egress gateway, outside
  kubectl mtls-lockdown explain -n mtls-demo
  kubectl mtls-lockdown explain -n mtls-demo --pod curl --to kube-dns.kube-system:53 --protocol TCP
  kubectl mtls-lockdown explain -n mtls-demo -f dump.yaml     # offline, no cluster

  # Undo
  kubectl mtls-lockdown remove -n mtls-demo"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Apply(apply::ApplyCmdArgs),
    Remove(remove::RemoveArgs),
    Explain(explain::ExplainArgs),
    Version(VersionArgs),
    #[command(
        after_help = "Example:\n  kubectl mtls-lockdown completion bash > /etc/bash_completion.d/kubectl-mtls_lockdown"
    )]
    Completion(CompletionArgs),
}

impl Plugin for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }

    async fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Apply(args) => apply::run(&args, &self.global, out, err).await,
            Command::Remove(args) => remove::run(&args, &self.global, out, err).await,
            Command::Explain(args) => explain::run(&args, &self.global, out, err).await,
            Command::Version(args) => args.run(out),
            Command::Completion(args) => args.run(Cli::command(), BIN_NAME, out),
        }
    }
}
