-- The event store. Column names and the primary key are those postgres-es expects; it
-- names its seven columns on insert, so the defaulted columns below are filled by
-- PostgreSQL itself.
CREATE TABLE events
(
    aggregate_type  text                          NOT NULL,
    aggregate_id    text                          NOT NULL,
    sequence        bigint CHECK (sequence >= 0)  NOT NULL,
    event_type      text                          NOT NULL,
    event_version   text                          NOT NULL,
    payload         json                          NOT NULL,
    metadata        json                          NOT NULL,
    -- Total order of appends, for exports and for humans.
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    recorded_at     timestamptz                   NOT NULL DEFAULT now(),
    -- The appending transaction: projections read in (tx_id, global_position) order and
    -- only below the oldest running transaction, so a slow writer's event is never skipped.
    tx_id           xid8                          NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position_idx ON events (global_position);
CREATE INDEX events_tx_id_global_position_idx ON events (tx_id, global_position);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Events are facts: the log is append-only.
CREATE FUNCTION events_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP;
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- A wake-up hint for projectors and in-band waiters; delivered at commit. The payload is
-- the aggregate id so a waiter for one request can ignore everything else. Listeners
-- must still poll: a notification is a hint, never the only path.
CREATE FUNCTION events_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('alexandria_events', NEW.aggregate_type || '/' || NEW.aggregate_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_notify();

-- One row per projection: how far it has applied the log. Written in the same transaction
-- as the projection's own rows, so every event takes effect exactly once.
CREATE TABLE projection_checkpoints
(
    name          text PRIMARY KEY,
    last_tx_id    xid8        NOT NULL DEFAULT '0',
    last_position bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    last_error_at timestamptz
);
