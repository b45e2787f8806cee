"""Two stock Python MCP clients as drivers of the client matrix (tests/api/client_matrix.rs):
the official SDK (PyPI `mcp` 2.x, `Client` + `streamable_http_client`) and FastMCP's
client (PyPI `fastmcp` 4.x, `Client` + `StreamableHttpTransport`), each used as its
documentation shows, with no option that changes what it validates or raises.

Usage: matrix_client.py                 scenarios as JSON lines on stdin, run concurrently
       matrix_client.py SCENARIO_JSON   one scenario, then exit

A scenario: {"id": <any>, "client": "python-sdk" | "fastmcp", "url": <MCP endpoint>,
"token": <bearer token>, "tool": <name>, "arguments": {...}, "key": <X-Idempotency-Key>
or null}. The client opens a session, lists the tools (as an agent does, and so the
client knows each tool's outputSchema), calls the tool once and closes. Printed, one JSON
line per scenario, in the order they finish:
  {"id": ..., "client": ..., "returned": <the CallToolResult as MCP JSON>}
  {"id": ..., "client": ..., "raised": {"class": <module.Class>, "message": <str(e)>,
                                        "code": <the MCP error code, or null>}}
"""

import asyncio
import json
import sys

import httpx2


def emit(line):
    print(json.dumps(line), flush=True)


def headers_of(scenario):
    headers = {"Authorization": f"Bearer {scenario['token']}"}
    if scenario.get("key"):
        headers["X-Idempotency-Key"] = scenario["key"]
    return headers


# Each client's call is caught where the caller makes it, inside the session: leaving the
# session's `async with` wraps an exception in an anyio ExceptionGroup.


async def python_sdk(scenario):
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers=headers_of(scenario), timeout=60) as http:
        async with Client(streamable_http_client(scenario["url"], http_client=http)) as client:
            await client.list_tools()
            try:
                result = await client.call_tool(scenario["tool"], scenario["arguments"])
            except Exception as error:  # noqa: BLE001 -- what the call raised is the point
                return {"raised": described(error)}
            return {"returned": result.model_dump(by_alias=True, mode="json", exclude_none=True)}


async def fastmcp(scenario):
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    async with Client(StreamableHttpTransport(scenario["url"], headers=headers_of(scenario))) as client:
        await client.list_tools()
        try:
            result = await client.call_tool(scenario["tool"], scenario["arguments"])
        except Exception as error:  # noqa: BLE001 -- what the call raised is the point
            return {"raised": described(error)}
        # FastMCP's own CallToolResult, told in MCP's words (`data` is FastMCP's parsed
        # structuredContent).
        answer = {
            "content": [block.model_dump(by_alias=True, mode="json", exclude_none=True) for block in result.content],
            "isError": result.is_error,
            "data": result.data if isinstance(result.data, (dict, list, str, int, float, bool)) else None,
        }
        if result.structured_content is not None:
            answer["structuredContent"] = result.structured_content
        if result.meta is not None:
            answer["_meta"] = result.meta
        return {"returned": answer}


CLIENTS = {"python-sdk": python_sdk, "fastmcp": fastmcp}


def described(error: BaseException):
    """What was raised: class, message and MCP error code (an anyio group names its members)."""
    message = str(error)
    if isinstance(error, BaseExceptionGroup):
        message += " [" + "; ".join(f"{type(e).__module__}.{type(e).__name__}: {e}" for e in error.exceptions) + "]"
    code = getattr(error, "code", None)
    return {
        "class": f"{type(error).__module__}.{type(error).__name__}",
        "message": message,
        "code": code if isinstance(code, int) else None,
    }


async def run(scenario):
    line = {"id": scenario.get("id"), "client": scenario["client"]}
    try:
        line.update(await CLIENTS[scenario["client"]](scenario))
    except Exception as error:  # noqa: BLE001 -- a failure to connect or list, reported as such
        line["raised"] = described(error)
    emit(line)


async def serve_stdin():
    loop = asyncio.get_running_loop()
    running = set()
    while True:
        text = await loop.run_in_executor(None, sys.stdin.readline)
        if not text:
            break
        if text.strip():
            task = asyncio.create_task(run(json.loads(text)))
            running.add(task)
            task.add_done_callback(running.discard)
    await asyncio.gather(*running)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(run(json.loads(sys.argv[1])))
    else:
        asyncio.run(serve_stdin())
