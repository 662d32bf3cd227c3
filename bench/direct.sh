#!/usr/bin/env bash
# Benchmark of `kubectl mtls-probe direct` against curl's own time for the same request.
#
#   bench/direct.sh                                   build the release probe, run, print a summary
#   BIN=path/to/kubectl-mtls_probe bench/direct.sh    use that binary (no build of it)
#   RUNS=100 OUT=/tmp/bench bench/direct.sh           more runs, results elsewhere
#
# Local nginx on 127.0.0.1 serves /headers over mutual TLS with a bundle from
# `kubectl mtls-certs gen` (the debug build is enough for that). hyperfine (-N, no shell) times:
#   curl   curl --cacert --cert --key --resolve https://D:PORT/headers   (the issue's baseline)
#   direct kubectl mtls-probe direct --host D --connect 127.0.0.1:PORT ... -o json
#   curl x2 the same curl twice, with and without the client certificate (what direct checks)
# and the loopback round trip is measured as the median TCP connect time to nginx (one SYN/SYN-ACK).
# Target (from the issue): direct adds no more than one round trip over curl's own time. This
# reports it; it does not fail on it. Results (markdown + JSON) go to $OUT (default target/bench).
# Needs hyperfine, nginx, curl, python3 (Debian: apt-get install -y hyperfine nginx-light curl python3).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
OUT=${OUT:-$ROOT/target/bench}
DOMAIN=nginx.example.com
CLIENT=client.example.com
export PATH="$PATH:/usr/sbin:/sbin"

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "bench: $1 not found: install it (apt-get install -y ${2:-$1})" >&2
    exit 2
  }
}
need hyperfine
need nginx nginx-light
need curl
need python3

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
NGINX_PID=
cleanup() {
  if [[ -n $NGINX_PID ]]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- binaries ------------------------------------------------------------------------------
if [[ -z ${BIN:-} ]]; then
  echo "== cargo build --release --locked -p kubectl-mtls-probe" >&2
  cargo build --release --locked -p kubectl-mtls-probe >&2
  BIN=$ROOT/target/release/kubectl-mtls_probe
fi
[[ -x $BIN ]] || { echo "bench: $BIN is not an executable" >&2; exit 2; }
CERTS=${CERTS:-$ROOT/target/debug/kubectl-mtls_certs}
if [[ ! -x $CERTS ]]; then
  echo "== cargo build --locked -p kubectl-mtls-certs (debug: only to generate the bundle)" >&2
  cargo build --locked -p kubectl-mtls-certs >&2
fi
"$CERTS" gen --domain "$DOMAIN" --client "$CLIENT" --out "$WORK/pki" >/dev/null

# ---- nginx ---------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT ssl;
        server_name $DOMAIN;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $WORK/pki/server.crt;
        ssl_certificate_key $WORK/pki/server.key;
        ssl_client_certificate $WORK/pki/ca.crt;
        ssl_verify_client on;
        location = /headers {
            default_type application/json;
            return 200 '{"headers":{"X-Forwarded-Client-Cert":["Subject=\\\\\"\$ssl_client_s_dn\\\\\";Cert=\\\\\"\$ssl_client_escaped_cert\\\\\""]}}';
        }
    }
}
EOF
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2).close()" 2>/dev/null && break
  sleep 0.05
done

P=$WORK/pki
CURL=(curl --silent --show-error --fail --output /dev/null --cacert "$P/ca.crt" --resolve "$DOMAIN:$PORT:127.0.0.1")
URL=https://$DOMAIN:$PORT/headers
DIRECT=("$BIN" direct --host "$DOMAIN" --connect "127.0.0.1:$PORT" --cert "$P/client.crt" --key "$P/client.key" --ca "$P/ca.crt" -o json)

# Both must work before they are timed.
"${CURL[@]}" --cert "$P/client.crt" --key "$P/client.key" "$URL"
"${DIRECT[@]}" >"$OUT/direct-report.json" || { cat "$OUT/direct-report.json" >&2; exit 1; }

q() { printf '%q ' "$@"; }
cat >"$WORK/curl2.sh" <<EOF
#!/bin/sh
$(q "${CURL[@]}") --cert $(q "$P/client.crt") --key $(q "$P/client.key") $(q "$URL")
$(q "${CURL[@]}" --write-out '') $(q "$URL") || true
EOF
chmod +x "$WORK/curl2.sh"

echo "== hyperfine ($RUNS runs, $WARMUP warm-up)" >&2
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/direct.json" --export-markdown "$OUT/direct.md" \
  -n curl "$(q "${CURL[@]}") --cert $(q "$P/client.crt") --key $(q "$P/client.key") $(q "$URL")" \
  -n direct "$(q "${DIRECT[@]}")" \
  -n "curl x2" "$WORK/curl2.sh" >&2

# One round trip on this path: median TCP connect time to nginx.
RTT_MS=$(python3 - "$PORT" <<'PY'
import socket, statistics, sys, time
port = int(sys.argv[1])
samples = []
for _ in range(200):
    t = time.perf_counter()
    socket.create_connection(("127.0.0.1", port)).close()
    samples.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(samples):.3f}")
PY
)

python3 - "$OUT/direct.json" "$RTT_MS" <<'PY' | tee "$OUT/direct-summary.txt"
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rtt = float(sys.argv[2])
ms = lambda name: results[name]["mean"] * 1000
sd = lambda name: results[name]["stddev"] * 1000
for name in ("curl", "direct", "curl x2"):
    print(f"{name:8} mean {ms(name):7.2f} ms  ± {sd(name):5.2f} ms  (median {results[name]['median']*1000:7.2f} ms)")
extra = ms("direct") - ms("curl")
print(f"loopback round trip (median TCP connect): {rtt:.3f} ms")
print(f"direct - curl = {extra:+.2f} ms -> {'within' if extra <= rtt else 'MORE than'} one round trip over curl")
PY
