"""A real MCP client (PyPI `mcp` 2.x) driving Alexandria's /mcp/agents/{name} endpoint.

Usage: python_client.py URL TOKEN MODE [SCENARIO]

SCENARIO "files" (the default) lists the tools, calls `echo` and then the gated
`write_file`; "typed" calls the gated `add` of the Python test server, a tool with an
`outputSchema`, so the SDK validates every result it gets against that schema.

Prints one JSON object per line on stdout, for the Rust test to check:
  {"step": "session", "protocol_version": <negotiated>, "server": <serverInfo.name>}
  {"step": "tools", "tools": [...names...], "approval": {name: bool}}
  {"step": "plain", "result": <CallToolResult as JSON>}      ("files" only)
  {"step": "pending", "result": <CallToolResult as JSON>}
then waits for a line on stdin (the test approves the request meanwhile) and prints
  {"step": "final", "result": <CallToolResult as JSON>}
MODE is "auto" (server/discover, 2026-07-28) or "legacy" (initialize handshake).
"""

import asyncio
import json
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client


def emit(obj):
    print(json.dumps(obj), flush=True)


def dump(result):
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def main(url: str, token: str, mode: str, scenario: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "X-Idempotency-Key": "python-client-key-1"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
            info = client.server_info
            emit({"step": "session", "protocol_version": client.protocol_version, "server": info.name if info else None})
            tools = await client.list_tools()
            emit({
                "step": "tools",
                "tools": sorted(t.name for t in tools.tools),
                "approval": {t.name: (t.meta or {}).get("alexandria/approval_required") for t in tools.tools},
            })
            if scenario == "typed":
                tool, args = "add", {"a": 40, "b": 2}
            else:
                emit({"step": "plain", "result": dump(await client.call_tool("echo", {"message": "hi from python"}))})
                tool, args = "write_file", {"path": "/py/hello.txt", "content": "written via the python client"}
            emit({"step": "pending", "result": dump(await client.call_tool(tool, args))})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            emit({"step": "final", "result": dump(await client.call_tool(tool, args))})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "files"))
