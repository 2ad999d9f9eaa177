#!/usr/bin/env bash
# Seed the archive at the server's first start: the official image's entrypoint runs every
# script in /docker-entrypoint-initdb.d, and so does the offline image's
# (db/offline/docker-entrypoint.sh), against a server that listens on its socket alone.
# ARCHIVE_PASSWORD comes from .env, through compose; never from the image.
set -euo pipefail
if [ -z "${ARCHIVE_PASSWORD:-}" ]; then
  echo "error: ARCHIVE_PASSWORD is not set: the gateways' role needs one" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
  --dbname "${POSTGRES_DB:-postgres}" \
  -v archive_password="$ARCHIVE_PASSWORD" -v rows="${ARCHIVE_ROWS:-5000}" \
  -f /usr/local/share/fanout-lab/archive.sql
