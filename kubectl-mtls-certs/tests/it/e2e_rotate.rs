//! `renew` and `rotate-ca` against a live API server, when `MTLS_E2E_KUBECONFIG` names one.
//!
//! Two contexts (`e2e-target`, `e2e-client`) of one kubeconfig stand in for the two clusters; they
//! point at the same API server, and each side's Secret lives in its own namespace. A second
//! partner's credential Secrets sit next to ours in both namespaces. The test renews the server
//! certificate (the Secret updated in place, its fingerprint read back), then runs the three
//! phases of a CA rotation (a server dry run first, each phase re-run `unchanged`, phase 3 before
//! phase 2 refused with nothing changed, phase 2 done on one cluster and resumed on both), checks the bundles' CAs on the API server after each,
//! refuses to rotate into the other partner's Secret, and finally checks that the other partner's
//! Secrets were never touched (same resourceVersion and data). Its namespaces are deleted at the
//! end, also when an assertion fails.
//!
//! What a real gateway does next is Istio's: istiod's credentials controller watches every Secret
//! through an informer and calls its handlers on each update
//! (istio/istio `pilot/pkg/credentials/kube/secrets.go`, `NewCredentialsController` and
//! `AddEventHandler`), and the gateways receive the new certificate over SDS, without a restart.
//! No mesh runs here, so the test proves the part that is ours: the Secret holds the new
//! certificate and bundle on the API server.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::config::{Kubeconfig, NamedContext};
use shared::pki::{Certificate, sha256_hex};
use test_support::e2e::{Scratch, client, kubeconfig, runtime, write_private};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mtls_certs");

/// A copy of `kubeconfig` with two more contexts, `e2e-target` and `e2e-client`, both the
/// current context's cluster and user.
fn two_contexts(kubeconfig: &str, dir: &Path) -> String {
    let mut config = Kubeconfig::read_from(kubeconfig).unwrap();
    let current = config.current_context.clone().unwrap();
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .unwrap()
        .clone();
    for name in ["e2e-target", "e2e-client"] {
        config.contexts.push(NamedContext {
            name: name.into(),
            ..context.clone()
        });
    }
    let path = write_private(
        &dir.join("kubeconfig"),
        serde_json::to_string(&config).unwrap().as_bytes(),
    );
    path.display().to_string()
}

fn run(kc: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--kubeconfig", kc])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[track_caller]
fn ok(result: (i32, String, String)) -> String {
    let (code, out, err) = result;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    out
}

fn gen_bundle(dir: &Path, domain: &str, client: &str) {
    let out = Command::new(BIN)
        .args(["gen", "--domain", domain, "--client", client, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn certs_in(pem: &[u8]) -> Vec<String> {
    Certificate::parse_chain(std::str::from_utf8(pem).unwrap(), "secret")
        .unwrap()
        .iter()
        .map(|c| sha256_hex(c.der()))
        .collect()
}

fn file_certs(path: &Path) -> Vec<String> {
    certs_in(&std::fs::read(path).unwrap())
}

/// The Secret's leaf and CA-bundle fingerprints, and its resourceVersion.
struct Stored {
    leaf: String,
    bundle: Vec<String>,
    version: String,
    data: std::collections::BTreeMap<String, k8s_openapi::ByteString>,
}

fn stored(kc: &str, ns: &str, name: &str) -> Stored {
    let secret = runtime().block_on(async {
        let api: Api<Secret> = Api::namespaced(client(kc).await, ns);
        api.get(name).await.unwrap()
    });
    let data = secret.data.unwrap();
    let (cert, ca) = if data.contains_key("cert") {
        ("cert", "cacert")
    } else {
        ("tls.crt", "ca.crt")
    };
    Stored {
        leaf: certs_in(&data[cert].0)[0].clone(),
        bundle: certs_in(&data[ca].0),
        version: secret.metadata.resource_version.unwrap(),
        data,
    }
}

#[test]
fn renew_and_rotate_ca_update_both_clusters_and_nothing_else() {
    let Some(kubeconfig) = kubeconfig("e2e_rotate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let kc = two_contexts(&kubeconfig, tmp.path());
    let mut scratch = Scratch::new(&kubeconfig);
    let (target_ns, client_ns) = runtime().block_on(async {
        let c = client(&kubeconfig).await;
        (
            scratch.namespace(&c, "rot-target").await,
            scratch.namespace(&c, "rot-client").await,
        )
    });
    let ours = tmp.path().join("ours");
    let partner = tmp.path().join("partner");
    gen_bundle(&ours, "httpbin.example.com", "client.example.com");
    gen_bundle(&partner, "other.example.com", "client.example.com");
    let d = ours.to_str().unwrap();
    let p = partner.to_str().unwrap();

    // Our credentials and the other partner's, side by side.
    for (dir, target_name, client_name) in [
        (d, "kyma-mtls-certs", "client-credential"),
        (p, "partner-certs", "partner-credential"),
    ] {
        let args = ["--dir", dir, "--context"];
        ok(run(
            &kc,
            &[
                &["secret", "target", "--name", target_name][..],
                &args,
                &["e2e-target", "-n", &target_ns],
            ]
            .concat(),
        ));
        ok(run(
            &kc,
            &[
                &["secret", "client", "--name", client_name][..],
                &args,
                &["e2e-client", "-n", &client_ns],
            ]
            .concat(),
        ));
    }
    let partner_before = [
        stored(&kubeconfig, &target_ns, "partner-certs"),
        stored(&kubeconfig, &client_ns, "partner-credential"),
    ];
    let target = || stored(&kubeconfig, &target_ns, "kyma-mtls-certs");
    let client_side = || stored(&kubeconfig, &client_ns, "client-credential");
    let old_ca = file_certs(&ours.join("ca.crt"));

    // renew --server: the target's Secret holds the new certificate, read back.
    let out = ok(run(
        &kc,
        &[
            "renew",
            "--dir",
            d,
            "--server",
            "--context",
            "e2e-target",
            "-n",
            &target_ns,
        ],
    ));
    let new_server = file_certs(&ours.join("server.crt"))[0].clone();
    assert_ne!(new_server, file_certs(&ours.join("server.crt.prev"))[0]);
    assert!(
        out.contains(&format!(
            "target (context e2e-target) secret {target_ns}/kyma-mtls-certs: configured; read back: certificate sha256 {new_server}"
        )),
        "{out}"
    );
    assert!(out.contains("through SDS"), "{out}");
    assert_eq!(target().leaf, new_server);
    // --context with both sides is refused: they are two clusters.
    let (code, _, err) = run(&kc, &["renew", "--dir", d, "--context", "e2e-target"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");

    let both = [
        "--dir",
        d,
        "--target-context",
        "e2e-target",
        "--client-context",
        "e2e-client",
        "--target-namespace",
        &target_ns,
        "--client-namespace",
        &client_ns,
    ];
    let rotate = |phase: &str, extra: &[&str]| {
        run(
            &kc,
            &[&["rotate-ca", "--phase", phase][..], &both, extra].concat(),
        )
    };

    // Phase 1, server dry run first: validated on both, nothing written anywhere.
    let (t0, c0) = (target(), client_side());
    let out = ok(rotate("1", &["--dry-run=server"]));
    assert!(
        out.contains(&format!("target (context e2e-target) secret {target_ns}/kyma-mtls-certs: configured (server dry run)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("client (context e2e-client) secret {client_ns}/client-credential: configured (server dry run)")),
        "{out}"
    );
    assert!(!ours.join("ca.next.crt").exists());
    assert_eq!(
        (target().version, client_side().version),
        (t0.version.clone(), c0.version.clone())
    );

    // Phase 1: both bundles hold the old and the new CA; the leaves are unchanged.
    let out = ok(rotate("1", &[]));
    let new_ca = file_certs(&ours.join("ca.next.crt"));
    let overlap = [old_ca.clone(), new_ca.clone()].concat();
    for s in [target(), client_side()] {
        assert_eq!(s.bundle, overlap);
    }
    assert_eq!(
        (target().leaf, client_side().leaf),
        (t0.leaf.clone(), c0.leaf.clone())
    );
    assert_eq!(out.matches(": configured; read back").count(), 2, "{out}");
    assert!(
        out.contains("kubectl mtls-probe direct --host httpbin.example.com"),
        "{out}"
    );
    assert!(
        out.contains("kubectl mtls-probe check --context e2e-client"),
        "{out}"
    );
    // The next phase's command, with the flags that name the same Secrets.
    assert!(
        out.contains(&format!(
            "Then: kubectl mtls-certs rotate-ca --phase 2 --dir {d} --target-context e2e-target --client-context e2e-client --kubeconfig {kc} --target-namespace {target_ns} --client-namespace {client_ns}\n"
        )),
        "{out}"
    );
    let versions = (target().version, client_side().version);
    let out = ok(rotate("1", &[]));
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");
    assert_eq!((target().version, client_side().version), versions);

    // Phase 3 before phase 2: refused, one line, nothing changed.
    let files_before = std::fs::read_dir(&ours).unwrap().count();
    let (code, out, err) = rotate("3", &[]);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (2, "", 1),
        "{err}"
    );
    assert!(err.contains("phase 3 before phase 2"), "{err}");
    assert_eq!(std::fs::read_dir(&ours).unwrap().count(), files_before);
    assert_eq!((target().version, client_side().version), versions);

    // Phase 2 on the target cluster only (as if the client cluster had been unreachable): the
    // files and the target's Secret move on, the client's stays as it was.
    let c1 = client_side();
    let out = ok(run(
        &kc,
        &[
            "rotate-ca",
            "--phase",
            "2",
            "--dir",
            d,
            "--target-context",
            "e2e-target",
            "--target-namespace",
            &target_ns,
        ],
    ));
    assert_eq!(out.matches(": configured; read back").count(), 1, "{out}");
    assert_eq!(target().leaf, file_certs(&ours.join("server.crt"))[0]);
    assert_eq!(client_side().version, c1.version);
    // The same phase with both clusters resumes: the target unchanged, the client configured.
    let out = ok(rotate("2", &[]));
    assert!(
        out.contains(&format!(
            "target (context e2e-target) secret {target_ns}/kyma-mtls-certs: unchanged"
        )) && out.contains(&format!(
            "client (context e2e-client) secret {client_ns}/client-credential: configured"
        )),
        "{out}"
    );
    assert!(out.contains("files unchanged (phase 2 was done"), "{out}");
    let (t2, c2) = (target(), client_side());
    assert_eq!(t2.leaf, file_certs(&ours.join("server.crt"))[0]);
    assert_eq!(c2.leaf, file_certs(&ours.join("client.crt"))[0]);
    assert_ne!(t2.leaf, new_server);
    assert_ne!(c2.leaf, c0.leaf);
    assert_eq!(
        (t2.bundle.clone(), c2.bundle.clone()),
        (overlap.clone(), overlap.clone())
    );
    let out = ok(rotate("2", &[]));
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");

    // Another partner's Secret is not rotated into.
    let (code, _, err) = rotate("3", &["--target-secret", "partner-certs"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("holds another certificate"), "{err}");

    // Phase 3: only the new CA is trusted.
    let out = ok(rotate("3", &[]));
    for s in [target(), client_side()] {
        assert_eq!(s.bundle, new_ca);
    }
    assert_eq!(file_certs(&ours.join("ca.crt")), new_ca);
    assert_eq!(out.matches(": configured; read back").count(), 2, "{out}");
    let versions = (target().version, client_side().version);
    let out = ok(rotate("3", &[]));
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");
    assert_eq!((target().version, client_side().version), versions);

    // The other partner's Secrets were never touched.
    let partner_after = [
        stored(&kubeconfig, &target_ns, "partner-certs"),
        stored(&kubeconfig, &client_ns, "partner-credential"),
    ];
    for (before, after) in partner_before.iter().zip(&partner_after) {
        assert_eq!(before.version, after.version);
        assert_eq!(before.data, after.data);
    }
    drop(scratch);
}

/// `rotate-ca --phase all` over both clusters for a host that does not resolve from here (no
/// endpoint to check): phase 1 lands on both clusters, then it stops (exit 1) with the reason and
/// the command that resumes; run again, phase 1 is found done (both Secrets `unchanged`, same
/// resourceVersion) and it stops again; with `--check-timeout 0` it resumes through phases 2 and
/// 3; a re-run after that changes nothing. The other partner's Secrets are never touched.
#[test]
fn rotate_ca_phase_all_stops_without_an_endpoint_and_resumes() {
    let Some(kubeconfig) = kubeconfig("e2e_rotate_all") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let kc = two_contexts(&kubeconfig, tmp.path());
    let mut scratch = Scratch::new(&kubeconfig);
    let (target_ns, client_ns) = runtime().block_on(async {
        let c = client(&kubeconfig).await;
        (
            scratch.namespace(&c, "rotall-target").await,
            scratch.namespace(&c, "rotall-client").await,
        )
    });
    // .invalid never resolves (RFC 6761): the traffic cannot be checked from here.
    let host = "httpbin.rotate.invalid";
    let ours = tmp.path().join("ours");
    let partner = tmp.path().join("partner");
    gen_bundle(&ours, host, "client.example.com");
    gen_bundle(&partner, host, "client.example.com");
    let d = ours.to_str().unwrap();
    for (dir, target_name, client_name) in [
        (d, "kyma-mtls-certs", "client-credential"),
        (
            partner.to_str().unwrap(),
            "partner-certs",
            "partner-credential",
        ),
    ] {
        for (side, name, ctx, ns) in [
            ("target", target_name, "e2e-target", &target_ns),
            ("client", client_name, "e2e-client", &client_ns),
        ] {
            ok(run(
                &kc,
                &[
                    "secret",
                    side,
                    "--name",
                    name,
                    "--dir",
                    dir,
                    "--context",
                    ctx,
                    "-n",
                    ns,
                ],
            ));
        }
    }
    let partner_before = [
        stored(&kubeconfig, &target_ns, "partner-certs"),
        stored(&kubeconfig, &client_ns, "partner-credential"),
    ];
    let target = || stored(&kubeconfig, &target_ns, "kyma-mtls-certs");
    let client_side = || stored(&kubeconfig, &client_ns, "client-credential");
    let (t0, c0) = (target(), client_side());
    let old_ca = file_certs(&ours.join("ca.crt"));
    let both = [
        "--dir",
        d,
        "--target-context",
        "e2e-target",
        "--client-context",
        "e2e-client",
        "--target-namespace",
        &target_ns,
        "--client-namespace",
        &client_ns,
    ];
    let all = |extra: &[&str]| {
        run(
            &kc,
            &[&["rotate-ca", "--phase", "all"][..], &both, extra].concat(),
        )
    };

    // A server dry run validates phase 1 on both clusters, and only phase 1.
    let (code, out, err) = all(&["--dry-run=server"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("validates phase 1 only"), "{err}");
    assert_eq!(
        out.matches("configured (server dry run)").count(),
        2,
        "{out}"
    );
    assert!(!ours.join("rotate-ca.json").exists());
    assert_eq!(
        (target().version, client_side().version),
        (t0.version.clone(), c0.version.clone())
    );

    // Phase 1 on both clusters, then the stop.
    let (code, out, err) = all(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: stopped after phase 1: {host} does not resolve from this workstation"
        )) && err.contains("--phase all again"),
        "{err}"
    );
    assert_eq!(out.matches(": configured; read back").count(), 2, "{out}");
    assert!(!out.contains("rotate-ca phase 2"), "{out}");
    assert!(
        out.contains(&format!(
            "Then: kubectl mtls-certs rotate-ca --phase all --dir {d} --target-context e2e-target --client-context e2e-client --kubeconfig {kc} --target-namespace {target_ns} --client-namespace {client_ns}\n"
        )),
        "{out}"
    );
    let new_ca = file_certs(&ours.join("ca.next.crt"));
    let overlap = [old_ca.clone(), new_ca.clone()].concat();
    let (t1, c1) = (target(), client_side());
    assert_eq!(
        (t1.bundle.clone(), c1.bundle.clone()),
        (overlap.clone(), overlap.clone())
    );
    assert_eq!(
        (t1.leaf.clone(), c1.leaf.clone()),
        (t0.leaf.clone(), c0.leaf.clone())
    );

    // Again: phase 1 is done (nothing written anywhere), and it stops at the same place.
    let (code, out, err) = all(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("stopped after phase 1"), "{err}");
    assert!(out.contains("resuming at phase 1"), "{out}");
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");
    assert_eq!(
        (target().version, client_side().version),
        (t1.version.clone(), c1.version.clone())
    );

    // Without the check it resumes: phase 1 unchanged, phases 2 and 3 configured on both.
    let out = ok(all(&["--check-timeout", "0"]));
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");
    assert_eq!(out.matches(": configured; read back").count(), 4, "{out}");
    assert!(out.contains("The rotation is finished."), "{out}");
    let (t3, c3) = (target(), client_side());
    assert_eq!(
        (t3.bundle.clone(), c3.bundle.clone()),
        (new_ca.clone(), new_ca.clone())
    );
    assert_eq!(t3.leaf, file_certs(&ours.join("server.crt"))[0]);
    assert_eq!(c3.leaf, file_certs(&ours.join("client.crt"))[0]);
    assert_ne!(c3.leaf, c0.leaf);

    // After phase 3: nothing changes.
    let out = ok(all(&["--check-timeout", "0"]));
    assert_eq!(out.matches(": unchanged; read back").count(), 2, "{out}");
    assert_eq!(
        (target().version, client_side().version),
        (t3.version, c3.version)
    );

    for (before, after) in partner_before.iter().zip([
        stored(&kubeconfig, &target_ns, "partner-certs"),
        stored(&kubeconfig, &client_ns, "partner-credential"),
    ]) {
        assert_eq!(
            (&before.version, &before.data),
            (&after.version, &after.data)
        );
    }
    drop(scratch);
}
