#!/usr/bin/env bash
# Audit chain benchmark (issue 14): seeds N events into a fresh database, seals them
# (`alexandria audit seal`), exports them, then times `alexandria events verify --file`
# (three runs), the live `events verify`, and docs/audit_verify.py (one run, if
# .peers/auditor exists). Prints each command's own summary line.
#
#   scripts/bench-audit.sh [EVENTS]          (default 1000000)
# Needs a PostgreSQL at $BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
admin=${BENCH_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=alexandria_bench_audit
url="${admin%/*}/$db"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=./target/release/alexandria

cargo build --release --locked --quiet --workspace --bins  # the Quick start's build: same features, no rebuild
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
DATABASE_URL=$url $bin migrate
scripts/seed-events.sh "$url" "$events"
export DATABASE_URL=$url ALEXANDRIA_DATA_DIR=$work
echo "== seal" >&2
$bin audit seal
echo "== export" >&2
$bin events export -o "$work/log.jsonl"
ls -l "$work/log.jsonl" >&2
for run in 1 2 3; do
    echo "== verify --file, run $run" >&2
    $bin events verify --file "$work/log.jsonl"
done
echo "== verify (live, both chains)" >&2
/usr/bin/time -f "live verify: %e s, peak RSS %M KiB" $bin events verify
if [[ -x .peers/auditor/bin/python ]]; then
    echo "== docs/audit_verify.py" >&2
    /usr/bin/time -f "python verifier: %e s" .peers/auditor/bin/python docs/audit_verify.py "$work/log.jsonl"
fi
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db"
