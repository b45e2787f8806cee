-- What the console's inbox and history read (names follow the `<table>_<columns>_idx`
-- pattern a rebuild relies on, see 20261125000002).

-- The inbox recalls, for each agent and tool on the page, the latest decisions and the
-- arguments last approved: newest decided first within the pair.
CREATE INDEX permission_requests_agent_tool_reviewed_at_idx
    ON permission_requests (agent, tool, reviewed_at DESC) WHERE reviewed_at IS NOT NULL;

-- History filtered by agent or tool and by status, newest first, with the cursor's
-- (created_at, id) order: one index range, however many other requests there are.
CREATE INDEX permission_requests_agent_status_created_at_id_idx
    ON permission_requests (agent, status, created_at DESC, id DESC);
CREATE INDEX permission_requests_tool_status_created_at_id_idx
    ON permission_requests (tool, status, created_at DESC, id DESC);
