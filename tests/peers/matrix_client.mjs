// The TypeScript MCP SDK (npm @modelcontextprotocol/sdk 1.32) as a driver of the client
// matrix (tests/api/client_matrix.rs), used as its documentation shows: `Client` over
// `StreamableHTTPClientTransport`, `listTools` then `callTool` (which validates a result's
// structuredContent against the tool's outputSchema).
//
// Usage: node matrix_client.mjs                 scenarios as JSON lines on stdin, concurrently
//        node matrix_client.mjs SCENARIO_JSON   one scenario, then exit
// The SDK is loaded from $MATRIX_NODE_MODULES (.peers/node/node_modules).
//
// A scenario: {"id", "url", "token", "tool", "arguments", "key"} (key: X-Idempotency-Key or
// null). Printed, one JSON line per scenario, in the order they finish:
//   {"id": ..., "client": "typescript-sdk", "returned": <CallToolResult>}
//   {"id": ..., "client": "typescript-sdk", "raised": {"class", "message", "code"}}

import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.MATRIX_NODE_MODULES;
if (!modules) {
  console.error("matrix_client.mjs: set MATRIX_NODE_MODULES to .peers/node/node_modules");
  process.exit(2);
}
const sdk = (file) => import(pathToFileURL(join(modules, "@modelcontextprotocol/sdk/dist/esm", file)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

async function call(scenario) {
  const headers = { Authorization: `Bearer ${scenario.token}` };
  if (scenario.key) headers["X-Idempotency-Key"] = scenario.key;
  const transport = new StreamableHTTPClientTransport(new URL(scenario.url), { requestInit: { headers } });
  const client = new Client({ name: "alexandria-client-matrix", version: "1.0.0" });
  await client.connect(transport);
  try {
    await client.listTools();
    return await client.callTool({ name: scenario.tool, arguments: scenario.arguments });
  } finally {
    await client.close();
  }
}

async function run(scenario) {
  const line = { id: scenario.id ?? null, client: "typescript-sdk" };
  try {
    line.returned = await call(scenario);
  } catch (error) {
    line.raised = {
      class: error?.constructor?.name ?? typeof error,
      message: String(error?.message ?? error),
      code: Number.isInteger(error?.code) ? error.code : null,
    };
  }
  process.stdout.write(JSON.stringify(line) + "\n");
}

if (process.argv.length > 2) {
  await run(JSON.parse(process.argv[2]));
} else {
  const running = [];
  for await (const text of createInterface({ input: process.stdin })) {
    if (text.trim()) running.push(run(JSON.parse(text)));
  }
  await Promise.all(running);
}
