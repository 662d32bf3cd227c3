//! `kubectl mtls-certs`: kubectl runs this executable (`kubectl-mtls_certs`) for `kubectl mtls-certs`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<kubectl_mtls_certs::Cli>()
}
