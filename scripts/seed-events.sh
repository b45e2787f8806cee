#!/usr/bin/env bash
# Seeds N events (N/4 permission requests, each Created -> Approved -> Executed ->
# ResultCached) into the migrated database at URL, bypassing the notify trigger.
# Shared by the benchmarks (bench-rebuild.sh, bench-audit.sh).
#   scripts/seed-events.sh URL [EVENTS]      (default 1000000)
set -euo pipefail
url=$1
events=${2:-1000000}
requests=$(( events / 4 ))
echo "seeding $events events ($requests requests)..." >&2
# The notify trigger is bypassed while seeding (replica role): nobody listens here.
psql -q "$url" <<SQL
SET session_replication_role = replica;
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'PermissionRequest', r.id::text, s.seq, s.kind, '1',
  CASE s.kind
    WHEN 'Created' THEN json_build_object('Created', json_build_object(
      'request_type', 'tool_call', 'agent', 'agent-' || (r.n % 50), 'tool', 'write_file',
      'arguments', json_build_object('path', '/tmp/f' || r.n, 'content', 'hello'),
      'arguments_digest', md5(r.n::text), 'idempotency_key', 'key-' || r.n,
      'requested_by', 'agent:agent-' || (r.n % 50), 'at', r.at, 'expires_at', r.at + interval '1 day'))
    WHEN 'Approved' THEN json_build_object('Approved', json_build_object('by', 'admin', 'at', r.at + interval '1 second'))
    WHEN 'Executed' THEN json_build_object('Executed', json_build_object('replica', 'bench', 'at', r.at + interval '2 seconds'))
    ELSE json_build_object('ResultCached', json_build_object(
      'outcome', json_build_object('result', json_build_object('content', json_build_array(json_build_object('type', 'text', 'text', 'ok')))),
      'at', r.at + interval '3 seconds'))
  END,
  json_build_object('actor', 'bench', 'replica', 'bench', 'trace_id', r.n::text)
FROM (SELECT n, md5('req' || n)::uuid AS id, now() - (n || ' seconds')::interval AS at
      FROM generate_series(1, $requests) AS n) r
CROSS JOIN (VALUES (1, 'Created'), (2, 'Approved'), (3, 'Executed'), (4, 'ResultCached')) AS s(seq, kind)
ORDER BY r.n, s.seq;
SQL
psql -q "$url" -c "VACUUM ANALYZE events"
