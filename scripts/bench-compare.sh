#!/usr/bin/env bash
# Side by side (issue 16): one fast upstream over Streamable HTTP (the example server's
# `--http` mode, its `echo` tool) called
#   (1) directly, (2) through Alexandria, (3) through IBM ContextForge,
# with the same load generator (wrk, scripts/bench-compare.lua) at concurrency 1 and 64.
# Prints a Markdown table: calls/s, p50/p99, and CPU per call (utime+stime over the run ÷
# calls) of each gateway's processes, of PostgreSQL's backends for Alexandria, and of the
# upstream. Every answer is checked (the echoed text); failed answers are counted.
#
#   scripts/bench-compare.sh            (BENCH_SECONDS per measurement, default 10)
#
# Installs what it needs, pinned, on a fresh machine: wrk (Debian), ContextForge (PyPI
# mcp-contextforge-gateway, into .peers/contextforge with Python >= 3.12: $PYTHON312, else
# python3.12 on PATH, else pyenv's). Builds the release binaries unless ALEXANDRIA_BIN and
# FS_BIN name them. PostgreSQL at $PGURL (default postgres://postgres@127.0.0.1:5432/postgres);
# the script creates and drops its own database. BENCH_SKIP_CONTEXTFORGE=1 leaves it out;
# BENCH_CONCURRENCY (default "1 64") the concurrencies; BENCH_PERF=FILE records a `perf`
# profile of Alexandria at concurrency 64 (Debian linux-perf).
#
# ContextForge runs with its defaults except: SQLite in the run's directory, secrets from
# its own init_secrets, RATE_LIMITING_ENABLED=false, SSRF_ALLOW_LOCALHOST=true (else it
# refuses a loopback upstream). A virtual server holds the tool; the client sends a fixed
# Mcp-Session-Id so ContextForge can reuse its upstream session.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

WRK_VERSION="4.1.0-3+b2"
CONTEXTFORGE_VERSION="1.1.0"
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=alexandria_bench_compare
log() { echo "bench-compare: $*" >&2; }

# --- peers, pinned ------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk $WRK_VERSION (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "wrk=$WRK_VERSION" >/dev/null
fi
cf_venv="$repo/.peers/contextforge"
if [[ "${BENCH_SKIP_CONTEXTFORGE:-0}" != 1 ]]; then
    installed_cf() {
        [[ -x "$cf_venv/bin/python" ]] && "$cf_venv/bin/python" -c \
            'import importlib.metadata as m; print(m.version("mcp-contextforge-gateway"))' 2>/dev/null || true
    }
    if [[ "$(installed_cf)" != "$CONTEXTFORGE_VERSION" ]]; then
        # The first candidate that runs and is new enough (pyenv's shim for python3.12
        # is on PATH even where that version is not selected, and then fails).
        python312=${PYTHON312:-}
        if [[ -z "$python312" ]]; then
            for candidate in python3.13 python3.12 /root/.pyenv/versions/3.1[2-9]*/bin/python3; do
                if "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
                    python312=$(command -v "$candidate")
                    break
                fi
            done
        fi
        [[ -n "$python312" && -x "$python312" ]] || { log "ContextForge needs Python >= 3.12: set PYTHON312"; exit 1; }
        log "installing PyPI mcp-contextforge-gateway==$CONTEXTFORGE_VERSION into $cf_venv ($python312)"
        [[ -x "$cf_venv/bin/python" ]] || "$python312" -m venv "$cf_venv"
        "$cf_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "mcp-contextforge-gateway==$CONTEXTFORGE_VERSION"
    fi
    [[ "$(installed_cf)" == "$CONTEXTFORGE_VERSION" ]] || { log "ContextForge did not install"; exit 1; }
fi
if [[ -z "${ALEXANDRIA_BIN:-}" || -z "${FS_BIN:-}" ]]; then
    cargo build --release --locked --workspace --bins
    target=${CARGO_TARGET_DIR:-$repo/target}
    ALEXANDRIA_BIN=${ALEXANDRIA_BIN:-$target/release/alexandria}
    FS_BIN=${FS_BIN:-$target/release/alexandria-example-fs}
fi

# --- processes ----------------------------------------------------------------------------
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS
    for _ in $(seq $(( $2 * 5 ))); do curl -fs -m 2 "$1" >/dev/null && return 0; sleep 0.2; done
    log "$1 did not answer within $2 s"; return 1
}
# A process and all its descendants.
tree() {
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid" || true); do tree "$child"; done
}
# utime+stime, in clock ticks, of the given pids (those still alive).
ticks() {
    local total=0 pid line fields
    for pid in "$@"; do
        line=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -ra fields <<<"$line"
        total=$(( total + fields[11] + fields[12] ))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

log "upstream: $FS_BIN --http"
mkdir -p "$work/root"
"$FS_BIN" --root "$work/root" --http 127.0.0.1:0 >"$work/upstream.out" 2>"$work/upstream.log" &
upstream_pid=$!
pids+=("$upstream_pid")
for _ in $(seq 50); do grep -q LISTENING "$work/upstream.out" && break; sleep 0.1; done
upstream_port=$(awk '/LISTENING/ {print $2}' "$work/upstream.out")
direct="http://127.0.0.1:$upstream_port/mcp"

log "Alexandria: $ALEXANDRIA_BIN"
psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="${PGURL%/*}/$DB"
"$ALEXANDRIA_BIN" migrate >/dev/null
alexandria_port=$(free_port)
ALEXANDRIA_LISTEN=127.0.0.1:$alexandria_port ALEXANDRIA_ADMIN_PASSWORD=bench-password-1 \
    ALEXANDRIA_DATA_DIR="$work/alexandria" "$ALEXANDRIA_BIN" serve >"$work/alexandria.log" 2>&1 &
alexandria_pid=$!
pids+=("$alexandria_pid")
base="http://127.0.0.1:$alexandria_port"
wait_http "$base/healthz" 60
admin=$(curl -fs "$base/auth/login" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"bench-password-1"}' | jq -r .access_token)
curl -fs "$base/admin/mcp-servers" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"name\":\"fast\",\"transport\":\"streamable_http\",\"url\":\"$direct\"}" >/dev/null
curl -fs "$base/admin/agents" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"name":"bench","description":"bench-compare","allowed_tools":["echo"],"approval_required_tools":[]}' >/dev/null
alexandria_token=$(curl -fs "$base/v1/agent-token" -H "authorization: Bearer $admin" \
    -H 'content-type: application/json' -d '{"agent":"bench"}' | jq -r .token)

if [[ "${BENCH_SKIP_CONTEXTFORGE:-0}" != 1 ]]; then
    log "ContextForge $CONTEXTFORGE_VERSION (about 30 s to start)"
    cf_dir="$work/contextforge"
    mkdir -p "$cf_dir"
    (cd "$cf_dir" && "$cf_venv/bin/python" -m mcpgateway.scripts.init_secrets --output .env --force >/dev/null 2>&1)
    cat >>"$cf_dir/.env" <<EOF
DATABASE_URL=sqlite:///$cf_dir/mcp.db
RATE_LIMITING_ENABLED=false
SSRF_ALLOW_LOCALHOST=true
EOF
    cf_port=$(free_port)
    # Its own database: the DATABASE_URL exported for Alexandria above would win over
    # its .env (and a postgres:// URL it cannot load makes it exit at once).
    (cd "$cf_dir" && DATABASE_URL="sqlite:///$cf_dir/mcp.db" MCG_HOST=127.0.0.1 MCG_PORT=$cf_port \
        exec "$cf_venv/bin/mcpgateway" >"$cf_dir/log" 2>&1) &
    cf_pid=$!
    pids+=("$cf_pid")
    cf="http://127.0.0.1:$cf_port"
    wait_http "$cf/health" 300 || { tail -20 "$cf_dir/log" >&2; exit 1; }
    cf_token=$(cd "$cf_dir" && set -a && . ./.env && set +a &&
        "$cf_venv/bin/python" -m mcpgateway.utils.create_jwt_token -u admin@example.com -e 1440 --admin 2>/dev/null | tail -1)
    curl -fs -m 60 "$cf/gateways" -H "authorization: Bearer $cf_token" -H 'content-type: application/json' \
        -d "{\"name\":\"fast\",\"url\":\"$direct\",\"transport\":\"STREAMABLEHTTP\"}" >/dev/null
    cf_tool=$(curl -fs "$cf/tools" -H "authorization: Bearer $cf_token" | jq -r '.[] | select(.name=="fast-echo") | .id')
    cf_server=$(curl -fs -m 60 "$cf/servers" -H "authorization: Bearer $cf_token" -H 'content-type: application/json' \
        -d "{\"server\":{\"name\":\"bench\",\"associated_tools\":[\"$cf_tool\"]}}" | jq -r .id)
    # 1.1.0 serves a virtual server's MCP endpoint here (its deprecation header names a
    # /v1/ path that answers 404 in this version).
    cf_mcp="$cf/servers/$cf_server/mcp"
    cf_session="bench-compare-$(date +%s)"
    curl -fs -m 60 "$cf_mcp" -H "authorization: Bearer $cf_token" -H "mcp-session-id: $cf_session" \
        -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench-compare","version":"1"}}}' >/dev/null
fi

# --- measurements -------------------------------------------------------------------------
# measure NAME URL TOOL TOKEN SESSION CONCURRENCY "GATEWAY PIDS"
rows=()
measure() {
    local name=$1 url=$2 tool=$3 token=$4 session=$5 connections=$6 gateway_root=$7
    local threads=$(( connections < 2 ? 1 : 2 )) gateway=() postgres=() load out
    [[ -n "$gateway_root" ]] && mapfile -t gateway < <(tree "$gateway_root")
    [[ "$name" == alexandria ]] &&
        mapfile -t postgres < <(psql -At "$PGURL" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'")
    BENCH_TOOL=$tool BENCH_TOKEN=$token BENCH_SESSION=$session \
        wrk -t"$threads" -c"$connections" -d2s --timeout 30s -s scripts/bench-compare.lua "$url" >/dev/null 2>&1 || true
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    local g0 p0 u0 g1 p1 u1
    g0=$(ticks "${gateway[@]}"); p0=$(ticks "${postgres[@]}"); u0=$(ticks "$upstream_pid")
    # BENCH_PERF=FILE: a CPU profile of Alexandria during its run at concurrency 64.
    local profiler=""
    if [[ -n "${BENCH_PERF:-}" && "$name" == alexandria && "$connections" == 64 ]]; then
        perf record -F 999 -g -o "$BENCH_PERF" -p "$alexandria_pid" -- sleep "$SECONDS_PER_RUN" >/dev/null 2>&1 &
        profiler=$!
    fi
    out=$(BENCH_TOOL=$tool BENCH_TOKEN=$token BENCH_SESSION=$session \
        wrk -t"$threads" -c"$connections" -d"${SECONDS_PER_RUN}s" --timeout 30s -s scripts/bench-compare.lua "$url" 2>&1)
    [[ -z "$profiler" ]] || wait "$profiler" || true
    g1=$(ticks "${gateway[@]}"); p1=$(ticks "${postgres[@]}"); u1=$(ticks "$upstream_pid")
    local line
    line=$(grep '^BENCH' <<<"$out") || { log "wrk failed: $out"; return 1; }
    python3 - "$name" "$connections" "$hz" "$((g1 - g0))" "$((p1 - p0))" "$((u1 - u0))" "$load" "${#gateway[@]}" "$line" <<'PY'
import sys
name, conc, hz, g, p, u, load, ngw, line = sys.argv[1:]
f = dict(kv.split("=") for kv in line.split()[1:])
good, bad, errs = int(f["good"]), int(f["bad"]), int(f["socket_errors"])
secs = float(f["seconds"])
per = lambda ticks: f"{int(ticks) / int(hz) / good * 1e6:,.0f} µs" if good else "–"
gw = per(g) if int(ngw) else "–"
pg = per(p) if name == "alexandria" else "–"
label = {"direct": "upstream directly", "alexandria": "through Alexandria", "contextforge": "through ContextForge 1.1.0"}[name]
print(f"| {label} | {conc} | {good / secs:,.0f} | {int(f['p50_us']) / 1000:.3f} / {int(f['p99_us']) / 1000:.3f} ms "
      f"| {gw} | {pg} | {per(u)} | {bad + errs} | {load} |")
PY
}

echo "| path | concurrency | calls/s | p50 / p99 | gateway CPU per call | PostgreSQL CPU per call | upstream CPU per call | failed | load average (1/5/15 min) at start |"
echo "|---|---|---|---|---|---|---|---|---|"
for connections in ${BENCH_CONCURRENCY:-1 64}; do
    measure direct "$direct" echo "" "" "$connections" ""
    measure alexandria "$base/mcp/agents/bench" echo "$alexandria_token" "" "$connections" "$alexandria_pid"
    if [[ "${BENCH_SKIP_CONTEXTFORGE:-0}" != 1 ]]; then
        measure contextforge "$cf_mcp" fast-echo "$cf_token" "$cf_session" "$connections" "$cf_pid"
    fi
done
