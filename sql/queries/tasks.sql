-- Tasks and categories. Every statement is scoped by :user_id: a task or category of another user is
-- indistinguishable from one that does not exist.

-- name: category-ids
-- Returns (name, id) for each of :names, creating the categories that do not exist yet. Race-free in
-- one statement: rows already there are read (and key-share locked, so a concurrent delete waits for
-- this transaction); only missing names are inserted, and ON CONFLICT DO UPDATE returns the row a
-- concurrent transaction inserted first, where DO NOTHING would return nothing.
WITH wanted AS (
    -- A new category is named as the first of the names that differ only by case.
    SELECT DISTINCT ON (lower(n)) n AS name, lower(n) AS key
    FROM unnest(:names::text[]) WITH ORDINALITY AS given (n, position)
    WHERE n IS NOT NULL
    ORDER BY lower(n), position
), found AS (
    SELECT c.id, lower(c.name) AS key
    FROM categories c
    WHERE c.user_id = :user_id AND lower(c.name) IN (SELECT key FROM wanted)
    FOR KEY SHARE
), created AS (
    INSERT INTO categories (user_id, name)
    SELECT :user_id, w.name FROM wanted w WHERE w.key NOT IN (SELECT key FROM found)
    ON CONFLICT (user_id, lower(name)) DO UPDATE SET name = categories.name
    RETURNING id, lower(name) AS key
)
SELECT n AS name, r.id
FROM unnest(:names::text[]) AS n
JOIN (SELECT id, key FROM found UNION ALL SELECT id, key FROM created) r ON r.key = lower(n);

-- name: create-task
-- Inserts a task, finding or creating its category (:category may be NULL) as category-ids does;
-- returns the task as the API shows it, or nothing (and changes nothing) when the account is gone or
-- inactive. One round trip, the account check included. The account row is key-share locked: an
-- account deleted meanwhile either wins (nothing is inserted) or waits and then cascades to the task.
WITH account AS (
    SELECT id FROM accounts WHERE id = :user_id AND is_active FOR KEY SHARE
), wanted AS (
    SELECT :category::text AS name, lower(:category::text) AS key
    WHERE :category::text IS NOT NULL AND EXISTS (SELECT 1 FROM account)
), found AS (
    SELECT c.id, c.name
    FROM categories c
    WHERE c.user_id = :user_id AND lower(c.name) = (SELECT key FROM wanted)
    FOR KEY SHARE
), created AS (
    INSERT INTO categories (user_id, name)
    SELECT :user_id, w.name FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (user_id, lower(name)) DO UPDATE SET name = categories.name
    RETURNING id, name
), category AS (
    SELECT id, name FROM found UNION ALL SELECT id, name FROM created
), task AS (
    INSERT INTO tasks (user_id, title, description, status, priority, due_date, category_id)
    SELECT a.id, :title::text, :description::text, :status::text, :priority::smallint, :due_date::date,
           (SELECT id FROM category)
    FROM account a
    RETURNING *
)
SELECT t.id, t.title, t.description, t.status, t.priority, t.due_date, (SELECT name FROM category) AS category,
       t.created_at, t.updated_at, t.import_id
FROM task t;

-- name: get-task
-- Returns one task of the user as the API shows it, or nothing.
SELECT t.id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
       t.created_at, t.updated_at, (SELECT j.id FROM import_jobs j WHERE j.id = t.import_id) AS import_id
FROM tasks t
LEFT JOIN categories c ON c.id = t.category_id
WHERE t.id = :id AND t.user_id = :user_id;

-- name: update-task
-- Changes the fields whose :set_<field> flag is true (to NULL when so given) and bumps updated_at;
-- returns the task as the API shows it, or nothing when the user has no such task.
WITH task AS (
    UPDATE tasks SET
        title = CASE WHEN :set_title THEN :title ELSE title END,
        description = CASE WHEN :set_description THEN :description ELSE description END,
        status = CASE WHEN :set_status THEN :status ELSE status END,
        priority = CASE WHEN :set_priority THEN :priority ELSE priority END,
        due_date = CASE WHEN :set_due_date THEN :due_date ELSE due_date END,
        category_id = CASE WHEN :set_category THEN :category_id ELSE category_id END,
        updated_at = now()
    WHERE id = :id AND user_id = :user_id
    RETURNING *
)
SELECT t.id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
       t.created_at, t.updated_at, (SELECT j.id FROM import_jobs j WHERE j.id = t.import_id) AS import_id
FROM task t
LEFT JOIN categories c ON c.id = t.category_id;

-- name: delete-task
-- Deletes one task of the user; returns its id when it existed.
DELETE FROM tasks WHERE id = :id AND user_id = :user_id RETURNING id;

-- name: list-categories
-- Returns the user's categories, by name, each with the number of its tasks.
SELECT c.id, c.name, c.created_at,
       (SELECT count(*) FROM tasks t WHERE t.user_id = c.user_id AND t.category_id = c.id) AS task_count
FROM categories c
WHERE c.user_id = :user_id
ORDER BY lower(c.name), c.id;

-- name: rename-category
-- Renames one category of the user; returns it with its task count, or nothing when there is no such
-- category. Raises a unique violation (categories_user_name) when the user has another of that name.
WITH category AS (
    UPDATE categories SET name = :name WHERE id = :id AND user_id = :user_id RETURNING id, user_id, name, created_at
)
SELECT c.id, c.name, c.created_at,
       (SELECT count(*) FROM tasks t WHERE t.user_id = c.user_id AND t.category_id = c.id) AS task_count
FROM category c;

-- name: delete-category
-- Deletes one category of the user; returns its id when it existed. Its tasks stay, and show no category
-- (their category_id names a row that is gone: see migration 0007).
DELETE FROM categories WHERE id = :id AND user_id = :user_id RETURNING id;

-- The task list is assembled (service/tasks/listing.py) from the template `list-tasks` and the
-- fragments below, chosen from this fixed set by which filters and sort the request uses; every value
-- is a parameter. {key} is the sort key of the chosen `sort-*` fragment; {limit} is :limit, or one of
-- the fixed sizes of listing.FETCH_SIZES when a generic plan is safe (see listing.py).

-- name: list-tasks
-- Returns one page of the user's tasks, sorted by {order}: each task already rendered as its JSON
-- object (`item`, the fields and format of a task everywhere else), with the keys a cursor needs.
-- PostgreSQL renders it in C: decoding ten typed columns per row into Python objects and serialising
-- them again took ~35 us of the web process's CPU per page of 20. Timestamps are written as orjson
-- writes them elsewhere, UTC with 6 fractional digits (PostgreSQL's own JSON would drop trailing
-- zeros; orjson drops a fraction of exactly zero, the same instant either way). Returns nothing when the account is gone or inactive: the EXISTS is a one-time
-- filter that spares the hot path a separate account lookup (an empty page is told apart from that
-- by account-is-active).
SELECT (SELECT row_to_json(item) FROM (
            SELECT t.id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
                   to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS created_at,
                   to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS updated_at,
                   -- Only while the import exists (migration 0007); tasks created by hand skip the lookup.
                   CASE WHEN t.import_id IS NOT NULL THEN (SELECT j.id FROM import_jobs j WHERE j.id = t.import_id)
                   END AS import_id
        ) item)::text AS item,
       t.id, t.created_at, t.due_date, t.priority
FROM tasks t
LEFT JOIN categories c ON c.id = t.category_id
WHERE t.user_id = :user_id
  AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = :user_id AND a.is_active)
  {filters} {after}
ORDER BY {order}
LIMIT {limit};

-- name: account-is-active
-- Returns true when the account exists and is active (after list-tasks returned no row).
SELECT EXISTS (SELECT 1 FROM accounts WHERE id = :user_id AND is_active);

-- name: sort-created-at
-- Sort key: creation time.
t.created_at

-- name: sort-due-date
-- Sort key: due date, with no due date as 'infinity' (last ascending, first descending).
coalesce(t.due_date, 'infinity'::date)

-- name: sort-priority
-- Sort key: priority.
t.priority

-- name: after-asc
-- Keyset: rows after the cursor's (key, id) in ascending order.
AND ({key}, t.id) > (:after_key, :after_id)

-- name: after-desc
-- Keyset: rows after the cursor's (key, id) in descending order.
AND ({key}, t.id) < (:after_key, :after_id)

-- name: filter-status
-- Filter: one status (a scalar, so tasks_user_status_created can also give the order).
AND t.status = :status

-- name: filter-statuses
-- Filter: any of several statuses.
AND t.status = ANY(:statuses::text[])

-- name: filter-category
-- Filter: the category of that name, case-insensitively (none when the user has no such category).
AND t.category_id = (SELECT id FROM categories WHERE user_id = :user_id AND lower(name) = lower(:category))

-- name: filter-q
-- Filter: :pattern (an ILIKE pattern, '%' || escaped text || '%') in title or description. The first
-- test uses the trigram index; the second keeps a match from spanning the title/description joint.
AND (t.title || ' ' || coalesce(t.description, '')) ILIKE :pattern
AND (t.title ILIKE :pattern OR t.description ILIKE :pattern)

-- name: filter-due-before
-- Filter: due strictly before :due_before (so never a task without due date).
AND coalesce(t.due_date, 'infinity'::date) < :due_before

-- name: filter-due-after
-- Filter: due strictly after :due_after (never a task without due date).
AND coalesce(t.due_date, 'infinity'::date) > :due_after
AND coalesce(t.due_date, 'infinity'::date) < 'infinity'::date

-- name: filter-overdue
-- Filter: overdue, that is due before today (UTC) and not done.
AND coalesce(t.due_date, 'infinity'::date) < (now() AT TIME ZONE 'UTC')::date AND t.status <> 'done'

-- name: filter-not-overdue
-- Filter: not overdue, that is done, due today or later (UTC), or without due date.
AND NOT (coalesce(t.due_date, 'infinity'::date) < (now() AT TIME ZONE 'UTC')::date AND t.status <> 'done')
