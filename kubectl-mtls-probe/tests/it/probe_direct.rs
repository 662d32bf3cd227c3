//! `kubectl_mtls_probe::direct::probe` against an in-process rustls server (ring provider) that
//! requires client certificates the way Envoy does: at the TLS layer. nginx (tested in the
//! probe crate) refuses with an HTTP 400 instead, so this is where the TLS-alert paths are
//! proven:
//!
//! * TLS 1.3: the client's handshake completes without a certificate, and the refusal
//!   (`certificate_required`) arrives on the first read — the probe must still call it a refusal;
//! * TLS 1.2: the refusal is a handshake alert;
//! * a client certificate from another CA is refused by alert, reported as `client-cert-accepted`;
//! * the response is chunked, and its `/headers` JSON carries XFCC `Hash=` of our certificate
//!   (what an Istio gateway sends), matched by SHA-256.

use std::sync::Arc;
use std::time::Duration;

use kubectl_mtls_probe::direct::{DirectReport, DirectRequest, probe};
use kubectl_mtls_probe::report::Status;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use shared::names::DnsName;
use shared::pki::{Bundle, sha256_hex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const DOMAIN: &str = "httpbin.example.com";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves `/headers` over mutual TLS (client certs from `b`'s CA required) until dropped; the
/// body echoes an XFCC element with the SHA-256 of the client certificate it verified.
async fn serve(b: &Bundle, versions: &[&'static SupportedProtocolVersion]) -> std::net::SocketAddr {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(b.ca.cert.der().to_vec()))
        .unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(b.server.cert.der().to_vec())],
            PrivateKeyDer::from_pem_slice(b.server.key.to_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let hash = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| sha256_hex(c.as_ref()))
                    .unwrap_or_default();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(
                    r#"{{"headers":{{"X-Forwarded-Client-Cert":["Hash={hash};Subject=\"\";URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"]}}}}"#
                );
                // Chunked, in two chunks, as Envoy streams bodies.
                let (a, z) = body.split_at(body.len() / 2);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{z}\r\n0\r\n\r\n",
                    a.len(),
                    z.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn request(server: &Bundle, client: &Bundle, addr: std::net::SocketAddr) -> DirectRequest {
    DirectRequest {
        host: DnsName::parse(DOMAIN).unwrap(),
        port: 443,
        connect: Some(addr),
        path: "/headers".into(),
        ca: vec![server.ca.cert.clone()],
        client_chain: vec![client.client.cert.clone()],
        client_key: shared::pki::PrivateKey::from_pem(&client.client.key.to_pem(), "client.key")
            .unwrap(),
        timeout: Duration::from_secs(10),
        cert_origin: "client.crt".into(),
        ca_origin: "ca.crt".into(),
    }
}

fn status(r: &DirectReport, name: &str) -> (Status, String) {
    let c = r
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {r:#?}"));
    (c.status, c.detail.clone())
}

#[tokio::test]
async fn tls13_refusal_arrives_on_first_read_and_hash_matches() {
    let b = test_support::bundle(DOMAIN);
    let addr = serve(&b, &[&rustls::version::TLS13]).await;
    let r = probe(&request(&b, &b, addr)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.tls_version.as_deref(), Some("TLSv1.3"));
    let (s, d) = status(&r, "client-cert-required");
    assert_eq!(s, Status::Passed);
    assert_eq!(
        d,
        "without a client certificate the server refused: TLS alert certificate_required on the first read (under TLS 1.3 the refusal arrives after the handshake)"
    );
    let (s, d) = status(&r, "xfcc");
    assert_eq!(s, Status::Passed, "{d}");
    assert_eq!(d, "element 1 of 1 carries client.crt (Hash match)");
    assert_eq!(
        r.xfcc[0].hash.as_deref(),
        Some(sha256_hex(b.client.cert.der()).as_str())
    );
}

#[tokio::test]
async fn tls12_refusal_is_a_handshake_alert() {
    let b = test_support::bundle(DOMAIN);
    let addr = serve(&b, &[&rustls::version::TLS12]).await;
    let r = probe(&request(&b, &b, addr)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.tls_version.as_deref(), Some("TLSv1.2"));
    let (_, d) = status(&r, "client-cert-required");
    assert!(
        d.starts_with("without a client certificate the server refused: TLS alert ")
            && d.ends_with(" during the handshake"),
        "{d}"
    );
}

#[tokio::test]
async fn client_cert_from_another_ca_is_refused_by_alert() {
    let b = test_support::bundle(DOMAIN);
    let foreign = test_support::bundle(DOMAIN);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let addr = serve(&b, versions).await;
        let r = probe(&request(&b, &foreign, addr)).await;
        assert!(!r.ok, "{r:#?}");
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["client-cert-accepted"], "{r:#?}");
        let (_, d) = status(&r, "client-cert-accepted");
        assert!(
            d.starts_with("the server refused client.crt: TLS alert "),
            "{d}"
        );
        assert_eq!(status(&r, "client-cert-required").0, Status::Passed);
        assert_eq!(status(&r, "http-status").0, Status::Skipped);
    }
}
