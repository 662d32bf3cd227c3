//! `kubectl mtls-certs`: kubectl runs this executable (`kubectl-mtls_certs`) for `kubectl mtls-certs`.
//! Everything it does lives in `shared::certs`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<shared::certs::Cli>()
}
