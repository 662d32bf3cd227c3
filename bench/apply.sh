#!/usr/bin/env bash
# Benchmark of `kubectl mtls-egress enable` against a real API server (issue #15's table): ours vs
# `kubectl apply --server-side` of the identical objects (rendered by `enable --dry-run=client
# -o yaml`), the ratios, and peak memory. It starts nothing: give it a disposable cluster, e.g.
# the kube-apiserver v1.32 of ../shared/kapi:
#
#   KC="$(../shared/kapi/up /tmp/kapi-bench)"
#   bench/apply.sh "$KC"                  # or KUBECONFIG=$KC bench/apply.sh
#   ../shared/kapi/down /tmp/kapi-bench; rm -rf /tmp/kapi-bench
#
# It installs the Istio and Kyma Istio CRDs from ../shared/crds when missing, creates istio-system,
# kyma-system, the Istio CR kyma-system/default and the namespaces bench-one, bench-fleet,
# bench-create and the hosts' objects, and leaves them (use an empty cluster; its own objects only
# are deleted between the "create" runs).
#
# Env: BIN (default: builds target/release/kubectl-mtls_egress), RUNS (one-host rows, 20),
#      BIG_RUNS (100-host rows, 3), HOSTS (100), OUT (target/bench/apply).
# When BIN has no repeatable --host (the build before issue #15), "ours" for the 100-host rows is
# 100 `enable` runs in a row.
set -euo pipefail

cd "$(dirname "$0")/.."
KC=${1:-${KUBECONFIG:-}}
[ -n "$KC" ] || { echo "bench: give a kubeconfig (first argument or KUBECONFIG); e.g. KC=\$(../shared/kapi/up /tmp/kapi-bench)" >&2; exit 2; }
[ -r "$KC" ] || { echo "bench: cannot read kubeconfig $KC" >&2; exit 2; }
export KUBECONFIG=$KC
RUNS=${RUNS:-20}
BIG_RUNS=${BIG_RUNS:-3}
HOSTS=${HOSTS:-100}
OUT=${OUT:-$PWD/target/bench/apply}
CRDS=${CRDS:-$PWD/../shared/crds}
for tool in hyperfine kubectl /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found (apt-get install -y hyperfine time kubernetes-client)" >&2; exit 2; }
done
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -p kubectl-mtls-egress >&2
  BIN=$PWD/target/release/kubectl-mtls_egress
fi
mkdir -p "$OUT"
K="kubectl --kubeconfig $KC"
say() { echo "bench: $*" >&2; }

# ---- the cluster: CRDs, Kyma's Istio CR, namespaces --------------------------------------------
say "preparing the cluster"
$K apply --server-side -f "$CRDS/istio-1.30.3-crd-all.gen.yaml" -f "$CRDS/kyma-istio-operator.kyma-project.io_istios.yaml" >/dev/null
$K wait --for=condition=Established crd --all --timeout=60s >/dev/null
for ns in istio-system kyma-system bench-one bench-fleet bench-create; do
  $K get namespace "$ns" >/dev/null 2>&1 || $K create namespace "$ns" >/dev/null
done
$K -n kyma-system get istios.operator.kyma-project.io default >/dev/null 2>&1 ||
  printf 'apiVersion: operator.kyma-project.io/v1alpha2\nkind: Istio\nmetadata: {name: default, namespace: kyma-system}\nspec: {}\n' | $K apply -f - >/dev/null

ONE="one.bench.example"       # the one host of the single-host rows
EXTRA="extra.bench.example"   # the host added to a cluster that has $HOSTS others
hosts() { local prefix=$1 i; for i in $(seq -w 1 "$HOSTS"); do echo "$prefix$i.bench.example"; done; }
multi=false
"$BIN" enable --help | grep -q -- '--hosts-file' && multi=true

render() { # render NAMESPACE HOST... -> the objects enable would apply, as one YAML stream
  local ns=$1 h; shift
  for h in "$@"; do
    "$BIN" enable --host "$h" -n "$ns" --istio-cr kyma-system/default --dry-run=client -o yaml
    echo "---"
  done
}
ours_cmd() { # ours_cmd NAMESPACE HOSTFILE: the command line that enables every host of the file
  local ns=$1 file=$2
  if $multi; then
    echo "$BIN enable --hosts-file $file -n $ns --no-wait"
  else
    echo "sh -c 'while read -r h; do $BIN enable --host \$h -n $ns --no-wait >/dev/null || exit 1; done < $file'"
  fi
}
KAPPLY="$K apply --server-side --field-manager=kubectl-mtls"

echo "$ONE" > "$OUT/one.txt"
echo "$EXTRA" > "$OUT/extra.txt"
hosts f > "$OUT/fleet.txt"
hosts c > "$OUT/create.txt"
render bench-one "$ONE" > "$OUT/one.yaml"
render bench-fleet "$EXTRA" > "$OUT/extra.yaml"
# shellcheck disable=SC2046
render bench-create $(cat "$OUT/create.txt") > "$OUT/create.yaml"
# shellcheck disable=SC2046
render bench-fleet $(cat "$OUT/fleet.txt") > "$OUT/fleet.yaml"

# ---- row 1: one host, empty cluster, re-apply --------------------------------------------------
say "row 1: one host, re-apply (empty cluster)"
"$BIN" enable --host "$ONE" -n bench-one --no-wait >/dev/null
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/row1.json" \
  -n ours "$BIN enable --host $ONE -n bench-one --no-wait" \
  -n kubectl "$KAPPLY -f $OUT/one.yaml"

# ---- rows 3 and 4: HOSTS hosts, create then re-apply -------------------------------------------
# Between the create runs, the objects of bench-create's hosts are deleted (by their host label).
selector="kubectl-mtls/host in ($(sed 's/\./-/g' "$OUT/create.txt" | paste -sd,))"
kinds="serviceentries.networking.istio.io,gateways.networking.istio.io,destinationrules.networking.istio.io,virtualservices.networking.istio.io,authorizationpolicies.security.istio.io"
cleanup="$K delete $kinds -A -l '$selector' --wait=false"
say "row 3: $HOSTS hosts, create"
hyperfine --warmup 0 --runs "$BIG_RUNS" --export-json "$OUT/row3.json" \
  --prepare "$cleanup >/dev/null" \
  -n ours "$(ours_cmd bench-create "$OUT/create.txt")" \
  -n kubectl "$KAPPLY -f $OUT/create.yaml >/dev/null"

say "row 4: $HOSTS hosts, re-apply"
sh -c "$(ours_cmd bench-fleet "$OUT/fleet.txt")" >/dev/null
hyperfine --warmup 0 --runs "$BIG_RUNS" --export-json "$OUT/row4.json" \
  -n ours "$(ours_cmd bench-fleet "$OUT/fleet.txt") >/dev/null" \
  -n kubectl "$KAPPLY -f $OUT/fleet.yaml >/dev/null"

# ---- row 2: one more host in a cluster with HOSTS hosts (bench-fleet's, applied above) ---------
say "row 2: one host, re-apply, $HOSTS hosts already enabled"
"$BIN" enable --host "$EXTRA" -n bench-fleet --no-wait >/dev/null
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/row2.json" \
  -n ours "$BIN enable --host $EXTRA -n bench-fleet --no-wait" \
  -n kubectl "$KAPPLY -f $OUT/extra.yaml"

# ---- row 5: peak memory (maximum resident set size), one host, re-apply ------------------------
peak() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
mem_ours=$(peak "$BIN" enable --host "$ONE" -n bench-one --no-wait)
mem_kubectl=$(peak $KAPPLY -f "$OUT/one.yaml")
mem_ours_n=$(peak sh -c "$(ours_cmd bench-fleet "$OUT/fleet.txt")")
mem_kubectl_n=$(peak $KAPPLY -f "$OUT/fleet.yaml")

# ---- summary -----------------------------------------------------------------------------------
mean() { python3 -c '
import json, sys
for x in json.load(open(sys.argv[1]))["results"]:
    if x["command"] == sys.argv[2]:
        print("%.1f %.1f" % (x["mean"] * 1000, x["stddev"] * 1000))' "$1" "$2"; }
row() { # row LABEL FILE GOAL
  read -r o os <<<"$(mean "$2" ours)"; read -r k ks <<<"$(mean "$2" kubectl)"
  printf '| %s | %s ms ± %s | %s ms ± %s | %.2f× | %s |\n' "$1" "$o" "$os" "$k" "$ks" "$(echo "$o / $k" | bc -l)" "$3"
}
{
  echo "binary: $BIN ($( $multi && echo "several hosts per run" || echo "one host per run"))"
  echo
  echo "| work | ours | \`kubectl apply --server-side\` of the same objects | ratio | goal |"
  echo "|---|---|---|---|---|"
  row "\`enable\`, 1 host, empty cluster, re-apply" "$OUT/row1.json" "≤ 0.3×"
  row "\`enable\`, 1 host, with $HOSTS hosts already enabled" "$OUT/row2.json" "≤ 0.3×"
  row "$HOSTS hosts, create" "$OUT/row3.json" "≤ 0.1×"
  row "$HOSTS hosts, re-apply" "$OUT/row4.json" "≤ 0.1×"
  printf '| peak memory, 1 host | %.1f MiB | %.1f MiB | %.2f× | ≤ 0.3× |\n' "$(echo "$mem_ours / 1024" | bc -l)" "$(echo "$mem_kubectl / 1024" | bc -l)" "$(echo "$mem_ours / $mem_kubectl" | bc -l)"
  printf '| peak memory, %s hosts | %.1f MiB | %.1f MiB | %.2f× | ≤ 0.3× |\n' "$HOSTS" "$(echo "$mem_ours_n / 1024" | bc -l)" "$(echo "$mem_kubectl_n / 1024" | bc -l)" "$(echo "$mem_ours_n / $mem_kubectl_n" | bc -l)"
  read -r r1 _ <<<"$(mean "$OUT/row1.json" ours)"; read -r r2 _ <<<"$(mean "$OUT/row2.json" ours)"
  printf '\none more host with %s hosts vs an empty cluster (ours): %.2f× (goal ≤ 1.2×)\n' "$HOSTS" "$(echo "$r2 / $r1" | bc -l)"
} | tee "$OUT/summary.md"
