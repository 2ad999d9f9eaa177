#!/usr/bin/env bash
# The official postgres image's start, in short, for the image built from Debian's package:
# at the first start (an empty PGDATA), initdb with the superuser's password, the database
# POSTGRES_DB, and every script in /docker-entrypoint-initdb.d run against a server that
# listens on its socket alone (so no client, nor a healthcheck over TCP, sees it half
# made); then the server itself, listening on every address, password required.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
export POSTGRES_USER=${POSTGRES_USER:-postgres} POSTGRES_DB=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}

first_start() {
  local password=${POSTGRES_PASSWORD:-} pwfile script
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    password=$(<"$POSTGRES_PASSWORD_FILE")
  fi
  if [ -z "$password" ]; then
    echo "error: set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) for the superuser" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" \
    -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
      -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh) echo "running $script" && bash "$script" ;;
      *.sql) echo "running $script" && psql -v ON_ERROR_STOP=1 --no-psqlrc \
        --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script" >/dev/null ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
}

if [ "${1:-}" = postgres ]; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    first_start
  fi
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' \
    -c unix_socket_directories=/var/run/postgresql "$@"
fi
exec "$@"
