#!/usr/bin/env bash
# Gateway benchmarks: pass-through latency and throughput, approve -> resume latency,
# 10,000 in-band waiters, 200 open consoles, gated creates, policy propagation, the admin session check.
# Prints Markdown tables (see docs/BENCHMARKS.md).
#   scripts/bench-gateway.sh [passthrough|resume|waiters|consoles|sealing|creates|propagation|sessions|all]
# Needs a PostgreSQL at $BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --workspace --bins
cargo bench --locked --bench gateway -- "${1:-all}"
