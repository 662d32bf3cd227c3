//! `kubectl mtls-probe`: kubectl runs this executable (`kubectl-mtls_probe`) for `kubectl mtls-probe`.
//! Everything it does lives in `shared::probe`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<shared::probe::Cli>()
}
