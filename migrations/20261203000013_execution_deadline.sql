-- An approved request's execution deadline: the call must be claimed before it, or the
-- notification reconciler expires the request (the agent never came back for it).
-- NULL for approvals recorded before deadlines existed, and for every other status.
ALTER TABLE permission_requests ADD COLUMN execute_by timestamptz;
CREATE INDEX permission_requests_execute_by_idx ON permission_requests (execute_by) WHERE status = 'approved';
