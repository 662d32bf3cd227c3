//! `renew` and `rotate-ca` proven with real TLS: Debian's nginx on loopback requiring client
//! certificates (`ssl_verify_client on`), curl and `openssl s_client` verifying the chain nginx
//! serves, and `openssl verify` on the files, at every phase of a CA rotation:
//!
//! * phase 1: nginx trusting the phase-1 bundle (`ca-bundle.crt`, old + new CA) accepts client
//!   certificates of the old AND the new CA; its (still old) server certificate verifies with the
//!   old-only and the both-CAs trust, not with the new-only;
//! * phase 2: the new server certificate verifies with both and new-only trust, not old-only;
//!   the overlap bundle still accepts the old client certificate;
//! * phase 3: nginx trusting the new `ca.crt` only refuses the old client certificate and
//!   accepts the new one; the old CA alone verifies nothing nginx serves.
//!
//! And a renewed bundle (kept keys) still works end to end, with new serials.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;
use test_support::nginx::{Nginx, require_tool};

use super::tls_interop::{CLIENT, DOMAIN, curl_with, nginx_conf_for, run, text};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_certs");

fn certs(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = run(Command::new(BIN).args(args).arg("--dir").arg(dir));
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn gen_bundle() -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(Command::new(BIN)
        .args(["gen", "--domain", DOMAIN, "--client", CLIENT, "--out"])
        .arg(tmp.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    tmp
}

/// A copy of the directory as it is now (the files a phase left behind).
fn snapshot(dir: &Path) -> TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

fn p(dir: &TempDir, file: &str) -> PathBuf {
    dir.path().join(file)
}

/// nginx serving `server`'s server.crt, accepting client certificates of the CAs in `client_ca`.
fn nginx(server: &TempDir, client_ca: &Path) -> Nginx {
    let (cert, key) = (p(server, "server.crt"), p(server, "server.key"));
    Nginx::start(|dir, port| nginx_conf_for(dir, port, &cert, &key, client_ca))
}

/// curl with `client`'s client certificate, verifying nginx's chain with `trust`; returns curl's
/// exit code and the HTTP status.
fn request(nginx: &Nginx, trust: &Path, client: &TempDir) -> (i32, u16, String) {
    let r = curl_with(
        nginx,
        trust,
        Some((&p(client, "client.crt"), &p(client, "client.key"))),
    );
    (r.exit, r.status, format!("{r:?}"))
}

#[track_caller]
fn accepted(nginx: &Nginx, trust: &Path, client: &TempDir) {
    let (exit, status, r) = request(nginx, trust, client);
    assert_eq!(
        (exit, status),
        (0, 200),
        "{r}\nerror.log: {}",
        nginx.error_log()
    );
    assert!(r.contains("verify=SUCCESS"), "{r}");
}

/// nginx refuses the client certificate (curl got the 400 nginx answers an unverified client).
#[track_caller]
fn client_refused(nginx: &Nginx, trust: &Path, client: &TempDir) {
    let (exit, status, r) = request(nginx, trust, client);
    assert_eq!((exit, status), (0, 400), "{r}");
    assert!(r.contains("The SSL certificate error"), "{r}");
}

/// curl refuses nginx's certificate chain with this trust (exit 60: peer verification).
#[track_caller]
fn server_untrusted(nginx: &Nginx, trust: &Path, client: &TempDir) {
    let (exit, status, r) = request(nginx, trust, client);
    assert_eq!((exit, status), (60, 0), "{r}");
}

/// `openssl s_client` verifying the chain nginx serves against `trust`, host name included.
fn s_client_verifies(nginx: &Nginx, trust: &Path, client: &TempDir) -> bool {
    let out = Command::new(require_tool("openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", nginx.port)])
        .args(["-servername", DOMAIN, "-verify_hostname", DOMAIN])
        .args(["-verify_return_error", "-brief", "-CAfile"])
        .arg(trust)
        .arg("-cert")
        .arg(p(client, "client.crt"))
        .arg("-key")
        .arg(p(client, "client.key"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let ok = out.status.success() && all.contains("Verification: OK");
    assert!(
        ok || all.contains("verify error") || all.contains("certificate verify failed"),
        "s_client neither verified nor said why: {all}"
    );
    ok
}

/// `openssl verify -CAfile trust -purpose P -verify_hostname H cert`.
fn openssl_verifies(trust: &Path, cert: &Path, purpose: &str, host: &str) -> bool {
    let out = run(Command::new(require_tool("openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(trust)
        .args(["-purpose", purpose, "-verify_hostname", host])
        .arg(cert));
    out.status.success() && text(&out.stdout).trim_end().ends_with(": OK")
}

/// Every (trust, expected) pair: s_client and curl agree with the expectation on the served chain.
#[track_caller]
fn served_chain(nginx: &Nginx, client: &TempDir, cases: &[(&Path, bool)]) {
    for (trust, ok) in cases {
        assert_eq!(
            s_client_verifies(nginx, trust, client),
            *ok,
            "s_client with -CAfile {}",
            trust.display()
        );
        if *ok {
            accepted(nginx, trust, client);
        } else {
            server_untrusted(nginx, trust, client);
        }
    }
}

#[test]
fn ca_rotation_keeps_traffic_flowing_through_all_three_phases() {
    require_tool("curl");
    let bundle = gen_bundle();
    let dir = bundle.path();
    let s0 = snapshot(dir);

    // Phase 1: new CA next to the old one; the bundle holds both.
    let (code, out, err) = certs(&["rotate-ca", "--phase", "1"], dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ca-bundle.crt"), "{out}");
    assert!(
        out.contains("kubectl mtls-probe direct --host nginx.example.com"),
        "{out}"
    );
    let s1 = snapshot(dir);
    let (old_ca, both, new_ca) = (
        p(&s0, "ca.crt"),
        p(&s1, "ca-bundle.crt"),
        p(&s1, "ca.next.crt"),
    );
    assert_eq!(
        fs::read_to_string(&both).unwrap(),
        fs::read_to_string(&old_ca).unwrap() + &fs::read_to_string(&new_ca).unwrap()
    );

    // Phase 2 into the real directory: new leaves from the new CA.
    let (code, out, err) = certs(&["rotate-ca", "--phase", "2"], dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("server.crt from the new CA"), "{out}");
    let s2 = snapshot(dir);

    // nginx as after phase 1: the old server certificate, client CAs = the phase-1 bundle.
    {
        let n = nginx(&s1, &both);
        accepted(&n, &old_ca, &s1); // the old client certificate
        accepted(&n, &old_ca, &s2); // a client certificate of the new CA
        served_chain(&n, &s1, &[(&old_ca, true), (&both, true), (&new_ca, false)]);
        // Before phase 1, the target trusted only the old CA: the new client would be refused.
        let before = nginx(&s0, &old_ca);
        client_refused(&before, &old_ca, &s2);
    }
    // Files: the phase-1 server certificate chains to the old CA only.
    let s1_server = p(&s1, "server.crt");
    assert!(openssl_verifies(&old_ca, &s1_server, "sslserver", DOMAIN));
    assert!(openssl_verifies(&both, &s1_server, "sslserver", DOMAIN));
    assert!(!openssl_verifies(&new_ca, &s1_server, "sslserver", DOMAIN));

    // nginx as after phase 2: the new server certificate, still the overlap bundle.
    {
        let n = nginx(&s2, &both);
        accepted(&n, &both, &s2);
        accepted(&n, &both, &s1); // a client not yet switched is still accepted
        served_chain(&n, &s2, &[(&old_ca, false), (&both, true), (&new_ca, true)]);
    }
    for (file, purpose, host) in [
        ("server.crt", "sslserver", DOMAIN),
        ("client.crt", "sslclient", CLIENT),
    ] {
        let cert = p(&s2, file);
        assert!(openssl_verifies(&new_ca, &cert, purpose, host), "{file}");
        assert!(openssl_verifies(&both, &cert, purpose, host), "{file}");
        assert!(!openssl_verifies(&old_ca, &cert, purpose, host), "{file}");
    }

    // Phase 3: the old CA leaves the bundle; ca.crt is the new CA, the old one ca.crt.prev.
    let (code, out, err) = certs(&["rotate-ca", "--phase", "3"], dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("The rotation is finished."), "{out}");
    let s3 = snapshot(dir);
    assert_eq!(
        fs::read(p(&s3, "ca.crt")).unwrap(),
        fs::read(&new_ca).unwrap()
    );
    assert_eq!(
        fs::read(p(&s3, "ca.crt.prev")).unwrap(),
        fs::read(&old_ca).unwrap()
    );
    for gone in ["ca.next.crt", "ca.next.key", "ca-bundle.crt"] {
        assert!(!p(&s3, gone).exists(), "{gone} left behind");
    }
    #[cfg(unix)]
    for key in ["ca.key", "ca.key.prev", "server.key", "client.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(key)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    {
        let only_new = p(&s3, "ca.crt");
        let n = nginx(&s3, &only_new);
        accepted(&n, &only_new, &s3);
        client_refused(&n, &only_new, &s1); // the old CA's client certificate
        served_chain(&n, &s3, &[(&old_ca, false), (&only_new, true)]);
    }

    // A re-run of each finished phase writes nothing.
    let before = snapshot(dir);
    for phase in ["3", "2"] {
        let (code, out, err) = certs(&["rotate-ca", "--phase", phase], dir);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("files unchanged") || out.contains("Nothing to do"),
            "{out}"
        );
    }
    for entry in fs::read_dir(before.path()).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            fs::read(before.path().join(&name)).unwrap(),
            fs::read(dir.join(&name)).unwrap(),
            "{name:?} changed on a re-run"
        );
    }
}

#[test]
fn renewed_leaves_keep_working_with_new_serials() {
    require_tool("curl");
    let bundle = gen_bundle();
    let dir = bundle.path();
    let before = snapshot(dir);
    let (code, out, err) = certs(&["renew"], dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("key kept"), "{out}");
    let after = snapshot(dir);
    for file in ["server", "client"] {
        // The old file is kept, the key is unchanged, the certificate is not.
        assert_eq!(
            fs::read(p(&after, &format!("{file}.crt.prev"))).unwrap(),
            fs::read(p(&before, &format!("{file}.crt"))).unwrap()
        );
        assert_eq!(
            fs::read(p(&after, &format!("{file}.key"))).unwrap(),
            fs::read(p(&before, &format!("{file}.key"))).unwrap()
        );
        let serial = |d: &TempDir| {
            let out = run(Command::new(require_tool("openssl"))
                .args(["x509", "-noout", "-serial", "-in"])
                .arg(p(d, &format!("{file}.crt"))));
            text(&out.stdout)
        };
        assert_ne!(serial(&before), serial(&after), "{file}: same serial");
    }
    let ca = p(&after, "ca.crt");
    assert!(openssl_verifies(
        &ca,
        &p(&after, "server.crt"),
        "sslserver",
        DOMAIN
    ));
    assert!(openssl_verifies(
        &ca,
        &p(&after, "client.crt"),
        "sslclient",
        CLIENT
    ));
    let n = nginx(&after, &ca);
    accepted(&n, &ca, &after);
    accepted(&n, &ca, &before); // the old client certificate is still valid, from the same CA
}
