"""A real MCP server over Streamable HTTP, built with the Python `mcp` SDK (2.x), used as
an upstream by the gateway's integration tests.

Usage: python_http_server.py [PORT]   (PORT from argv, else $PORT, else 0)
Port 0 binds a free port. Once listening, the server prints one line `LISTENING <port>`
on stdout, so a test can wait for that instead of guessing when the server is up.

Environment:
  PEER_REQUIRED_AUTHORIZATION  when set, every HTTP request must carry exactly this
                               `Authorization` header value, else 401 (tests prove that
                               configured upstream headers are sent on every request).

Tools: add, shout, fail (an isError result), reject (a JSON-RPC error), sleep (for
timeouts), grow (adds a tool, then sends notifications/tools/list_changed), nest (a result
nested DEPTH objects deep).
"""

import os
import socket
import sys

from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations

HOST = "127.0.0.1"  # the SDK's Host check allows 127.0.0.1:* when bound here

# WARNING keeps the SDK's per-session INFO lines out of the test output.
server = MCPServer("alexandria-test-python-http", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
def shout(text: str) -> str:
    """Return the text in upper case."""
    return text.upper()


@server.tool()
def fail(message: str) -> str:
    """Always fails: the failure is a tool result with isError true."""
    raise ToolError(f"failed on purpose: {message}")


@server.tool()
def reject(code: int, message: str) -> str:
    """Answers with a JSON-RPC error carrying this code and message (and data)."""
    raise MCPError(code, message, {"rejected_by": "python_http_server"})


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer: for testing the gateway's per-call timeout."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def nest(depth: int) -> dict[str, Any]:
    """A structured result nested `depth` objects deep."""
    value: dict = {}
    for _ in range(depth):
        value = {"n": value}
    return value


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called NAME, then tell the client its tool list changed."""

    def grown() -> str:
        return f"I am {name}"

    server.add_tool(grown, name=name, description="Added at run time by grow.")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


def require_authorization(app, expected):
    """ASGI wrapper refusing any HTTP request whose Authorization header is not `expected`."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode("latin-1") != expected:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"missing or wrong Authorization"})
                return
        await app(scope, receive, send)

    return wrapped


def main() -> None:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "0"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    port = sock.getsockname()[1]

    app = server.streamable_http_app(host=HOST)
    expected = os.environ.get("PEER_REQUIRED_AUTHORIZATION")
    if expected:
        app = require_authorization(app, expected)

    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"LISTENING {port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
