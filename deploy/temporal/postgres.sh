#!/usr/bin/env bash
# Runs a local PostgreSQL for Garo's Temporal server, from Debian's
# packages (apt-get install postgresql), in a directory of its own.
#   deploy/temporal/postgres.sh start DIR [PORT]   initdb (once) and start; PORT defaults to 5432
#   deploy/temporal/postgres.sh stop DIR
# It creates the role temporal (password in DIR/password, or $GARO_PG_PASSWORD)
# with the right to create databases; schema.sh creates them.
set -euo pipefail
cmd="${1:?usage: postgres.sh start|stop DIR [PORT]}"
dir="${2:?usage: postgres.sh start|stop DIR [PORT]}"
port="${3:-5432}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bin" ]; then
  echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi
# initdb and pg_ctl refuse root: run them as the postgres user then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
case "$cmd" in
start)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    echo "postgres.sh: creating a cluster in $dir/data"
    mkdir -p "$dir/data" "$dir/run"
    if [ "$(id -u)" = 0 ]; then
      chown -R postgres "$dir"
      runuser -u postgres -- test -x "$dir" || { echo "postgres.sh: user postgres cannot reach $dir (a parent directory is closed to it)" >&2; exit 1; }
    fi
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log"
  fi
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -o "-p $port -k $dir/run -c listen_addresses=127.0.0.1" start >/dev/null
  pass="${GARO_PG_PASSWORD:-}"
  if [ -z "$pass" ]; then
    [ -f "$dir/password" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password"
    pass="$(cat "$dir/password")"
  fi
  as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA -c \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='temporal') THEN CREATE ROLE temporal LOGIN CREATEDB; END IF; END\$\$; ALTER ROLE temporal PASSWORD '$pass';" >/dev/null
  echo "postgres.sh: PostgreSQL on 127.0.0.1:$port (role temporal, password in $dir/password)"
  ;;
stop)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null
  ;;
*)
  echo "usage: postgres.sh start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac
