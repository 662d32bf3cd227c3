//! `doctor`'s live mode against the in-process fake API server: it reads what `enable` wrote, finds
//! the missing client credential, is satisfied once a valid one exists, and stays silent about
//! Secrets it may not list (instead of calling them missing).

use super::common::EnableCli;
use clap::Parser;
use kubectl_mtls_egress::enable;
use kubectl_mtls_probe::doctor::command::gather;
use kubectl_mtls_probe::doctor::{Scope, Snapshot, diagnose};
use serde_json::json;
use shared::names::DnsName;
use shared::pki::{Bundle, BundleRequest, KeyType};
use test_support::fake_api::{Inject, State, fake_server, status};

const NS: &str = "mtls-demo";

fn cluster(state: &mut State) {
    for (plural, kind) in [
        ("serviceentries", "ServiceEntry"),
        ("gateways", "Gateway"),
        ("destinationrules", "DestinationRule"),
        ("virtualservices", "VirtualService"),
    ] {
        state.serve("networking.istio.io/v1", plural, kind);
    }
    state.serve("telemetry.istio.io/v1", "telemetries", "Telemetry");
    state.serve("operator.kyma-project.io/v1alpha2", "istios", "Istio");
    for ns in [NS, "istio-system", "kyma-system", "kube-system"] {
        state.namespaces.insert(ns.into());
        state.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    state.put(
        "istios",
        json!({"apiVersion": "operator.kyma-project.io/v1alpha2", "kind": "Istio",
               "metadata": {"name": "default", "namespace": "kyma-system"}, "spec": {}, "status": {"state": "Ready"}}),
    );
    state.put(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
               "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    );
}

async fn doctor(client: &kube::Client) -> Vec<&'static str> {
    let mut snapshot = Snapshot::default();
    gather(client, NS, &mut snapshot, &mut Vec::new())
        .await
        .unwrap();
    diagnose(
        &snapshot,
        &Scope::default(),
        time::OffsetDateTime::now_utc(),
    )
    .iter()
    .map(|f| f.id)
    .collect()
}

#[tokio::test]
async fn live_doctor_reads_what_enable_wrote_and_checks_the_credential() {
    let (client, state) = fake_server(cluster);
    let args = EnableCli::parse_from(["enable", "--host", "httpbin.example.com", "--no-wait"]).args;
    enable::execute(
        &client,
        args.request(NS).unwrap(),
        &args,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .await
    .unwrap();

    // Routing is complete; the client credential the origination rule names does not exist.
    assert_eq!(doctor(&client).await, ["credential-missing"]);

    let b = Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse("httpbin.example.com").unwrap(),
            client: DnsName::parse("client.example.com").unwrap(),
            days: 365,
            key_type: KeyType::EcdsaP256,
            ca_name: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let b64 = |s: String| {
        // The fake server stores what it is given; Secrets carry base64 `data`.
        use k8s_openapi::ByteString;
        serde_json::to_value(ByteString(s.into_bytes())).unwrap()
    };
    state.lock().unwrap().put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "client-credential", "namespace": "istio-system"},
               "data": {"tls.crt": b64(b.client.cert.to_pem()), "tls.key": b64(b.client.key.to_pem()), "ca.crt": b64(b.ca.cert.to_pem())}}),
    );
    assert_eq!(doctor(&client).await, Vec::<&str>::new());

    // The server certificate in the client slot: the EKU rule sees it through the API too.
    state.lock().unwrap().put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "client-credential", "namespace": "istio-system"},
               "data": {"tls.crt": b64(b.server.cert.to_pem()), "tls.key": b64(b.server.key.to_pem()), "ca.crt": b64(b.ca.cert.to_pem())}}),
    );
    assert_eq!(doctor(&client).await, ["credential-eku"]);
}

#[tokio::test]
async fn secrets_it_may_not_list_are_not_reported_missing() {
    let (client, _state) = fake_server(|s| {
        cluster(s);
        s.inject.insert(
            "GET /api/v1/namespaces/istio-system/secrets".into(),
            Inject::Status(status(
                403,
                "Forbidden",
                "secrets is forbidden: User \"dev\" cannot list resource \"secrets\"",
                None,
            )),
        );
    });
    let args = EnableCli::parse_from(["enable", "--host", "httpbin.example.com", "--no-wait"]).args;
    enable::execute(
        &client,
        args.request(NS).unwrap(),
        &args,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(doctor(&client).await, Vec::<&str>::new());
}
