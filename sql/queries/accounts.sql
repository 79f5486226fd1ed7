-- name: create-account
-- Inserts an inactive account; returns its public columns, or nothing when the email is taken.
INSERT INTO accounts (email, password_hash)
VALUES (:email, :password_hash)
ON CONFLICT (email) DO NOTHING
RETURNING id, email, is_active, created_at;

-- name: account-exists
-- Returns true when an account uses this (normalised) email.
SELECT EXISTS (SELECT 1 FROM accounts WHERE email = :email);

-- name: account-by-email
-- Returns the account with its password hash, for authentication.
SELECT id, email, password_hash, is_active, created_at FROM accounts WHERE email = :email;

-- name: account-by-id
-- Returns the public columns of one account.
SELECT id, email, is_active, created_at FROM accounts WHERE id = :id;

-- name: lock-activation
-- Returns the activation state of an account, locked for the rest of the transaction.
SELECT id, is_active, activation_code_hash, activation_code_expires_at <= now() AS code_expired
FROM accounts WHERE id = :id FOR UPDATE;

-- name: record-wrong-code
-- Counts a wrong guess; the code is voided on the guess that reaches :max_failures. Returns guesses left.
UPDATE accounts
SET activation_failures = activation_failures + 1,
    activation_code_hash = CASE WHEN activation_failures + 1 >= :max_failures THEN NULL ELSE activation_code_hash END
WHERE id = :id
RETURNING greatest(:max_failures - activation_failures, 0) AS remaining;

-- name: activate-account
-- Marks the account active and clears its code; returns the public columns.
UPDATE accounts
SET is_active = true, activated_at = now(),
    activation_code_hash = NULL, activation_code_expires_at = NULL, activation_failures = 0
WHERE id = :id
RETURNING id, email, is_active, created_at;

-- name: void-activation-code
-- Kills the current code (a fresh one is on its way).
UPDATE accounts
SET activation_code_hash = NULL, activation_code_expires_at = NULL, activation_failures = 0
WHERE id = :id;

-- name: set-activation-code
-- Stores the digest of a freshly minted code, unless the account is already active. Returns the id when stored.
UPDATE accounts
SET activation_code_hash = :code_hash,
    activation_code_expires_at = now() + make_interval(secs => :ttl),
    activation_failures = 0
WHERE id = :id AND NOT is_active
RETURNING id;

-- name: set-password
-- Replaces the password hash of an account.
UPDATE accounts SET password_hash = :password_hash WHERE id = :id;

-- name: delete-account
-- Deletes an account and, by cascade, everything it owns. Returns the id when it existed.
DELETE FROM accounts WHERE id = :id RETURNING id;

-- name: insert-refresh-token
-- Stores the digest of a new refresh token in a family.
INSERT INTO refresh_tokens (account_id, family_id, token_hash, expires_at)
VALUES (:account_id, :family_id, :token_hash, now() + make_interval(secs => :ttl));

-- name: lock-refresh-token
-- Returns a refresh token by digest, locked, with whether it is still usable.
SELECT id, account_id, family_id, rotated_at, revoked_at, expires_at <= now() AS expired
FROM refresh_tokens WHERE token_hash = :token_hash FOR UPDATE;

-- name: mark-refresh-rotated
-- Marks a token as used up by rotation.
UPDATE refresh_tokens SET rotated_at = now() WHERE id = :id;

-- name: revoke-family
-- Revokes every live token of a family.
UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = :family_id AND revoked_at IS NULL;

-- name: revoke-account-tokens
-- Revokes every live refresh token of an account.
UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = :account_id AND revoked_at IS NULL;

-- name: insert-reset-token
-- Stores the digest of a freshly minted password-reset token.
INSERT INTO password_reset_tokens (token_hash, account_id, expires_at)
VALUES (:token_hash, :account_id, now() + make_interval(secs => :ttl));

-- name: lock-reset-token
-- Returns a reset token by digest, locked, with whether it is still usable.
SELECT account_id, used_at, expires_at <= now() AS expired
FROM password_reset_tokens WHERE token_hash = :token_hash FOR UPDATE;

-- name: use-reset-tokens
-- Uses up every reset token of the account (the one presented and any older ones).
UPDATE password_reset_tokens SET used_at = now() WHERE account_id = :account_id AND used_at IS NULL;
