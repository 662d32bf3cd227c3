//! `kubectl mtls-lockdown` (planned): a NetworkPolicy so a namespace can leave only through the
//! egress gateway, and `explain` for any namespace's policies. For now it answers `--help` and `--version`.

use clap::Parser;

/// Let a namespace leave the cluster only through the Istio egress gateway (plus DNS), and explain any NetworkPolicy verdict
#[derive(Parser)]
#[command(
    name = "kubectl-mtls_lockdown",
    bin_name = "kubectl mtls-lockdown",
    version,
    arg_required_else_help = true,
    after_help = "Planned commands (not available yet):
  apply     NetworkPolicy: DNS (UDP and TCP), istiod, the egress gateway, nothing else
  remove    delete only what apply created
  explain   which NetworkPolicy rule allows or denies a pod's traffic, live or from files"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
