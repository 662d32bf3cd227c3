//! `doctor`'s rules: the corrected manifests of `../shared/reference/recommended-manifests.yaml`
//! (test data beside the repository; with real
//! certificates in their Secrets) produce no finding, and for every rule a copy with exactly that
//! one defect produces exactly that rule's finding.

use std::io::Write;
use std::path::PathBuf;

use kubectl_mtls_probe::doctor::{RULES, Scope, Snapshot, diagnose};
use serde_json::{Value, json};
use shared::names::DnsName;
use shared::pki::{Authority, Bundle, BundleRequest, KeyType, PrivateKey, Usage};

const HOST: &str = "httpbin.example.com";

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn bundle() -> Bundle {
    Bundle::generate(
        &BundleRequest {
            domain: DnsName::parse(HOST).unwrap(),
            client: DnsName::parse("client.example.com").unwrap(),
            days: 365,
            key_type: KeyType::EcdsaP256,
            ca_name: None,
        },
        now(),
    )
    .unwrap()
}

/// The recommended manifests as documents, with the bundle's PEMs in the Secrets; `None` (and a
/// visible note) when the reference file is absent.
fn recommended(b: &Bundle) -> Option<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/recommended-manifests.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED doctor fixtures: {} not found",
            path.display()
        );
        return None;
    };
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.retain(|d| !d.is_null());
    // The reference predates issue 13 (item 9): over its ISTIO_MUTUAL hop the gateway forwards
    // the caller's identity in XFCC; the recommended route removes it, as `enable` does.
    find(
        &mut docs,
        "VirtualService",
        "direct-httpbin-through-egress-gateway",
    )["spec"]["http"][1]["headers"] = json!({"request": {"remove": ["x-forwarded-client-cert"]}});
    docs.extend(cluster());
    for d in &mut docs {
        if d["kind"] == "Secret" {
            let sd = &mut d["stringData"];
            if sd.get("cert").is_some() {
                *sd = json!({"cert": b.server.cert.to_pem(), "key": b.server.key.to_pem(), "cacert": b.ca.cert.to_pem()});
            } else {
                *sd = json!({"tls.crt": b.client.cert.to_pem(), "tls.key": b.client.key.to_pem(), "ca.crt": b.ca.cert.to_pem()});
            }
        }
    }
    Some(docs)
}

/// The rest of a client cluster the lockdown rules look at: namespaces, DNS, istiod, one caller.
fn cluster() -> Vec<Value> {
    let ns = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
    };
    let pod = |ns: &str, name: &str, labels: Value, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"podIP": ip}})
    };
    vec![
        ns("kube-system"),
        ns("istio-system"),
        ns("mtls-demo"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "100.104.0.10", "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 8053},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 8053}]}}),
        pod(
            "kube-system",
            "coredns",
            json!({"k8s-app": "kube-dns"}),
            "10.0.0.10",
        ),
        pod(
            "istio-system",
            "istiod",
            json!({"istio": "pilot", "app": "istiod"}),
            "10.0.0.20",
        ),
        pod("mtls-demo", "curl", json!({"app": "curl"}), "10.0.1.5"),
    ]
}

fn ids(docs: &[Value]) -> Vec<&'static str> {
    let mut s = Snapshot::default();
    for d in docs {
        s.add_document(d.clone()).unwrap();
    }
    diagnose(&s, &Scope::default(), now())
        .iter()
        .map(|f| f.id)
        .collect()
}

fn find<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

fn remove(docs: &mut Vec<Value>, kind: &str, name: &str) {
    let before = docs.len();
    docs.retain(|d| !(d["kind"] == kind && d["metadata"]["name"] == name));
    assert_eq!(docs.len(), before - 1, "{kind} {name}");
}

#[test]
fn the_recommended_manifests_are_clean() {
    let b = bundle();
    let Some(docs) = recommended(&b) else { return };
    assert_eq!(ids(&docs), Vec::<&str>::new());
}

#[test]
fn each_defect_is_found_by_its_rule_and_only_by_it() {
    let b = bundle();
    let Some(base) = recommended(&b) else { return };
    let other = bundle();
    let ca = Authority::load(
        &b.ca.cert.to_pem(),
        "ca.crt",
        PrivateKey::from_pem(&b.ca.key.to_pem(), "ca.key").unwrap(),
        "ca.key",
        now(),
    )
    .unwrap();
    let issue = |usage, name: &str, days| {
        ca.issue(
            usage,
            &DnsName::parse(name).unwrap(),
            days,
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            now(),
        )
        .unwrap()
    };
    type Mutation = Box<dyn Fn(&mut Vec<Value>)>;
    let client_secret = "client-credential";
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "credential-cacert-name",
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["metadata"]["name"] = json!("client-cacert");
                find(d, "DestinationRule", "originate-mtls-for-httpbin")["spec"]["trafficPolicy"]
                    ["portLevelSettings"][0]["tls"]["credentialName"] = json!("client-cacert");
            }),
        ),
        (
            "credential-missing",
            Box::new(move |d: &mut Vec<Value>| remove(d, "Secret", client_secret)),
        ),
        (
            "credential-layout",
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["stringData"]
                    .as_object_mut()
                    .unwrap()
                    .remove("tls.key");
            }),
        ),
        (
            "credential-unreadable",
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["stringData"]["tls.key"] = json!("not a key");
            }),
        ),
        ("credential-key-mismatch", {
            let key = other.client.key.to_pem();
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["stringData"]["tls.key"] = json!(key)
            })
        }),
        ("credential-expiry", {
            let leaf = issue(Usage::Client, "client.example.com", 10);
            let (cert, key) = (leaf.cert.to_pem(), leaf.key.to_pem());
            Box::new(move |d: &mut Vec<Value>| {
                let sd = &mut find(d, "Secret", client_secret)["stringData"];
                sd["tls.crt"] = json!(cert);
                sd["tls.key"] = json!(key);
            })
        }),
        ("trust-bundle-expiry", {
            // During a rotation: the next CA next to the current one, and the next one ends in
            // 10 days.
            let next = Authority::create(
                "Next CA",
                10,
                PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
                now(),
            )
            .unwrap();
            let bundle = format!("{}{}", b.ca.cert.to_pem(), next.cert.to_pem());
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["stringData"]["ca.crt"] = json!(bundle)
            })
        }),
        ("credential-eku", {
            let (cert, key) = (b.server.cert.to_pem(), b.server.key.to_pem());
            Box::new(move |d: &mut Vec<Value>| {
                let sd = &mut find(d, "Secret", client_secret)["stringData"];
                sd["tls.crt"] = json!(cert);
                sd["tls.key"] = json!(key);
            })
        }),
        ("credential-san", {
            let leaf = issue(Usage::Server, "other.example.com", 365);
            let (cert, key) = (leaf.cert.to_pem(), leaf.key.to_pem());
            Box::new(move |d: &mut Vec<Value>| {
                let sd = &mut find(d, "Secret", "kyma-mtls-certs")["stringData"];
                sd["cert"] = json!(cert);
                sd["key"] = json!(key);
            })
        }),
        ("ca-direction", {
            let foreign = other.ca.cert.to_pem();
            Box::new(move |d: &mut Vec<Value>| {
                find(d, "Secret", client_secret)["stringData"]["ca.crt"] = json!(foreign)
            })
        }),
        (
            "istio-cr-count",
            Box::new(|d: &mut Vec<Value>| {
                let mut second = find(d, "Istio", "default").clone();
                second["metadata"]["name"] = json!("second");
                d.push(second);
            }),
        ),
        (
            "istio-cr-not-ready",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "Istio", "default")["status"] =
                    json!({"state": "Error", "description": "reconcile failed"});
            }),
        ),
        (
            "egress-gateway-disabled",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "Istio", "default")["spec"]["components"]["egressGateway"]["enabled"] =
                    json!(false);
            }),
        ),
        (
            "egress-gateway-unavailable",
            Box::new(|d: &mut Vec<Value>| {
                d.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
                "status": {"conditions": [{"type": "Available", "status": "False"}]}}));
            }),
        ),
        (
            "serviceentry-missing",
            Box::new(|d: &mut Vec<Value>| remove(d, "ServiceEntry", "httpbin-ext")),
        ),
        (
            "serviceentry-export",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "ServiceEntry", "httpbin-ext")["spec"]["exportTo"] = json!(["."]);
            }),
        ),
        (
            "egress-gateway-route-missing",
            Box::new(|d: &mut Vec<Value>| remove(d, "Gateway", "egress-httpbin")),
        ),
        (
            "virtualservice-missing",
            Box::new(|d: &mut Vec<Value>| {
                remove(d, "VirtualService", "direct-httpbin-through-egress-gateway")
            }),
        ),
        (
            "virtualservice-export",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "VirtualService", "direct-httpbin-through-egress-gateway")["spec"]["exportTo"] =
                    json!(["."]);
            }),
        ),
        (
            "virtualservice-subset-missing",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "DestinationRule", "egressgateway-for-httpbin")["spec"]["subsets"][0]["name"] =
                    json!("renamed");
            }),
        ),
        (
            "hop-tls-mismatch",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "Gateway", "egress-httpbin")["spec"]["servers"][0]["tls"] =
                    json!({"mode": "SIMPLE", "credentialName": "x"});
                find(d, "Gateway", "egress-httpbin")["spec"]["servers"][0]["tls"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialName");
            }),
        ),
        (
            "origination-missing",
            Box::new(|d: &mut Vec<Value>| {
                remove(d, "DestinationRule", "originate-mtls-for-httpbin")
            }),
        ),
        (
            "origination-san-missing",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "DestinationRule", "originate-mtls-for-httpbin")["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]
                .as_object_mut()
                .unwrap()
                .remove("subjectAltNames");
            }),
        ),
        (
            "origination-shadowed",
            Box::new(|d: &mut Vec<Value>| {
                // Issue 13 item 5: what really shadows for the gateway in the root namespace —
                // an older private rule there for the exact host (a rule in the client
                // namespace, the fixture before, does not: see the test below).
                find(d, "DestinationRule", "originate-mtls-for-httpbin")["metadata"]["creationTimestamp"] =
                    json!("2026-01-01T00:00:00Z");
                d.push(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": "legacy", "namespace": "istio-system", "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"host": HOST, "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}),
                );
            }),
        ),
        (
            "origination-export",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "DestinationRule", "originate-mtls-for-httpbin")["spec"]["exportTo"] =
                    json!(["*"]);
            }),
        ),
        (
            "identity-forwarded",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "VirtualService", "direct-httpbin-through-egress-gateway")["spec"]["http"]
                    [1]
                .as_object_mut()
                .unwrap()
                .remove("headers");
            }),
        ),
        (
            "telemetry-mesh-wide-duplicate",
            Box::new(|d: &mut Vec<Value>| {
                for name in ["mesh-default", "kyma-logs"] {
                    d.push(
                        json!({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                    "metadata": {"name": name, "namespace": "istio-system"},
                    "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}}),
                    );
                }
            }),
        ),
        (
            "telemetry-providers-dropped",
            Box::new(|d: &mut Vec<Value>| {
                // istio/istio 1.30.3 `pilot/pkg/model/telemetry.go`, mergeLogs: the reference's
                // gateway Telemetry names only envoy, so a mesh-wide otel provider is dropped.
                d.push(
                    json!({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                    "metadata": {"name": "mesh-default", "namespace": "istio-system"},
                    "spec": {"accessLogging": [{"providers": [{"name": "otel"}]}]}}),
                );
            }),
        ),
        (
            "sidecar-namespace-wide-duplicate",
            Box::new(|d: &mut Vec<Value>| {
                // Istio's analyzer IST0111 (istio/istio 1.30.3
                // `pkg/config/analysis/analyzers/sidecar/selector.go`): no or empty labels.
                for (name, selector) in [
                    ("default", json!(null)),
                    ("mtls-registry-only", json!({"labels": {}})),
                ] {
                    let mut spec = json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}});
                    if !selector.is_null() {
                        spec["workloadSelector"] = selector;
                    }
                    d.push(
                        json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                        "metadata": {"name": name, "namespace": "mtls-demo"}, "spec": spec}),
                    );
                }
                // One with a selector is no part of it.
                d.push(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                    "metadata": {"name": "ratings", "namespace": "mtls-demo"},
                    "spec": {"workloadSelector": {"labels": {"app": "ratings"}}}}),
                );
            }),
        ),
        (
            "lockdown-dns",
            Box::new(|d: &mut Vec<Value>| {
                // The tutorial's mistake: DNS over UDP only.
                find(d, "NetworkPolicy", "egress-only-via-istio")["spec"]["egress"][0]["ports"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|p| p["protocol"] != "TCP");
            }),
        ),
        (
            "lockdown-istiod",
            Box::new(|d: &mut Vec<Value>| {
                let egress = find(d, "NetworkPolicy", "egress-only-via-istio")["spec"]["egress"]
                    .as_array_mut()
                    .unwrap();
                let before = egress.len();
                egress.retain(|r| r["ports"][0]["port"] != 15012);
                assert_eq!(egress.len(), before - 1, "the istiod rule");
            }),
        ),
        (
            "kyma-egress-label",
            Box::new(|d: &mut Vec<Value>| {
                find(d, "Istio", "default")["spec"]["networkPoliciesEnabled"] = json!(true);
            }),
        ),
    ];
    let covered: Vec<&str> = cases.iter().map(|(id, _)| *id).collect();
    let all: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
    assert_eq!(covered, all, "one fixture per rule, in RULES order");
    for (rule, mutate) in &cases {
        let mut docs = base.clone();
        mutate(&mut docs);
        assert_eq!(ids(&docs), [*rule], "fixture for {rule}");
    }
}

#[test]
fn expiry_warning_sets_the_threshold_of_the_expiry_rules() {
    let b = bundle();
    let Some(mut docs) = recommended(&b) else {
        return;
    };
    let ca = Authority::load(
        &b.ca.cert.to_pem(),
        "ca.crt",
        PrivateKey::from_pem(&b.ca.key.to_pem(), "ca.key").unwrap(),
        "ca.key",
        now(),
    )
    .unwrap();
    let leaf = ca
        .issue(
            Usage::Client,
            &DnsName::parse("client.example.com").unwrap(),
            10,
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            now(),
        )
        .unwrap();
    let sd = &mut find(&mut docs, "Secret", "client-credential")["stringData"];
    sd["tls.crt"] = json!(leaf.cert.to_pem());
    sd["tls.key"] = json!(leaf.key.to_pem());
    let mut s = Snapshot::default();
    for d in &docs {
        s.add_document(d.clone()).unwrap();
    }
    let with = |days: i64| {
        let scope = Scope {
            expiry_warning: time::Duration::days(days),
            ..Scope::default()
        };
        diagnose(&s, &scope, now())
    };
    // Default 30 days: a warning naming the days left; 7 days: nothing to say.
    let found = diagnose(&s, &Scope::default(), now());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found, with(30));
    assert_eq!(
        (found[0].id, found[0].severity),
        (
            "credential-expiry",
            kubectl_mtls_probe::doctor::Severity::Warning
        )
    );
    assert!(
        found[0]
            .problem
            .starts_with("CN=client.example.com expires in 9 days ("),
        "{}",
        found[0].problem
    );
    assert_eq!(found[0].object, "secret istio-system/client-credential");
    // The fix is the renew command for the client side (the Secret is the egress gateway's).
    assert!(
        found[0]
            .fix
            .contains("kubectl mtls-certs renew --dir DIR --client --client-context"),
        "{}",
        found[0].fix
    );
    assert!(with(7).is_empty());
    // Eleven days on, it has expired: an error, whatever the threshold.
    let later = now() + time::Duration::days(11);
    let scope = Scope {
        expiry_warning: time::Duration::ZERO,
        ..Scope::default()
    };
    let found = diagnose(&s, &scope, later);
    let expired: Vec<_> = found
        .iter()
        .filter(|f| f.id == "credential-expiry")
        .collect();
    assert_eq!(expired.len(), 1, "{found:?}");
    assert_eq!(
        expired[0].severity,
        kubectl_mtls_probe::doctor::Severity::Error
    );
    assert!(
        expired[0].problem.contains("expired on"),
        "{}",
        expired[0].problem
    );
}

#[test]
fn a_host_filter_limits_the_routing_rules() {
    let b = bundle();
    let Some(mut docs) = recommended(&b) else {
        return;
    };
    remove(&mut docs, "ServiceEntry", "httpbin-ext");
    let mut s = Snapshot::default();
    for d in &docs {
        s.add_document(d.clone()).unwrap();
    }
    let other = Scope {
        host: Some(DnsName::parse("api.other.example").unwrap()),
        ..Scope::default()
    };
    let found: Vec<_> = diagnose(&s, &other, now()).iter().map(|f| f.id).collect();
    // For a host nothing configures, every routing object is missing.
    assert!(
        found.contains(&"origination-missing") && found.contains(&"serviceentry-missing"),
        "{found:?}"
    );
    let ours = Scope {
        host: Some(DnsName::parse(HOST).unwrap()),
        ..Scope::default()
    };
    let found: Vec<_> = diagnose(&s, &ours, now()).iter().map(|f| f.id).collect();
    assert_eq!(found, ["serviceentry-missing"]);
}

#[test]
fn pod_templates_are_judged_as_the_pods_they_run() {
    let b = bundle();
    let Some(base) = recommended(&b) else {
        return;
    };
    // The caller as a Deployment (what a GitOps folder holds) instead of a Pod.
    let as_deployment = |docs: &[Value]| -> Vec<Value> {
        docs.iter()
            .map(|d| {
                if d["kind"] == "Pod" && d["metadata"]["name"] == "curl" {
                    let labels = d["metadata"]["labels"].clone();
                    json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "curl", "namespace": "mtls-demo"},
                        "spec": {"selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels}, "spec": d["spec"]}}})
                } else {
                    d.clone()
                }
            })
            .collect()
    };
    let findings = |docs: &[Value]| -> Vec<(&'static str, String)> {
        let mut s = Snapshot::default();
        for d in docs {
            s.add_document(d.clone()).unwrap();
        }
        diagnose(&s, &Scope::default(), now())
            .into_iter()
            .map(|f| (f.id, f.object))
            .collect()
    };
    type Defect = fn(&mut Vec<Value>);
    let defects: [(&str, Defect); 2] = [
        ("kyma-egress-label", |d| {
            find(d, "Istio", "default")["spec"]["networkPoliciesEnabled"] = json!(true);
        }),
        ("lockdown-dns", |d| {
            find(d, "NetworkPolicy", "egress-only-via-istio")["spec"]["egress"][0]["ports"]
                .as_array_mut()
                .unwrap()
                .retain(|p| p["protocol"] != "TCP");
        }),
    ];
    for (rule, defect) in defects {
        let mut pods = base.clone();
        defect(&mut pods);
        let mut workloads = as_deployment(&base);
        defect(&mut workloads);
        assert_eq!(
            findings(&pods),
            [(rule, "pod mtls-demo/curl".to_string())],
            "{rule} on the Pod"
        );
        assert_eq!(
            findings(&workloads),
            [(rule, "pod mtls-demo/deployment/curl".to_string())],
            "{rule} on the Deployment's pod template"
        );
    }
}

/// XFCC is set by the gateway only from the Istio-mTLS hop's client certificate (SANITIZE_SET:
/// istio/istio `pilot/pkg/networking/core/gateway.go`), so the plain hop has nothing to leak; a
/// removal on the route's destination counts as much as one on the route.
#[test]
fn identity_forwarded_only_over_the_istio_mutual_hop() {
    let b = bundle();
    let Some(base) = recommended(&b) else { return };
    let vs = "direct-httpbin-through-egress-gateway";
    let without_removal = |d: &mut Vec<Value>| {
        find(d, "VirtualService", vs)["spec"]["http"][1]
            .as_object_mut()
            .unwrap()
            .remove("headers");
    };
    let mut per_destination = base.clone();
    without_removal(&mut per_destination);
    find(&mut per_destination, "VirtualService", vs)["spec"]["http"][1]["route"][0]["headers"] =
        json!({"request": {"remove": ["X-Forwarded-Client-Cert"]}});
    assert_eq!(ids(&per_destination), Vec::<&str>::new());

    let mut plain = base.clone();
    without_removal(&mut plain);
    find(&mut plain, "Gateway", "egress-httpbin")["spec"]["servers"][0] = json!({
        "port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [HOST]});
    let subset =
        &mut find(&mut plain, "DestinationRule", "egressgateway-for-httpbin")["spec"]["subsets"][0];
    subset.as_object_mut().unwrap().remove("trafficPolicy");
    let http = &mut find(&mut plain, "VirtualService", vs)["spec"]["http"];
    http[0]["route"][0]["destination"]["port"]["number"] = json!(80);
    http[1]["match"][0]["port"] = json!(80);
    // The AuthorizationPolicy of the reference needs the Istio-mTLS hop; it is not a routing rule.
    assert_eq!(ids(&plain), Vec::<&str>::new());
}

/// Istio's lookup for the egress gateway in the root namespace (istio/istio 1.30.3
/// `pilot/pkg/model/push_context.go`, `destinationRule`; `destination_rule.go`,
/// `mergeDestinationRule`): rules in the client namespace, exported or wildcard rules do not take
/// the origination rule's place; a rule with a workloadSelector in istio-system does.
#[test]
fn only_rules_that_take_the_origination_rules_place_are_reported() {
    let b = bundle();
    let Some(base) = recommended(&b) else { return };
    let dr = |ns: &str, name: &str, host: &str, extra: Value| {
        let mut spec = json!({"host": host, "trafficPolicy": {"tls": {"mode": "SIMPLE"}}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
    };
    let mut harmless = base.clone();
    harmless.extend([
        dr("mtls-demo", "legacy", HOST, json!({})),
        dr("istio-system", "exported", HOST, json!({"exportTo": ["*"]})),
        dr(
            "istio-system",
            "wildcard",
            "*.example.com",
            json!({"exportTo": ["."]}),
        ),
    ]);
    assert_eq!(ids(&harmless), Vec::<&str>::new());

    for selector in [json!({"istio": "egressgateway"}), json!({"app": "reviews"})] {
        let mut docs = base.clone();
        docs.push(dr(
            "istio-system",
            "selected",
            HOST,
            json!({"workloadSelector": {"matchLabels": selector}}),
        ));
        let mut s = Snapshot::default();
        for d in &docs {
            s.add_document(d.clone()).unwrap();
        }
        let found = diagnose(&s, &Scope::default(), now());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].id, "origination-shadowed");
        assert_eq!(found[0].object, "destinationrule istio-system/selected");
    }
}

/// The recommended manifests moved to gateways installed by Istio's Helm `gateway` chart:
/// `istio: ingress` in `istio-ingress` and `istio: egress` in `istio-egress` (istio/istio 1.30.3
/// `manifests/charts/gateway/templates/_helpers.tpl`), with the chart's Deployments in the
/// files. doctor judges them against those gateways: clean as they are; the client Secret left in
/// istio-system is missing where the egress gateway resolves it; routes still exported to
/// istio-system are hidden from it.
#[test]
fn manifests_for_helm_gateways_are_judged_against_those_gateways() {
    let b = bundle();
    let Some(base) = recommended(&b) else { return };
    let text = serde_json::to_string(&base)
        .unwrap()
        .replace(
            "istio-egressgateway.istio-system.svc.cluster.local",
            "istio-egress.istio-egress.svc.cluster.local",
        )
        .replace("\"istio\":\"egressgateway\"", "\"istio\":\"egress\"")
        .replace("\"istio\":\"ingressgateway\"", "\"istio\":\"ingress\"")
        .replace(
            "\"app\":\"istio-ingressgateway\"",
            "\"app\":\"istio-ingress\"",
        );
    let mut docs: Vec<Value> = serde_json::from_str(&text).unwrap();
    let move_to = |docs: &mut Vec<Value>, kind: &str, name: &str, ns: &str| {
        find(docs, kind, name)["metadata"]["namespace"] = json!(ns);
    };
    move_to(&mut docs, "Secret", "kyma-mtls-certs", "istio-ingress");
    for (kind, name) in [
        ("Secret", "client-credential"),
        ("Telemetry", "egressgateway-access-log"),
        ("DestinationRule", "originate-mtls-for-httpbin"),
        ("AuthorizationPolicy", "egress-httpbin-only-from-mtls-demo"),
    ] {
        move_to(&mut docs, kind, name, "istio-egress");
    }
    for (kind, name) in [
        ("ServiceEntry", "httpbin-ext"),
        ("VirtualService", "direct-httpbin-through-egress-gateway"),
    ] {
        find(&mut docs, kind, name)["spec"]["exportTo"] = json!([".", "istio-egress"]);
    }
    // The Kyma Istio CR has no say here: this is plain Istio.
    docs.retain(|d| d["kind"] != "Istio");
    for (ns, release) in [
        ("istio-ingress", "istio-ingress"),
        ("istio-egress", "istio-egress"),
    ] {
        let istio = release.trim_start_matches("istio-");
        docs.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": release, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": release, "istio": istio}},
                "template": {"metadata": {
                    "annotations": {"inject.istio.io/templates": "gateway"},
                    "labels": {"app": release, "istio": istio, "sidecar.istio.io/inject": "true"}},
                  "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}},
            "status": {"conditions": [{"type": "Available", "status": "True"}]}}));
    }
    assert_eq!(ids(&docs), Vec::<&str>::new());

    let mut left_behind = docs.clone();
    move_to(
        &mut left_behind,
        "Secret",
        "client-credential",
        "istio-system",
    );
    assert_eq!(ids(&left_behind), ["credential-missing"]);

    let mut hidden = docs.clone();
    find(
        &mut hidden,
        "VirtualService",
        "direct-httpbin-through-egress-gateway",
    )["spec"]["exportTo"] = json!([".", "istio-system"]);
    assert_eq!(ids(&hidden), ["virtualservice-export"]);
}
