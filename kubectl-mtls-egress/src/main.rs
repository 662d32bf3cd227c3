//! `kubectl mtls-egress`: kubectl runs this executable (`kubectl-mtls_egress`) for `kubectl mtls-egress`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<kubectl_mtls_egress::Cli>()
}
