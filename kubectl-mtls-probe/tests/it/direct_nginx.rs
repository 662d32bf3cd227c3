//! `kubectl mtls-probe direct` against Debian's real nginx on 127.0.0.1, configured for mutual
//! TLS with a bundle made by `shared::pki` (what `kubectl mtls-certs gen` writes). nginx answers
//! `/headers` with httpbin-shaped JSON whose `X-Forwarded-Client-Cert` is built from
//! `$ssl_client_s_dn` and `$ssl_client_escaped_cert` (nginx cannot compute the SHA-256 `Hash`, so
//! the match here is by `Cert` and `Subject`; the `Hash` path is unit-tested in `shared`).
//!
//! Every scenario asserts the whole list of check outcomes, so each defect shows up as exactly
//! one specific failed check: right certs pass; a wrong CA fails `server-trust`; a server cert for
//! another host fails `server-name`; a client cert from another CA fails `client-cert-accepted`;
//! a server that does not require client certs fails `client-cert-required`; a look-alike
//! certificate in XFCC fails `xfcc`; no listener fails `tcp`; an unresolvable name fails `dns`.
//! Bad input exits 2 with one `error:` line. nginx is required: without it the tests fail with an
//! install hint.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shared::names::DnsName;
use shared::pki::{Bundle, BundleRequest, KeyType, PrivateKey, Usage, sha256_hex};
use tempfile::TempDir;
use test_support::nginx::{Nginx, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_probe");
const DOMAIN: &str = "nginx.example.com";
const CLIENT: &str = "client.example.com";

// ---------------------------------------------------------------------------------------------
// Certificates on disk.

/// A bundle written as `gen` writes it, plus a server cert for another host from the same CA.
struct Pki {
    dir: TempDir,
    bundle: Bundle,
}

impl Pki {
    fn new() -> Self {
        let now = time::OffsetDateTime::now_utc();
        let bundle = Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse(DOMAIN).unwrap(),
                client: DnsName::parse(CLIENT).unwrap(),
                days: 30,
                key_type: KeyType::EcdsaP256,
                ca_name: None,
            },
            now,
        )
        .expect("generate a bundle");
        let other = bundle
            .ca
            .issue(
                Usage::Server,
                &DnsName::parse("other.example.com").unwrap(),
                30,
                PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
                now,
            )
            .expect("issue a server cert for another host");
        let dir = tempfile::tempdir().expect("temp dir");
        let files = [
            ("ca.crt", bundle.ca.cert.to_pem()),
            ("server.crt", bundle.server.cert.to_pem()),
            ("server.key", bundle.server.key.to_pem()),
            ("client.crt", bundle.client.cert.to_pem()),
            ("client.key", bundle.client.key.to_pem()),
            ("other-server.crt", other.cert.to_pem()),
            ("other-server.key", other.key.to_pem()),
        ];
        for (name, pem) in files {
            fs::write(dir.path().join(name), pem).expect("write PEM");
        }
        Self { dir, bundle }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

// ---------------------------------------------------------------------------------------------
// nginx.

/// How nginx is set up for one scenario.
struct Setup<'a> {
    pki: &'a Pki,
    server_cert: &'a str,
    server_key: &'a str,
    /// `on` (mutual TLS) or `optional` (client cert not required).
    verify_client: &'a str,
    /// The XFCC value in nginx syntax (inside a single-quoted nginx string, inside JSON).
    xfcc: String,
    /// `ssl_protocols`.
    protocols: &'a str,
}

impl<'a> Setup<'a> {
    fn mutual(pki: &'a Pki) -> Self {
        Self {
            pki,
            server_cert: "server.crt",
            server_key: "server.key",
            verify_client: "on",
            // nginx unescapes \\ to \ and \" to ", leaving JSON's \" around the quoted values.
            xfcc: r#"Subject=\\\"$ssl_client_s_dn\\\";Cert=\\\"$ssl_client_escaped_cert\\\""#
                .to_string(),
            protocols: "TLSv1.2 TLSv1.3",
        }
    }
}

/// nginx set up for one scenario, on a free loopback port.
fn start_nginx(setup: &Setup<'_>) -> Nginx {
    Nginx::start(|dir, port| nginx_conf(dir, setup, port))
}

/// What `--connect` takes for this nginx.
fn connect(nginx: &Nginx) -> String {
    format!("127.0.0.1:{}", nginx.port)
}

fn nginx_conf(dir: &Path, setup: &Setup<'_>, port: u16) -> String {
    let d = dir.display();
    let cert = setup.pki.path(setup.server_cert);
    let key = setup.pki.path(setup.server_key);
    let ca = setup.pki.path("ca.crt");
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
        ssl_protocols {protocols};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client {verify};
        location = /headers {{
            default_type application/json;
            return 200 '{{"headers":{{"Host":["$host"],"X-Forwarded-Client-Cert":["{xfcc}"]}}}}';
        }}
        location / {{
            return 404 "no such page\n";
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
        verify = setup.verify_client,
        xfcc = setup.xfcc,
        protocols = setup.protocols,
    )
}

// ---------------------------------------------------------------------------------------------
// Running `direct`.

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

fn direct(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("direct")
        .args(args)
        .output()
        .expect("run kubectl-mtls_probe");
    Run {
        code: out.status.code().expect("exited by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `direct --host DOMAIN --connect ADDR -o json` with these files.
fn direct_json(connect: &str, cert: &Path, key: &Path, ca: &Path) -> Run {
    direct(&[
        "--host",
        DOMAIN,
        "--connect",
        connect,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "-o",
        "json",
    ])
}

/// `direct --host DOMAIN --connect nginx -o json` with these client/CA files of `pki`.
fn probe(nginx: &Nginx, pki: &Pki, cert: &str, key: &str, ca: &Path, extra: &[&str]) -> Run {
    let (cert, key) = (pki.path(cert), pki.path(key));
    let connect = connect(nginx);
    let mut args = vec![
        "--host",
        DOMAIN,
        "--connect",
        &connect,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    direct(&args)
}

/// `(name, status)` of every check, in order.
fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn detail<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

/// Expected outcomes: the nine checks with these statuses (p = passed, F = failed, s = skipped).
fn expect(codes: &str) -> Vec<(String, String)> {
    let names = [
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
    assert_eq!(codes.len(), names.len());
    names
        .iter()
        .zip(codes.chars())
        .map(|(n, c)| {
            let status = match c {
                'p' => "passed",
                'F' => "failed",
                's' => "skipped",
                other => panic!("bad code {other}"),
            };
            (n.to_string(), status.to_string())
        })
        .collect()
}

#[track_caller]
fn assert_failed_with_one_line(run: &Run, failed: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {run:?}");
    assert!(
        lines[0].starts_with(&format!(
            "error: {DOMAIN}:443: 1 of 9 checks failed ({failed})"
        )),
        "{run:?}"
    );
}

#[track_caller]
fn assert_no_private_key(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("PRIVATE KEY"), "a key was printed: {run:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

#[test]
fn right_certificates_pass_every_check() {
    let pki = Pki::new();
    let nginx = start_nginx(&Setup::mutual(&pki));
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
    assert_no_private_key(&run);
    let r = run.json();
    assert_eq!(outcomes(&r), expect("spppppppp"), "{r:#}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["tlsVersion"], "TLSv1.3");
    assert_eq!(r["httpStatus"], 200);
    assert_eq!(r["address"], connect(&nginx));
    // The chain as presented: our server cert, issued by our CA.
    let leaf = &r["serverChain"][0];
    assert_eq!(leaf["subject"], format!("CN={DOMAIN}"));
    assert_eq!(leaf["sans"][0], format!("DNS:{DOMAIN}"));
    assert_eq!(leaf["issuer"], format!("CN={DOMAIN} Root CA"));
    assert_eq!(leaf["sha256"], sha256_hex(pki.bundle.server.cert.der()));
    assert!(leaf["daysLeft"].as_i64().unwrap() >= 29, "{leaf}");
    // nginx refuses a client without a cert with its own 400 page, after the handshake.
    assert_eq!(
        detail(&r, "client-cert-required"),
        "without a client certificate the server refused: HTTP 400 No required SSL certificate was sent"
    );
    // The XFCC nginx built carries our very certificate (Cert) and its subject.
    let xfcc = detail(&r, "xfcc");
    assert!(xfcc.starts_with("element 1 of 1 carries "), "{xfcc}");
    assert!(xfcc.ends_with("client.crt (Cert, Subject match)"), "{xfcc}");
    assert_eq!(r["xfcc"][0]["subject"], format!("CN={CLIENT}"));
    assert_eq!(
        detail(&r, "server-name"),
        format!("{DOMAIN} is covered by DNS:{DOMAIN}")
    );

    // The default table: one row per check, then the chain.
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CHECK") && lines[0].contains("RESULT"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("dns ") && lines[1].contains(" skipped "),
        "{}",
        run.stdout
    );
    assert!(
        lines[5].starts_with("tls ") && lines[5].contains("TLSv1.3"),
        "{}",
        run.stdout
    );
    assert!(
        lines[9].starts_with("xfcc ") && lines[9].contains(" ok "),
        "{}",
        run.stdout
    );
    assert!(lines[11].starts_with("SERVER CHAIN"), "{}", run.stdout);
    assert!(lines[12].starts_with("leaf ") && lines[12].contains(&format!("DNS:{DOMAIN}")));
}

#[test]
fn tls_1_2_passes_and_is_reported() {
    let pki = Pki::new();
    let mut setup = Setup::mutual(&pki);
    setup.protocols = "TLSv1.2";
    let nginx = start_nginx(&setup);
    let r = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = r.json();
    assert_eq!(outcomes(&r), expect("spppppppp"), "{r:#}");
    assert_eq!(r["tlsVersion"], "TLSv1.2");
}

#[test]
fn wrong_ca_is_server_not_trusted() {
    let pki = Pki::new();
    let foreign = Pki::new(); // same names, another CA
    let nginx = start_nginx(&Setup::mutual(&pki));
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &foreign.path("ca.crt"),
        &["-o", "json"],
    );
    assert_failed_with_one_line(&run, "server-trust");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("spFpsssss"), "{r:#}");
    let d = detail(&r, "server-trust");
    assert!(
        d.contains(&format!(
            "CN={DOMAIN} (issuer CN={DOMAIN} Root CA) is not signed by a CA in"
        )),
        "{d}"
    );
    assert!(
        d.ends_with("pass the CA that signed the target's server certificate with --ca"),
        "{d}"
    );
    // The untrusted chain is still reported.
    assert_eq!(r["serverChain"][0]["subject"], format!("CN={DOMAIN}"));
    assert!(r.get("httpStatus").is_none());
}

#[test]
fn server_cert_for_another_host_is_a_san_mismatch() {
    let pki = Pki::new();
    let mut setup = Setup::mutual(&pki);
    setup.server_cert = "other-server.crt";
    setup.server_key = "other-server.key";
    let nginx = start_nginx(&setup);
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_failed_with_one_line(&run, "server-name");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("sppFsssss"), "{r:#}");
    assert!(
        detail(&r, "server-name").starts_with(&format!(
            "the server certificate names DNS:other.example.com, not {DOMAIN}:"
        )),
        "{r:#}"
    );
}

#[test]
fn client_cert_from_another_ca_is_refused() {
    let pki = Pki::new();
    let foreign = Pki::new();
    let nginx = start_nginx(&Setup::mutual(&pki));
    let (cert, key) = (foreign.path("client.crt"), foreign.path("client.key"));
    let connect = connect(&nginx);
    let ca = pki.path("ca.crt");
    let run = direct_json(&connect, &cert, &key, &ca);
    assert_failed_with_one_line(&run, "client-cert-accepted");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("spppppFss"), "{r:#}");
    let d = detail(&r, "client-cert-accepted");
    assert!(
        d.contains("client.crt: HTTP 400 The SSL certificate error:"),
        "{d}"
    );
    assert!(d.contains("must trust the CA that signed it"), "{d}");
}

#[test]
fn server_not_requiring_client_certs_fails_the_refusal_check() {
    let pki = Pki::new();
    let mut setup = Setup::mutual(&pki);
    setup.verify_client = "optional";
    let nginx = start_nginx(&setup);
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_failed_with_one_line(&run, "client-cert-required");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("sppppFppp"), "{r:#}");
    assert!(
        detail(&r, "client-cert-required")
            .starts_with("without a client certificate the server answered HTTP 200 OK: it does not require client certificates"),
        "{r:#}"
    );
}

#[test]
fn a_look_alike_certificate_in_xfcc_is_not_ours() {
    let pki = Pki::new();
    let foreign = Pki::new();
    let mut setup = Setup::mutual(&pki);
    // Same subject as ours, but the Hash of another certificate: must not count as ours.
    setup.xfcc = format!(
        r#"Hash={};Subject=\\\"$ssl_client_s_dn\\\""#,
        sha256_hex(foreign.bundle.client.cert.der())
    );
    let nginx = start_nginx(&setup);
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_failed_with_one_line(&run, "xfcc");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("spppppppF"), "{r:#}");
    let d = detail(&r, "xfcc");
    assert!(
        d.contains(&format!(
            "seen CN={CLIENT} (another certificate: Hash/Cert differ)"
        )),
        "{d}"
    );
    assert!(d.contains(&sha256_hex(pki.bundle.client.cert.der())), "{d}");

    // With our own Hash baked in, the Hash path passes end to end.
    let mut setup = Setup::mutual(&pki);
    setup.xfcc = format!("Hash={}", sha256_hex(pki.bundle.client.cert.der()));
    let nginx = start_nginx(&setup);
    let r = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(detail(&r.json(), "xfcc").ends_with("client.crt (Hash match)"));
}

#[test]
fn wrong_path_is_an_http_status_failure() {
    let pki = Pki::new();
    let nginx = start_nginx(&Setup::mutual(&pki));
    let run = probe(
        &nginx,
        &pki,
        "client.crt",
        "client.key",
        &pki.path("ca.crt"),
        &["-o", "json", "--path", "/nowhere"],
    );
    assert_failed_with_one_line(&run, "http-status");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("sppppppFs"), "{r:#}");
    assert!(
        detail(&r, "http-status").starts_with("GET /nowhere answered 404 Not Found (no such page)")
    );
    assert_eq!(r["httpStatus"], 404);
}

#[test]
fn nothing_listening_is_a_tcp_failure() {
    let pki = Pki::new();
    let port = free_port();
    let connect = format!("127.0.0.1:{port}");
    let (cert, key, ca) = (
        pki.path("client.crt"),
        pki.path("client.key"),
        pki.path("ca.crt"),
    );
    let run = direct_json(&connect, &cert, &key, &ca);
    assert_failed_with_one_line(&run, "tcp");
    let r = run.json();
    assert_eq!(outcomes(&r), expect("sFsssssss"), "{r:#}");
    assert!(
        detail(&r, "tcp").starts_with(&format!("cannot connect to {connect}: Connection refused")),
        "{r:#}"
    );
}

#[test]
fn unresolvable_name_is_a_dns_failure() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.path("client.crt"),
        pki.path("client.key"),
        pki.path("ca.crt"),
    );
    // RFC 6761: .invalid never resolves. --timeout bounds a resolver that does not answer.
    let run = direct(&[
        "--host",
        "mtls-probe-test.invalid",
        "--timeout",
        "5",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    let statuses: Vec<String> = outcomes(&r).into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses[0], "failed", "{r:#}");
    assert!(statuses[1..].iter().all(|s| s == "skipped"), "{r:#}");
    assert!(
        detail(&r, "dns").starts_with("cannot resolve mtls-probe-test.invalid: "),
        "{r:#}"
    );
    assert!(
        run.stderr
            .starts_with("error: mtls-probe-test.invalid:443: 1 of 9 checks failed (dns)")
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let pki = Pki::new();
    let p = |f: &str| pki.path(f).to_str().unwrap().to_string();
    let base = |cert: &str, key: &str, ca: &str| -> Vec<String> {
        [
            "--host",
            DOMAIN,
            "--connect",
            "127.0.0.1:1",
            "--cert",
            cert,
            "--key",
            key,
            "--ca",
            ca,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(&p("client.crt"), &p("client.key"), &p("ca.crt"))
                .into_iter()
                .map(|a| {
                    if a == "127.0.0.1:1" {
                        "nginx:443".into()
                    } else {
                        a
                    }
                })
                .collect(),
            "error: --connect \"nginx:443\" is not an address: pass IP or IP:PORT",
        ),
        (
            base(&p("client.crt"), &p("server.key"), &p("ca.crt")),
            "error: the private key",
        ),
        (
            base(&p("client.crt"), &p("client.key"), &p("missing.crt")),
            "error: cannot read ",
        ),
        (
            base(&p("client.crt"), &p("client.key"), &p("server.crt")),
            "is not a CA certificate",
        ),
        (
            base(&p("client.key"), &p("client.key"), &p("ca.crt")),
            "holds a private key, but a certificate was expected here",
        ),
        (
            [
                base(&p("client.crt"), &p("client.key"), &p("ca.crt")),
                vec!["--path".into(), "headers".into()],
            ]
            .concat(),
            "error: --path \"headers\" is not an absolute request path",
        ),
        (
            [
                vec!["--host".to_string(), "not a host".into()],
                base(&p("client.crt"), &p("client.key"), &p("ca.crt"))[2..].to_vec(),
            ]
            .concat(),
            "error: ",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = direct(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}: {run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {run:?}");
        assert!(lines[0].starts_with("error: "), "{run:?}");
        assert!(
            lines[0].contains(expected),
            "{args:?}: expected {expected:?} in {run:?}"
        );
        assert_no_private_key(&run);
    }
}

#[test]
fn help_shows_examples() {
    let out = Command::new(BIN)
        .args(["direct", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--connect <IP[:PORT]>",
        "--path <PATH>",
        "[default: /headers]",
        "Exit codes: 0",
        "Examples:",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
