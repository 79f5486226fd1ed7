-- Responses remembered under the Idempotency-Key of a request, per user, for a limited time.

-- name: claim-key
-- Records the key for this request, or takes over one that has expired; returns true when this
-- request now owns the key, nothing when a live one exists. Waits on the primary key while another
-- transaction holds an uncommitted claim of the same key.
INSERT INTO idempotency_keys (user_id, key, fingerprint)
VALUES (:user_id, :key, :fingerprint)
ON CONFLICT (user_id, key) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = '{}', body = NULL, created_at = now()
WHERE idempotency_keys.created_at <= now() - make_interval(secs => :ttl)
RETURNING true;

-- name: stored-response
-- Returns what is stored under a key: the request's fingerprint and its response (status NULL while
-- the first request is still running).
SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE user_id = :user_id AND key = :key;

-- name: store-response
-- Stores the response of the request that owns the key.
UPDATE idempotency_keys SET status = :status, headers = :headers, body = :body
WHERE user_id = :user_id AND key = :key;

-- name: purge-expired-keys
-- Deletes keys older than :ttl seconds; returns how many.
WITH gone AS (
    DELETE FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => :ttl) RETURNING 1
)
SELECT count(*) FROM gone;
