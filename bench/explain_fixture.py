#!/usr/bin/env python3
"""Writes a synthetic cluster for `kubectl mtls-lockdown explain -f` benchmarks.

    bench/explain_fixture.py PODS POLICIES OUT.yaml [SEED] [workloads]

Namespace `bench` holds PODS pods (labels app/tier/team drawn from small vocabularies, named
container ports) and POLICIES NetworkPolicies mixing everything the evaluator handles:
matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), namespace+pod peers,
ipBlocks with except (IPv4 and IPv6), port ranges, named ports, UDP/TCP/SCTP, Egress and
Ingress. kube-system (CoreDNS + kube-dns) and istio-system (istiod, egress gateway and their
Services) make the matrix's well-known destinations resolvable. Deterministic for a seed.
With `workloads`, each of the PODS pods of `bench` is a Deployment with that pod as its template
(no pod IP), as a GitOps folder holds them; `explain` sees `deployment/pN`.
"""
import json
import random
import sys


def main():
    pods, policies, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
    as_workloads = len(sys.argv) > 5 and sys.argv[5] == "workloads"
    apps = [f"app{i}" for i in range(20)]
    tiers = ["web", "api", "db", "cache"]
    teams = ["a", "b", "c"]
    docs = []

    def ns(name, labels=None):
        docs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": name, "labels": labels or {}}})

    def pod(name, namespace, labels, ip, ports=(), workload=False):
        spec = {"containers": [{"name": "c", "image": "x", "ports": [
            {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]}]}
        if workload:
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": name, "namespace": namespace},
                         "spec": {"selector": {"matchLabels": labels},
                                  "template": {"metadata": {"labels": labels}, "spec": spec}}})
            return
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": namespace, "labels": labels},
                     "spec": spec, "status": {"podIP": ip}})

    def svc(name, namespace, ip, selector, ports):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": namespace},
                     "spec": {"clusterIP": ip, "selector": selector, "ports": [
                         {"name": n, "port": p, "targetPort": t, "protocol": proto}
                         for n, p, t, proto in ports]}})

    ns("bench", {"team": "a", "env": "prod"})
    ns("kube-system")
    ns("istio-system", {"istio-injection": "disabled"})
    pod("coredns-0", "kube-system", {"k8s-app": "kube-dns"}, "10.9.0.2",
        [("dns", 8053, "UDP"), ("dns-tcp", 8053, "TCP")])
    svc("kube-dns", "kube-system", "10.96.0.10", {"k8s-app": "kube-dns"},
        [("dns", 53, 8053, "UDP"), ("dns-tcp", 53, 8053, "TCP")])
    pod("istiod-0", "istio-system", {"istio": "pilot"}, "10.9.1.2")
    svc("istiod", "istio-system", "10.96.1.1", {"istio": "pilot"}, [("grpc", 15012, 15012, "TCP")])
    pod("egw-0", "istio-system", {"istio": "egressgateway"}, "10.9.1.3")
    svc("istio-egressgateway", "istio-system", "10.96.1.2", {"istio": "egressgateway"},
        [("http2", 80, 8080, "TCP"), ("https", 443, 8443, "TCP")])
    for i in range(pods):
        labels = {"app": rng.choice(apps), "tier": rng.choice(tiers)}
        if rng.random() < 0.5:
            labels["team"] = rng.choice(teams)
        pod(f"p{i}", "bench", labels, f"10.{1 + i // 65025}.{(i // 255) % 255}.{1 + i % 255}",
            [("http", 8080, "TCP"), ("metrics", 9090, "TCP")], workload=as_workloads)

    def selector():
        s = {}
        r = rng.random()
        if r < 0.1:
            return s
        if r < 0.6:
            s["matchLabels"] = {"app": rng.choice(apps)}
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        key = rng.choice(["tier", "team"])
        e = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            e["values"] = rng.sample(tiers if key == "tier" else teams, 2)
        s["matchExpressions"] = [e]
        return s

    def peer():
        r = rng.random()
        if r < 0.25:
            a = rng.randrange(256)
            return {"ipBlock": {"cidr": f"{a}.0.0.0/8", "except": [f"{a}.{rng.randrange(256)}.0.0/16"]}}
        if r < 0.3:
            return {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}}
        if r < 0.55:
            return {"podSelector": selector()}
        if r < 0.75:
            return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": rng.choice(
                ["kube-system", "istio-system", "bench"])}}}
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                "podSelector": {"matchLabels": {"istio": rng.choice(["pilot", "egressgateway"])}}}

    def port():
        proto = rng.choice(["TCP", "TCP", "UDP", "SCTP"])
        r = rng.random()
        if r < 0.5:
            return {"protocol": proto, "port": rng.choice([53, 80, 443, 8080, 8443, 15012])}
        if r < 0.7:
            return {"protocol": proto, "port": 30000, "endPort": 32767}
        if r < 0.9:
            return {"protocol": proto, "port": rng.choice(["http", "metrics", "dns"])}
        return {"protocol": proto}

    for i in range(policies):
        rules = []
        for _ in range(rng.randrange(1, 4)):
            rule = {}
            if rng.random() < 0.95:
                rule["to"] = [peer() for _ in range(rng.randrange(1, 3))]
            if rng.random() < 0.9:
                rule["ports"] = [port() for _ in range(rng.randrange(1, 3))]
            rules.append(rule)
        spec = {"podSelector": selector(), "egress": rules}
        if rng.random() < 0.7:
            spec["policyTypes"] = ["Egress"] if rng.random() < 0.8 else ["Egress", "Ingress"]
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": f"np{i}", "namespace": "bench"}, "spec": spec})

    # YAML 1.2 is a superset of JSON: one JSON object per document keeps this generator
    # dependency-free, and the file still goes through the YAML parser (multi-document).
    with open(out, "w") as f:
        f.write("\n---\n".join(json.dumps(d) for d in docs))
        f.write("\n")


if __name__ == "__main__":
    main()
