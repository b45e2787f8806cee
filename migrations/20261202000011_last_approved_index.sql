-- The inbox's "what changed since the last approved call" reads, per agent+tool, the
-- newest decision without a reason (an approval). Through the index of all decisions,
-- an agent+tool with many rejections and no approval is a scan of every one of them
-- (measured: 0.8 s for a page of 200 pending over 1,000,000 requests); through this one
-- it is one index entry (3 ms).
CREATE INDEX permission_requests_last_approved_idx
    ON permission_requests (agent, tool, reviewed_at DESC)
    WHERE reviewed_at IS NOT NULL AND reason IS NULL;
