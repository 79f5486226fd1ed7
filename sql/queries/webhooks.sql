-- name: queue-webhook-event
-- Records an event to deliver, or finds the one already recorded for this subject and type. Returns its id.
-- The relay re-enqueues it if no worker has taken it after :grace seconds.
WITH inserted AS (
    INSERT INTO webhook_events (subject_id, user_id, url, type, payload, request_id, next_attempt_at)
    VALUES (:subject_id, :user_id, :url, :type, :payload, :request_id, now() + make_interval(secs => :grace))
    ON CONFLICT (subject_id, type) DO NOTHING
    RETURNING id
)
SELECT id FROM inserted
UNION ALL
SELECT id FROM webhook_events WHERE subject_id = :subject_id AND type = :type
LIMIT 1;

-- name: claim-webhook-event
-- Takes an event for one attempt, if it is pending, due (allowing :slack seconds of clock skew), has
-- attempts left and no other worker holds it. Returns the row with `attempts` = this attempt's number.
UPDATE webhook_events
SET status = 'delivering', attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
WHERE id = :id
  AND status = 'pending'
  AND not_before <= now() + make_interval(secs => :slack)
  AND attempts < :max_attempts
RETURNING id, url, type, payload, attempts, request_id;

-- name: record-webhook-attempt
-- Stores one attempt (replacing the relay's placeholder for it, if a lapsed claim left one) and moves the
-- event to :status: delivered, failed, or pending again with the next attempt due in :retry_in seconds.
-- The event changes only while this attempt is still its latest. Returns the event id if it changed.
WITH attempt AS (
    INSERT INTO webhook_attempts (event_id, attempt, status_code, error, duration_ms, outcome, created_at)
    VALUES (:id, :attempt, :status_code, :error, :duration_ms, :outcome,
            now() - :duration_ms::integer * interval '1 millisecond')
    ON CONFLICT (event_id, attempt) DO UPDATE
    SET status_code = EXCLUDED.status_code, error = EXCLUDED.error, duration_ms = EXCLUDED.duration_ms,
        outcome = EXCLUDED.outcome, created_at = EXCLUDED.created_at
)
UPDATE webhook_events
SET status = :status,
    last_error = :error,
    delivered_at = CASE WHEN :status = 'delivered' THEN now() END,
    not_before = now() + make_interval(secs => :retry_in),
    next_attempt_at = now() + make_interval(secs => :retry_in::float8 + :grace::float8)
WHERE id = :id AND attempts = :attempt AND status IN ('pending', 'delivering')
RETURNING id;

-- name: due-webhook-events
-- Events no worker has taken in time (lost broker message, killed worker): pushes their deadline forward
-- and returns them, for the relay to enqueue again. A lapsed claim means a worker stopped mid-attempt:
-- that attempt is recorded without an outcome, and if it was the last one the event is failed.
WITH due AS (
    SELECT id, status, attempts FROM webhook_events
    WHERE status IN ('pending', 'delivering') AND next_attempt_at < now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
lost AS (
    INSERT INTO webhook_attempts (event_id, attempt, error, outcome)
    SELECT id, attempts, :lost_error, CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'retrying' END
    FROM due
    WHERE status = 'delivering'
    ON CONFLICT (event_id, attempt) DO NOTHING
)
UPDATE webhook_events e
SET status = CASE WHEN due.status = 'delivering' AND due.attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    last_error = CASE WHEN due.status = 'delivering' THEN :lost_error ELSE e.last_error END,
    not_before = least(e.not_before, now()),
    next_attempt_at = now() + make_interval(secs => :grace)
FROM due
WHERE e.id = due.id
RETURNING e.id, e.status;

-- name: list-webhook-attempts
-- Every delivery attempt of the events about one subject owned by one user, oldest first.
SELECT a.attempt, a.status_code, a.error, a.duration_ms, a.created_at
FROM webhook_attempts a
JOIN webhook_events e ON e.id = a.event_id
WHERE e.subject_id = :subject_id AND e.user_id = :user_id
ORDER BY e.created_at, a.attempt;
