#!/usr/bin/env bash
# Benchmark of `kubectl mtls-egress`'s offline render: `enable` and `expose` with
# --dry-run=client for one host (target from the issue: under 10 ms), and the stripped size of the
# release binary. The comparison with `kubectl apply --server-side` needs a real API server and is
# not part of this script.
#
#   bench/egress.sh                      build the release binary, run, print a summary
#   BIN=path/to/kubectl-mtls_egress bench/egress.sh
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}
OUT=${OUT:-$PWD/target/bench}
command -v hyperfine >/dev/null 2>&1 || { echo "bench: hyperfine not found: apt-get install -y hyperfine" >&2; exit 2; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -p kubectl-mtls-egress >&2
  BIN=$PWD/target/release/kubectl-mtls_egress
fi
mkdir -p "$OUT"
export KUBECONFIG=/nonexistent   # the render must not need a cluster
hyperfine -N --warmup 10 --runs "$RUNS" --export-markdown "$OUT/egress.md" \
  -n "enable --dry-run=client (1 host)" "$BIN enable --host httpbin.example.com -n mtls-demo --istio-cr kyma-system/default --dry-run=client" \
  -n "expose --dry-run=client (1 host)" "$BIN expose --host httpbin.example.com --service httpbin:8000 -n mtls-demo --route apirule --dry-run=client" \
  -n "help (--help)" "$BIN --help"
size=$(stat -c %s "$BIN")
printf '\nstripped size of %s: %.2f MiB (target < 8 MiB)\n' "$(basename "$BIN")" "$(echo "$size / 1048576" | bc -l)"
