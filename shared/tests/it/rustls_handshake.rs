//! An in-process mTLS handshake with rustls (ring provider) over 127.0.0.1, using a bundle made by
//! `shared::pki::Bundle::generate`: our CA as the only root on both sides, our server cert for the
//! domain, our client cert required by a `WebPkiClientVerifier`.
//!
//! rustls (webpki) is stricter than OpenSSL in the ways that matter to Istio/Envoy: it ignores the
//! CN and only matches SANs, and it enforces EKUs. So besides the good path this shows that a
//! missing client cert, a wrong name, a leaf used for the wrong purpose, a foreign CA and a
//! certificate without SAN are each refused, for the reason expected.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, Error as TlsError, RootCertStore,
    ServerConfig, SupportedProtocolVersion,
};
use shared::names::DnsName;
use shared::pki::{Bundle, BundleRequest, KeyType, PrivateKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const DOMAIN: &str = "httpbin.example.com";
const CLIENT: &str = "client.example.com";
const PING: &[u8] = b"ping through mTLS";

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

// ---------------------------------------------------------------------------------------------
// Material.

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bundle(key_type: KeyType) -> Bundle {
    Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse(DOMAIN).unwrap(),
            client: DnsName::parse(CLIENT).unwrap(),
            days: 30,
            key_type,
            ca_name: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap_or_else(|e| panic!("generate a {key_type} bundle: {e}"))
}

/// A certificate chain (just the leaf) and its key, as rustls wants them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    fn new(cert_der: &[u8], key_pem: &str) -> Self {
        Self {
            chain: vec![CertificateDer::from(cert_der.to_vec())],
            key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("PKCS#8 key PEM"),
        }
    }

    fn from_issued(cert: &shared::pki::Certificate, key: &PrivateKey) -> Self {
        Self::new(cert.der(), &key.to_pem())
    }
}

/// What a test needs from one bundle: the CA root and both identities.
struct Pki {
    ca: CertificateDer<'static>,
    server: Identity,
    client: Identity,
}

impl Pki {
    fn new(key_type: KeyType) -> Self {
        let b = bundle(key_type);
        // The written PEM is what users deploy: go through it, not only through the DER.
        let ca_pem = b.ca.cert.to_pem();
        Self {
            ca: CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"),
            server: Identity::from_issued(&b.server.cert, &b.server.key),
            client: Identity::from_issued(&b.client.cert, &b.client.key),
        }
    }
}

fn roots(ca: &CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .expect("our CA is a valid trust anchor");
    Arc::new(roots)
}

/// A server presenting `identity` that requires a client cert issued by `client_ca`.
fn server_config(
    identity: &Identity,
    client_ca: Option<&CertificateDer<'static>>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("protocol versions");
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
                .build()
                .expect("client verifier"),
        ),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .expect("rustls accepts the server cert and key");
    Arc::new(config)
}

/// A client trusting only `server_ca`, presenting `identity` if given.
fn client_config(
    server_ca: &CertificateDer<'static>,
    identity: Option<&Identity>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots(server_ca));
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .expect("rustls accepts the client cert and key"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

// ---------------------------------------------------------------------------------------------
// One connection.

/// How one connection went, seen from both ends.
#[derive(Debug)]
struct Outcome {
    /// The server: the client's certificate chain and the bytes it received, or the error.
    server: io::Result<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    /// The client: the echoed bytes, or the step that failed and its error.
    client: Result<Vec<u8>, (&'static str, io::Error)>,
}

/// Connects the client to the server over 127.0.0.1 as `server_name`; the client writes `PING`,
/// the server echoes it back. Bounded by a 10 s timeout so a hang fails instead of blocking.
async fn connect(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let mut buf = vec![0; PING.len()];
        tls.read_exact(&mut buf).await?;
        tls.write_all(&buf).await?;
        tls.shutdown().await?;
        Ok((peer, buf))
    });

    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| ("tcp", e))?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| ("handshake", e))?;
        tls.write_all(PING).await.map_err(|e| ("write", e))?;
        tls.flush().await.map_err(|e| ("write", e))?;
        let mut buf = vec![0; PING.len()];
        tls.read_exact(&mut buf).await.map_err(|e| ("read", e))?;
        Ok(buf)
    };
    let run = async {
        let client = client_side.await;
        let server = server_task.await.expect("server task does not panic");
        Outcome { server, client }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the connection finishes within 10 s")
}

/// The rustls error inside an I/O error from tokio-rustls.
fn tls_error(e: &io::Error) -> Option<&TlsError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
}

#[track_caller]
fn assert_certificate_error(e: &io::Error, expected: fn(&CertificateError) -> bool, what: &str) {
    match tls_error(e) {
        Some(TlsError::InvalidCertificate(ce)) if expected(ce) => {}
        other => panic!("expected {what}, got {other:?} ({e})"),
    }
}

/// The chain does not lead to a trusted root. Both bundles of a test have the same CA name, so
/// webpki finds a root whose subject matches the issuer and then fails on the signature
/// (`BadSignature`); with distinct names it would be `UnknownIssuer`.
fn is_untrusted(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::UnknownIssuer | CertificateError::BadSignature
    )
}

fn is_not_valid_for_name(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
    )
}

fn is_invalid_purpose(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
    )
}

// ---------------------------------------------------------------------------------------------
// The scenarios, for one key type.

/// Our client cert, our server cert, our CA on both sides: the handshake succeeds under TLS 1.3
/// and 1.2, bytes round-trip, and the server saw exactly our client certificate.
async fn mutual_tls_succeeds(pki: &Pki) {
    for versions in [TLS13, TLS12] {
        let out = connect(
            server_config(&pki.server, Some(&pki.ca), versions),
            client_config(&pki.ca, Some(&pki.client), versions),
            DOMAIN,
        )
        .await;
        let echoed = out
            .client
            .unwrap_or_else(|(step, e)| panic!("{versions:?}: client {step}: {e}"));
        assert_eq!(echoed, PING, "{versions:?}");
        let (peer, received) = out
            .server
            .unwrap_or_else(|e| panic!("{versions:?}: server: {e}"));
        assert_eq!(received, PING, "{versions:?}");
        assert_eq!(
            peer, pki.client.chain,
            "{versions:?}: server saw another client cert"
        );
    }
}

/// A client without a certificate: the server refuses it. Under TLS 1.3 the client's handshake
/// completes first (its empty Certificate is judged after its Finished), so the refusal surfaces
/// on the first read as a `certificate_required` alert; under TLS 1.2 the handshake itself fails.
async fn missing_client_cert_is_refused(pki: &Pki) {
    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS13),
        client_config(&pki.ca, None, TLS13),
        DOMAIN,
    )
    .await;
    let server = out
        .server
        .expect_err("server must refuse a client without a cert");
    assert!(
        matches!(tls_error(&server), Some(TlsError::NoCertificatesPresented)),
        "{server:?}"
    );
    let (step, client) = out.client.expect_err("client must see the refusal");
    assert_eq!(
        step, "read",
        "TLS 1.3: the refusal surfaces on the first read ({client})"
    );
    assert!(
        matches!(
            tls_error(&client),
            Some(TlsError::AlertReceived(
                AlertDescription::CertificateRequired
            ))
        ),
        "{client:?}"
    );
    assert!(
        format!("{client:?}").contains("CertificateRequired"),
        "{client:?}"
    );

    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS12),
        client_config(&pki.ca, None, TLS12),
        DOMAIN,
    )
    .await;
    let server = out
        .server
        .expect_err("TLS 1.2 server must refuse a client without a cert");
    assert!(
        matches!(tls_error(&server), Some(TlsError::NoCertificatesPresented)),
        "{server:?}"
    );
    let (step, client) = out.client.expect_err("TLS 1.2 client must see the refusal");
    assert_eq!(step, "handshake", "TLS 1.2: {client}");
}

/// The client asks for another name than the server cert's SAN: rejected by name.
async fn wrong_server_name_is_rejected(pki: &Pki) {
    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS13),
        client_config(&pki.ca, Some(&pki.client), TLS13),
        "other.example.com",
    )
    .await;
    let (step, e) = out
        .client
        .expect_err("a cert for another name must be rejected");
    assert_eq!(step, "handshake");
    assert_certificate_error(&e, is_not_valid_for_name, "NotValidForName");
    assert!(out.server.is_err(), "server must see the aborted handshake");
}

/// Leaves used for the wrong purpose (EKU): the client cert as server cert, the server cert as
/// client cert. webpki enforces EKUs, as Envoy does.
async fn swapped_purposes_are_rejected(pki: &Pki) {
    // Server presents the client cert (SAN DNS:CLIENT, EKU clientAuth), client dials CLIENT so
    // only the EKU is wrong.
    let out = connect(
        server_config(&pki.client, Some(&pki.ca), TLS13),
        client_config(&pki.ca, Some(&pki.client), TLS13),
        CLIENT,
    )
    .await;
    let (_, e) = out
        .client
        .expect_err("a clientAuth-only cert must not serve TLS");
    assert_certificate_error(&e, is_invalid_purpose, "InvalidPurpose (server EKU)");

    // Client presents the server cert (EKU serverAuth).
    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS13),
        client_config(&pki.ca, Some(&pki.server), TLS13),
        DOMAIN,
    )
    .await;
    let e = out
        .server
        .expect_err("a serverAuth-only cert must not authenticate a client");
    assert_certificate_error(&e, is_invalid_purpose, "InvalidPurpose (client EKU)");
}

/// Another bundle's CA on either side: the chain is not trusted. Both bundles use the same names
/// (CA name included), so only the keys differ: a look-alike CA is not accepted.
async fn foreign_ca_is_rejected(pki: &Pki, other: &Pki) {
    // The client trusts another CA than the one that signed the server cert.
    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS13),
        client_config(&other.ca, Some(&pki.client), TLS13),
        DOMAIN,
    )
    .await;
    let (_, e) = out.client.expect_err("server cert from a foreign CA");
    assert_certificate_error(&e, is_untrusted, "UnknownIssuer/BadSignature (server cert)");

    // The client presents a cert (same DN and SAN) from another CA.
    let out = connect(
        server_config(&pki.server, Some(&pki.ca), TLS13),
        client_config(&pki.ca, Some(&other.client), TLS13),
        DOMAIN,
    )
    .await;
    let e = out.server.expect_err("client cert from a foreign CA");
    assert_certificate_error(&e, is_untrusted, "UnknownIssuer/BadSignature (client cert)");
}

async fn all_scenarios(key_type: KeyType) {
    let pki = Pki::new(key_type);
    let other = Pki::new(key_type);
    mutual_tls_succeeds(&pki).await;
    missing_client_cert_is_refused(&pki).await;
    wrong_server_name_is_rejected(&pki).await;
    swapped_purposes_are_rejected(&pki).await;
    foreign_ca_is_rejected(&pki, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_p256_bundle() {
    all_scenarios(KeyType::EcdsaP256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_2048_bundle() {
    all_scenarios(KeyType::Rsa2048).await;
}

// ---------------------------------------------------------------------------------------------
// The SAN rule: rustls ignores the CN.

/// A CA and a server leaf for `DOMAIN` made with rcgen directly; the leaf has the CN `DOMAIN` and
/// the SAN only if `with_san`.
fn rcgen_server(with_san: bool) -> (CertificateDer<'static>, Identity) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "SAN rule test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let sans = if with_san {
        vec![DOMAIN.to_owned()]
    } else {
        vec![]
    };
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(sans).unwrap();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, DOMAIN);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    // Make sure the fixture is what it claims: CN = DOMAIN, SAN extension present iff with_san.
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf_cert.der()).unwrap();
    let cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), DOMAIN);
    assert_eq!(
        parsed.subject_alternative_name().unwrap().is_some(),
        with_san
    );

    let identity = Identity::new(leaf_cert.der(), &leaf_key.serialize_pem());
    (ca_cert.der().clone(), identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_without_san_is_rejected() {
    // Control: the same construction with the SAN is accepted, so the only difference is the SAN.
    let (ca, with_san) = rcgen_server(true);
    let out = connect(
        server_config(&with_san, None, TLS13),
        client_config(&ca, None, TLS13),
        DOMAIN,
    )
    .await;
    let echoed = out
        .client
        .unwrap_or_else(|(step, e)| panic!("control: client {step}: {e}"));
    assert_eq!(echoed, PING);

    let (ca, cn_only) = rcgen_server(false);
    let out = connect(
        server_config(&cn_only, None, TLS13),
        client_config(&ca, None, TLS13),
        DOMAIN,
    )
    .await;
    let (step, e) = out
        .client
        .expect_err("a CN-only server cert must be rejected");
    assert_eq!(step, "handshake");
    assert_certificate_error(&e, is_not_valid_for_name, "NotValidForName (no SAN)");
}
