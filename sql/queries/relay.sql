-- The relay's own statement; the work it re-drives is found by each domain's `due-*` query.

-- name: try-sweep-lock
-- Returns true when this transaction now holds the relay's lock (released when it ends), false while
-- another process's sweep holds it: one sweep at a time across every worker process.
SELECT pg_try_advisory_xact_lock(:key);
