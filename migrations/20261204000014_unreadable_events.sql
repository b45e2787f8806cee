-- The position of the event a projection is stuck on because it cannot read it (a row
-- written around the application), so `projections status` can name it; cleared by the
-- projection's next successful batch. Such an event is read past only once an operator
-- records an `EventSkipped` event for it (`alexandria events skip`): the log itself is
-- never changed.
ALTER TABLE projection_checkpoints ADD COLUMN unreadable_position bigint;
