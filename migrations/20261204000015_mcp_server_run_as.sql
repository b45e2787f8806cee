-- stdio: the account the child process runs as (a user name of the gateway's host), so
-- that it cannot open the gateway's files. NULL: the gateway's own user.
ALTER TABLE mcp_servers ADD COLUMN run_as text
    CHECK (run_as IS NULL OR (transport = 'stdio' AND run_as ~ '^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$'));
