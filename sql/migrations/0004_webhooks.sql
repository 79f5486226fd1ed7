-- Outbound webhooks. An event row is written in the same transaction as the change that causes it
-- (an import job ending); the `webhooks.deliver` actor POSTs it, signed per Standard Webhooks, and
-- records every attempt. The row id is the `webhook-id` header, identical on every retry.
CREATE TABLE webhook_events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- What the event is about: the import job. The foreign key (ON DELETE CASCADE) is added by the
    -- migration that creates import_jobs.
    subject_id       uuid NOT NULL,
    user_id          uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url              text NOT NULL,
    type             text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    -- The body: {type, timestamp, data}. Every attempt sends the same bytes (serialised with sorted
    -- keys); the webhook-timestamp header is the time of each attempt.
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- pending: the earliest moment the next attempt may start (an early duplicate message is refused).
    not_before       timestamptz NOT NULL DEFAULT now(),
    -- pending: when the relay re-enqueues it if no worker has taken it by then;
    -- delivering: when the claim of the worker delivering it lapses.
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    -- One event of each type per subject: queueing it twice (a retried job) is a no-op.
    UNIQUE (subject_id, type)
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_events_user ON webhook_events (user_id);

CREATE TABLE webhook_attempts (
    event_id     uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    -- NULL when no HTTP answer came back (network error, timeout, refused address).
    status_code  integer,
    error        text,
    -- NULL only for an attempt whose worker stopped before recording it.
    duration_ms  integer,
    -- What the attempt led to: delivered, retrying (another attempt follows) or failed (final).
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, attempt)
);
