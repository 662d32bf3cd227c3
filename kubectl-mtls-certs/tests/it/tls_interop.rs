//! Real TLS interop of the bundle `kubectl mtls-certs gen` writes, against Debian's own tools:
//!
//! * nginx on 127.0.0.1 with `ssl_verify_client on`, our server cert and our CA, driven by curl:
//!   no client cert is refused, our client cert is accepted with server verification on (no `-k`),
//!   a foreign CA on either side is refused;
//! * `openssl verify` with `-purpose` and `-verify_hostname`: each leaf is valid for its own
//!   purpose and name, and invalid for the swapped purpose and another name.
//!
//! Both the default (ECDSA P-256) and the RSA-2048 bundle are exercised. nginx, curl and openssl
//! are required: when one is missing the test fails with an install hint instead of passing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use test_support::nginx::{Nginx, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_certs");
pub(crate) const DOMAIN: &str = "nginx.example.com";
pub(crate) const CLIENT: &str = "client.example.com";

// ---------------------------------------------------------------------------------------------
// Tools and bundles.

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory holding what `gen` wrote.
struct Bundle {
    dir: TempDir,
}

impl Bundle {
    /// Runs the real binary: `gen --domain DOMAIN --client CLIENT --key-type KEY_TYPE`.
    fn generate(key_type: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = run(Command::new(BIN)
            .args([
                "gen",
                "--domain",
                DOMAIN,
                "--client",
                CLIENT,
                "--key-type",
                key_type,
                "--out",
            ])
            .arg(dir.path()));
        assert!(
            out.status.success(),
            "gen --key-type {key_type} failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        for file in [
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "client.crt",
            "client.key",
        ] {
            assert!(dir.path().join(file).is_file(), "gen did not write {file}");
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

// ---------------------------------------------------------------------------------------------
// nginx.

/// nginx for `server`: TLS on a free loopback port with its certificate, client certificates
/// required and verified against its CA.
fn start_nginx(server: &Bundle) -> Nginx {
    Nginx::start(|dir, port| nginx_conf(dir, server, port))
}

pub(crate) fn url(nginx: &Nginx) -> String {
    format!("https://{DOMAIN}:{}/", nginx.port)
}

pub(crate) fn resolve(nginx: &Nginx) -> String {
    format!("{DOMAIN}:{}:127.0.0.1", nginx.port)
}

fn nginx_conf(dir: &Path, server: &Bundle, port: u16) -> String {
    let cert = server.path("server.crt");
    let key = server.path("server.key");
    let ca = server.path("ca.crt");
    nginx_conf_for(dir, port, &cert, &key, &ca)
}

/// nginx on 127.0.0.1:`port` serving `cert`/`key` for DOMAIN, requiring client certificates
/// that chain to a CA in `client_ca` (`ssl_client_certificate`, which may hold several CAs).
pub(crate) fn nginx_conf_for(dir: &Path, port: u16, cert: &Path, key: &Path, ca: &Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {DOMAIN};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location / {{
            return 200 "client_dn=$ssl_client_s_dn verify=$ssl_client_verify\n";
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
    )
}

// ---------------------------------------------------------------------------------------------
// curl.

/// What one curl call returned.
#[derive(Debug)]
pub(crate) struct CurlResult {
    /// curl's exit code (0 = transfer done, whatever the HTTP status; 60 = peer verification).
    pub exit: i32,
    /// The HTTP status (0 when there was no response).
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// `curl --resolve D:PORT:127.0.0.1 --cacert CA [--cert C --key K] https://D:PORT/`, with
/// server verification on (never `-k`).
fn curl(nginx: &Nginx, cacert: &Path, client: Option<&Bundle>) -> CurlResult {
    let cert = client.map(|c| (c.path("client.crt"), c.path("client.key")));
    curl_with(
        nginx,
        cacert,
        cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
}

/// [`curl`] with the client certificate and key given as files.
pub(crate) fn curl_with(
    nginx: &Nginx,
    cacert: &Path,
    client: Option<(&Path, &Path)>,
) -> CurlResult {
    let mut cmd = Command::new(require_tool("curl"));
    cmd.args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--write-out", "\n%{http_code}"])
        .args(["--resolve", &resolve(nginx)])
        .arg("--cacert")
        .arg(cacert);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = run(cmd.arg(url(nginx)));
    let stdout = text(&out.stdout);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    CurlResult {
        exit: out.status.code().expect("curl exited by a signal"),
        status: code.trim().parse().expect("curl printed an HTTP status"),
        body: body.to_owned(),
        stderr: text(&out.stderr),
    }
}

/// The whole nginx scenario for one key type.
fn nginx_mtls(key_type: &str) {
    require_tool("curl");
    let ours = Bundle::generate(key_type);
    // Same names, different CA: only the chain of trust differs from `ours`.
    let foreign = Bundle::generate(key_type);
    let nginx = start_nginx(&ours);

    // 1. No client certificate: the TLS layer is fine, nginx refuses the request.
    let r = curl(&nginx, &ours.path("ca.crt"), None);
    assert_eq!(r.exit, 0, "curl without client cert: {r:?}");
    assert_eq!(
        r.status, 400,
        "request without a client cert must be refused: {r:?}"
    );
    assert!(
        r.body.contains("No required SSL certificate was sent"),
        "nginx must say why it refused: {r:?}"
    );

    // 2. Our client certificate, our CA verifying the server (SAN DNS:D via --resolve): 200.
    let r = curl(&nginx, &ours.path("ca.crt"), Some(&ours));
    assert_eq!(
        r.exit,
        0,
        "curl with our client cert: {r:?}\nerror.log: {}",
        nginx.error_log()
    );
    assert_eq!(r.status, 200, "mTLS request with our client cert: {r:?}");
    assert!(
        r.body.contains(&format!("client_dn=CN={CLIENT} ")),
        "nginx must see our client's DN: {r:?}"
    );
    assert!(
        r.body.contains("verify=SUCCESS"),
        "nginx must have verified the client: {r:?}"
    );

    // 3. Right client cert, but the server is checked against another CA: curl refuses (60).
    let r = curl(&nginx, &foreign.path("ca.crt"), Some(&ours));
    assert_eq!(
        r.exit, 60,
        "server cert must not verify against a foreign CA: {r:?}"
    );
    assert_eq!(
        r.status, 0,
        "no HTTP exchange after a failed verification: {r:?}"
    );
    assert!(
        r.stderr.contains("SSL certificate problem"),
        "curl must blame the server certificate: {r:?}"
    );

    // 4. A client cert with the same DN from another CA: nginx refuses it.
    let r = curl(&nginx, &ours.path("ca.crt"), Some(&foreign));
    assert_eq!(r.exit, 0, "curl with a foreign client cert: {r:?}");
    assert_eq!(
        r.status, 400,
        "a client cert from another CA must be refused: {r:?}"
    );
    assert!(
        r.body.contains("The SSL certificate error"),
        "nginx must say why: {r:?}"
    );
    assert!(!r.body.contains("verify=SUCCESS"), "{r:?}");
}

#[test]
fn nginx_mtls_ecdsa_p256() {
    nginx_mtls("ecdsa-p256");
}

#[test]
fn nginx_mtls_rsa_2048() {
    nginx_mtls("rsa-2048");
}

// ---------------------------------------------------------------------------------------------
// openssl verify.

/// `openssl verify -CAfile ca.crt -purpose PURPOSE -verify_hostname HOST [extra] CERT`.
fn openssl_verify(
    bundle: &Bundle,
    cert: &str,
    purpose: &str,
    host: &str,
    extra: &[&str],
) -> Output {
    run(Command::new(require_tool("openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(bundle.path("ca.crt"))
        .args(["-purpose", purpose, "-verify_hostname", host])
        .args(extra)
        .arg(bundle.path(cert)))
}

#[track_caller]
fn assert_verifies(bundle: &Bundle, cert: &str, purpose: &str, host: &str, extra: &[&str]) {
    let out = openssl_verify(bundle, cert, purpose, host, extra);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(": OK"),
        "{cert} must verify for {purpose} / {host} {extra:?}: {stdout}{}",
        text(&out.stderr)
    );
}

#[track_caller]
fn assert_rejected(bundle: &Bundle, cert: &str, purpose: &str, host: &str, reason: Reason) {
    let out = openssl_verify(bundle, cert, purpose, host, &[]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "{cert} must NOT verify for {purpose} / {host}: {all}"
    );
    assert!(
        all.contains(reason.0),
        "{cert} for {purpose} / {host}: expected {:?} in: {all}",
        reason.0
    );
}

/// An `openssl verify` failure, by its `X509_V_ERR_*` number and position (the leaf, depth 0);
/// the number is stable where the text is not (1.1 says "unsupported certificate purpose", 3.x
/// "unsuitable certificate purpose").
#[derive(Clone, Copy)]
struct Reason(&'static str);
/// `X509_V_ERR_INVALID_PURPOSE`: the EKU does not allow this use.
const WRONG_PURPOSE: Reason = Reason("error 26 at 0 depth lookup");
/// `X509_V_ERR_HOSTNAME_MISMATCH`: no SAN matches the name.
const WRONG_NAME: Reason = Reason("error 62 at 0 depth lookup");

fn openssl_purposes(key_type: &str) {
    let b = Bundle::generate(key_type);
    // Each leaf for its own purpose and name, also under RFC 5280 strict checks.
    for extra in [&[][..], &["-x509_strict"][..]] {
        assert_verifies(&b, "server.crt", "sslserver", DOMAIN, extra);
        assert_verifies(&b, "client.crt", "sslclient", CLIENT, extra);
    }
    // Swapped purposes fail on the EKU.
    assert_rejected(&b, "server.crt", "sslclient", DOMAIN, WRONG_PURPOSE);
    assert_rejected(&b, "client.crt", "sslserver", CLIENT, WRONG_PURPOSE);
    // Another host name fails on the SAN.
    assert_rejected(
        &b,
        "server.crt",
        "sslserver",
        "other.example.com",
        WRONG_NAME,
    );
    // The server cert does not name the client and vice versa.
    assert_rejected(&b, "server.crt", "sslserver", CLIENT, WRONG_NAME);
    assert_rejected(&b, "client.crt", "sslclient", DOMAIN, WRONG_NAME);
    // A leaf does not verify against another bundle's CA.
    let other = Bundle::generate(key_type);
    let out = run(Command::new(require_tool("openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(other.path("ca.crt"))
        .arg(b.path("server.crt")));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "server.crt must not verify against another CA: {all}"
    );
    // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert!(all.contains("error 20 at 0 depth lookup"), "{all}");
}

#[test]
fn openssl_verify_ecdsa_p256() {
    openssl_purposes("ecdsa-p256");
}

#[test]
fn openssl_verify_rsa_2048() {
    openssl_purposes("rsa-2048");
}

#[test]
fn require_tool_fails_loudly() {
    let err = std::panic::catch_unwind(|| require_tool("nginx-definitely-not-installed"))
        .expect_err("a missing tool must panic");
    let msg = err.downcast_ref::<String>().expect("panic message");
    assert_eq!(
        msg,
        "nginx-definitely-not-installed not found: install it \
         (apt-get install -y nginx-definitely-not-installed)"
    );
    assert!(require_tool("sh").is_file());
}
