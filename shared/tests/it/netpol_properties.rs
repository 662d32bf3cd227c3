//! Properties of NetworkPolicy semantics over seeded random worlds (plain loops, no framework;
//! the seed is in every failure message so a failure replays):
//!
//! - a policy that selects a pod for egress and has no rules never widens its egress (it can only
//!   isolate);
//! - for a pod already isolated, adding any policy never narrows its egress (policies are a union);
//! - a policy whose podSelector matches nothing changes no verdict;
//! - the order policies are loaded in changes no verdict;
//! - CIDR containment agrees with a bit-by-bit comparison.

use std::net::IpAddr;

use serde_json::{Value, json};
use shared::netpol::{Cidr, Direction, Endpoint, Inventory, Protocol};

/// xorshift64*: small, deterministic, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const KEYS: [&str; 3] = ["app", "tier", "role"];
const VALUES: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 3] = ["n0", "n1", "n2"];
const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

fn labels(rng: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    for k in KEYS {
        if rng.chance(50) {
            m.insert(k.into(), json!(rng.pick(&VALUES)));
        }
    }
    Value::Object(m)
}

fn selector(rng: &mut Rng) -> Value {
    let mut s = serde_json::Map::new();
    if rng.chance(50) {
        let k = *rng.pick(&KEYS);
        s.insert("matchLabels".into(), json!({ k: rng.pick(&VALUES) }));
    }
    if rng.chance(40) {
        let k = *rng.pick(&KEYS);
        let e = match rng.below(4) {
            0 => {
                json!({"key": k, "operator": "In", "values": [rng.pick(&VALUES), rng.pick(&VALUES)]})
            }
            1 => json!({"key": k, "operator": "NotIn", "values": [rng.pick(&VALUES)]}),
            2 => json!({"key": k, "operator": "Exists"}),
            _ => json!({"key": k, "operator": "DoesNotExist"}),
        };
        s.insert("matchExpressions".into(), json!([e]));
    }
    Value::Object(s)
}

fn peer(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => {
            let a = rng.below(4);
            json!({"ipBlock": {"cidr": format!("10.{a}.0.0/16"), "except": [format!("10.{a}.{}.0/24", rng.below(4))]}})
        }
        1 => json!({"podSelector": selector(rng)}),
        2 => json!({"namespaceSelector": selector(rng)}),
        _ => json!({"namespaceSelector": selector(rng), "podSelector": selector(rng)}),
    }
}

fn port(rng: &mut Rng) -> Value {
    let proto = rng.pick(&["TCP", "UDP", "SCTP"]).to_string();
    match rng.below(4) {
        0 => json!({"protocol": proto}),
        1 => json!({"protocol": proto, "port": 80 + rng.below(3)}),
        2 => json!({"protocol": proto, "port": 80, "endPort": 81 + rng.below(2)}),
        _ => json!({"protocol": proto, "port": rng.pick(&["http", "dns"])}),
    }
}

fn policy(rng: &mut Rng, name: &str, namespace: &str) -> Value {
    let mut rules = Vec::new();
    for _ in 0..rng.below(3) {
        let mut rule = serde_json::Map::new();
        if rng.chance(70) {
            rule.insert(
                "to".into(),
                Value::Array((0..1 + rng.below(2)).map(|_| peer(rng)).collect()),
            );
        }
        if rng.chance(70) {
            rule.insert(
                "ports".into(),
                Value::Array((0..1 + rng.below(2)).map(|_| port(rng)).collect()),
            );
        }
        rules.push(Value::Object(rule));
    }
    let mut spec = json!({"podSelector": selector(rng), "egress": rules});
    if rng.chance(60) {
        spec["policyTypes"] = json!(["Egress"]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

fn world(rng: &mut Rng) -> Vec<Value> {
    let mut docs = Vec::new();
    for ns in NAMESPACES {
        docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels(rng)}}));
    }
    for i in 0..8 {
        let ns = *rng.pick(&NAMESPACES);
        let proto = rng.pick(&["TCP", "UDP"]).to_string();
        docs.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "namespace": ns, "labels": labels(rng)},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [
                {"name": "http", "containerPort": 80 + rng.below(3), "protocol": proto},
                {"name": "dns", "containerPort": 81, "protocol": "UDP"}]}]},
            "status": {"podIP": format!("10.{}.{}.{}", rng.below(4), rng.below(4), 1 + i)}}));
    }
    docs
}

fn inventory(docs: &[Value]) -> Inventory {
    let mut inv = Inventory::new();
    for d in docs {
        inv.add_document(d.clone(), "n0").unwrap();
    }
    inv
}

/// Every egress verdict of the world: (source, destination, port, protocol) → allowed, for pods
/// and two bare addresses.
fn verdicts(inv: &Inventory) -> Vec<bool> {
    let ips: [IpAddr; 2] = ["10.1.2.3".parse().unwrap(), "1.1.1.1".parse().unwrap()];
    let mut out = Vec::new();
    for src in 0..inv.pods().len() {
        for port in 79..=82 {
            for proto in PROTOCOLS {
                for dst in 0..inv.pods().len() {
                    out.push(
                        inv.decide(Direction::Egress, src, &inv.pod_endpoint(dst), port, proto)
                            .allowed,
                    );
                }
                for ip in ips {
                    let e = Endpoint {
                        pod: None,
                        ip: Some(ip),
                    };
                    out.push(inv.decide(Direction::Egress, src, &e, port, proto).allowed);
                }
            }
        }
    }
    out
}

fn isolated(inv: &Inventory, src: usize) -> bool {
    let e = Endpoint {
        pod: None,
        ip: None,
    };
    !matches!(
        inv.decide(Direction::Egress, src, &e, 1, Protocol::Tcp)
            .reason,
        shared::netpol::Reason::NotIsolated
    )
}

const SEEDS: u64 = 300;

#[test]
fn a_rule_less_egress_policy_never_widens_egress() {
    let mut widened_nothing_checked = 0;
    for seed in 1..=SEEDS {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut docs = world(&mut rng);
        for i in 0..rng.below(4) {
            let ns = *rng.pick(&NAMESPACES);
            docs.push(policy(&mut rng, &format!("q{i}"), ns));
        }
        let before = verdicts(&inventory(&docs));
        let ns = *rng.pick(&NAMESPACES);
        docs.push(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": ns},
            "spec": {"podSelector": selector(&mut rng), "policyTypes": ["Egress"]}}),
        );
        let after = verdicts(&inventory(&docs));
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                !a || *b,
                "seed {seed}: verdict {i} widened by a deny-all policy"
            );
        }
        widened_nothing_checked += usize::from(before != after);
    }
    // The property must be exercised: some deny-all policies really narrowed something.
    assert!(
        widened_nothing_checked > SEEDS as usize / 10,
        "{widened_nothing_checked}"
    );
}

#[test]
fn adding_a_policy_never_narrows_an_isolated_pods_egress() {
    let mut widened = 0;
    for seed in 1..=SEEDS {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut docs = world(&mut rng);
        // Isolate every pod first, so the union rule is what is tested.
        for ns in NAMESPACES {
            docs.push(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "isolate", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}),
            );
        }
        docs.push(policy(&mut rng, "q0", "n0"));
        let inv = inventory(&docs);
        assert!(
            (0..inv.pods().len()).all(|p| isolated(&inv, p)),
            "seed {seed}"
        );
        let before = verdicts(&inv);
        let ns = *rng.pick(&NAMESPACES);
        docs.push(policy(&mut rng, "added", ns));
        let after = verdicts(&inventory(&docs));
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                !b || *a,
                "seed {seed}: verdict {i} narrowed by adding a policy"
            );
        }
        widened += usize::from(before != after);
    }
    assert!(widened > SEEDS as usize / 10, "{widened}");
}

#[test]
fn a_policy_selecting_nothing_and_the_load_order_change_nothing() {
    for seed in 1..=SEEDS {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut docs = world(&mut rng);
        for i in 0..1 + rng.below(4) {
            let ns = *rng.pick(&NAMESPACES);
            docs.push(policy(&mut rng, &format!("q{i}"), ns));
        }
        let before = verdicts(&inventory(&docs));
        // Same pods in the same order (verdicts are indexed by pod); policies reversed.
        let (objects, policies) = docs.split_at(NAMESPACES.len() + 8);
        let reversed: Vec<Value> = objects
            .iter()
            .chain(policies.iter().rev())
            .cloned()
            .collect();
        assert!(
            before == verdicts(&inventory(&reversed)),
            "seed {seed}: policy order matters"
        );
        let mut nothing = policy(&mut rng, "nothing", "n1");
        nothing["spec"]["podSelector"] = json!({"matchLabels": {"no-pod-has": "this"}});
        docs.push(nothing);
        assert!(
            before == verdicts(&inventory(&docs)),
            "seed {seed}: a policy selecting nothing changed a verdict"
        );
    }
}

#[test]
fn cidr_containment_agrees_with_bitwise_comparison() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..20_000 {
        let v6 = rng.chance(50);
        let (net, ip, bits): (IpAddr, IpAddr, u32) = if v6 {
            let a = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            // Often share a prefix with the network, so containment is not always false.
            let flip = 1u128 << rng.below(128);
            let b = if rng.chance(70) {
                a ^ flip
            } else {
                (u128::from(rng.next()) << 64) | u128::from(rng.next())
            };
            (IpAddr::V6(a.into()), IpAddr::V6(b.into()), 128)
        } else {
            let a = rng.next() as u32;
            let b = if rng.chance(70) {
                a ^ (1u32 << rng.below(32))
            } else {
                rng.next() as u32
            };
            (IpAddr::V4(a.into()), IpAddr::V4(b.into()), 32)
        };
        let prefix = rng.below(u64::from(bits) + 1) as u8;
        let cidr: Cidr = format!("{net}/{prefix}").parse().unwrap();
        let expected = match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                prefix == 0
                    || (u32::from(n) >> (32 - u32::from(prefix)))
                        == (u32::from(i) >> (32 - u32::from(prefix)))
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                prefix == 0
                    || (u128::from(n) >> (128 - u32::from(prefix)))
                        == (u128::from(i) >> (128 - u32::from(prefix)))
            }
            _ => unreachable!(),
        };
        assert_eq!(cidr.contains(ip), expected, "{cidr} contains {ip}");
        let other: IpAddr = if v6 {
            "10.0.0.1".parse().unwrap()
        } else {
            "::1".parse().unwrap()
        };
        assert!(!cidr.contains(other));
    }
}
