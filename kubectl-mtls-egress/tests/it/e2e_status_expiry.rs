//! `kubectl mtls-egress status` and the certificates behind its hosts, against a real API server
//! (`MTLS_E2E_KUBECONFIG`): two partners enabled from one namespace, each with its own client
//! credential Secret in istio-system — one ending in 5 days, one expired. `status -o json`
//! carries what each Secret holds, the expired partner's host is not ready, and stderr warns
//! about the 5-day one (and says `error:` for the expired one). Without the variable the test
//! says so on stderr and passes (under `CI=true` it fails).

use serde_json::Value;
use shared::manifest::secret::{Side, credential_secret};
use shared::names::DnsName;
use shared::pki::{Bundle, BundleRequest, CredentialPem, KeyType};
use test_support::e2e::{
    MeshAccess, Scratch, client, ensure_istio_cr, kubeconfig, mesh_lock, resource, runtime,
    unique_suffix,
};
use time::{Duration, OffsetDateTime};

/// Runs `kubectl-mtls_egress ARGS --kubeconfig KUBECONFIG`: exit code, stdout, stderr.
fn egress(kubeconfig: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtls_egress"))
        .args(args)
        .args(["--kubeconfig", kubeconfig])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A client credential Secret `name` in istio-system whose bundle is valid for `days` from
/// `issued`, as `kubectl mtls-certs secret client --name NAME` writes it.
fn client_credential(name: &str, host: &str, days: u32, issued: OffsetDateTime) -> Value {
    let b = Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse(host).unwrap(),
            client: DnsName::parse(&format!("caller.{host}")).unwrap(),
            days,
            key_type: KeyType::EcdsaP256,
            ca_name: None,
        },
        issued,
    )
    .unwrap();
    let pem = CredentialPem {
        chain: b.client.cert.to_pem(),
        key: b.client.key.to_pem(),
        ca: b.ca.cert.to_pem(),
    };
    let secret = credential_secret(Side::Client, name, "istio-system", &pem).unwrap();
    let mut secret = serde_json::to_value(secret).unwrap();
    secret["apiVersion"] = "v1".into();
    secret["kind"] = "Secret".into();
    secret
}

#[test]
fn status_warns_about_a_credential_ending_soon_and_an_expired_one_is_not_ready() {
    let Some(kubeconfig) = kubeconfig("mtls-egress e2e (status expiry)") else {
        return;
    };
    let _mesh = mesh_lock(&kubeconfig, MeshAccess::Shared);
    let rt = runtime();
    let mut scratch = Scratch::new(&kubeconfig);
    let suffix = unique_suffix();
    let now = OffsetDateTime::now_utc();
    let partners = [
        (
            format!("soon-{suffix}.e2e.example.com"),
            format!("e2e-soon-{suffix}"),
            5,
            now,
        ),
        (
            format!("gone-{suffix}.e2e.example.com"),
            format!("e2e-gone-{suffix}"),
            30,
            now - Duration::days(32),
        ),
    ];
    for (host, ..) in &partners {
        // The origination rule lives in the shared istio-system: removed also on failure.
        scratch.record(
            resource(
                ("networking.istio.io", "v1", "DestinationRule"),
                "destinationrules",
            ),
            Some("istio-system"),
            &format!("mtls-originate-{}", host.replace('.', "-")),
        );
    }
    let ns = rt.block_on(async {
        let client = client(&kubeconfig).await;
        ensure_istio_cr(&client).await;
        for (host, secret, days, issued) in &partners {
            scratch
                .create(&client, &client_credential(secret, host, *days, *issued))
                .await;
        }
        scratch.namespace(&client, "status-expiry").await
    });
    for (host, secret, ..) in &partners {
        let (code, _, err) = egress(
            &kubeconfig,
            &[
                "enable",
                "--host",
                host,
                "-n",
                &ns,
                "--no-wait",
                "--credential",
                secret,
            ],
        );
        assert_eq!(code, 0, "{err}");
    }

    let (code, out, err) = egress(&kubeconfig, &["status", "-n", &ns, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let row = |host: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["host"] == host)
            .unwrap_or_else(|| panic!("{host} in {out}"))
            .clone()
    };
    let (soon, gone) = (row(&partners[0].0), row(&partners[1].0));
    assert_eq!(soon["credential"], partners[0].1.as_str());
    assert_eq!(soon["credentialSecret"]["namespace"], "istio-system");
    assert_eq!(soon["credentialSecret"]["certificate"]["daysLeft"], 4);
    assert_eq!(
        soon["credentialSecret"]["hosts"][0],
        format!("caller.{}", partners[0].0)
    );
    assert_eq!(gone["credentialSecret"]["certificate"]["daysLeft"], -2);
    let problems = |r: &Value| -> Vec<String> {
        r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let expired = format!(
        "certificate in secret istio-system/{} expired ",
        partners[1].1
    );
    assert!(
        problems(&gone).iter().any(|p| p.starts_with(&expired)),
        "{:?}",
        problems(&gone)
    );
    assert!(
        !problems(&soon).iter().any(|p| p.contains("expired")),
        "{:?}",
        problems(&soon)
    );
    // stderr: the 5-day leaf and CA (warning), the expired leaf and CA (error); stdout stays JSON.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    let soon_line = format!(
        "warning: secret istio-system/{}: certificate ",
        partners[0].1
    );
    let gone_line = format!("error: secret istio-system/{}: certificate ", partners[1].1);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&soon_line) && l.contains("expires in 4 days")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&gone_line) && l.contains("EXPIRED 2 days ago")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(&format!("(used by {})", partners[0].0))
                || l.ends_with(&format!("(used by {})", partners[1].0))),
        "{err}"
    );
    // A 3-day threshold leaves only the expired one.
    let (code, _, err) = egress(
        &kubeconfig,
        &["status", "-n", &ns, "--expiry-warning", "3d"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("error: ")), "{err}");

    for (host, ..) in &partners {
        let (code, _, err) = egress(&kubeconfig, &["disable", "--host", host, "-n", &ns]);
        assert_eq!(code, 0, "{err}");
    }
    drop(scratch);
}
