-- Registered upstream MCP servers: the source of truth for the gateway's upstream
-- configuration. Every replica connects to every row; replicas pick up rows added or
-- removed by another replica by re-reading this table (see src/upstream/mod.rs).
-- The application validates configurations before writing them; the checks below keep
-- rows written by hand from being nonsensical.
CREATE TABLE mcp_servers
(
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    transport   text        NOT NULL CHECK (transport IN ('stdio', 'streamable_http')),
    -- stdio: the program, its arguments, extra environment and working directory.
    command     text,
    args        text[]      NOT NULL DEFAULT '{}',
    env         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    cwd         text,
    -- streamable_http: the endpoint and headers sent on every request. Header values
    -- (Authorization) and env values are secrets: never logged, never returned by the API.
    url         text,
    headers     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    -- Prepended to this server's tool names downstream, to tell apart two servers that
    -- offer a tool of the same name.
    tool_prefix text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (transport <> 'stdio' OR command IS NOT NULL),
    CHECK (transport <> 'streamable_http' OR url IS NOT NULL)
);
