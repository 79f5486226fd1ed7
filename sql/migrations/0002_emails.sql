-- The email outbox. A row is written in the same transaction as the change that causes it; a worker
-- renders and sends it. Secrets (codes, reset tokens) are minted by the worker at send time and never
-- stored in clear, so a row holds only what to send and to whom.
CREATE TABLE emails (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id       uuid REFERENCES accounts (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('activation', 'welcome', 'password_reset')),
    to_address       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- pending: when the relay should re-enqueue it if no worker has sent it by then;
    -- sending: when the claim of the worker sending it lapses.
    next_attempt_at  timestamptz NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status IN ('pending', 'sending');
