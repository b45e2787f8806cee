-- Read model of permission requests: disposable, rebuilt from the event log by
-- `alexandria projections rebuild permission_requests`. Index names follow
-- PostgreSQL's own `<table>_<columns>_idx` pattern: a rebuild renames the shadow table's
-- indexes back to these names by swapping the table-name prefix.
CREATE TABLE permission_requests
(
    id               uuid PRIMARY KEY,
    request_type     text        NOT NULL,
    agent            text        NOT NULL,
    tool             text        NOT NULL,
    arguments        jsonb       NOT NULL,
    arguments_digest text        NOT NULL,
    idempotency_key  text        NOT NULL,
    requested_by     text        NOT NULL,
    status           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    reviewed_by      text,
    reviewed_at      timestamptz,
    reason           text,
    expired_at       timestamptz,
    executed_by      text,
    executed_at      timestamptz,
    result_cached_at timestamptz,
    last_position    bigint      NOT NULL
);

CREATE INDEX permission_requests_created_at_id_idx ON permission_requests (created_at DESC, id DESC);
CREATE INDEX permission_requests_status_created_at_id_idx ON permission_requests (status, created_at DESC, id DESC);
CREATE INDEX permission_requests_agent_created_at_id_idx ON permission_requests (agent, created_at DESC, id DESC);
CREATE INDEX permission_requests_tool_created_at_id_idx ON permission_requests (tool, created_at DESC, id DESC);
-- The expiry sweep looks for pending requests past their deadline.
CREATE INDEX permission_requests_expires_at_idx ON permission_requests (expires_at) WHERE status = 'pending';
