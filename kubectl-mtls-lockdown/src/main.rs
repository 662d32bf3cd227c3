//! `kubectl mtls-lockdown`: kubectl runs this executable (`kubectl-mtls_lockdown`) for `kubectl mtls-lockdown`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<kubectl_mtls_lockdown::Cli>()
}
