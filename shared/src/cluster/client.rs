//! The HTTP client every command talks to the API server with: kube-client's own stack (its TLS
//! connector, connect/read/write timeouts, retry of the server's transient errors, base URI,
//! authentication and impersonation headers), with one difference: `TCP_NODELAY` on, as Go's
//! net/http (kubectl) has it.
//!
//! kube-client's connector leaves Nagle's algorithm on. A request written on a connection just
//! opened then waits for the ACK of the TLS handshake's last record, which the API server delays
//! by its delayed-ACK timer: measured on kube-apiserver 1.32 (bench/README.md), 41-47 ms on each
//! connection opened while others were busy, against 6-11 ms on those already open: most of one
//! host's `enable`.
//!
//! A kubeconfig that needs what this stack does not rebuild — a proxy, or an exec credential
//! plugin (kube-client renews such a client when the credential expires) — gets kube-client's
//! own client.

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Builder as HyperBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// A client for `config`: with `TCP_NODELAY` on, or kube-client's own when the kubeconfig needs
/// a proxy or an exec credential plugin.
pub(super) fn client(config: Config) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() || config.auth_info.exec.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client: hyper_util::client::legacy::Client<_, Body> =
        HyperBuilder::new(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http_client);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
