-- Liveness of each single-leader worker's leader. The leader's own lock session writes
-- its beat every few seconds; a stand-by that finds the holder of a lock silent for too
-- long (a stopped or frozen process, whose TCP connection the kernel keeps alive) ends
-- that session, which releases the advisory lock, and takes over.
CREATE TABLE leader_heartbeats
(
    key     text PRIMARY KEY,
    pid     integer     NOT NULL,
    beat_at timestamptz NOT NULL
);
