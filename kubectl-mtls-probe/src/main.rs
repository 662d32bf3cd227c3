//! `kubectl mtls-probe`: kubectl runs this executable (`kubectl-mtls_probe`) for `kubectl mtls-probe`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<kubectl_mtls_probe::Cli>()
}
