//! `kubectl mtls-egress`: kubectl runs this executable (`kubectl-mtls_egress`) for `kubectl mtls-egress`.
//! Everything it does lives in `shared::egress`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<shared::egress::Cli>()
}
