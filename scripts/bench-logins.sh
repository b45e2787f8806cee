#!/usr/bin/env bash
# Memory under a login flood: N concurrent logins (default 500), each from its own
# loopback address and for its own (unknown) username, so no throttle stops them before
# the password hash: only the hashing bound does. Reports the server's peak RSS (VmHWM)
# and how the logins were answered.
#
# Usage: scripts/bench-logins.sh [N]   (debug or release binary: $ALEXANDRIA_BIN, default
#        target/debug/alexandria; PostgreSQL at $PGURL; Python with httpx from .peers/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
BIN=${ALEXANDRIA_BIN:-target/debug/alexandria}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=alexandria_bench_logins
PORT=${PORT:-18787}
psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
export DATABASE_URL="${PGURL%/*}/$DB"
"$BIN" migrate >/dev/null
DATA=$(mktemp -d)
ALEXANDRIA_LISTEN=127.0.0.1:$PORT ALEXANDRIA_ADMIN_PASSWORD=bench-password-1 ALEXANDRIA_DATA_DIR=$DATA \
  RUST_LOG=error "$BIN" serve >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
rss() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }
echo "before: peak RSS $(( $(rss) / 1024 )) MiB" >&2
.peers/venv/bin/python - "$PORT" "$N" <<'PY'
import asyncio, collections, sys
import httpx2 as httpx
port, n = int(sys.argv[1]), int(sys.argv[2])
async def login(i):
    address = f"127.0.{1 + i // 250}.{1 + i % 250}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=120) as client:
        r = await client.post(f"http://127.0.0.1:{port}/auth/login", json={"username": f"user{i}", "password": "wrong"})
        return r.status_code
async def main():
    statuses = await asyncio.gather(*(login(i) for i in range(n)))
    print("answers:", dict(collections.Counter(statuses)))
asyncio.run(main())
PY
echo "after $N concurrent logins: peak RSS $(( $(rss) / 1024 )) MiB; now $(awk '/VmRSS/ {print int($2/1024)}' /proc/$PID/status) MiB, $(awk '/Threads/ {print $2}' /proc/$PID/status) threads" >&2
psql -q "$PGURL" -c "DROP DATABASE $DB WITH (FORCE)" 2>/dev/null || true
