#!/usr/bin/env bash
# The tutorial's stage 1, verbatim ("Generate mTLS certificates", steps 3-5 of
# ../shared/reference/tutorial-seed.md): five openssl commands, RSA-2048.
# Usage: bench/openssl-tutorial.sh [DIR]   (DIR: where to write; default: a temp dir, removed after)
set -euo pipefail

DOMAIN=${DOMAIN:-nginx.example.com}
CLIENT=${CLIENT:-client.example.com}

if [[ $# -ge 1 ]]; then
  mkdir -p "$1"
  cd "$1"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cd "$tmp"
fi

# 3. root certificate
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj "/O=example Inc./CN=$DOMAIN" -keyout egress.key -out egress.crt
# 4. host certificate
openssl req -out "$DOMAIN".csr -newkey rsa:2048 -nodes -keyout "$DOMAIN".key -subj "/CN="$DOMAIN"/O=some organization"
openssl x509 -req -sha256 -days 365 -CA egress.crt -CAkey egress.key -set_serial 0 -in "$DOMAIN".csr -out "$DOMAIN".crt
# 5. client certificate
openssl req -out "$CLIENT".csr -newkey rsa:2048 -nodes -keyout "$CLIENT".key -subj "/CN="$CLIENT"/O=client organization"
openssl x509 -req -sha256 -days 365 -CA egress.crt -CAkey egress.key -set_serial 1 -in "$CLIENT".csr -out "$CLIENT".crt
