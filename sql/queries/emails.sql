-- name: queue-email
-- Records an email to send; the relay re-enqueues it if no worker has sent it after :grace seconds.
INSERT INTO emails (account_id, kind, to_address, request_id, next_attempt_at)
VALUES (:account_id, :kind, :to_address, :request_id, now() + make_interval(secs => :grace))
RETURNING id, status;

-- name: claim-email
-- Takes an email for sending, unless it is done, another worker's claim is still live, or it is pending a
-- retry that is not due yet (a pending row's next_attempt_at is its due time plus :grace; :slack allows
-- for clock skew). Returns the row.
UPDATE emails
SET status = 'sending', attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
WHERE id = :id
  AND ((status = 'pending' AND next_attempt_at <= now() + make_interval(secs => :grace::float8 + :slack::float8))
       OR (status = 'sending' AND next_attempt_at < now()))
RETURNING id, account_id, kind, to_address, attempts, request_id;

-- name: mark-email-sent
-- Records a delivered email.
UPDATE emails SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = :id;

-- name: mark-email-skipped
-- Records an email that no longer needs sending (its account is gone or already active).
UPDATE emails SET status = 'skipped', last_error = :reason WHERE id = :id;

-- name: mark-email-retry
-- Records a failed attempt that will be retried in :retry_in seconds; the relay steps in :grace seconds
-- after that if the retry's message is lost.
UPDATE emails
SET status = 'pending', last_error = :error,
    next_attempt_at = now() + make_interval(secs => :retry_in::float8 + :grace::float8)
WHERE id = :id;

-- name: mark-email-failed
-- Records an email given up on after its last attempt.
UPDATE emails SET status = 'failed', last_error = :error WHERE id = :id;

-- name: due-emails
-- Emails no worker has taken in time (lost broker message, killed worker): pushes their deadline
-- forward and returns them (id, status), for the relay to enqueue again.
UPDATE emails SET status = 'pending', next_attempt_at = now() + make_interval(secs => :grace)
WHERE id IN (
    SELECT id FROM emails
    WHERE status IN ('pending', 'sending') AND next_attempt_at < now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id, status;
