#!/usr/bin/env bash
# Reading one permission request's events out of a large log: the query the request page,
# `events export --request` and `GET /admin/permissions/{id}/events` run, before and after
# naming the aggregate type (so the primary key serves it). Seeds N events (default
# 1,000,000: 200,000 requests of 5 events) straight into a scratch database with the
# project's migrations, then times both queries with EXPLAIN ANALYZE.
#
# Usage: scripts/bench-events.sh [N]     (needs psql and a PostgreSQL at $PGURL or
#                                         postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=alexandria_bench_events
psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
URL="${PGURL%/*}/$DB"
for f in migrations/*.sql; do psql -q "$URL" -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
echo "seeding $N events..." >&2
psql -q "$URL" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'PermissionRequest', md5((i / 5)::text)::uuid::text, i % 5 + 1, 'Approved', '1',
       '{"Approved":{"by":"admin","at":"2026-12-02T00:00:00Z"}}', '{}'
FROM generate_series(0, $N - 1) AS i;
ANALYZE events;
SQL
ID=$(psql -qAt "$URL" -c "SELECT aggregate_id FROM events WHERE global_position = $N / 2")
timed() {
  psql -qAt "$URL" -c "EXPLAIN (ANALYZE, FORMAT JSON) $1" | jq -r '.[0]["Execution Time"]'
}
before="SELECT * FROM events WHERE global_position > 0 AND ('$ID'::text IS NULL OR aggregate_id = '$ID') ORDER BY global_position LIMIT 10000"
after="SELECT * FROM events WHERE aggregate_type = 'PermissionRequest' AND aggregate_id = '$ID' AND global_position > 0 ORDER BY global_position LIMIT 10000"
for label in before after; do
  q=${!label}
  timed "$q" >/dev/null # warm
  runs=(); for _ in 1 2 3 4 5; do runs+=("$(timed "$q")"); done
  printf '%-7s one request of %d events: %s ms (5 runs)\n' "$label" "$N" "${runs[*]}"
done
psql -q "$PGURL" -c "DROP DATABASE $DB WITH (FORCE)"
