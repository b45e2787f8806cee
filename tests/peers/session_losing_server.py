"""An MCP server over Streamable HTTP that loses its session on cue: it runs the first
`tools/call` it gets (appending a line to $CALL_LOG), then answers it 404, as a server
does when a session ends mid-request. rmcp's client, with `reinit_on_expired_session` on,
re-initializes and sends the same call again: the tool would run twice. No real server
fails this way on demand, so this one is hand-written (standard library only).

Usage: session_losing_server.py   prints `LISTENING <port>` once it accepts connections.
"""

import itertools
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALL_LOG = os.environ["CALL_LOG"]
sessions = itertools.count(1)
calls = itertools.count(1)

TOOL = {"name": "once", "description": "Counts its calls.", "inputSchema": {"type": "object"}}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(200)

    def do_POST(self):
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            return self.reply(202)
        result = lambda value: {"jsonrpc": "2.0", "id": request_id, "result": value}
        if method == "initialize":
            version = message["params"]["protocolVersion"]
            body = result({"protocolVersion": version, "capabilities": {"tools": {}},
                           "serverInfo": {"name": "session-losing", "version": "1"}})
            return self.reply(200, body, [("Mcp-Session-Id", f"s-{next(sessions)}")])
        if method == "tools/list":
            return self.reply(200, result({"tools": [TOOL]}))
        if method == "tools/call":
            with open(CALL_LOG, "a") as log:
                log.write("once\n")
            if next(calls) == 1:
                return self.reply(404, {"jsonrpc": "2.0", "id": request_id,
                                        "error": {"code": -32001, "message": "session not found"}})
            return self.reply(200, result({"content": [{"type": "text", "text": "ran"}], "isError": False}))
        return self.reply(200, result({}))


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"LISTENING {server.server_address[1]}", flush=True)
server.serve_forever()
