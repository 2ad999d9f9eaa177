#!/usr/bin/env bash
# Build the offline base image (Debian bookworm + python3) without any container registry.
#
# debootstrap fetches from the same Debian mirror this machine's apt uses, and the image
# trusts this machine's CA bundle, so pip works in `docker build` behind a TLS-intercepting
# proxy too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SUITE=${BASE_SUITE:-bookworm}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# The first Debian mirror in this machine's apt sources (deb822 or one-line format).
apt_mirror() {
  local uri
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1 || true)
  fi
  printf '%s' "$uri"
}

ensure_debian_package debootstrap

MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
if [ -z "$MIRROR" ]; then
  log "error: found no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR"
  exit 1
fi
if [ ! -s "$HOST_CA_BUNDLE" ]; then
  log "error: no CA bundle at $HOST_CA_BUNDLE; set HOST_CA_BUNDLE"
  exit 1
fi

ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/fanout-rootfs.XXXXXX")
trap 'as_root rm -rf "$ROOTFS"' EXIT

run as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
as_root cp "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
as_root rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

log "+ tar -C $ROOTFS -c . | docker import - $OFFLINE_BASE_IMAGE"
as_root tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$OFFLINE_BASE_IMAGE" >/dev/null
log "built $OFFLINE_BASE_IMAGE: $(docker run --rm "$OFFLINE_BASE_IMAGE" python3 --version)"
