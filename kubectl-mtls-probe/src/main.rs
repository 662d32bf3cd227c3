//! `kubectl mtls-probe` (planned): prove the mTLS path works end to end, and diagnose it when it
//! does not. For now it answers `--help` and `--version`.

use clap::Parser;

/// Prove the mTLS path through the egress gateway works end to end, and diagnose it when it does not
#[derive(Parser)]
#[command(
    name = "kubectl-mtls_probe",
    bin_name = "kubectl mtls-probe",
    version,
    arg_required_else_help = true,
    after_help = "Planned commands (not available yet):
  direct    workstation -> target: refused without a client certificate, 200 with ours, verified chain
  check     client cluster: request through the egress gateway, XFCC matches our client certificate
  doctor    static diagnosis of both clusters, one finding per problem with its fix"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
