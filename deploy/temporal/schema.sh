#!/usr/bin/env bash
# Creates (once) and migrates Temporal's two PostgreSQL databases with
# Temporal's own SQL tool (bin/temporal-sql, built by make temporal-server),
# to the schema of the server version deploy/temporal builds.
#   GARO_PG_PASSWORD=... deploy/temporal/schema.sh [HOST [PORT]]
# Databases: $GARO_PG_DATABASE (temporal), $GARO_PG_VISIBILITY_DATABASE
# (temporal_visibility); role $GARO_PG_USER (temporal).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
host="${1:-${GARO_PG_HOST:-127.0.0.1}}"
port="${2:-${GARO_PG_PORT:-5432}}"
user="${GARO_PG_USER:-temporal}"
pass="${GARO_PG_PASSWORD:?set GARO_PG_PASSWORD}"
tool="${TEMPORAL_SQL:-$root/bin/temporal-sql}"
for db in "${GARO_PG_DATABASE:-temporal}:temporal" "${GARO_PG_VISIBILITY_DATABASE:-temporal_visibility}:visibility"; do
  name="${db%%:*}" embedded="postgresql/v12/${db#*:}"
  sql=("$tool" --plugin postgres12 --ep "$host" -p "$port" -u "$user" --pw "$pass" --db "$name")
  "${sql[@]}" create-database >/dev/null 2>&1 || true # already there
  # setup-schema -v 0.0 once, then every migration up to the newest.
  "${sql[@]}" setup-schema -v 0.0 >/dev/null 2>&1 || true
  "${sql[@]}" update-schema --schema-name "$embedded" >/dev/null
  echo "schema.sh: database $name is at the newest $embedded schema"
done
