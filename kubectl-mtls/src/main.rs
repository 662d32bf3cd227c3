//! One executable for all four plugins, chosen by the name it is run as: krew (and the release
//! archive) link `kubectl-mtls_certs`, `kubectl-mtls_egress`, `kubectl-mtls_lockdown` and
//! `kubectl-mtls_probe` to it, so the four share one copy of the code they have in common.
//! Run as `kubectl_complete-mtls_certs` etc. (kubectl's completion executables), it answers
//! kubectl's completion requests for that plugin.

use std::process::ExitCode;

use shared::cli::main as run;

/// A plugin's `main`.
type Main = fn() -> ExitCode;

/// Each plugin's executable name, from its crate, and its `main`.
const PLUGINS: [(&str, Main); 4] = [
    (kubectl_mtls_certs::BIN_NAME, run::<kubectl_mtls_certs::Cli>),
    (
        kubectl_mtls_egress::BIN_NAME,
        run::<kubectl_mtls_egress::Cli>,
    ),
    (
        kubectl_mtls_lockdown::BIN_NAME,
        run::<kubectl_mtls_lockdown::Cli>,
    ),
    (kubectl_mtls_probe::BIN_NAME, run::<kubectl_mtls_probe::Cli>),
];

fn main() -> ExitCode {
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let name = invoked.trim_end_matches(".exe");
    // kubectl's completion executable for a plugin (`kubectl_complete-mtls_certs`) is this file
    // too; the plugin's run loop sees the name and answers the completion request.
    let plugin_name = match name.strip_prefix(shared::cli::complete::COMPLETE_PREFIX) {
        Some(rest) => format!("kubectl-{rest}"),
        None => name.to_string(),
    };
    match PLUGINS.iter().find(|(bin, _)| *bin == plugin_name) {
        Some((_, plugin)) => plugin(),
        None => {
            let names: Vec<&str> = PLUGINS.iter().map(|(bin, _)| *bin).collect();
            eprintln!(
                "error: run as {} (a link to this file), not as {invoked:?}: krew creates these links; by hand: ln -s kubectl-mtls {}",
                names.join(", "),
                names[0]
            );
            ExitCode::from(2)
        }
    }
}
