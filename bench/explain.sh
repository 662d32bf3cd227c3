#!/usr/bin/env bash
# Benchmark of `kubectl mtls-lockdown explain` offline (-f): the pods × well-known-destinations
# matrix over synthetic clusters of three sizes, to see the absolute time at 1,000 pods × 200
# NetworkPolicies and how the cost grows with pods × policies.
#
#   bench/explain.sh                       build the release binary, run everything, print a summary
#   BIN=path/to/kubectl-mtls_lockdown bench/explain.sh     use that binary (no build)
#   RUNS=20 OUT=/tmp/bench bench/explain.sh                more runs, results elsewhere
#
# Fixtures come from bench/explain_fixture.py (deterministic, seed 42). Each size is timed twice:
# the full matrix (every pod × 6 destinations) and `--pod p0` (parse + one pod), so parsing and
# evaluation can be told apart: evaluation = matrix − single pod. Target (from the issue):
# 1,000 pods × 200 policies under 1 s, cost linear in pods × policies. This reports; it does not
# fail on the target. The largest size is also timed with Deployments instead of Pods (what a
# GitOps folder holds: each workload stands for its pods). Needs hyperfine and python3.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
OUT=${OUT:-$ROOT/target/bench}
SIZES=${SIZES:-"100x20 316x63 1000x200"}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "bench: $1 not found: install it (apt-get install -y ${2:-$1})" >&2
    exit 2
  }
}
need hyperfine
need python3

if [[ -z "${BIN:-}" ]]; then
  cargo build --release -p kubectl-mtls-lockdown >&2
  BIN=$ROOT/target/release/kubectl-mtls_lockdown
fi
mkdir -p "$OUT"

commands=()
for size in $SIZES; do
  pods=${size%x*}
  policies=${size#*x}
  fixture=$OUT/explain-$size.yaml
  python3 bench/explain_fixture.py "$pods" "$policies" "$fixture"
  commands+=(-n "matrix $size" "$BIN explain -n bench -f $fixture")
  commands+=(-n "one pod $size" "$BIN explain -n bench -f $fixture --pod p0")
done
largest=${SIZES##* }
workloads=$OUT/explain-$largest-workloads.yaml
python3 bench/explain_fixture.py "${largest%x*}" "${largest#*x}" "$workloads" 42 workloads
commands+=(-n "matrix $largest-workloads" "$BIN explain -n bench -f $workloads")
commands+=(-n "one pod $largest-workloads" "$BIN explain -n bench -f $workloads --pod deployment/p0")

hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
  --export-json "$OUT/explain.json" --export-markdown "$OUT/explain.md" \
  "${commands[@]}" >&2

python3 - "$OUT/explain.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print(f"{'size (pods x policies)':>24} {'pods*policies':>14} {'matrix ms':>10} {'parse+1 pod ms':>15} {'evaluation ms':>14} {'eval ns per pod*policy':>23}")
for name, r in results.items():
    if not name.startswith("matrix "):
        continue
    size = name.split()[1]
    pods, policies = map(int, size.split("-")[0].split("x"))
    full = r["mean"] * 1000
    one = results[f"one pod {size}"]["mean"] * 1000
    ev = full - one
    print(f"{size:>24} {pods * policies:>14} {full:>10.1f} {one:>15.1f} {ev:>14.1f} {ev * 1e6 / (pods * policies):>23.1f}")
PY
echo "results: $OUT/explain.md, $OUT/explain.json" >&2
