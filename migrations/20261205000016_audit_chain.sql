-- The tamper-evident audit chain (docs/AUDIT.md).
--
-- A single-leader sealer reads the event log in projection order, behind the snapshot
-- horizon, and appends one seal per event: `hash = SHA-256(prev_hash || canonical export
-- line)`. Sealing never happens in an append's transaction, so it never blocks writers.
-- `seq` is the event's place in the chain (1, 2, 3, ...: no gaps, the chain's own order);
-- `position` the sealed event's global position.
CREATE TABLE event_seals
(
    seq       bigint PRIMARY KEY CHECK (seq >= 1),
    position  bigint      NOT NULL UNIQUE,
    prev_hash bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at timestamptz NOT NULL DEFAULT now()
);

-- The sealer's checkpoint: a row like a projection's, so `projections status` and the
-- projection lag metric show how far behind sealing is.
INSERT INTO projection_checkpoints (name) VALUES ('event_seals') ON CONFLICT (name) DO NOTHING;

-- The admin audit trail gets a chain of its own, sealed the same way. Its rows are
-- ordered like events: by the writing transaction, then by id, read only behind the
-- snapshot horizon (an id is taken before its transaction commits, so id order alone
-- is not the order in which rows become visible).
ALTER TABLE admin_audit ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX admin_audit_tx_id_id_idx ON admin_audit (tx_id, id);

CREATE TABLE admin_audit_seals
(
    seq       bigint PRIMARY KEY CHECK (seq >= 1),
    audit_id  bigint      NOT NULL UNIQUE,
    tx_id     xid8        NOT NULL,
    prev_hash bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at timestamptz NOT NULL DEFAULT now()
);

-- Signed checkpoints: the sealer signs `(chain, seq, position, hash, time)` with an
-- Ed25519 key kept outside the database every N seals or M seconds.
CREATE TABLE audit_checkpoints
(
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain      text        NOT NULL CHECK (chain IN ('events', 'admin_audit')),
    seq        bigint      NOT NULL CHECK (seq >= 1),
    position   bigint      NOT NULL,
    hash       bytea       NOT NULL CHECK (length(hash) = 32),
    signed_at  text        NOT NULL,
    public_key text        NOT NULL,
    signature  text        NOT NULL,
    UNIQUE (chain, seq)
);

-- Seals and checkpoints are evidence: append-only, like the log they seal.
CREATE FUNCTION audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the audit chain is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER event_seals_append_only BEFORE UPDATE OR DELETE ON event_seals
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER event_seals_no_truncate BEFORE TRUNCATE ON event_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER admin_audit_seals_append_only BEFORE UPDATE OR DELETE ON admin_audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER admin_audit_seals_no_truncate BEFORE TRUNCATE ON admin_audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The auditor: reads the event log, the admin audit trail and the checkpoints, nothing else.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('auditor', 'viewer', 'admin', 'super_admin'));
