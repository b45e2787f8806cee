#!/usr/bin/env python3
"""The traffic and the sampling of scripts/soak.sh (which starts the gateway; run that).

Drives mixed traffic at a running `alexandria serve --demo` for a duration, samples the
server process and its database, writes one CSV row per sample and prints a summary.
Exits 1 on any 5xx, transport error or unexpected answer, or when a metric drifts over
the second half of the run (the first half is the warm-up):
  - RSS: the median of the last 3 samples is more than 20 % above the median of the 3
    samples at the half-way mark;
  - open files, database connections, threads: they grow without ever going down over
    the second half, or the last quarter's lowest value is above the third quarter's
    highest (a floor that rose).
Python's standard library only (the repository's scripts need no virtualenv for this).
"""

import argparse
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
import http.client
import urllib.parse

AGENT = "demo-agent"
# domain/src/ids.rs, REQUEST_ID_NAMESPACE: request id = UUIDv5(len(agent):agent key).
REQUEST_ID_NAMESPACE = uuid.UUID(int=0x6A1E7C3B52D44F0E9A8BA1EC5A2D0001)
REJECT_REASON = "soak says no"


def request_id(agent, key):
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{len(agent.encode())}:{agent}{key}"))


class Unexpected(Exception):
    """An answer the gateway should not have given."""


class Stats:
    """Requests by kind with their latencies, and errors by kind (with a few examples)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done = collections.Counter()
        self.latency = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.notes = collections.Counter()

    def ok(self, kind, seconds):
        with self.lock:
            self.done[kind] += 1
            self.latency[kind].append(seconds)

    def error(self, kind, detail):
        with self.lock:
            self.errors[kind] += 1
            if len(self.examples[kind]) < 3:
                self.examples[kind].append(detail[:300])

    def note(self, kind):
        with self.lock:
            self.notes[kind] += 1

    def totals(self):
        with self.lock:
            return sum(self.done.values()), sum(self.errors.values())


STATS = Stats()


class Http:
    """One keep-alive HTTP/1.1 connection (optionally from a given loopback address)."""

    def __init__(self, port, source=None, timeout=60):
        self.port, self.source, self.timeout, self.conn = port, source, timeout, None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, form=False):
        headers = dict(headers or {})
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = None
        for attempt in range(2):
            fresh = self.conn is None
            if fresh:
                source = (self.source, 0) if self.source else None
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                       source_address=source)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # A kept-alive connection the server closed while idle: every request
                # here is safe to send again (gated calls carry their idempotency key).
                if fresh or attempt:
                    raise
                STATS.note("reconnected an idle keep-alive connection")
                continue
            except Exception:
                self.close()
                raise
            if (response.getheader("Connection") or "").lower() == "close":
                self.close()
            return response.status, response, payload
        raise AssertionError("unreachable")


def timed(kind, f):
    """Runs one request (or flow) and counts it, or its failure, under `kind`."""
    started = time.monotonic()
    try:
        result = f()
    except Unexpected as error:
        STATS.error(f"{kind}: unexpected answer", str(error))
        return None
    except Exception as error:  # transport errors, timeouts
        STATS.error(f"{kind}: {type(error).__name__}", str(error))
        return None
    STATS.ok(kind, time.monotonic() - started)
    return result


def expect(status, expected, payload, what):
    if status >= 500:
        raise Unexpected(f"HTTP {status} (5xx) for {what}: {payload[:200]!r}")
    if status != expected:
        raise Unexpected(f"HTTP {status}, expected {expected}, for {what}: {payload[:200]!r}")


def jsonrpc_answer(response, payload):
    """The JSON-RPC response of a `POST /mcp...`, sent as JSON or as one SSE event."""
    if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
        for line in payload.decode().splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if "id" in message and ("result" in message or "error" in message):
                    return message
        raise Unexpected(f"an event stream without a response: {payload[:200]!r}")
    return json.loads(payload)


class Tokens:
    """The admin's API session (refreshed every 10 minutes) and the agent's token
    (minted again every 20), shared by the workers."""

    def __init__(self, port, password):
        self.http, self.password, self.lock = Http(port), password, threading.Lock()
        self.admin_token = self.refresh_token = self.agent_token = None
        self.admin_at = self.agent_at = 0.0

    def admin(self):
        with self.lock:
            if self.admin_token is None:
                status, _, payload = self.http.request(
                    "POST", "/auth/login", {"username": "admin", "password": self.password})
                expect(status, 200, payload, "the admin's login")
                self._take(json.loads(payload))
            elif time.monotonic() - self.admin_at > 600:
                def refresh():
                    status, _, payload = self.http.request(
                        "POST", "/auth/refresh", {"refresh_token": self.refresh_token})
                    expect(status, 200, payload, "POST /auth/refresh")
                    self._take(json.loads(payload))
                timed("admin session refresh", refresh)
            return self.admin_token

    def _take(self, tokens):
        self.admin_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        self.admin_at = time.monotonic()

    def agent(self):
        admin = self.admin()
        with self.lock:
            if self.agent_token is None or time.monotonic() - self.agent_at > 1200:
                def mint():
                    status, _, payload = self.http.request(
                        "POST", "/v1/agent-token", {"agent": AGENT}, {"Authorization": f"Bearer {admin}"})
                    expect(status, 200, payload, "POST /v1/agent-token")
                    self.agent_token, self.agent_at = json.loads(payload)["token"], time.monotonic()
                timed("agent token mint", mint)
            return self.agent_token


class Run:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.duration
        self.tokens = Tokens(args.port, args.password)
        self.base = f"http://127.0.0.1:{args.port}"

    def running(self):
        return time.monotonic() < self.deadline

    def mcp(self, http, payload, key=None):
        headers = {"Authorization": f"Bearer {self.tokens.agent()}",
                   "Accept": "application/json, text/event-stream"}
        if key:
            headers["X-Idempotency-Key"] = key
        status, response, body = http.request("POST", f"/mcp/agents/{AGENT}", payload, headers)
        expect(status, 200, body, f"tools/call {payload['params'].get('name')}")
        return jsonrpc_answer(response, body)

    def admin_get(self, http, path, expected=200):
        status, _, payload = http.request("GET", path, None, {"Authorization": f"Bearer {self.tokens.admin()}"})
        expect(status, expected, payload, f"GET {path}")
        return json.loads(payload) if payload else None

    # --- pass-through: tools/call of ungated tools, at a steady rate -------------------
    def passthrough(self, worker, rate):
        http, n, interval = Http(self.args.port), 0, 1.0 / rate
        next_at = time.monotonic()
        while self.running():
            n += 1
            pick = random.random()
            if n % 200 == 0:
                def list_tools():
                    answer = self.mcp(http, {"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": {}})
                    names = {tool["name"] for tool in answer["result"]["tools"]}
                    if not {"echo", "write_file", "read_file"} <= names:
                        raise Unexpected(f"tools/list: {sorted(names)}")
                timed("pass-through tools/list", list_tools)
            elif pick < 0.85:
                message = f"soak {worker}-{n}"
                def echo():
                    answer = self.mcp(http, call(n, "echo", {"message": message}))
                    if answer.get("result", {}).get("content", [{}])[0].get("text") != message:
                        raise Unexpected(f"echo answered {answer}")
                timed("pass-through echo", echo)
            else:
                tool, arguments = (("list_directory", {"path": "/soak"}) if pick < 0.93
                                   else ("read_file", {"path": f"/soak/0-{n % 50}.txt"}))
                def other():
                    answer = self.mcp(http, call(n, tool, arguments))
                    if "result" not in answer:  # a missing file is a tool error (isError), still a result
                        raise Unexpected(f"{tool} answered {answer}")
                timed(f"pass-through {tool}", other)
            next_at += interval
            now = time.monotonic()
            if next_at > now:
                time.sleep(next_at - now)
            elif now - next_at > 1:
                next_at = now  # behind by more than a second: do not burst to catch up

    # --- gated: created, decided by the admin, retried with the same key ----------------
    def gated(self, worker):
        agent_http, waiter_http, admin_http = Http(self.args.port), Http(self.args.port), Http(self.args.port)
        run, n = uuid.uuid4().hex[:8], 0
        while self.running():
            n += 1
            key = f"soak-{run}-{worker}-{n}"
            approve = random.random() < 0.65
            in_band = random.random() < 0.45
            arguments = {"path": f"/soak/{worker}-{n % 50}.txt", "content": f"flow {n}"}
            flow = "in-band" if in_band else "pending then retried"
            verdict = "approved" if approve else "rejected"
            timed(f"gated {flow}, {verdict}",
                  lambda: self.gated_flow(agent_http, waiter_http, admin_http, key, n, arguments, approve, in_band))
            time.sleep(0.2)

    def gated_flow(self, agent_http, waiter_http, admin_http, key, n, arguments, approve, in_band):
        rid = request_id(AGENT, key)
        payload = call(n, "write_file", arguments)
        if in_band:
            # The call waits in-band; the admin decides while it waits.
            answer, failure = {}, []

            def wait():
                try:
                    answer.update(self.mcp(waiter_http, payload, key))
                except Exception as error:
                    failure.append(error)
            waiting = threading.Thread(target=wait)
            waiting.start()
            deadline = time.monotonic() + 10
            while True:
                status, _, body = admin_http.request(
                    "GET", f"/admin/permissions/{rid}", None, {"Authorization": f"Bearer {self.tokens.admin()}"})
                if status == 200:
                    break
                expect(status, 404, body, "GET /admin/permissions/{id} before the request exists")
                if time.monotonic() > deadline:
                    raise Unexpected("the gated call's request never appeared")
                time.sleep(0.02)
            self.decide(admin_http, rid, approve)
            waiting.join(90)
            if failure:
                raise failure[0]
            if not answer:
                raise Unexpected("the waiting call got no answer")
            if answer.get("result", {}).get("pending"):
                STATS.note("in-band call answered pending (decided after the wait): retried")
                answer = self.mcp(agent_http, payload, key)
        else:
            answer = self.mcp(agent_http, payload, key)
            result = answer.get("result", {})
            if not result.get("pending") or result.get("request_id") != rid:
                raise Unexpected(f"expected the pending answer for {rid}: {answer}")
            self.decide(admin_http, rid, approve)
            answer = self.mcp(agent_http, payload, key)
        check_decided(answer, approve)
        # Once more with the same key: the same (cached) answer, never a second execution.
        again = self.mcp(agent_http, payload, key)
        if again.get("result") != answer.get("result") or again.get("error") != answer.get("error"):
            raise Unexpected(f"a retry answered differently: {answer} then {again}")
        if random.random() < 0.1:
            events = self.admin_get(admin_http, f"/admin/permissions/{rid}/events")
            expected = ["Created", "Approved", "Executed", "ResultCached"] if approve else ["Created", "Rejected"]
            if [event["type"] for event in events] != expected:
                raise Unexpected(f"events of {rid}: {[event['type'] for event in events]}")

    def decide(self, http, rid, approve):
        headers = {"Authorization": f"Bearer {self.tokens.admin()}"}
        if approve:
            status, _, body = http.request("POST", f"/admin/permissions/{rid}/approve", None, headers)
        else:
            status, _, body = http.request("POST", f"/admin/permissions/{rid}/reject", {"reason": REJECT_REASON}, headers)
        expect(status, 200, body, f"deciding {rid}")

    # --- logins: the API's and the console's, some with wrong passwords -----------------
    def logins(self):
        local, k, wrong = Http(self.args.port), 0, 0
        while self.running():
            k += 1
            step = k % 6
            if step in (0, 2, 4):
                timed("login (API), me, refresh or not, logout", lambda: self.api_session(local, refresh=step == 0))
            elif step in (1, 3):
                # Each wrong password from its own loopback address, so the address
                # throttle (20 failures in 15 minutes) never trips; the admin's username
                # count is cleared by the right logins in between.
                wrong += 1
                source = f"127.0.{1 + (wrong // 250) % 4}.{1 + wrong % 250}"
                username = "admin" if step == 1 else f"nobody-{k}"
                def refused():
                    http = Http(self.args.port, source=source)
                    try:
                        status, _, body = http.request("POST", "/auth/login",
                                                       {"username": username, "password": "wrong-password-1"})
                    finally:
                        http.close()
                    expect(status, 401, body, f"a wrong password for {username}")
                timed("login with a wrong password (401)" if step == 1 else "login of an unknown user (401)", refused)
            else:
                timed("console login, inbox, history, sign out", lambda: self.console_session(local))
            time.sleep(self.args.login_interval)

    def api_session(self, http, refresh):
        status, _, body = http.request("POST", "/auth/login", {"username": "admin", "password": self.args.password})
        expect(status, 200, body, "POST /auth/login")
        tokens = json.loads(body)
        if refresh:
            status, _, body = http.request("POST", "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
            expect(status, 200, body, "POST /auth/refresh")
            tokens = json.loads(body)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        status, _, body = http.request("GET", "/auth/me", None, headers)
        expect(status, 200, body, "GET /auth/me")
        status, _, body = http.request("POST", "/auth/logout", None, headers)
        expect(status, 204, body, "POST /auth/logout")

    def console_session(self, http):
        origin = {"Origin": self.base}
        status, response, body = http.request(
            "POST", "/login", {"username": "admin", "password": self.args.password}, origin, form=True)
        expect(status, 303, body, "POST /login")
        cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
        if "=" not in cookie:
            raise Unexpected("the console login set no cookie")
        for path in ("/", "/history"):
            status, _, body = http.request("GET", path, None, {"Cookie": cookie})
            expect(status, 200, body, f"GET {path} (console)")
        status, _, body = http.request("POST", "/logout", None, origin | {"Cookie": cookie})
        expect(status, 303, body, "POST /logout (console)")

    # --- admin reads: lists, the metrics scrape, readiness ------------------------------
    def reads(self):
        http = Http(self.args.port)
        while self.running():
            timed("admin list pending", lambda: self.admin_get(http, "/admin/permissions?status=pending&limit=20"))
            timed("admin list newest 50", lambda: self.admin_get(http, "/admin/permissions?limit=50"))
            def scrape():
                status, _, body = http.request("GET", "/metrics")
                expect(status, 200, body, "GET /metrics")
            timed("metrics scrape", scrape)
            def ready():
                status, _, body = http.request("GET", "/readyz")
                expect(status, 200, body, "GET /readyz")
            timed("readyz", ready)
            time.sleep(2)

    # --- one console left open on the live inbox's event stream -------------------------
    def console_stream(self):
        while self.running():
            http = Http(self.args.port)
            try:
                status, response, body = http.request(
                    "POST", "/login", {"username": "admin", "password": self.args.password},
                    {"Origin": self.base}, form=True)
                expect(status, 303, body, "POST /login (stream)")
                cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
                http.conn.request("GET", "/console/events", headers={"Cookie": cookie})
                stream = http.conn.getresponse()
                if stream.status != 200:
                    raise Unexpected(f"GET /console/events: HTTP {stream.status}")
                while self.running():
                    # The server sends a keep-alive comment every 15 s: a 60 s silence
                    # (Http's timeout) is an error.
                    line = stream.fp.readline()
                    if not line:
                        STATS.note("console event stream ended by the server: reopened")
                        break
                    if line.startswith(b"event:"):
                        STATS.ok("console stream event received", 0.0)
            except Unexpected as error:
                STATS.error("console stream: unexpected answer", str(error))
                time.sleep(1)
            except Exception as error:
                STATS.error(f"console stream: {type(error).__name__}", str(error))
                time.sleep(1)
            finally:
                http.close()


def call(n, tool, arguments):
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def check_decided(answer, approve):
    if approve:
        text = answer.get("result", {}).get("content", [{}])[0].get("text", "")
        if not text.startswith("wrote") or answer["result"].get("pending"):
            raise Unexpected(f"an approved call answered {answer}")
    else:
        error = answer.get("error", {})
        if error.get("code") != -32003 or REJECT_REASON not in error.get("message", ""):
            raise Unexpected(f"a rejected call answered {answer}")


# --- sampling ----------------------------------------------------------------------------

def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else ""
    return fields


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            pass
    return found


def sample(args, started, phase):
    """One row: `phase` is "traffic" while the workers run, "after" once they stopped."""
    status = proc_status(args.pid)
    upstream = 0
    for child in children(args.pid):
        try:
            upstream += int(proc_status(child).get("VmRSS", 0))
        except (FileNotFoundError, ValueError):
            pass
    # Connections of the server to its database, not counting this query's own.
    query = ("SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
             "AND pid <> pg_backend_pid()), (SELECT count(*) FROM events), "
             "(SELECT count(*) FROM sessions WHERE revoked_at IS NULL)")
    out = subprocess.run(["psql", "-qAt", "-F", " ", args.database_url, "-c", query],
                         capture_output=True, text=True, check=True).stdout.split()
    done, errors = STATS.totals()
    return {
        "phase": phase,
        "elapsed_s": round(time.monotonic() - started),
        "rss_kib": int(status["VmRSS"]),
        "hwm_kib": int(status["VmHWM"]),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{args.pid}/fd")),
        "db_connections": int(out[0]),
        "events": int(out[1]),
        "live_sessions": int(out[2]),
        "upstream_rss_kib": upstream,
        "requests": done,
        "errors": errors,
    }


def sampler(run, args, started, rows, csv_file):
    columns = None
    while True:
        row = sample(args, started, "traffic" if run.running() else "after")
        rows.append(row)
        if columns is None:
            columns = list(row)
            csv_file.write(",".join(columns) + "\n")
        csv_file.write(",".join(str(row[c]) for c in columns) + "\n")
        csv_file.flush()
        print(f"[{row['elapsed_s']:>5} s] RSS {row['rss_kib'] // 1024} MiB, fds {row['fds']}, "
              f"threads {row['threads']}, db connections {row['db_connections']}, events {row['events']}, "
              f"requests {row['requests']}, errors {row['errors']}", file=sys.stderr, flush=True)
        if not run.running():
            return
        time.sleep(min(args.sample_secs, max(0.0, run.deadline - time.monotonic())) or 0.01)


# --- the verdict ---------------------------------------------------------------------------

def drift(rows):
    """What grew over the second half; [] when nothing did."""
    problems = []
    second = rows[len(rows) // 2:]
    if len(second) < 4:
        return ["too few samples for a verdict (run longer, or sample more often)"]
    mid = statistics.median(r["rss_kib"] for r in second[:3])
    end = statistics.median(r["rss_kib"] for r in second[-3:])
    if end > 1.2 * mid:
        problems.append(f"RSS grew {100 * (end / mid - 1):.0f} % over the second half ({mid // 1024} → {end // 1024} MiB)")
    quarter = len(second) // 2
    for metric in ("fds", "db_connections", "threads"):
        values = [r[metric] for r in second]
        if values[-1] > values[0] and all(b >= a for a, b in zip(values, values[1:])):
            problems.append(f"{metric} grew without ever going down over the second half ({values[0]} → {values[-1]})")
        elif min(values[quarter:]) > max(values[:quarter]):
            problems.append(f"{metric}: the last quarter's lowest ({min(values[quarter:])}) is above the third "
                            f"quarter's highest ({max(values[:quarter])})")
    return problems


def summary(args, rows, wall):
    out = []
    minutes = wall / 60
    out.append(f"## Soak: {minutes:.1f} minutes, samples every {args.sample_secs:g} s\n")
    out.append("| requests (or flows) | done | per second | p50 | p99 |\n|---|---|---|---|---|")
    with STATS.lock:
        for kind in sorted(STATS.done):
            lat = sorted(STATS.latency[kind])
            p50 = lat[len(lat) // 2] * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            out.append(f"| {kind} | {STATS.done[kind]:,} | {STATS.done[kind] / wall:.2f} | {p50:.1f} ms | {p99:.1f} ms |")
        total = sum(STATS.done.values())
        out.append(f"| **all** | **{total:,}** | {total / wall:.1f} | | |\n")
        if STATS.errors:
            out.append("| errors | count | example |\n|---|---|---|")
            for kind, count in STATS.errors.most_common():
                out.append(f"| {kind} | {count} | {STATS.examples[kind][0].replace('|', '/')} |")
        else:
            out.append("errors: none")
        for note, count in STATS.notes.most_common():
            out.append(f"- note: {note}: {count}")
    # The verdict and the table are about the samples taken under traffic; the last
    # samples, after the workers stopped, are shown apart.
    after, rows = [r for r in rows if r["phase"] == "after"], [r for r in rows if r["phase"] == "traffic"]
    out.append("")
    out.append(f"{len(rows)} samples under traffic:\n")
    out.append("| metric | first | at half-time | last | min | max | change over the second half |")
    out.append("|---|---|---|---|---|---|---|")
    half = rows[len(rows) // 2]
    for metric, unit, scale in (("rss_kib", "MiB", 1024), ("hwm_kib", "MiB", 1024), ("fds", "", 1),
                                ("threads", "", 1), ("db_connections", "", 1), ("upstream_rss_kib", "MiB", 1024),
                                ("live_sessions", "", 1), ("events", "", 1)):
        values = [r[metric] / scale for r in rows]
        fmt = (lambda v: f"{v:.1f} {unit}") if unit else (lambda v: f"{v:,.0f}")
        change = values[-1] - half[metric] / scale
        out.append(f"| {metric.removesuffix('_kib')} | {fmt(values[0])} | {fmt(half[metric] / scale)} | "
                   f"{fmt(values[-1])} | {fmt(min(values))} | {fmt(max(values))} | {change:+,.1f} |")
    if after:
        last = after[-1]
        out.append(f"\nAfter the traffic stopped: RSS {last['rss_kib'] / 1024:.1f} MiB, {last['fds']} open files, "
                   f"{last['threads']} threads, {last['db_connections']} database connections.")
    problems = drift(rows)
    with STATS.lock:
        failed_requests = sum(STATS.errors.values())
    if failed_requests:
        problems.append(f"{failed_requests} failed requests (5xx, transport errors or unexpected answers)")
    out.append("")
    out.append("**verdict: " + ("FAIL**: " + "; ".join(problems) if problems else "PASS** (no error, nothing grew)"))
    return "\n".join(out), not problems


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text) * 60  # a bare number is minutes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--password", required=True, help="the admin's password")
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("30m"), help="e.g. 30m, 90s, 2h")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--sample-secs", type=float, default=15)
    parser.add_argument("--passthrough-rate", type=float, default=40, help="pass-through calls per second")
    parser.add_argument("--passthrough-workers", type=int, default=2)
    parser.add_argument("--gated-workers", type=int, default=2)
    parser.add_argument("--login-interval", type=float, default=1.0, help="seconds between login steps")
    args = parser.parse_args()

    run = Run(args)
    run.tokens.agent()  # log in and mint once before the clock starts mattering
    started = time.monotonic()
    rows = []
    threads = [threading.Thread(target=run.passthrough, args=(w, args.passthrough_rate / args.passthrough_workers))
               for w in range(args.passthrough_workers)]
    threads += [threading.Thread(target=run.gated, args=(w,)) for w in range(args.gated_workers)]
    threads += [threading.Thread(target=run.logins), threading.Thread(target=run.reads),
                threading.Thread(target=run.console_stream, daemon=True)]
    for thread in threads:
        thread.start()
    with open(args.csv, "w") as csv_file:
        sampler(run, args, started, rows, csv_file)
        for thread in threads:
            if not thread.daemon:
                thread.join()
        rows.append(sample(args, started, "after"))  # after the last request
        csv_file.write(",".join(str(v) for v in rows[-1].values()) + "\n")
    text, passed = summary(args, rows, time.monotonic() - started)
    print(text)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
