//! `kubectl mtls-probe direct`: workstation → target, over the real network path, with the
//! certificates from stage 1.
//!
//! Two connections run side by side (so the probe costs about one connection's time):
//!
//! * **without** a client certificate: the target must refuse it. Under TLS 1.3 a server that
//!   requires a client certificate still lets the client finish its handshake; the refusal (a
//!   `certificate_required` alert) arrives on the first read, so the probe sends a request and
//!   reads. nginx instead answers `400 No required SSL certificate was sent`: also a refusal.
//! * **with** our client certificate, verification on (our CA only, SAN must cover `--host`):
//!   `GET --path` must answer 200. When the body is httpbin's `/headers` JSON, the
//!   `X-Forwarded-Client-Cert` header must carry *our* certificate (see [`super::xfcc`]).
//!
//! Each way it can fail is its own check, so the report says which: DNS, TCP, server not trusted
//! (wrong CA), SAN mismatch, TLS, client certificate not required, client certificate refused,
//! HTTP status, XFCC. The server chain as presented is reported even when it is not trusted.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::http::{self, HttpError, ReadError, Response};
use super::report::{self, Check, Status};
use super::xfcc::{self, ClientIdentity, ElementVerdict, XfccElement};
use shared::cli::{OutputFormat, write_output};
use shared::error::Error;
use shared::names::DnsName;
use shared::pki::{
    CertSummary, Certificate, CredentialFiles, PkiError, PrivateKey, read_file, summarize,
};

/// Check that the target refuses a client without a certificate and answers 200 with ours (exit 1 if not)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 every check passed, 1 a check failed, 2 bad input.

Examples:
  # The target as users reach it (DNS, port 443), with the bundle from `kubectl mtls-certs gen`
  kubectl mtls-probe direct --host httpbin.example.com --cert ./mtls/client.crt --key ./mtls/client.key --ca ./mtls/ca.crt

  # Before DNS points at the target: connect to an address, still verifying the name (like curl --resolve)
  kubectl mtls-probe direct --host httpbin.example.com --connect 203.0.113.10 --cert client.crt --key client.key --ca ca.crt -o json"
)]
pub(crate) struct DirectArgs {
    /// The target host name: sent as SNI and Host, and the name the server certificate must cover
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// The target port
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// Connect to this address instead of resolving HOST (IP or IP:PORT; PORT defaults to --port)
    #[arg(long, value_name = "IP[:PORT]")]
    pub connect: Option<String>,
    /// Our client certificate (PEM; leaf first, then intermediates)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// The private key of --cert (PEM; read only to sign the handshake, never printed)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The CA that signed the target's server certificate (PEM), the only one trusted
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// The path to GET; httpbin's /headers JSON also lets the probe check X-Forwarded-Client-Cert
    #[arg(long, default_value = "/headers")]
    pub path: String,
    /// How long each connection may take, from DNS to the last byte of the response, e.g. 10s, 1m (a plain number means seconds)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = shared::cluster::parse_request_timeout)]
    pub timeout: Duration,
    /// Output format (yaml is treated as json's structure in YAML)
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Everything a probe needs, validated.
#[derive(Debug)]
pub struct DirectRequest {
    /// The target name (SNI, Host, and the SAN the server certificate must cover).
    pub host: DnsName,
    /// The target port.
    pub port: u16,
    /// Where to connect instead of resolving `host`.
    pub connect: Option<SocketAddr>,
    /// The path to GET.
    pub path: String,
    /// Trusted CA(s) for the server certificate.
    pub ca: Vec<Certificate>,
    /// Our client certificate chain, leaf first.
    pub client_chain: Vec<Certificate>,
    /// Our client key (matches the leaf).
    pub client_key: PrivateKey,
    /// How long each connection may take.
    pub timeout: Duration,
    /// How `--cert` is named in messages.
    pub cert_origin: String,
    /// How `--ca` is named in messages.
    pub ca_origin: String,
}

/// What the probe found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectReport {
    /// The target host.
    pub host: String,
    /// The target port.
    pub port: u16,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether no check failed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The negotiated TLS version, e.g. `TLSv1.3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The negotiated cipher suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// The HTTP status of the request with our certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The server's certificates as presented (leaf first), trusted or not.
    pub server_chain: Vec<CertSummary>,
    /// The `X-Forwarded-Client-Cert` elements the target echoed, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xfcc: Vec<XfccElement>,
}

/// Runs `direct`.
pub(crate) async fn run(args: &DirectArgs, out: &mut dyn Write) -> Result<(), Error> {
    let req = request_from_args(args)?;
    let report = probe(&req).await;
    write_output(out, args.output, &report, |out| render(&report, out))?;
    report::outcome(&format!("{}:{}", report.host, report.port), &report.checks)
}

fn render(report: &DirectReport, out: &mut dyn Write) -> Result<(), Error> {
    write!(out, "{}", report::table(&report.checks))?;
    if !report.server_chain.is_empty() {
        let mut t =
            shared::cli::Table::new(["SERVER CHAIN", "SUBJECT", "SAN", "ISSUER", "EXPIRES"]);
        for (i, c) in report.server_chain.iter().enumerate() {
            t.row([
                if i == 0 {
                    "leaf".to_string()
                } else {
                    format!("#{i}")
                },
                c.subject.clone(),
                c.sans.join(", "),
                c.issuer.clone(),
                format!("{} ({} days left)", c.not_after, c.days_left),
            ]);
        }
        write!(out, "\n{t}")?;
    }
    Ok(())
}

/// Validates the flags and reads the files: every problem here is bad input (exit 2).
pub(crate) fn request_from_args(args: &DirectArgs) -> Result<DirectRequest, Error> {
    let host = DnsName::parse_exact(&args.host)?;
    if args.port == 0 {
        return Err(Error::Usage(
            "--port 0 is not a port: pass the target's TLS port (443 by default)".into(),
        ));
    }
    let connect = args
        .connect
        .as_deref()
        .map(|c| parse_connect(c, args.port))
        .transpose()?;
    if !args.path.starts_with('/')
        || args
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "--path {:?} is not an absolute request path: start it with / and leave out spaces (e.g. /headers)",
            args.path
        )));
    }
    if args.timeout.is_zero() {
        return Err(Error::Usage(
            "--timeout 0 leaves no time to connect: pass a duration, e.g. --timeout 10s".into(),
        ));
    }
    let files = CredentialFiles {
        cert: &args.cert,
        key: &args.key,
        ca: &args.ca,
    };
    Ok(DirectRequest {
        connect,
        path: args.path.clone(),
        timeout: args.timeout,
        ..DirectRequest::from_files(host, args.port, files)?
    })
}

impl DirectRequest {
    /// A probe of `host:port` (resolved here) with our client certificate and the CA that
    /// signed the server's, read from `files`: `GET /headers`, 10 s per connection.
    pub fn from_files(host: DnsName, port: u16, files: CredentialFiles<'_>) -> Result<Self, Error> {
        let ca_origin = files.ca.display().to_string();
        let ca = Certificate::parse_chain(&read_file(files.ca)?, &ca_origin)?;
        if !ca.iter().any(Certificate::is_ca) {
            return Err(PkiError::NotCa { origin: ca_origin }.into());
        }
        let cert_origin = files.cert.display().to_string();
        let client_chain = Certificate::parse_chain(&read_file(files.cert)?, &cert_origin)?;
        let key_origin = files.key.display().to_string();
        let client_key = PrivateKey::from_pem(&read_file(files.key)?, &key_origin)?;
        if client_key.public_key_info() != client_chain[0].public_key_info() {
            return Err(PkiError::KeyMismatch {
                key: key_origin,
                cert: cert_origin,
            }
            .into());
        }
        Ok(DirectRequest {
            host,
            port,
            connect: None,
            path: "/headers".into(),
            ca,
            client_chain,
            client_key,
            timeout: Duration::from_secs(10),
            cert_origin,
            ca_origin,
        })
    }
}

/// Parses `--connect`: `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; the port defaults to `port`.
pub(crate) fn parse_connect(text: &str, port: u16) -> Result<SocketAddr, Error> {
    let bad = || {
        Error::Usage(format!(
            "--connect {text:?} is not an address: pass IP or IP:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)"
        ))
    };
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return v6
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, port))
            .map_err(|_| bad());
    }
    let addr: SocketAddr = text.parse().map_err(|_| bad())?;
    if addr.port() == 0 {
        return Err(bad());
    }
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// The two connections.

/// The server chain as presented and what rustls (webpki) said about it.
#[derive(Debug, Clone)]
struct ServerSeen {
    chain: Vec<CertificateDer<'static>>,
    verdict: Result<(), rustls::Error>,
}

/// Verifies exactly as rustls's WebPKI verifier does, and remembers what the server presented
/// and the verdict, so a rejected chain can still be reported and classified.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<ServerSeen>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(ServerSeen {
            chain,
            verdict: verdict.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Where a connection attempt stopped.
#[derive(Debug)]
enum End {
    /// TCP connect failed.
    Tcp(std::io::Error),
    /// The deadline passed during this stage.
    Timeout(&'static str),
    /// The TLS handshake failed.
    Handshake(std::io::Error),
    /// Sending the request failed.
    Write(std::io::Error),
    /// Reading the response failed at the transport (TLS alerts land here under TLS 1.3).
    Read {
        error: std::io::Error,
        received: usize,
    },
    /// The reply was not valid HTTP.
    Http(HttpError),
    /// A response arrived.
    Response(Response),
}

/// One connection's story.
#[derive(Debug)]
struct Attempt {
    server: Option<ServerSeen>,
    tls: Option<(String, String)>,
    end: End,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    req: &DirectRequest,
    with_cert: bool,
) -> Result<(Arc<ClientConfig>, Arc<RecordingVerifier>), Error> {
    let mut roots = RootCertStore::empty();
    for ca in &req.ca {
        roots
            .add(CertificateDer::from(ca.der().to_vec()))
            .map_err(|e| PkiError::Unsupported {
                origin: req.ca_origin.clone(),
                what: format!("a CA certificate rustls cannot use as a trust anchor ({e})"),
            })?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| PkiError::Crypto(format!("cannot build the server verifier: {e}")))?;
    let verifier = Arc::new(RecordingVerifier {
        inner,
        seen: Mutex::new(None),
    });
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Crypto(format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let config = if with_cert {
        let chain = req
            .client_chain
            .iter()
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(req.client_key.to_pem().as_bytes())
            .map_err(|e| PkiError::Crypto(format!("cannot re-read the client key: {e}")))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| PkiError::Unsupported {
                origin: req.cert_origin.clone(),
                what: format!("a certificate and key rustls refuses as a client identity ({e})"),
            })?
    } else {
        builder.with_no_client_auth()
    };
    Ok((Arc::new(config), verifier))
}

async fn attempt(
    req: &DirectRequest,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    verifier: Arc<RecordingVerifier>,
) -> Attempt {
    let deadline = Instant::now() + req.timeout;
    let mut tls_info = None;
    let end = async {
        let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return End::Timeout("connect"),
            Ok(Err(e)) => return End::Tcp(e),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(req.host.as_str().to_owned())
            .expect("a validated DNS name is a valid server name");
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let mut tls = match tokio::time::timeout_at(deadline, handshake).await {
            Err(_) => return End::Timeout("handshake"),
            Ok(Err(e)) => return End::Handshake(e),
            Ok(Ok(tls)) => tls,
        };
        let conn = tls.get_ref().1;
        tls_info = Some((
            conn.protocol_version()
                .map_or_else(|| "unknown".into(), version_name),
            conn.negotiated_cipher_suite()
                .map_or_else(|| "unknown".into(), |s| format!("{:?}", s.suite())),
        ));
        let request = http::get_request(req.host.as_str(), req.port, &req.path);
        let write = async {
            tls.write_all(&request).await?;
            tls.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Err(_) => return End::Timeout("request"),
            Ok(Err(e)) => return End::Write(e),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, http::read_response(&mut tls)).await {
            Err(_) => End::Timeout("response"),
            Ok(Err(ReadError::Io { error, received })) => End::Read { error, received },
            Ok(Err(ReadError::Http(e))) => End::Http(e),
            Ok(Ok(r)) => End::Response(r),
        }
    }
    .await;
    let server = verifier
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    Attempt {
        server,
        tls: tls_info,
        end,
    }
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// The rustls error inside an I/O error from tokio-rustls.
fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The TLS alert the server sent, if that is what `e` is.
fn alert(e: &std::io::Error) -> Option<AlertDescription> {
    match tls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => Some(*a),
        _ => None,
    }
}

/// An alert as the TLS RFCs name it (`certificate_required`).
fn alert_name(a: AlertDescription) -> String {
    let debug = format!("{a:?}");
    let known = match a {
        AlertDescription::CertificateRequired => "certificate_required",
        AlertDescription::UnknownCA => "unknown_ca",
        AlertDescription::BadCertificate => "bad_certificate",
        AlertDescription::CertificateUnknown => "certificate_unknown",
        AlertDescription::CertificateExpired => "certificate_expired",
        AlertDescription::CertificateRevoked => "certificate_revoked",
        AlertDescription::UnsupportedCertificate => "unsupported_certificate",
        AlertDescription::HandshakeFailure => "handshake_failure",
        AlertDescription::AccessDenied => "access_denied",
        AlertDescription::DecryptError => "decrypt_error",
        AlertDescription::ProtocolVersion => "protocol_version",
        AlertDescription::InternalError => "internal_error",
        _ => return debug,
    };
    known.to_string()
}

// ---------------------------------------------------------------------------------------------
// The probe and its verdicts.

enum Resolution {
    Given(SocketAddr),
    Resolved(Vec<SocketAddr>),
    Failed(String),
}

async fn resolve(req: &DirectRequest) -> Resolution {
    if let Some(addr) = req.connect {
        return Resolution::Given(addr);
    }
    let lookup = tokio::net::lookup_host((req.host.as_str(), req.port));
    match tokio::time::timeout(req.timeout, lookup).await {
        Err(_) => Resolution::Failed(format!("no DNS answer within {}s", req.timeout.as_secs())),
        Ok(Err(e)) => Resolution::Failed(e.to_string()),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Resolution::Failed("no addresses".into())
            } else {
                Resolution::Resolved(addrs)
            }
        }
    }
}

/// Runs the probe. Never fails as a whole: every problem is a failed check in the report.
pub async fn probe(req: &DirectRequest) -> DirectReport {
    let mut report = DirectReport {
        host: req.host.to_string(),
        port: req.port,
        address: None,
        ok: false,
        checks: Vec::new(),
        tls_version: None,
        cipher_suite: None,
        http_status: None,
        server_chain: Vec::new(),
        xfcc: Vec::new(),
    };
    let addr = match resolve(req).await {
        Resolution::Given(addr) => {
            report.checks.push(Check::skipped(
                "dns",
                format!("--connect {addr}: DNS not consulted"),
            ));
            addr
        }
        Resolution::Resolved(addrs) => {
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            report.checks.push(Check::passed(
                "dns",
                format!("{} resolves to {}", req.host, list.join(", ")),
            ));
            addrs[0]
        }
        Resolution::Failed(why) => {
            report.checks.push(Check::failed(
                "dns",
                format!(
                    "cannot resolve {}: {why}: check the name and your resolver, or pass --connect IP to probe an address directly",
                    req.host
                ),
            ));
            skip_rest(&mut report.checks, "dns", "not run: DNS failed");
            return finish(report);
        }
    };
    report.address = Some(addr.to_string());

    let configs = client_config(req, true).and_then(|a| Ok((a, client_config(req, false)?)));
    let ((with_config, with_verifier), (without_config, without_verifier)) = match configs {
        Ok(c) => c,
        Err(e) => {
            report
                .checks
                .push(Check::failed("tls", format!("cannot set up TLS: {e}")));
            skip_rest(
                &mut report.checks,
                "tls",
                "not run: TLS could not be set up",
            );
            return finish(report);
        }
    };
    let (with, without) = tokio::join!(
        attempt(req, addr, with_config, with_verifier),
        attempt(req, addr, without_config, without_verifier),
    );
    evaluate(req, addr, &with, &without, &mut report);
    finish(report)
}

fn finish(mut report: DirectReport) -> DirectReport {
    report.ok = report.checks.iter().all(|c| c.status != Status::Failed);
    report
}

/// The check names in report order.
pub(crate) const CHECKS: [&str; 9] = [
    "dns",
    "tcp",
    "server-trust",
    "server-name",
    "tls",
    "client-cert-required",
    "client-cert-accepted",
    "http-status",
    "xfcc",
];

/// Adds every check after `after` as skipped with `why`.
fn skip_rest(checks: &mut Vec<Check>, after: &str, why: &str) {
    let start = CHECKS.iter().position(|c| *c == after).map_or(0, |i| i + 1);
    for name in &CHECKS[start..] {
        checks.push(Check::skipped(name, why));
    }
}

/// What the server's certificate verdict means for the two server checks.
enum ServerVerdict {
    Trusted { name_ok: bool },
    NotTrusted(String),
    Other(String),
}

fn classify_server(seen: &ServerSeen) -> ServerVerdict {
    match &seen.verdict {
        Ok(()) => ServerVerdict::Trusted { name_ok: true },
        // webpki checks the chain first, then the name: a name error means the chain was fine.
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => ServerVerdict::Trusted { name_ok: false },
        Err(rustls::Error::InvalidCertificate(ce)) => ServerVerdict::NotTrusted(match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "is not signed by a CA in".to_string()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "has expired (checked against".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "is not valid yet (checked against".to_string()
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "is not allowed for TLS servers (no EKU serverAuth; checked against".to_string()
            }
            other => format!("was rejected ({other:?}) by"),
        }),
        Err(other) => ServerVerdict::Other(other.to_string()),
    }
}

/// Whether a response is nginx's (or a similar server's) refusal of a client certificate:
/// 400/495/496 with a body about the SSL certificate.
fn certificate_refusal(r: &Response) -> bool {
    matches!(r.status, 400 | 495 | 496)
        && String::from_utf8_lossy(&r.body)
            .to_ascii_lowercase()
            .contains("certificate")
}

/// A short description of a body: an HTML `<title>`, else its first line (at most 100 chars).
fn body_summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && start + 7 <= end
    {
        return text[start + 7..end].trim().to_string();
    }
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.chars().take(100).collect()
}

/// `HTTP 400 No required SSL certificate was sent`: the status and what the body says, without
/// repeating the code when the body's title already starts with it (nginx's pages do).
fn status_line(r: &Response) -> String {
    let summary = body_summary(&r.body);
    if summary.starts_with(&r.status.to_string()) {
        format!("HTTP {summary}")
    } else if summary.is_empty() {
        format!("HTTP {} {}", r.status, r.reason)
    } else {
        format!("HTTP {} {summary}", r.status)
    }
}

fn describe_end_without_response(end: &End) -> Option<String> {
    Some(match end {
        End::Handshake(e) => match alert(e) {
            Some(a) => format!("TLS alert {} during the handshake", alert_name(a)),
            None => format!("the handshake ended: {e}"),
        },
        End::Write(e) => format!("the connection closed before the request was sent ({e})"),
        End::Read { error, received } => match alert(error) {
            Some(a) => format!(
                "TLS alert {} on the first read (under TLS 1.3 the refusal arrives after the handshake)",
                alert_name(a)
            ),
            None if *received == 0 => {
                format!("the connection closed without an answer ({error})")
            }
            None => format!("the connection broke after {received} bytes of the answer ({error})"),
        },
        _ => return None,
    })
}

fn evaluate(
    req: &DirectRequest,
    addr: SocketAddr,
    with: &Attempt,
    without: &Attempt,
    report: &mut DirectReport,
) {
    let checks = &mut report.checks;
    let secs = req.timeout.as_secs();
    // TCP.
    match &with.end {
        End::Tcp(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    ": nothing listens there — check the port (--port) and that the target's ingress gateway is up"
                }
                _ => ": check the address, routes and firewalls",
            };
            checks.push(Check::failed(
                "tcp",
                format!("cannot connect to {addr}: {e}{hint}"),
            ));
            skip_rest(checks, "tcp", "not run: no TCP connection");
            return;
        }
        End::Timeout("connect") => {
            checks.push(Check::failed(
                "tcp",
                format!(
                    "no TCP answer from {addr} within {secs}s: a firewall or NetworkPolicy drops the traffic, or the address is wrong"
                ),
            ));
            skip_rest(checks, "tcp", "not run: no TCP connection");
            return;
        }
        _ => checks.push(Check::passed("tcp", format!("connected to {addr}"))),
    }

    // The server certificate, from whichever connection saw it.
    let Some(seen) = with.server.as_ref().or(without.server.as_ref()) else {
        checks.push(Check::skipped(
            "server-trust",
            "not run: the server sent no certificate",
        ));
        checks.push(Check::skipped(
            "server-name",
            "not run: the server sent no certificate",
        ));
        let detail = match &with.end {
            End::Timeout(stage) => format!("no TLS answer within {secs}s (stage: {stage})"),
            End::Handshake(e) => format!(
                "TLS handshake with {addr} failed before the server sent a certificate: {e}: is this a TLS port?"
            ),
            other => format!("unexpected end of the connection: {other:?}"),
        };
        checks.push(Check::failed("tls", detail));
        skip_rest(checks, "tls", "not run: no TLS connection");
        return;
    };
    report.server_chain = seen
        .chain
        .iter()
        .filter_map(|c| Certificate::from_der(c.to_vec(), "the server chain").ok())
        .map(|c| summarize(&c, time::OffsetDateTime::now_utc()))
        .collect();
    let leaf = Certificate::from_der(seen.chain[0].to_vec(), "the server certificate").ok();
    let leaf_desc = report.server_chain.first().map_or_else(String::new, |c| {
        format!("{} (issuer {})", c.subject, c.issuer)
    });
    let sans = leaf.as_ref().map(Certificate::dns_sans).unwrap_or_default();
    let name_covered = sans
        .iter()
        .any(|s| DnsName::parse(s).is_ok_and(|n| n.covers(req.host.as_str())));
    let sans_text = if sans.is_empty() {
        "no DNS SAN".to_string()
    } else {
        sans.iter()
            .map(|s| format!("DNS:{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name_check = |covered: bool| {
        if covered {
            Check::passed(
                "server-name",
                format!("{} is covered by {sans_text}", req.host),
            )
        } else {
            Check::failed(
                "server-name",
                format!(
                    "the server certificate names {sans_text}, not {}: the target serves a certificate for another host — issue one with SAN DNS:{} (kubectl mtls-certs issue server)",
                    req.host, req.host
                ),
            )
        }
    };
    let trusted = match classify_server(seen) {
        ServerVerdict::Trusted { name_ok } => {
            checks.push(Check::passed(
                "server-trust",
                format!("{leaf_desc} chains to a CA in {}", req.ca_origin),
            ));
            checks.push(name_check(name_ok));
            name_ok
        }
        ServerVerdict::NotTrusted(why) => {
            checks.push(Check::failed(
                "server-trust",
                format!(
                    "the server certificate {leaf_desc} {why} {}: pass the CA that signed the target's server certificate with --ca",
                    req.ca_origin
                ),
            ));
            // The name is judged on the presented leaf all the same.
            checks.push(name_check(name_covered));
            false
        }
        ServerVerdict::Other(e) => {
            checks.push(Check::failed(
                "server-trust",
                format!("the server certificate {leaf_desc} could not be verified: {e}"),
            ));
            checks.push(name_check(name_covered));
            false
        }
    };
    if !trusted {
        skip_rest(
            checks,
            "server-name",
            "not run: we do not talk to a server we cannot verify",
        );
        return;
    }

    // TLS version.
    match with.tls.as_ref().or(without.tls.as_ref()) {
        Some((version, suite)) => {
            report.tls_version = Some(version.clone());
            report.cipher_suite = Some(suite.clone());
            checks.push(Check::passed("tls", format!("{version}, {suite}")));
        }
        None => match (&with.end, &without.end) {
            (End::Handshake(e), _) if alert(e).is_some() => checks.push(Check::skipped(
                "tls",
                "the server ended the handshake (see client-cert-accepted)",
            )),
            (End::Timeout(stage), _) => {
                checks.push(Check::failed(
                    "tls",
                    format!("the TLS handshake did not finish within {secs}s (stage: {stage})"),
                ));
            }
            (other, _) => checks.push(Check::failed(
                "tls",
                format!("the TLS handshake with {addr} failed: {other:?}"),
            )),
        },
    }

    // Without a client certificate: must be refused.
    checks.push(match &without.end {
        End::Response(r) if certificate_refusal(r) => Check::passed(
            "client-cert-required",
            format!(
                "without a client certificate the server refused: {}",
                status_line(r)
            ),
        ),
        End::Response(r) => Check::failed(
            "client-cert-required",
            format!(
                "without a client certificate the server answered HTTP {} {}: it does not require client certificates — mutual TLS is not enforced (an Istio Gateway needs tls.mode MUTUAL)",
                r.status, r.reason
            ),
        ),
        End::Timeout(stage) => Check::failed(
            "client-cert-required",
            format!(
                "without a client certificate the server neither answered nor refused within {secs}s (stage: {stage})"
            ),
        ),
        End::Http(e) => Check::failed(
            "client-cert-required",
            format!("without a client certificate the server sent an unreadable reply: {e}"),
        ),
        End::Tcp(e) => Check::failed(
            "client-cert-required",
            format!("the second connection to {addr} failed: {e}"),
        ),
        other => Check::passed(
            "client-cert-required",
            format!(
                "without a client certificate the server refused: {}",
                describe_end_without_response(other).unwrap_or_default()
            ),
        ),
    });

    // With ours: accepted, then HTTP 200, then XFCC.
    let cert_name = &req.cert_origin;
    let refused = |how: String| {
        Check::failed(
            "client-cert-accepted",
            format!(
                "the server refused {cert_name}: {how}: the target must trust the CA that signed it (the cacert of its credential Secret), and the certificate must be valid with EKU clientAuth"
            ),
        )
    };
    let response = match &with.end {
        End::Response(r) if certificate_refusal(r) => {
            checks.push(refused(status_line(r)));
            None
        }
        End::Response(r) => {
            checks.push(Check::passed(
                "client-cert-accepted",
                format!(
                    "{cert_name} ({}) was accepted",
                    req.client_chain[0].x509().subject()
                ),
            ));
            Some(r)
        }
        End::Http(e) => {
            checks.push(Check::passed(
                "client-cert-accepted",
                "the TLS layer accepted our certificate",
            ));
            checks.push(Check::failed(
                "http-status",
                format!("GET {} got an unreadable reply: {e}", req.path),
            ));
            checks.push(Check::skipped("xfcc", "not run: no HTTP response"));
            return;
        }
        End::Timeout(stage) => {
            checks.push(Check::failed(
                "client-cert-accepted",
                format!("no answer within {secs}s with our certificate (stage: {stage})"),
            ));
            None
        }
        other => {
            checks.push(refused(
                describe_end_without_response(other).unwrap_or_else(|| format!("{other:?}")),
            ));
            None
        }
    };
    let Some(response) = response else {
        skip_rest(
            checks,
            "client-cert-accepted",
            "not run: our client certificate was not accepted",
        );
        return;
    };
    report.http_status = Some(response.status);
    if response.status == 200 {
        checks.push(Check::passed(
            "http-status",
            format!("GET {} answered 200 {}", req.path, response.reason),
        ));
    } else {
        checks.push(Check::failed(
            "http-status",
            format!(
                "GET {} answered {} {} ({}): expected 200 — check the path and the target's routing (VirtualService/APIRule)",
                req.path,
                response.status,
                response.reason,
                body_summary(&response.body)
            ),
        ));
        checks.push(Check::skipped(
            "xfcc",
            "not run: the request did not answer 200",
        ));
        return;
    }
    let id = ClientIdentity::from_certificate(&req.client_chain[0]);
    let (check, elements) = xfcc_check(&response.body, &id, cert_name);
    report.xfcc = elements;
    checks.push(check);
}

/// The `X-Forwarded-Client-Cert` values in an httpbin `/headers` body (`{"headers": {...}}`,
/// values a string or an array of strings, as go-httpbin returns them); `None` when the body is
/// not that JSON.
pub(crate) fn headers_xfcc(body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let headers = value.get("headers")?.as_object()?;
    let mut out = Vec::new();
    for (name, v) in headers {
        if !name.eq_ignore_ascii_case("x-forwarded-client-cert") {
            continue;
        }
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => {
                out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
            }
            _ => {}
        }
    }
    Some(out)
}

/// The `xfcc` check for a 200 body: whether an element carries our certificate.
pub(crate) fn xfcc_check(
    body: &[u8],
    id: &ClientIdentity,
    cert_name: &str,
) -> (Check, Vec<XfccElement>) {
    let Some(values) = headers_xfcc(body) else {
        return (
            Check::skipped(
                "xfcc",
                "the body is not httpbin /headers JSON: X-Forwarded-Client-Cert not checked (use --path /headers against httpbin)",
            ),
            Vec::new(),
        );
    };
    if values.is_empty() {
        return (
            Check::failed(
                "xfcc",
                "no X-Forwarded-Client-Cert reached the target: the gateway did not forward the client certificate (Istio gateways set it unless forwardClientCertDetails is changed)",
            ),
            Vec::new(),
        );
    }
    let mut elements = Vec::new();
    for v in &values {
        match xfcc::parse(v) {
            Ok(mut e) => elements.append(&mut e),
            Err(e) => return (Check::failed("xfcc", e.to_string()), Vec::new()),
        }
    }
    let check = match xfcc::find_client(&elements, id) {
        Some((i, evidence)) => Check::passed(
            "xfcc",
            format!(
                "element {} of {} carries {cert_name} ({} match{})",
                i + 1,
                elements.len(),
                evidence
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if evidence
                    .iter()
                    .any(|e| matches!(e, xfcc::Evidence::Hash | xfcc::Evidence::Cert))
                {
                    ""
                } else {
                    "; names only, no Hash or Cert to prove it is this very certificate"
                }
            ),
        ),
        None => {
            let seen: Vec<String> = elements
                .iter()
                .map(|e| {
                    let what = e
                        .subject
                        .clone()
                        .or_else(|| e.dns.first().cloned())
                        .unwrap_or_else(|| "no subject".into());
                    match xfcc::judge(e, id) {
                        ElementVerdict::Other => {
                            format!("{what} (another certificate: Hash/Cert differ)")
                        }
                        _ => what,
                    }
                })
                .collect();
            Check::failed(
                "xfcc",
                format!(
                    "none of the {} X-Forwarded-Client-Cert elements is {cert_name} (SHA-256 {}): seen {}; the target received another client certificate",
                    elements.len(),
                    id.sha256,
                    seen.join("; ")
                ),
            )
        }
    };
    (check, elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_addresses() {
        assert_eq!(
            parse_connect("127.0.0.1", 443).unwrap(),
            "127.0.0.1:443".parse().unwrap()
        );
        assert_eq!(
            parse_connect("127.0.0.1:8443", 443).unwrap(),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(parse_connect("::1", 9).unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(
            parse_connect("[::1]", 9).unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            parse_connect("[::1]:8443", 9).unwrap(),
            "[::1]:8443".parse().unwrap()
        );
        for bad in [
            "",
            "localhost",
            "host.example.com:443",
            "1.2.3.4:",
            "1.2.3.4:0",
            "1.2.3.4:99999",
            "[::1",
        ] {
            let e = parse_connect(bad, 443).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().starts_with("--connect "), "{e}");
        }
    }

    #[test]
    fn httpbin_headers_strings_or_arrays() {
        let go = br#"{"headers":{"Accept":["*/*"],"X-Forwarded-Client-Cert":["Hash=a;Subject=\"CN=x\"","Hash=b"]}}"#;
        assert_eq!(
            headers_xfcc(go).unwrap(),
            ["Hash=a;Subject=\"CN=x\"", "Hash=b"]
        );
        let py = br#"{"headers":{"x-forwarded-client-cert":"Hash=c"}}"#;
        assert_eq!(headers_xfcc(py).unwrap(), ["Hash=c"]);
        assert_eq!(
            headers_xfcc(br#"{"headers":{"Host":"a"}}"#).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(headers_xfcc(b"<html>"), None);
        assert_eq!(headers_xfcc(br#"{"origin":"1.2.3.4"}"#), None);
        assert_eq!(headers_xfcc(br#"[1]"#), None);
    }

    #[test]
    fn body_summaries() {
        assert_eq!(
            body_summary(
                b"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>"
            ),
            "400 No required SSL certificate was sent"
        );
        assert_eq!(body_summary(b"\n\nfirst line\nsecond"), "first line");
        assert_eq!(body_summary(b""), "");
        assert_eq!(body_summary(b"</title><title>"), "</title><title>");
    }

    #[test]
    fn skip_rest_follows_the_report_order() {
        let mut checks = Vec::new();
        skip_rest(&mut checks, "client-cert-accepted", "x");
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(names, ["http-status", "xfcc"]);
    }
}
