#!/usr/bin/env bash
# Docker's healthcheck for every service: GET /healthz on this container's own port, with
# bash's /dev/tcp, so no interpreter starts. Python's urllib for the same check kept a
# sixth of a core busy at rest across the stack (docs/configuration.md, HEALTHCHECK_INTERVAL).
#   bash serving/healthz.sh [PORT]
# Exits 0 when the service answers 200 within 2 s, else 1: Docker's "unhealthy".
port=${1:-8000}
if [[ -n ${TLS_CERT:-} ]]; then
  # HTTPS (UPSTREAM_TLS=true): openssl speaks TLS for bash, and verifies the service's
  # certificate against the lab's CA beside it: 24 ms of CPU a check (10 checks timed in an
  # upstream), where its default store of 140 CAs made it 49.
  status=$(printf 'GET /healthz HTTP/1.0\r\n\r\n' |
    timeout 2 openssl s_client -quiet -verify_return_error -CAfile "${TLS_CERT%/*}/ca.pem" \
      -connect "127.0.0.1:$port" 2>/dev/null | head -n 1)
  [[ $status == "HTTP/1."[01]" 200 "* ]] || exit 1
  exit 0
fi
{
  exec 3<>"/dev/tcp/127.0.0.1/$port" &&
    printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 &&
    IFS= read -r -t 2 status <&3 &&
    [[ $status == "HTTP/1."[01]" 200 "* ]]
} 2>/dev/null || exit 1
