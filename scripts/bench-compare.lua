-- wrk script of scripts/bench-compare.sh: every request is one JSON-RPC tools/call of the
-- echo tool; every answer is checked (HTTP 200, the echoed text, not an error result).
-- Environment: BENCH_TOOL (default echo), BENCH_TOKEN (a bearer token), BENCH_SESSION
-- (an Mcp-Session-Id header).
local tool = os.getenv("BENCH_TOOL") or "echo"
local token = os.getenv("BENCH_TOKEN")
local session = os.getenv("BENCH_SESSION")

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool ..
    '","arguments":{"message":"ping"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
if session and session ~= "" then wrk.headers["Mcp-Session-Id"] = session end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    good = 0
    bad = 0
end

function response(status, headers, body)
    if status == 200 and body:find('"text":"ping"', 1, true) and not body:find('"isError":true', 1, true) then
        good = good + 1
    else
        bad = bad + 1
        if bad == 1 then
            io.stderr:write("unexpected answer: " .. status .. " " .. body:sub(1, 300) .. "\n")
        end
    end
end

function done(summary, latency, requests)
    local g, b = 0, 0
    for _, thread in ipairs(threads) do
        g = g + thread:get("good")
        b = b + thread:get("bad")
    end
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    io.write(string.format("BENCH good=%d bad=%d socket_errors=%d seconds=%.3f p50_us=%d p99_us=%d\n",
        g, b, errors, summary.duration / 1e6, latency:percentile(50), latency:percentile(99)))
end
