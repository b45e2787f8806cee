#!/usr/bin/env bash
# Rebuild throughput benchmark: seeds N events (N/4 permission requests, each Created ->
# Approved -> Executed -> ResultCached) into a fresh database, then times
# `alexandria projections rebuild permission_requests`.
#
#   scripts/bench-rebuild.sh [EVENTS]        (default 1000000)
# Needs a PostgreSQL at $BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
requests=$(( events / 4 ))
admin=${BENCH_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=alexandria_bench_rebuild
url="${admin%/*}/$db"
# Where cargo puts the binary (a worktree may build into a shared target directory).
bin=${CARGO_TARGET_DIR:-target}/release/alexandria

cargo build --release --locked --quiet --workspace --bins  # the Quick start's build: same features, no rebuild
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
DATABASE_URL=$url "$bin" migrate

scripts/seed-events.sh "$url" "$events"
echo "rebuilding..." >&2
DATABASE_URL=$url /usr/bin/time -f "peak RSS %M KiB, %U s user, %S s system" "$bin" projections rebuild permission_requests
