//! The live cluster of the e2e tests: `MTLS_E2E_KUBECONFIG`, or a visible skip.

use std::io::Write;

use kube::{Client, Config};

/// The kubeconfig path from `MTLS_E2E_KUBECONFIG`; without it, says that `test` is skipped on
/// the process's stderr (not captured by the test harness) and returns `None`.
pub fn kubeconfig(test: &str) -> Option<String> {
    match std::env::var("MTLS_E2E_KUBECONFIG") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: set MTLS_E2E_KUBECONFIG to the kubeconfig of a disposable cluster to run it"
            );
            None
        }
    }
}

/// A small runtime for the test's own API calls (setup, assertions, cleanup).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A client for the kubeconfig at `path` (its current context).
pub async fn client(path: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("read MTLS_E2E_KUBECONFIG");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a usable kubeconfig");
    Client::try_from(config).expect("a client")
}
