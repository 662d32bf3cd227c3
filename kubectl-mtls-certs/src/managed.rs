//! `kubectl mtls-certs inspect --managed [-A]`: every credential Secret kubectl-mtls manages on a
//! cluster — one LIST with our label — with its side, hosts, subject, expiry, days left and the
//! CAs its trust bundle holds; certificates within `--expiry-warning` are named on stderr.

use std::io::Write;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use time::OffsetDateTime;

use shared::cli::{GlobalArgs, Table, write_output};
use shared::cluster::list;
use shared::error::Error;
use shared::manifest::credential_state::{CredentialState, managed_selector};
use shared::manifest::secret::Side;
use shared::manifest::{COMPONENT_LABEL, ISTIO_NAMESPACE};

use super::inspect::InspectArgs;

/// Runs `inspect --managed`.
pub(crate) async fn run(
    args: &InspectArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (client, namespace) = global
        .kube
        .connect_with_default_namespace(ISTIO_NAMESPACE)
        .await?;
    let scope = (!args.all_namespaces).then_some(namespace.as_str());
    let now = super::now();
    let states = collect(&client, scope, now).await?;
    write_output(out, args.output, &states, |out| {
        Ok(render(&states, scope, now, out)?)
    })?;
    for notice in states
        .iter()
        .flat_map(|s| s.expiry_notices(now, args.expiry.expiry_warning))
    {
        let level = if notice.expired { "error" } else { "warning" };
        writeln!(err, "{level}: {}", notice.message)?;
    }
    Ok(())
}

/// The credential Secrets (component `target-credential` or `client-credential`) among the
/// Secrets with our label in `scope` (a namespace, or all for `None`), sorted by namespace/name.
async fn collect(
    client: &kube::Client,
    scope: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<CredentialState>, Error> {
    let params = ListParams::default().labels(&managed_selector());
    let secrets = list::<Secret>(client, scope, &params).await?;
    let credential = |s: &&Secret| {
        let component = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(COMPONENT_LABEL));
        [Side::Target, Side::Client]
            .iter()
            .any(|side| component.map(String::as_str) == Some(side.component()))
    };
    let mut states: Vec<CredentialState> = secrets
        .iter()
        .filter(credential)
        .map(|s| CredentialState::read(s, now))
        .collect();
    states.sort_by_key(CredentialState::id);
    Ok(states)
}

fn render(
    states: &[CredentialState],
    scope: Option<&str>,
    now: OffsetDateTime,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if states.is_empty() {
        let scope = scope.map_or_else(
            || " in any namespace".into(),
            |n| format!(" in namespace {n}"),
        );
        return writeln!(out, "No credential Secrets managed by kubectl-mtls{scope}.");
    }
    let mut table = Table::new([
        "SECRET",
        "SIDE",
        "HOSTS",
        "SUBJECT",
        "NOT AFTER",
        "DAYS LEFT",
        "TRUST BUNDLE",
    ]);
    let dash = || "-".to_string();
    for s in states {
        let side = match s.side {
            Some(Side::Target) => "target",
            Some(Side::Client) => "client",
            None => "-",
        };
        let hosts = if s.hosts.is_empty() {
            dash()
        } else {
            s.hosts.join(",")
        };
        let (subject, not_after, days) = match &s.certificate {
            Some(c) => (
                c.subject.clone(),
                c.not_after.clone(),
                c.days_left_cell(now),
            ),
            None => (dash(), dash(), dash()),
        };
        let mut bundle: Vec<String> = s
            .trust_bundle
            .iter()
            .map(|c| format!("{} {}", c.subject, c.short_fingerprint()))
            .collect();
        if let Some(e) = &s.error {
            bundle.push(format!("(unreadable: {e})"));
        }
        let bundle = match (&s.trust_bundle_key, bundle.is_empty()) {
            (_, true) => dash(),
            (Some(key), false) => format!("{key}: {}", bundle.join(", ")),
            (None, false) => bundle.join(", "),
        };
        table.row([s.id(), side.into(), hosts, subject, not_after, days, bundle]);
    }
    write!(out, "{table}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::manifest::secret::credential_secret;
    use shared::names::DnsName;
    use shared::pki::{Bundle, BundleRequest, CredentialPem, KeyType};
    use test_support::fake_api::{fake_server, seen};

    fn secret(side: Side, name: &str, ns: &str, domain: &str, days: u32) -> serde_json::Value {
        let b = Bundle::generate(
            &BundleRequest {
                domain: DnsName::parse(domain).unwrap(),
                client: DnsName::parse(&format!("caller.{domain}")).unwrap(),
                days,
                key_type: KeyType::EcdsaP256,
                ca_name: Some(format!("{domain} CA")),
            },
            super::super::now(),
        )
        .unwrap();
        let leaf = if side == Side::Target {
            &b.server
        } else {
            &b.client
        };
        let pem = CredentialPem {
            chain: leaf.cert.to_pem(),
            key: leaf.key.to_pem(),
            ca: b.ca.cert.to_pem(),
        };
        let mut v = serde_json::to_value(credential_secret(side, name, ns, &pem).unwrap()).unwrap();
        v["apiVersion"] = "v1".into();
        v["kind"] = "Secret".into();
        v
    }

    #[test]
    fn lists_ours_with_one_labelled_list_per_scope() {
        test_support::e2e::runtime().block_on(async {
            let (client, state) = fake_server(|s| {
                s.namespaces.insert("egress".into());
                s.put(
                    "secrets",
                    secret(
                        Side::Target,
                        "kyma-mtls-certs",
                        "istio-system",
                        "a.example.com",
                        400,
                    ),
                );
                s.put(
                    "secrets",
                    secret(Side::Client, "client-b", "istio-system", "b.example.com", 5),
                );
                s.put(
                    "secrets",
                    secret(Side::Client, "client-c", "egress", "c.example.com", 90),
                );
                // Someone else's Secret, same layout, no label: not ours, never listed.
                let mut foreign =
                    secret(Side::Target, "foreign", "istio-system", "f.example.com", 1);
                foreign["metadata"]["labels"] = serde_json::json!({});
                s.put("secrets", foreign);
            });
            let now = super::super::now();
            let here = collect(&client, Some("istio-system"), now).await.unwrap();
            let ids: Vec<String> = here.iter().map(CredentialState::id).collect();
            assert_eq!(
                ids,
                ["istio-system/client-b", "istio-system/kyma-mtls-certs"]
            );
            let all = collect(&client, None, now).await.unwrap();
            assert_eq!(all.len(), 3);
            let lists: Vec<(String, Option<String>)> = seen(&state)
                .iter()
                .map(|s| (s.path.clone(), s.param("labelSelector").map(str::to_string)))
                .collect();
            let selector = Some("app.kubernetes.io%2Fmanaged-by%3Dkubectl-mtls".to_string());
            assert_eq!(
                lists,
                [
                    (
                        "/api/v1/namespaces/istio-system/secrets".to_string(),
                        selector.clone()
                    ),
                    ("/api/v1/secrets".to_string(), selector),
                ]
            );

            let mut table = Vec::new();
            render(&here, Some("istio-system"), now, &mut table).unwrap();
            let table = String::from_utf8(table).unwrap();
            let lines: Vec<&str> = table.lines().collect();
            assert_eq!(lines.len(), 3, "{table}");
            assert!(lines[0].starts_with("SECRET") && lines[0].ends_with("TRUST BUNDLE"));
            let b = &here[0];
            let fp = b.trust_bundle[0].short_fingerprint();
            for cell in [
                "istio-system/client-b",
                "client",
                "caller.b.example.com",
                "CN=caller.b.example.com",
                "   4   ",
                &format!("ca.crt: CN=b.example.com CA {fp}"),
            ] {
                assert!(lines[1].contains(cell), "{cell:?} not in {}", lines[1]);
            }
            assert!(
                lines[2].contains("target")
                    && lines[2].contains("a.example.com")
                    && lines[2].contains("   399   "),
                "{}",
                lines[2]
            );

            // The notices the command prints on stderr: the 5-day Secret's leaf and CA only.
            let notices: Vec<String> = here
                .iter()
                .flat_map(|s| s.expiry_notices(now, shared::pki::DEFAULT_EXPIRY_WARNING))
                .map(|n| n.message)
                .collect();
            assert_eq!(notices.len(), 2, "{notices:?}");
            assert!(
                notices
                    .iter()
                    .all(|n| n.starts_with("secret istio-system/client-b: "))
            );

            let mut empty = Vec::new();
            render(&[], Some("mtls-demo"), now, &mut empty).unwrap();
            assert_eq!(
                String::from_utf8(empty).unwrap(),
                "No credential Secrets managed by kubectl-mtls in namespace mtls-demo.\n"
            );
        });
    }
}
