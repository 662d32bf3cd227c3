//! `kubectl mtls-egress` (planned): expose the target behind mutual TLS, and route the client
//! cluster's traffic through the egress gateway. For now it answers `--help` and `--version`.

use clap::Parser;

/// Expose a workload behind mutual TLS on the target cluster, and route the client cluster's calls through the Istio egress gateway
#[derive(Parser)]
#[command(
    name = "kubectl-mtls_egress",
    bin_name = "kubectl mtls-egress",
    version,
    arg_required_else_help = true,
    after_help = "Planned commands (not available yet):
  expose    MUTUAL Gateway on the ingress gateway + APIRule or VirtualService (target cluster)
  enable    egress gateway, ServiceEntry, Gateway, DestinationRules, VirtualService (client cluster)
  disable   remove exactly what enable created
  status    managed hosts and their readiness
  connect   the whole procedure across two clusters"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
