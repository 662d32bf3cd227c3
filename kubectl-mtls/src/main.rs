//! One executable for all four plugins, chosen by the name it is run as: krew (and the release
//! archive) link `kubectl-mtls_certs`, `kubectl-mtls_egress`, `kubectl-mtls_lockdown` and
//! `kubectl-mtls_probe` to it, so the four share one copy of the code they have in common.

use std::process::ExitCode;

fn main() -> ExitCode {
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let plugin = invoked.trim_end_matches(".exe");
    match plugin {
        "kubectl-mtls_certs" => shared::cli::main::<shared::certs::Cli>(),
        "kubectl-mtls_egress" => shared::cli::main::<shared::egress::Cli>(),
        "kubectl-mtls_lockdown" => shared::cli::main::<shared::lockdown::Cli>(),
        "kubectl-mtls_probe" => shared::cli::main::<shared::probe::Cli>(),
        _ => {
            eprintln!(
                "error: run as kubectl-mtls_certs, kubectl-mtls_egress, kubectl-mtls_lockdown or kubectl-mtls_probe (a link to this file), not as {invoked:?}: krew creates these links; by hand: ln -s kubectl-mtls kubectl-mtls_certs"
            );
            ExitCode::from(2)
        }
    }
}
