#!/usr/bin/env bash
# Is my deployment working? The runbook's steps (../shared/spec/approval-gating-runbook.txt,
# "Tool-Approval Gating — End-to-End Smoke") as written, against a running gateway:
# login, the approval list, an agent token, a gated call, approve, the retry's real
# result, metrics, the reject path, notification settings and their test, cleanup. Each
# step is printed with what it checked; the first failure stops it with a non-zero exit.
#
#   ALEX_URL=http://127.0.0.1:8080 ALEX_PASS='<admin password>' scripts/smoke.sh
#
# Optional: ALEX_USER (admin), ALEX_AGENT (demo-agent), ALEX_TOOL (write_file),
# ALEX_ARGS (the tool's arguments, default {"path": "/tmp/smoke.txt", "content": ...}),
# ALEX_ALERTMANAGER_URL (Step 9 sets it before the test; unset: the test uses the
# channels already configured). The agent's approval list and the notification settings
# are put back as they were found, also when a step fails.
set -euo pipefail

: "${ALEX_URL:?set ALEX_URL, e.g. http://127.0.0.1:8080}"
: "${ALEX_PASS:?set ALEX_PASS to the admin password}"
ALEX_URL="${ALEX_URL%/}"
USER_NAME="${ALEX_USER:-admin}"
AGENT="${ALEX_AGENT:-demo-agent}"
TOOL="${ALEX_TOOL:-write_file}"
for tool in curl jq; do command -v "$tool" >/dev/null || { echo "smoke: $tool is required" >&2; exit 2; }; done

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '   FAILED: %s\n' "$*" >&2; exit 1; }

# curl with the status kept apart from the body: sets STATUS and BODY.
request() {
    local out
    out="$(curl -sS -w '\n%{http_code}' "$@")" || fail "cannot reach $ALEX_URL"
    STATUS="${out##*$'\n'}"
    BODY="${out%$'\n'*}"
}
expect_status() { [[ "$STATUS" == "$1" ]] || fail "HTTP $STATUS, expected $1: $BODY"; }
expect() { echo "$BODY" | jq -e "$1" >/dev/null || fail "expected $1 in: $BODY"; }

new_key() { cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen; }
arguments() { if [[ -n "${ALEX_ARGS:-}" ]]; then echo "$ALEX_ARGS"; else jq -nc --arg c "$1" '{path: "/tmp/smoke.txt", content: $c}'; fi; }
call() { # id key content
    request -X POST "$ALEX_URL/mcp/agents/$AGENT" -H "Authorization: Bearer $AGENT_TOKEN" \
        -H "X-Idempotency-Key: $2" -H 'Content-Type: application/json' \
        -d "$(jq -nc --argjson id "$1" --arg tool "$TOOL" --argjson args "$(arguments "$3")" \
            '{jsonrpc: "2.0", id: $id, method: "tools/call", params: {name: $tool, arguments: $args}}')"
}
metric() { # series prefix → value (0 when absent)
    curl -sS "$ALEX_URL/metrics" | awk -v s="$1" 'index($0, s) == 1 { print $NF; found = 1 } END { if (!found) print 0 }'
}

restore() {
    local status=$?
    if [[ -n "${ORIGINAL_APPROVAL:-}" ]]; then
        step "Cleanup — the approval list and notification settings back as found"
        curl -sS -o /dev/null -X PUT "$ALEX_URL/admin/agents/$AGENT/approval-required-tools" \
            -H "Authorization: Bearer $ACCESS_TOKEN" -H 'Content-Type: application/json' \
            -d "$(jq -nc --argjson t "$ORIGINAL_APPROVAL" '{tools: $t}')" && ok "approval_required_tools = $ORIGINAL_APPROVAL"
    fi
    if [[ -n "${ORIGINAL_NOTIFY:-}" ]]; then
        curl -sS -o /dev/null -X PATCH "$ALEX_URL/admin/notifications/config" \
            -H "Authorization: Bearer $ACCESS_TOKEN" -H 'Content-Type: application/json' \
            -d "$ORIGINAL_NOTIFY" && ok "notification settings restored"
    fi
    if [[ $status -eq 0 ]]; then printf '\nsmoke: every step passed\n'; else printf '\nsmoke: FAILED\n' >&2; fi
}
trap restore EXIT

step "Step 1 — Login as $USER_NAME"
request -X POST "$ALEX_URL/auth/login" -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg u "$USER_NAME" --arg p "$ALEX_PASS" '{username: $u, password: $p}')"
expect_status 200
expect '.access_token and .refresh_token and .token_type == "Bearer" and .expires_in == 900'
ACCESS_TOKEN="$(echo "$BODY" | jq -r .access_token)"
ok "${ACCESS_TOKEN:0:20}..."

step "Step 2 — $TOOL needs approval for $AGENT"
request "$ALEX_URL/admin/agents/$AGENT" -H "Authorization: Bearer $ACCESS_TOKEN"
expect_status 200
ORIGINAL_APPROVAL="$(echo "$BODY" | jq -c .approval_required_tools)"
request -X PUT "$ALEX_URL/admin/agents/$AGENT/approval-required-tools" -H "Authorization: Bearer $ACCESS_TOKEN" \
    -H 'Content-Type: application/json' -d "$(jq -nc --arg t "$TOOL" '{tools: [$t]}')"
expect_status 200
expect ".approval_required_tools == [\"$TOOL\"]"
ok "approval_required_tools = [\"$TOOL\"] (was $ORIGINAL_APPROVAL)"

step "Step 3 — Mint an agent token"
request -X POST "$ALEX_URL/v1/agent-token" -H "Authorization: Bearer $ACCESS_TOKEN" \
    -H 'Content-Type: application/json' -d "$(jq -nc --arg a "$AGENT" '{agent: $a}')"
expect_status 200
expect "(keys == [\"agent\", \"effective_tools\", \"expires_in\", \"token\"]) and .agent == \"$AGENT\" and .expires_in == 3600"
expect ".effective_tools | index(\"$TOOL\")"
AGENT_TOKEN="$(echo "$BODY" | jq -r .token)"
ok "${AGENT_TOKEN:0:20}..., effective_tools $(echo "$BODY" | jq -c .effective_tools)"

pending_before="$(metric "alexandria_permission_request_pending{request_type=\"tool_call\",tool=\"$TOOL\"}")"
step "Step 4 — A gated tools/call (waits in-band, then answers pending)"
IDEMPOTENCY_KEY="$(new_key)"
call 1 "$IDEMPOTENCY_KEY" hello
expect_status 200
expect '.jsonrpc == "2.0" and .id == 1 and .result.pending == true and (.result.request_id | length) == 36 and .result.retry_after_ms == 2000'
REQUEST_ID="$(echo "$BODY" | jq -r .result.request_id)"
ok "pending, REQUEST_ID=$REQUEST_ID"

step "Step 5 — Approve"
request -X POST "$ALEX_URL/admin/permissions/$REQUEST_ID/approve" -H "Authorization: Bearer $ACCESS_TOKEN"
expect_status 200
expect ".id == \"$REQUEST_ID\" and .status == \"approved\" and .reviewed_by == \"$USER_NAME\" and .reviewed_at != null"
ok "approved by $USER_NAME"

step "Step 6 — Retry with the same idempotency key: the real result"
call 2 "$IDEMPOTENCY_KEY" hello
expect_status 200
expect '.id == 2 and (.result | has("content")) and (.result.pending | not)'
ok "$(echo "$BODY" | jq -c '.result.content[0].text // .result' | cut -c1-100)"
call 5 "$IDEMPOTENCY_KEY" hello
expect '.id == 5 and (.result | has("content"))'
ok "a second retry gets the cached result"

step "Step 7 — Metrics"
series="request_type=\"tool_call\",tool=\"$TOOL\""
created="$(metric "alexandria_permission_request_events_total{event=\"created\",$series}")"
approved="$(metric "alexandria_permission_request_events_total{event=\"approved\",$series}")"
pending="$(metric "alexandria_permission_request_pending{$series}")"
[[ "${created%.*}" -ge 1 && "${approved%.*}" -ge 1 ]] || fail "events_total created=$created approved=$approved"
# The pending gauge comes from the read model, refreshed at most once a second.
for _ in $(seq 1 20); do [[ "${pending%.*}" -le "${pending_before%.*}" ]] && break; sleep 0.5; pending="$(metric "alexandria_permission_request_pending{$series}")"; done
[[ "${pending%.*}" -le "${pending_before%.*}" ]] || fail "pending gauge $pending (was $pending_before)"
ok "created $created, approved $approved, pending $pending"

step "Step 8 — Reject path"
IDEMPOTENCY_KEY="$(new_key)"
call 3 "$IDEMPOTENCY_KEY" "reject me"
expect '.result.pending == true'
REQUEST_ID="$(echo "$BODY" | jq -r .result.request_id)"
request -X POST "$ALEX_URL/admin/permissions/$REQUEST_ID/reject" -H "Authorization: Bearer $ACCESS_TOKEN" \
    -H 'Content-Type: application/json' -d '{"reason": "smoke test rejection"}'
expect_status 200
expect '.status == "rejected" and .reason == "smoke test rejection"'
call 4 "$IDEMPOTENCY_KEY" "reject me"
expect '.id == 4 and .error.code == -32003 and .error.message == "denied: smoke test rejection"'
ok "retry denied: -32003 denied: smoke test rejection"
rejected="$(metric "alexandria_permission_request_events_total{event=\"rejected\",$series}")"
[[ "${rejected%.*}" -ge 1 ]] || fail "events_total rejected=$rejected"
ok "rejected $rejected"

step "Step 9 — Notifications: settings and a test send"
request "$ALEX_URL/admin/notifications/config" -H "Authorization: Bearer $ACCESS_TOKEN"
expect_status 200
expect '.webhook_secret == "set" or .webhook_secret == "unset"'
if [[ -n "${ALEX_ALERTMANAGER_URL:-}" ]]; then
    ORIGINAL_NOTIFY="$(echo "$BODY" | jq -c '{alertmanager_url, alertmanager_severity}')"
    request -X PATCH "$ALEX_URL/admin/notifications/config" -H "Authorization: Bearer $ACCESS_TOKEN" \
        -H 'Content-Type: application/json' \
        -d "$(jq -nc --arg u "$ALEX_ALERTMANAGER_URL" '{alertmanager_url: $u, alertmanager_severity: "warning"}')"
    expect_status 200
    expect ".alertmanager_url == \"$ALEX_ALERTMANAGER_URL\""
    ok "alertmanager_url = $ALEX_ALERTMANAGER_URL"
fi
request -X POST "$ALEX_URL/admin/notifications/test" -H "Authorization: Bearer $ACCESS_TOKEN"
expect_status 200
expect '.ok == true'
ok '{"ok": true}'
