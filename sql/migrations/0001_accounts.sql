-- Accounts, their refresh-token families and password-reset tokens.
-- Emails are stored normalised (trimmed, lower-cased), so a plain unique constraint is case-insensitive.
CREATE TABLE accounts (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                      text NOT NULL UNIQUE CHECK (email = lower(btrim(email))),
    password_hash              text NOT NULL,
    is_active                  boolean NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    activated_at               timestamptz,
    -- The current activation code: an HMAC of it, its expiry and the wrong guesses made against it.
    activation_code_hash       bytea,
    activation_code_expires_at timestamptz,
    activation_failures        integer NOT NULL DEFAULT 0
);

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Every token rotated from one login shares a family; reuse of a rotated token revokes it whole.
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

CREATE TABLE password_reset_tokens (
    token_hash  bytea PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX password_reset_tokens_account ON password_reset_tokens (account_id);
