#!/usr/bin/env bash
# Benchmark of `kubectl mtls-certs gen` against the tutorial's five openssl commands.
#
#   bench/gen.sh                 build release binaries, run everything, print a summary
#   BIN=path/to/kubectl-mtls_certs bench/gen.sh   use that binary (no build of it)
#   RUNS=30 OUT=/tmp/bench bench/gen.sh           more runs, results elsewhere
#
# One hyperfine run compares: the openssl sequence (bench/openssl-tutorial.sh, RSA-2048),
# `gen` with the default key type (ECDSA P-256) and `gen --key-type rsa-2048`. Then: `--help`
# latency (hyperfine -N), peak RSS of `gen`, stripped sizes of the four release binaries.
# Results (markdown + JSON) go to $OUT (default target/bench). Needs hyperfine, openssl, python3
# (Debian: apt-get install -y hyperfine openssl python3; peak RSS prefers `time`).
# Targets (from the issue): default >= 50x faster than openssl, rsa-2048 >= 0.6x, --help < 5 ms,
# peak RSS < 15 MiB, each stripped binary < 8 MiB. This reports them; it does not fail on them.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
HELP_RUNS=${HELP_RUNS:-200}
OUT=${OUT:-$ROOT/target/bench}
DOMAIN=nginx.example.com
CLIENT=client.example.com

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "bench: $1 not found: install it (apt-get install -y ${2:-$1})" >&2
    exit 2
  }
}
need hyperfine
need openssl
need python3

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---- binaries ------------------------------------------------------------------------------
sizes_ok=1
if [[ -z ${BIN:-} ]]; then
  echo "== cargo build --release --locked --workspace --bins" >&2
  if ! cargo build --release --locked --workspace --bins >&2; then
    echo "bench: building all four plugins failed; falling back to kubectl-mtls-certs only" >&2
    sizes_ok=0
    cargo build --release --locked -p kubectl-mtls-certs >&2
  fi
  BIN=$ROOT/target/release/kubectl-mtls_certs
fi
[[ -x $BIN ]] || { echo "bench: $BIN is not an executable" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
RELEASE_DIR=$(dirname "$BIN")

# ---- machine -------------------------------------------------------------------------------
{
  echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:    $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "cpu:       $(nproc) x $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "openssl:   $(openssl version)"
  echo "hyperfine: $(hyperfine --version)"
  echo "rustc:     $(rustc --version 2>/dev/null || echo unknown)"
  echo "binary:    $BIN"
} | tee "$OUT/machine.txt"

# ---- gen vs openssl: one hyperfine run -----------------------------------------------------
# Each command writes into its own directory, overwriting the previous run's files.
echo "== hyperfine: openssl tutorial vs gen ($RUNS runs, $WARMUP warmup)" >&2
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
  --export-json "$OUT/gen.json" --export-markdown "$OUT/gen.md" \
  -n "openssl tutorial (5 commands, rsa-2048)" \
  "$ROOT/bench/openssl-tutorial.sh $WORK/openssl" \
  -n "gen (default: ecdsa-p256)" \
  "$BIN gen --domain $DOMAIN --client $CLIENT --out $WORK/ecdsa --force" \
  -n "gen --key-type rsa-2048" \
  "$BIN gen --domain $DOMAIN --client $CLIENT --out $WORK/rsa --force --key-type rsa-2048"

# ---- --help --------------------------------------------------------------------------------
echo "== hyperfine: --help ($HELP_RUNS runs)" >&2
hyperfine -N --warmup 10 --runs "$HELP_RUNS" \
  --export-json "$OUT/help.json" --export-markdown "$OUT/help.md" \
  -n "kubectl-mtls_certs --help" "$BIN --help"

# ---- peak RSS (max over 5 runs each, KiB) --------------------------------------------------
peak_rss_kib() {
  local max=0 kib
  for _ in 1 2 3 4 5; do
    if [[ -x /usr/bin/time ]]; then
      kib=$(/usr/bin/time -v "$@" 2>&1 >/dev/null |
        sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p')
    else
      kib=$(python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@")
    fi
    if ((kib > max)); then max=$kib; fi
  done
  echo "$max"
}
[[ -x /usr/bin/time ]] || echo "bench: /usr/bin/time missing (apt-get install -y time); using python3 getrusage" >&2
echo "== peak RSS" >&2
rss_ecdsa=$(peak_rss_kib "$BIN" gen --domain $DOMAIN --client $CLIENT --out "$WORK/rss-ecdsa" --force)
rss_rsa=$(peak_rss_kib "$BIN" gen --domain $DOMAIN --client $CLIENT --out "$WORK/rss-rsa" --force --key-type rsa-2048)

# ---- stripped binary sizes -----------------------------------------------------------------
# The release profile already strips (strip = true); `strip` on a copy confirms nothing is left.
sizes=()
for name in certs egress lockdown probe; do
  f=$RELEASE_DIR/kubectl-mtls_$name
  if [[ -f $f ]]; then
    if command -v strip >/dev/null 2>&1; then
      strip -o "$WORK/stripped" "$f"
      sizes+=("kubectl-mtls_$name=$(stat -c %s "$WORK/stripped")")
    else
      sizes+=("kubectl-mtls_$name=$(stat -c %s "$f")")
    fi
  else
    sizes+=("kubectl-mtls_$name=missing")
  fi
done

# ---- summary -------------------------------------------------------------------------------
python3 - "$OUT" "$rss_ecdsa" "$rss_rsa" "${sizes[@]}" <<'PY' | tee "$OUT/summary.txt"
import json, sys

out, rss_ecdsa, rss_rsa, *sizes = sys.argv[1:]
gen = json.load(open(f"{out}/gen.json"))["results"]
helpr = json.load(open(f"{out}/help.json"))["results"][0]
openssl, ecdsa, rsa = gen

def ms(r):
    return f"{r['mean'] * 1e3:9.2f} ms ± {r['stddev'] * 1e3:6.2f}"

def verdict(ok):
    return "" if ok is None else "met" if ok else "MISSED"

rows = []
def row(what, value, target, ok):
    rows.append((what, value, target, verdict(ok)))

r_ecdsa = openssl["mean"] / ecdsa["mean"]
r_rsa = openssl["mean"] / rsa["mean"]
row("openssl tutorial (5 cmds, rsa-2048)", ms(openssl), "baseline", None)
row("gen (default ecdsa-p256)", ms(ecdsa), "", None)
row("gen --key-type rsa-2048", ms(rsa), "", None)
row("speed-up, default", f"{r_ecdsa:9.1f} x", ">= 50 x", r_ecdsa >= 50)
row("speed-up, rsa-2048", f"{r_rsa:9.2f} x", ">= 0.6 x", r_rsa >= 0.6)
help_ms = helpr["mean"] * 1e3
row("--help", ms(helpr), "< 5 ms", help_ms < 5)
for label, kib in (("peak RSS gen (default)", rss_ecdsa), ("peak RSS gen rsa-2048", rss_rsa)):
    mib = int(kib) / 1024
    row(label, f"{mib:9.2f} MiB", "< 15 MiB", mib < 15)
for entry in sizes:
    name, size = entry.split("=")
    if size == "missing":
        row(f"size {name}", "  missing", "< 8 MiB", False)
    else:
        mib = int(size) / 1024 / 1024
        row(f"size {name} (stripped)", f"{mib:9.2f} MiB", "< 8 MiB", mib < 8)

w = [max(len(r[i]) for r in rows) for i in range(4)]
print()
print(f"{'measure':<{w[0]}}  {'value':<{w[1]}}  {'target':<{w[2]}}  result")
print(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  ------")
for r in rows:
    print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
print()
print(f"ratios are openssl mean / gen mean; results in {out}")
PY
if ((sizes_ok == 0)); then
  echo "bench: the workspace release build failed, so some sizes are missing" >&2
  exit 1
fi
