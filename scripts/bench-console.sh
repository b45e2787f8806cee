#!/usr/bin/env bash
# Console read benchmark: seeds the `permission_requests` read model directly (a
# benchmark, not a test: no events, no projector work) with ROWS requests, 10,000 of them
# pending, then times the server's answer to
#   - GET /                                  (the inbox's first page, 10,000 pending), and
#   - GET /history?agent=..&status=..        (filtered history over all ROWS),
# 50 requests each, over loopback with a console session (time ≈ server time there).
#
#   scripts/bench-console.sh [ROWS]          (default 1000000)
# Needs a PostgreSQL at $BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
pending=10000
admin=${BENCH_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=alexandria_bench_console
url="${admin%/*}/$db"
port=${BENCH_PORT:-18089}
base="http://127.0.0.1:$port"
password=bench-console-password
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --workspace --bins  # the Quick start's build: same features, no rebuild
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
DATABASE_URL=$url ./target/release/alexandria migrate

echo "seeding $rows requests ($pending pending)..." >&2
# 50 agents x 10 tools; the newest $pending are pending, older ones approved, rejected,
# executed or expired in turn. Every decided one has a reviewer and time (the inbox's
# "last decisions" read those).
psql -q "$url" <<SQL
INSERT INTO permission_requests (id, request_type, agent, tool, arguments, arguments_digest, idempotency_key,
  requested_by, status, created_at, expires_at, reviewed_by, reviewed_at, reason, expired_at, executed_by,
  executed_at, result_cached_at, last_position)
SELECT md5('req' || n)::uuid, 'tool_call', 'agent-' || (n % 50), 'tool-' || (n % 10),
  json_build_object('path', '/tmp/f' || n, 'content', 'hello'), md5(n::text), 'key-' || n,
  'agent:agent-' || (n % 50), s.status, at, at + interval '1 day',
  CASE WHEN s.status IN ('approved', 'rejected', 'executed') THEN 'admin' END,
  CASE WHEN s.status IN ('approved', 'rejected', 'executed') THEN at + interval '5 seconds' END,
  CASE WHEN s.status = 'rejected' THEN 'not now' END,
  CASE WHEN s.status = 'expired' THEN at + interval '1 day' END,
  CASE WHEN s.status = 'executed' THEN 'bench' END,
  CASE WHEN s.status = 'executed' THEN at + interval '6 seconds' END,
  CASE WHEN s.status = 'executed' THEN at + interval '7 seconds' END,
  0
FROM generate_series(1, $rows) AS n,
  LATERAL (SELECT now() - (n || ' seconds')::interval AS at) t,
  LATERAL (SELECT CASE WHEN n <= $pending THEN 'pending'
                       ELSE (ARRAY['approved', 'rejected', 'executed', 'expired'])[1 + n % 4] END AS status) s;
SQL
psql -q "$url" -c "VACUUM ANALYZE permission_requests"

DATABASE_URL=$url ALEXANDRIA_LISTEN=127.0.0.1:$port ALEXANDRIA_PUBLIC_URL=$base \
  ALEXANDRIA_ADMIN_PASSWORD=$password RUST_LOG=warn ./target/release/alexandria serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs -o /dev/null -c "$work/cookies" -H "Origin: $base" \
  --data-urlencode username=admin --data-urlencode password=$password "$base/login"

# Median and p95 of 50 timed requests (after 5 to warm caches), in milliseconds.
measure() {
  local name=$1 path=$2
  for _ in 1 2 3 4 5; do curl -fs -o /dev/null -b "$work/cookies" "$base$path"; done
  for _ in $(seq 1 50); do
    curl -fs -o /dev/null -b "$work/cookies" -w '%{time_total}\n' "$base$path"
  done | sort -n | awk -v name="$name" -v path="$path" '
    { t[NR] = $1 * 1000 }
    END { printf "| %s | `%s` | %.1f ms | %.1f ms |\n", name, path, t[int(NR * 0.5 + 0.5)], t[int(NR * 0.95 + 0.5)] }'
}
inbox_items=$(curl -fs -b "$work/cookies" "$base/" | grep -c '<li class="request"' || true)
history_rows=$(curl -fs -b "$work/cookies" "$base/history?agent=agent-7&status=rejected" | grep -c 'class="history-row"' || true)
echo "inbox shows $inbox_items requests; the history page $history_rows rows" >&2
echo "| page | request | median | p95 |"
echo "|---|---|---|---|"
measure "inbox, $pending pending" "/"
measure "history over $rows, by agent and status" "/history?agent=agent-7&status=rejected"
measure "history over $rows, by tool, status and time" "/history?tool=tool-4&status=executed&from=2000-01-01T00:00&to=2100-01-01T00:00"
measure "history over $rows, unfiltered" "/history"
