//! The NetworkPolicy evaluator against the Kubernetes spec, rule by rule: every semantic rule has
//! an allow case and a deny case, and the deciding policy/rule is checked, not only the verdict.

use shared::netpol::{Decision, Direction, Endpoint, Inventory, Protocol, Reason};

/// Namespaces, pods and a Service every case shares.
const WORLD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx
    ports:
    - {name: http, containerPort: 8080}
    - {name: metrics, containerPort: 9090}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: web2, namespace: other, labels: {app: web}}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: other, labels: {app: db, role: primary}}
status: {podIP: 10.0.1.3}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: other, labels: {app: cache}}
status: {podIP: 10.0.1.4}
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: other}
status: {podIP: 10.0.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  containers:
  - name: coredns
    image: coredns
    ports:
    - {name: dns, containerPort: 53, protocol: UDP}
    - {name: dns-tcp, containerPort: 53, protocol: TCP}
status: {podIP: 10.0.2.10}
"#;

fn world(policies: &str) -> Inventory {
    let mut inv = Inventory::new();
    inv.add_text(WORLD, "world", "default").unwrap();
    inv.add_text(policies, "policies", "app").unwrap();
    inv
}

/// Where a case sends traffic: a pod `ns/name`, or an address.
enum To {
    Pod(&'static str),
    Ip(&'static str),
}

fn egress(inv: &Inventory, from: &str, to: &To, port: u16, proto: Protocol) -> Decision {
    let (ns, name) = from.split_once('/').unwrap();
    let src = inv.pod(ns, name).unwrap();
    match to {
        To::Pod(p) => {
            let (ns, name) = p.split_once('/').unwrap();
            let dst = inv.pod(ns, name).unwrap();
            inv.decide(Direction::Egress, src, &inv.pod_endpoint(dst), port, proto)
        }
        To::Ip(ip) => inv.decide(
            Direction::Egress,
            src,
            &Endpoint {
                pod: None,
                ip: Some(ip.parse().unwrap()),
            },
            port,
            proto,
        ),
    }
}

/// What a case expects: allowed by `policy` rule `n`, allowed because nothing isolates the pod,
/// or denied.
#[derive(Debug)]
enum Want {
    AllowedBy(&'static str, usize),
    NotIsolated,
    Denied,
}

fn check(case: &str, d: &Decision, want: &Want) {
    match (want, &d.reason) {
        (Want::AllowedBy(policy, rule), Reason::AllowedBy { rules }) => {
            assert!(d.allowed, "{case}");
            assert_eq!(
                (rules[0].policy.name.as_str(), rules[0].rule),
                (*policy, *rule),
                "{case}: decided by {rules:?}"
            );
        }
        (Want::NotIsolated, Reason::NotIsolated) => assert!(d.allowed, "{case}"),
        (Want::Denied, Reason::NoRuleAllows { .. }) => assert!(!d.allowed, "{case}"),
        _ => panic!("{case}: wanted {want:?}, got {d:?}"),
    }
}

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

/// `(case, policies, [(from, to, port, protocol, expected)])`.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, To, u16, Protocol, Want)>,
);

fn cases() -> Vec<Case> {
    use To::{Ip, Pod};
    use Want::*;
    vec![
        (
            "no policy: default allow",
            "",
            vec![("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated)],
        ),
        (
            "a policy that does not select the pod does not isolate it",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated),
                ("app/web", Ip("1.1.1.1"), 443, TCP, Denied),
            ],
        ),
        (
            "policyTypes Egress without rules denies all egress",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny},
                spec: {podSelector: {}, policyTypes: [Egress]}}"#,
            vec![
                ("app/client", Pod("other/db"), 5432, TCP, Denied),
                ("app/client", Ip("1.1.1.1"), 443, TCP, Denied),
            ],
        ),
        (
            "policyTypes absent: egress implied by egress rules",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}]}]}}"#,
            vec![
                ("app/client", Pod("other/db"), 5432, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/cache"), 6379, TCP, Denied),
            ],
        ),
        (
            "policyTypes absent, ingress rules only: egress not affected",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, ingress: [{}]}}"#,
            vec![("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated)],
        ),
        (
            "policyTypes absent and an empty egress list: egress not affected",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, egress: []}}"#,
            vec![("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated)],
        ),
        (
            "policyTypes Ingress only: egress rules listed are ignored",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Ingress], egress: [{to: [{ipBlock: {cidr: 9.9.9.9/32}}]}]}}"#,
            vec![("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated)],
        ),
        (
            "an empty rule allows everything",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/db"), 1, UDP, AllowedBy("p", 0)),
            ],
        ),
        (
            "podSelector alone: the policy's own namespace only",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: web}}}]}]}}"#,
            vec![
                ("app/client", Pod("app/web"), 80, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/web2"), 80, TCP, Denied),
            ],
        ),
        (
            "namespaceSelector alone: every pod of the selected namespaces",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {team: b}}}]}]}}"#,
            vec![
                ("app/client", Pod("other/db"), 5432, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/bare"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("app/web"), 80, TCP, Denied),
            ],
        ),
        (
            "namespaceSelector by kubernetes.io/metadata.name, set even when the Namespace lists no labels",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}]}}"#,
            vec![
                (
                    "app/client",
                    Pod("kube-system/dns"),
                    53,
                    UDP,
                    AllowedBy("p", 0),
                ),
                ("app/client", Pod("other/db"), 53, UDP, Denied),
            ],
        ),
        (
            "namespaceSelector AND podSelector in one peer",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [
                  {namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: db}}}]}]}}"#,
            vec![
                ("app/client", Pod("other/db"), 5432, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/cache"), 6379, TCP, Denied),
                ("app/client", Pod("app/web"), 80, TCP, Denied),
            ],
        ),
        (
            "two peers are ORed",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [
                  {namespaceSelector: {matchLabels: {team: b}}}, {podSelector: {matchLabels: {app: web}}}]}]}}"#,
            vec![
                (
                    "app/client",
                    Pod("other/cache"),
                    6379,
                    TCP,
                    AllowedBy("p", 0),
                ),
                ("app/client", Pod("app/web"), 80, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("kube-system/dns"), 53, UDP, Denied),
            ],
        ),
        (
            "matchExpressions In",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {},
                  podSelector: {matchExpressions: [{key: app, operator: In, values: [db, cache]}]}}]}]}}"#,
            vec![
                ("app/client", Pod("other/cache"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/web2"), 1, TCP, Denied),
                ("app/client", Pod("other/bare"), 1, TCP, Denied),
            ],
        ),
        (
            "matchExpressions NotIn (a missing label satisfies NotIn)",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {},
                  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}]}]}}"#,
            vec![
                ("app/client", Pod("other/cache"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/bare"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/db"), 1, TCP, Denied),
            ],
        ),
        (
            "matchExpressions Exists",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {},
                  podSelector: {matchExpressions: [{key: role, operator: Exists}]}}]}]}}"#,
            vec![
                ("app/client", Pod("other/db"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/cache"), 1, TCP, Denied),
            ],
        ),
        (
            "matchExpressions DoesNotExist, ANDed with matchLabels",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {team: b}},
                  podSelector: {matchLabels: {app: cache}, matchExpressions: [{key: role, operator: DoesNotExist}]}}]}]}}"#,
            vec![
                ("app/client", Pod("other/cache"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("other/db"), 1, TCP, Denied),
                ("app/client", Pod("other/bare"), 1, TCP, Denied),
            ],
        ),
        (
            "matchExpressions in the policy's own podSelector",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {matchExpressions: [{key: app, operator: In, values: [client]}]}, policyTypes: [Egress]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, Denied),
                ("app/web", Ip("1.1.1.1"), 443, TCP, NotIsolated),
            ],
        ),
        (
            "ipBlock with except (IPv4)",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 172.16.0.0/12, except: [172.17.0.0/16]}}]}]}}"#,
            vec![
                ("app/client", Ip("172.18.3.4"), 80, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("172.17.3.4"), 80, TCP, Denied),
                ("app/client", Ip("172.32.0.1"), 80, TCP, Denied),
            ],
        ),
        (
            "ipBlock with except (IPv6); other family never matches",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}}]}]}}"#,
            vec![
                (
                    "app/client",
                    Ip("2001:db8:2::1"),
                    443,
                    TCP,
                    AllowedBy("p", 0),
                ),
                ("app/client", Ip("2001:db8:1::1"), 443, TCP, Denied),
                ("app/client", Ip("32.1.13.184"), 443, TCP, Denied),
            ],
        ),
        (
            "ipBlock matches a pod by its pod IP; pod selectors never match a bare address",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [
                  {to: [{ipBlock: {cidr: 10.0.1.0/24}}]}, {to: [{namespaceSelector: {}}]}]}}"#,
            vec![
                ("app/client", Pod("other/db"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("10.0.1.200"), 1, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("app/web"), 1, TCP, AllowedBy("p", 1)),
                ("app/client", Ip("10.0.0.2"), 1, TCP, Denied),
            ],
        ),
        (
            "ports: protocol and number must both match",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 53, protocol: UDP}]}]}}"#,
            vec![
                (
                    "app/client",
                    Pod("kube-system/dns"),
                    53,
                    UDP,
                    AllowedBy("p", 0),
                ),
                ("app/client", Pod("kube-system/dns"), 53, TCP, Denied),
                ("app/client", Pod("kube-system/dns"), 54, UDP, Denied),
            ],
        ),
        (
            "ports: protocol defaults to TCP",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 443}]}]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("1.1.1.1"), 443, UDP, Denied),
            ],
        ),
        (
            "ports: a protocol without a port allows all its ports",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{protocol: UDP}]}]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 9999, UDP, AllowedBy("p", 0)),
                ("app/client", Ip("1.1.1.1"), 9999, TCP, Denied),
            ],
        ),
        (
            "ports: endPort range, inclusive",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 30000, endPort: 32767}]}]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 30000, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("1.1.1.1"), 32767, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("1.1.1.1"), 32768, TCP, Denied),
                ("app/client", Ip("1.1.1.1"), 29999, TCP, Denied),
            ],
        ),
        (
            "ports: named ports resolve against the destination pod's container ports",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: http}]}]}}"#,
            vec![
                ("app/client", Pod("app/web"), 8080, TCP, AllowedBy("p", 0)),
                ("app/client", Pod("app/web"), 9090, TCP, Denied),
                ("app/client", Pod("other/db"), 8080, TCP, Denied),
                ("app/client", Ip("10.9.9.9"), 8080, TCP, Denied),
            ],
        ),
        (
            "ports: a named port matches only with its own protocol",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: dns, protocol: UDP}, {port: dns}]}]}}"#,
            vec![
                (
                    "app/client",
                    Pod("kube-system/dns"),
                    53,
                    UDP,
                    AllowedBy("p", 0),
                ),
                ("app/client", Pod("kube-system/dns"), 53, TCP, Denied),
            ],
        ),
        (
            "ports: SCTP",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 9999, protocol: SCTP}]}]}}"#,
            vec![
                (
                    "app/client",
                    Ip("1.1.1.1"),
                    9999,
                    Protocol::Sctp,
                    AllowedBy("p", 0),
                ),
                ("app/client", Ip("1.1.1.1"), 9999, TCP, Denied),
            ],
        ),
        (
            "peer AND port in one rule; two rules ORed",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p},
                spec: {podSelector: {}, policyTypes: [Egress], egress: [
                  {to: [{ipBlock: {cidr: 1.1.1.1/32}}], ports: [{port: 443}]},
                  {to: [{ipBlock: {cidr: 8.8.8.8/32}}], ports: [{port: 53, protocol: UDP}]}]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, AllowedBy("p", 0)),
                ("app/client", Ip("8.8.8.8"), 53, UDP, AllowedBy("p", 1)),
                ("app/client", Ip("1.1.1.1"), 53, UDP, Denied),
                ("app/client", Ip("8.8.8.8"), 443, TCP, Denied),
            ],
        ),
        (
            "union of policies: each allows its own, neither denies the other's",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 1.0.0.0/8}}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b}
spec: {podSelector: {matchLabels: {app: client}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 2.0.0.0/8}}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec: {podSelector: {}, policyTypes: [Egress]}
"#,
            vec![
                ("app/client", Ip("1.2.3.4"), 80, TCP, AllowedBy("a", 0)),
                ("app/client", Ip("2.2.3.4"), 80, TCP, AllowedBy("b", 0)),
                ("app/web", Ip("2.2.3.4"), 80, TCP, Denied),
                ("app/client", Ip("3.2.3.4"), 80, TCP, Denied),
            ],
        ),
        (
            "policies of another namespace never select the pod",
            r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p, namespace: other},
                spec: {podSelector: {}, policyTypes: [Egress]}}"#,
            vec![
                ("app/client", Ip("1.1.1.1"), 443, TCP, NotIsolated),
                ("other/db", Ip("1.1.1.1"), 443, TCP, Denied),
            ],
        ),
    ]
}

#[test]
fn egress_semantics_case_by_case() {
    let mut checked = 0;
    for (case, policies, checks) in cases() {
        let inv = world(policies);
        for (from, to, port, proto, want) in &checks {
            let d = egress(&inv, from, to, *port, *proto);
            let label = format!(
                "{case}: {from} -> {}:{port}/{proto}",
                match to {
                    To::Pod(p) | To::Ip(p) => p,
                }
            );
            check(&label, &d, want);
            checked += 1;
        }
    }
    assert!(checked > 70, "{checked}");
}

#[test]
fn ingress_at_the_destination_counts_too() {
    let inv = world(
        r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: db-in, namespace: other},
            spec: {podSelector: {matchLabels: {app: db}},
                   ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}], ports: [{port: 5432}]}]}}"#,
    );
    let client = inv.pod("app", "client").unwrap();
    let cache = inv.pod("other", "cache").unwrap();
    let db = inv.pod("other", "db").unwrap();
    let ok = inv.connection(client, Some(db), None, 5432, TCP);
    assert!(ok.allowed && ok.egress.allowed);
    assert!(matches!(
        ok.ingress.as_ref().unwrap().reason,
        Reason::AllowedBy { .. }
    ));
    let from_same_ns = inv.connection(cache, Some(db), None, 5432, TCP);
    assert!(
        from_same_ns.egress.allowed,
        "egress of cache is not restricted"
    );
    assert!(
        !from_same_ns.allowed,
        "db's ingress admits only team=a namespaces"
    );
    let wrong_port = inv.connection(client, Some(db), None, 5433, TCP);
    assert!(!wrong_port.allowed);
    // Ingress rules do not restrict the db's own egress (policyTypes defaulted to Ingress only).
    let out = inv.connection(db, None, Some("1.1.1.1".parse().unwrap()), 443, TCP);
    assert!(out.allowed && out.ingress.is_none());
}

#[test]
fn denials_name_the_isolating_policy_and_the_near_misses() {
    let inv = world(
        r#"{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: dns-udp},
            spec: {podSelector: {}, policyTypes: [Egress], egress: [
              {to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: 53, protocol: UDP}]}]}}"#,
    );
    let d = egress(&inv, "app/client", &To::Pod("kube-system/dns"), 53, TCP);
    let Reason::NoRuleAllows {
        policies,
        near_misses,
    } = &d.reason
    else {
        panic!("{d:?}")
    };
    assert_eq!(policies[0].name, "dns-udp");
    assert_eq!(near_misses.len(), 1);
    assert!(near_misses[0].peer_matches && !near_misses[0].port_matches);
    assert_eq!(
        near_misses[0].to_string(),
        "networkpolicy app/dns-udp spec.egress[0] matches the peer but allows only 53/UDP"
    );
    assert_eq!(
        d.to_string(),
        "denied: networkpolicy app/dns-udp selects the pod for egress and no rule allows it"
    );
}

#[test]
fn what_the_api_server_refuses_is_refused_with_the_policy_and_field() {
    let bad = [
        (
            r#"{podSelector: {matchExpressions: [{key: a, operator: Equals, values: [x]}]}}"#,
            "spec.podSelector",
        ),
        (
            r#"{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}"#,
            "spec.egress[0]: peer 0",
        ),
        (
            r#"{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]}"#,
            "strict subset",
        ),
        (
            r#"{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}"#,
            "cannot be combined",
        ),
        (
            r#"{podSelector: {}, egress: [{ports: [{port: http, endPort: 90}]}]}"#,
            "named port",
        ),
        (
            r#"{podSelector: {}, egress: [{ports: [{port: 90, endPort: 80}]}]}"#,
            "less than",
        ),
        (
            r#"{podSelector: {}, egress: [{ports: [{endPort: 80}]}]}"#,
            "endPort needs port",
        ),
        (
            r#"{podSelector: {}, egress: [{ports: [{port: 53, protocol: ICMP}]}]}"#,
            "ICMP",
        ),
        (
            r#"{podSelector: {}, egress: [{ports: [{port: 0}]}]}"#,
            "between 1 and 65535",
        ),
        (r#"{podSelector: {}, policyTypes: [Outbound]}"#, "Outbound"),
    ];
    for (spec, needle) in bad {
        let doc = format!(
            "{{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {{name: bad}}, spec: {spec}}}"
        );
        let err = Inventory::new()
            .add_text(&doc, "f.yaml", "app")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.yaml: networkpolicy app/bad: "), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn documents_that_are_not_kubernetes_objects_are_refused_lists_are_read() {
    let mut inv = Inventory::new();
    let err = inv
        .add_text("just: text\n", "x.yaml", "default")
        .unwrap_err();
    assert!(err.to_string().contains("not a Kubernetes object"), "{err}");
    let err = inv
        .add_text("apiVersion: v1\nkind: Pod\n---\n- a\n", "y.yaml", "default")
        .unwrap_err();
    assert!(
        err.to_string().starts_with("y.yaml (document 2): "),
        "{err}"
    );
    let err = inv.add_text("a: [", "z.yaml", "default").unwrap_err();
    assert!(err.to_string().contains("invalid YAML"), "{err}");
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"}},
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"skipped"}}]}"#;
    inv.add_text(list, "list.json", "default").unwrap();
    assert!(inv.pod("n", "p").is_some());
    assert!(inv.has_namespace("n"));
}
