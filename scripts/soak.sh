#!/usr/bin/env bash
# Soak: DURATION (default 30m; 90s, 2h, or a bare number of minutes) of mixed traffic at
# the release gateway with the example filesystem upstream (`serve --demo`) on its own
# database, sampling the server every SOAK_SAMPLE_SECS (default 15):
#   - pass-through tools/call (echo, list_directory, read_file; SOAK_PASSTHROUGH_RATE/s,
#     default 40) and now and then tools/list;
#   - gated write_file calls (SOAK_GATED_WORKERS flows at a time, default 2): approved or
#     rejected by the admin over the API, either while the call waits in-band or after its
#     pending answer, then retried with the same idempotency key (twice: the second retry
#     must give the same cached answer);
#   - logins, one step a second: the API's (login, me, sometimes refresh, logout), the
#     console's (login, inbox, history, sign out), wrong passwords for the admin and logins
#     of unknown users (each from its own loopback address, so no throttle trips);
#   - admin reads (pending list, newest 50, /metrics, /readyz) every 2 s and one console
#     kept open on the live inbox's event stream.
# Samples: RSS, peak RSS, open files, threads, the server's PostgreSQL connections, events,
# live sessions, the upstream's RSS -> $OUT/soak.csv; the summary -> stdout and
# $OUT/summary.md, with the server's WARN/ERROR lines counted by message (the log:
# $OUT/server.log).
# Exits non-zero on any 5xx, transport error or unexpected answer, or when a metric drifts
# over the second half (scripts/soak.py says the thresholds: RSS +20 %; open files,
# connections, threads: growth).
#
#   scripts/soak.sh [DURATION]
# Release binaries from `cargo build --release` (or $ALEXANDRIA_BIN, with
# alexandria-example-fs beside it); PostgreSQL at $PGURL (default
# postgres://postgres@127.0.0.1:5432/postgres); psql and python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30m}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=alexandria_soak
PORT=${PORT:-18790}
PASSWORD=soak-admin-password
OUT=${SOAK_OUT:-$(mktemp -d /tmp/alexandria-soak.XXXXXX)}
mkdir -p "$OUT"
if [ -z "${ALEXANDRIA_BIN:-}" ]; then
  cargo build --release --locked --quiet --workspace --bins
  ALEXANDRIA_BIN=${CARGO_TARGET_DIR:-target}/release/alexandria
fi
psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
export DATABASE_URL="${PGURL%/*}/$DB"
DATA=$(mktemp -d)
# A 2 s in-band wait, so that a gated call not decided in time answers pending soon.
ALEXANDRIA_LISTEN=127.0.0.1:$PORT ALEXANDRIA_ADMIN_PASSWORD=$PASSWORD ALEXANDRIA_DATA_DIR=$DATA \
  ALEXANDRIA_APPROVAL_WAIT_SECS=2 ALEXANDRIA_DB_POOL_SIZE=16 RUST_LOG=warn \
  "$ALEXANDRIA_BIN" serve --demo >"$OUT/server.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$DATA"
  psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 150); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "the gateway did not become ready:" >&2; cat "$OUT/server.log" >&2; exit 1; }
echo "soak: $DURATION against pid $PID ($ALEXANDRIA_BIN), samples in $OUT/soak.csv" >&2
status=0
python3 scripts/soak.py --port "$PORT" --pid "$PID" --database-url "$DATABASE_URL" --password "$PASSWORD" \
  --duration "$DURATION" --csv "$OUT/soak.csv" --sample-secs "${SOAK_SAMPLE_SECS:-15}" \
  --passthrough-rate "${SOAK_PASSTHROUGH_RATE:-40}" --gated-workers "${SOAK_GATED_WORKERS:-2}" \
  | tee "$OUT/summary.md" || status=$?
# The server's warnings and errors, counted by message (colour codes and times removed).
sed 's/\x1b\[[0-9;]*m//g' "$OUT/server.log" | grep -E '^[^ ]+ +(WARN|ERROR) ' >"$OUT/server-warnings.log" || true
{
  echo
  echo "server log: $(wc -l <"$OUT/server-warnings.log") WARN/ERROR lines ($OUT/server.log)"
  sed -E 's/^[^ ]+ +//' "$OUT/server-warnings.log" | cut -c1-160 | sort | uniq -c | sort -rn | head -5
} | tee -a "$OUT/summary.md"
exit $status
