// The TypeScript MCP SDK (npm @modelcontextprotocol/sdk 1.32) as a task-aware client, used
// as its documentation shows: `listTools` (which learns each tool's `execution.taskSupport`),
// then `client.experimental.tasks.callToolStream`, which creates a task for a tool that
// supports one, polls `tasks/get` and fetches `tasks/result`. Driven by
// tests/api/mcp_tasks_typescript.rs.
//
// Usage: node tasks_client.mjs JSON, with the SDK at $MATRIX_NODE_MODULES and JSON one of
//   {"op": "stream", "url", "token", "tool", "arguments", "cancel": bool}
//       every message of the stream; with cancel, `cancelTask` right after taskCreated
//   {"op": "create", "url", "token", "tool", "arguments"}    taskCreated, then exit
//   {"op": "resume", "url", "token", "taskId"}                getTask until it ends, then
//                                                             getTaskResult (a new client)
//   {"op": "progress", "url", "token", "tool", "arguments", "timeoutMs", "reset": bool}
//       a plain callTool with onprogress, a request timeout and resetTimeoutOnProgress
// Each message is printed as one JSON line as it happens:
//   {"type": "taskCreated"|"taskStatus", "task"}   {"type": "result", "result"}
//   {"type": "error", "error": {"class", "message", "code"}}   {"type": "cancelled", "task"}
//   {"type": "progress", "progress"}

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.MATRIX_NODE_MODULES;
if (!modules) {
  console.error("tasks_client.mjs: set MATRIX_NODE_MODULES to .peers/node/node_modules");
  process.exit(2);
}
const sdk = (file) => import(pathToFileURL(join(modules, "@modelcontextprotocol/sdk/dist/esm", file)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { CallToolResultSchema } = await sdk("types.js");

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const failure = (error) => ({
  class: error?.constructor?.name ?? typeof error,
  message: String(error?.message ?? error),
  code: Number.isInteger(error?.code) ? error.code : null,
});

async function connect(scenario) {
  const headers = { Authorization: `Bearer ${scenario.token}` };
  const transport = new StreamableHTTPClientTransport(new URL(scenario.url), { requestInit: { headers } });
  const client = new Client({ name: "alexandria-tasks-client", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function stream(client, scenario, stopAfterCreated) {
  await client.listTools();
  const messages = client.experimental.tasks.callToolStream({ name: scenario.tool, arguments: scenario.arguments });
  for await (const message of messages) {
    if (message.type === "error") {
      print({ type: "error", error: failure(message.error) });
    } else {
      print(message);
    }
    if (message.type === "taskCreated" && stopAfterCreated) return;
    if (message.type === "taskCreated" && scenario.cancel) {
      print({ type: "cancelled", task: await client.experimental.tasks.cancelTask(message.task.taskId) });
    }
  }
}

async function progress(client, scenario) {
  await client.listTools();
  const result = await client.callTool({ name: scenario.tool, arguments: scenario.arguments }, undefined, {
    onprogress: (progress) => print({ type: "progress", progress }),
    timeout: scenario.timeoutMs,
    resetTimeoutOnProgress: scenario.reset,
  });
  print({ type: "result", result });
}

async function resume(client, scenario) {
  for (;;) {
    const task = await client.experimental.tasks.getTask(scenario.taskId);
    print({ type: "taskStatus", task });
    if (["completed", "failed", "cancelled"].includes(task.status)) break;
    await new Promise((resolve) => setTimeout(resolve, task.pollInterval ?? 1000));
  }
  try {
    print({ type: "result", result: await client.experimental.tasks.getTaskResult(scenario.taskId, CallToolResultSchema) });
  } catch (error) {
    print({ type: "error", error: failure(error) });
  }
}

const scenario = JSON.parse(process.argv[2]);
const client = await connect(scenario);
try {
  if (scenario.op === "resume") await resume(client, scenario);
  else if (scenario.op === "progress") await progress(client, scenario);
  else await stream(client, scenario, scenario.op === "create");
} catch (error) {
  print({ type: "error", error: failure(error) });
} finally {
  await client.close();
}
