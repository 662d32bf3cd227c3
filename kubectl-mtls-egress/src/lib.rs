//! `kubectl mtls-egress`: stage 2 on the target cluster ([`expose`]) and stage 3 on the client
//! cluster ([`enable`], [`disable`], [`status`]); both clusters at once with [`connect`] (stages
//! 1-4, one plan per cluster) and [`disconnect`]. The plans are built by
//! [`shared::manifest::expose`] and [`shared::manifest::egress`]; this module reads the cluster state
//! the plans depend on (`detect`), checks what other namespaces and partners still use
//! (`in_use`: one client namespace per host, credential Secrets kept while referenced), sends
//! them, and reports.

pub mod connect;
mod credential_expiry;
mod detect;
pub mod disable;
pub mod disconnect;
pub mod enable;
pub mod expose;
pub mod hosts;
mod in_use;
mod removal;
pub mod status;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use shared::cli::{CompletionArgs, GlobalArgs, Plugin, VersionArgs};
use shared::error::Error;

/// The executable's file name; kubectl runs it for `kubectl mtls-egress`.
pub const BIN_NAME: &str = "kubectl-mtls_egress";

/// `kubectl mtls-egress` — expose a target behind mTLS, route a client cluster through the egress gateway.
#[derive(Parser, Debug)]
#[command(
    name = BIN_NAME,
    bin_name = "kubectl mtls-egress",
    // Like kubectl's help, never wrapped: examples stay whole lines to copy and paste.
    term_width = 0,
    version,
    about = "Expose a workload behind mutual TLS on the target cluster, and route the client cluster's calls through the Istio egress gateway with mTLS origination",
    after_help = "Examples:
  # Both clusters in one command: certificates, target, client, probe (and undo)
  kubectl mtls-egress connect --target-context target --client-context client \\
    --host httpbin.example.com --client-name client.example.com --service httpbin:8000 -n mtls-demo
  kubectl mtls-egress disconnect --target-context target --client-context client \\
    --host httpbin.example.com -n mtls-demo

  # Target cluster: MUTUAL Gateway + APIRule (Kyma) or VirtualService for the workload
  kubectl mtls-egress expose --host httpbin.example.com --service httpbin:8000 -n mtls-demo --context target

  # Client cluster: egress gateway on, ServiceEntry, Gateway, DestinationRules, VirtualService, access log
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --context client --dry-run=client
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --context client

  # What is managed, and is it ready?  Remove what enable made:
  kubectl mtls-egress status -A --context client
  kubectl mtls-egress disable --host httpbin.example.com -n mtls-demo --context client"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Expose(expose::ExposeArgs),
    Enable(enable::EnableArgs),
    Disable(disable::DisableArgs),
    Status(status::StatusArgs),
    Connect(connect::ConnectArgs),
    Disconnect(disconnect::DisconnectArgs),
    Version(VersionArgs),
    Completion(CompletionArgs),
}

impl Plugin for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }

    async fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Expose(args) => expose::run(&args, &self.global, out, err).await,
            Command::Enable(args) => enable::run(&args, &self.global, out, err).await,
            Command::Disable(args) => disable::run(&args, &self.global, out, err).await,
            Command::Status(args) => status::run(&args, &self.global, out, err).await,
            Command::Connect(args) => connect::run(&args, &self.global, out, err).await,
            Command::Disconnect(args) => disconnect::run(&args, &self.global, out, err).await,
            Command::Version(args) => args.run(out),
            Command::Completion(args) => args.run(Cli::command(), BIN_NAME, out),
        }
    }
}
