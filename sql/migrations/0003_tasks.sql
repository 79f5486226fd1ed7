-- Tasks, their per-user categories, and the idempotency keys of retry-safe POSTs.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A category belongs to one user; names are unique per user regardless of case.
CREATE TABLE categories (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name = btrim(name) AND name <> '' AND char_length(name) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The target of tasks' (user_id, category_id) key: a task can only point at its owner's category.
    UNIQUE (user_id, id)
);
CREATE UNIQUE INDEX categories_user_name ON categories (user_id, lower(name));

CREATE TABLE tasks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    title        text NOT NULL CHECK (title = btrim(title) AND char_length(title) BETWEEN 1 AND 200),
    description  text CHECK (char_length(description) <= 10000),
    status       text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    priority     smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    due_date     date,
    category_id  uuid,
    -- The bulk import that created the task; its table and foreign key (ON DELETE SET NULL) come later.
    import_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Deleting a category keeps its tasks, uncategorised (PostgreSQL 15: SET NULL of one column only).
    FOREIGN KEY (user_id, category_id) REFERENCES categories (user_id, id) ON DELETE SET NULL (category_id)
);

-- Every list query is `user_id = $1 AND <filters> ORDER BY <key>, id LIMIT n`, paged by keyset
-- `(<key>, id) > (last key, last id)`: each sort has a (user_id, key, id) index, scanned either way.
CREATE INDEX tasks_user_created ON tasks (user_id, created_at, id);
-- No due date sorts as 'infinity' (after every date ascending, first descending): the keyset then
-- compares plain non-null values, and due_before/due_after use the same index.
CREATE INDEX tasks_user_due ON tasks (user_id, (coalesce(due_date, 'infinity'::date)), id);
CREATE INDEX tasks_user_priority ON tasks (user_id, priority, id);
-- Filters that may select few of a user's tasks, ready for the default sort (newest first).
CREATE INDEX tasks_user_status_created ON tasks (user_id, status, created_at, id);
CREATE INDEX tasks_user_category_created ON tasks (user_id, category_id, created_at, id);
-- Substring search (`q`): ILIKE '%...%' over title and description through trigrams.
CREATE INDEX tasks_search ON tasks USING gin ((title || ' ' || coalesce(description, '')) gin_trgm_ops);
-- The import that created tasks (for the imports feature: list or undo an import).
CREATE INDEX tasks_import ON tasks (import_id) WHERE import_id IS NOT NULL;

-- A response remembered under a client's Idempotency-Key for 24 hours. The row is inserted before the
-- work, in the same transaction, so concurrent requests with one key queue on the primary key and
-- then replay the stored response. status is NULL while the first request is still running (only
-- visible when the caller commits its claim before finishing, as a long upload may).
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key          text NOT NULL,
    -- SHA-256 of method, path and body: the same key for a different request is refused.
    fingerprint  bytea NOT NULL,
    status       smallint,
    headers      jsonb NOT NULL DEFAULT '{}',
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
