-- Notifications: where to send them (settings) and what is still to be sent (the outbox).

-- One row, changed by `PATCH /admin/notifications/config`. The webhook secret is stored
-- as given: it signs every delivery, so it cannot be hashed. The API never returns it.
CREATE TABLE notification_settings
(
    singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    webhook_url           text,
    webhook_secret        text,
    alertmanager_url      text,
    alertmanager_severity text        NOT NULL DEFAULT 'warning'
        CHECK (alertmanager_severity IN ('critical', 'warning', 'info')),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- `user:<name>` of the last change; NULL until the first one.
    updated_by            text,
    -- A webhook is always signed: a receiver must be able to tell our deliveries from
    -- anybody else's POST.
    CHECK (webhook_url IS NULL OR webhook_secret IS NOT NULL)
);

INSERT INTO notification_settings DEFAULT VALUES;

-- The notification outbox: one row per (request, channel, notice kind). Rows are created
-- by the `notification_outbox` projection from the event log (so nothing is lost across
-- restarts and replicas); the delivery columns are written by the reconciler that sends
-- them. Unlike a read model this table is NOT disposable: its delivery state is what
-- keeps a notice from being sent twice, so it is never rebuilt from the log.
CREATE TABLE notification_outbox
(
    request_id           uuid        NOT NULL,
    channel              text        NOT NULL CHECK (channel IN ('webhook', 'alertmanager')),
    -- `pending`: a request needs a decision (an Alertmanager alert fires);
    -- `reviewed`: it was approved, rejected or expired (the alert resolves).
    kind                 text        NOT NULL CHECK (kind IN ('pending', 'reviewed')),
    -- What the notice says: the request as of the event that caused it.
    notice               jsonb       NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- When the reconciler should send next; NULL when nothing is left to send. While a
    -- send is in flight it holds a lease (a time in the future), so a crashed sender's
    -- row is picked up again once the lease runs out.
    next_attempt_at      timestamptz,
    -- Sends of this notice until it was first delivered (failures included).
    attempts             integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Failures since the last success: the exponent of the retry backoff.
    consecutive_failures integer     NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_attempt_at      timestamptz,
    last_error           text,
    delivered_at         timestamptz,
    -- Alertmanager forgets a firing alert it does not hear about again: the last
    -- successful re-send of a still-pending request's alert.
    refreshed_at         timestamptz,
    -- `pending` rows: the request was decided, so its pending notice is neither retried
    -- nor re-sent any more.
    superseded_at        timestamptz,
    PRIMARY KEY (request_id, channel, kind)
);

-- The reconciler's question: which rows of this channel are due?
CREATE INDEX notification_outbox_channel_next_attempt_at_idx
    ON notification_outbox (channel, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
