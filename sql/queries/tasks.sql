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

-- name: task-columns
-- Task `t` (category `c`) as the API shows it, for get-task and update-task. Written out elsewhere, as
-- they differ: create-task takes the category's name from its own CTE (the one it found or created) and
-- import_id as is (a task created by hand has no import to look up); task-item renders the fields as
-- JSON text, timestamps formatted as orjson writes them.
t.id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
       t.created_at, t.updated_at, (SELECT j.id FROM import_jobs j WHERE j.id = t.import_id) AS import_id

-- name: get-task
-- Returns one task of the user as the API shows it, or nothing.
SELECT {task_columns}
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
SELECT {task_columns}
FROM task t
LEFT JOIN categories c ON c.id = t.category_id;

-- name: delete-task
-- Deletes one task of the user; returns its id when it existed.
DELETE FROM tasks WHERE id = :id AND user_id = :user_id RETURNING id;

-- name: list-categories
-- Returns the user's categories, by name, each with the number of its tasks (counted from tasks_category_tasks
-- alone: a category id is only ever set on its owner's tasks, see migration 0007).
SELECT c.id, c.name, c.created_at,
       (SELECT count(*) FROM tasks t WHERE t.category_id = c.id) AS task_count
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
       (SELECT count(*) FROM tasks t WHERE t.category_id = c.id) AS task_count
FROM category c;

-- name: delete-category
-- Deletes one category of the user; returns its id when it existed. Its tasks stay, and show no category
-- (their category_id names a row that is gone: see migration 0007).
DELETE FROM categories WHERE id = :id AND user_id = :user_id RETURNING id;

-- The task list is assembled (service/tasks/statements.py) from the templates `list-tasks`, `list-tasks-window`,
-- `list-tasks-matches` and `list-tasks-by-keys` and the fragments below, chosen from this fixed set by which filters and sort
-- the request uses; every value is a parameter. {key} is the sort key of the chosen `sort-*` fragment,
-- {order} the sort (`{key}, t.id`, either direction); {limit}, {fetch} and {window} are :limit or
-- numbers from a fixed set (see statements.py). A `{fragment_name}` is that fragment, included when the file
-- is loaded (service/db.py).

-- name: list-tasks
-- Returns one page of the user's tasks, sorted by {order}: each task already rendered as its JSON
-- object (`item`), with the keys a cursor needs. Returns nothing when the account is gone or inactive:
-- the EXISTS is a one-time filter that spares the hot path a separate account lookup (an empty page is
-- told apart from that by account-is-active).
SELECT {task_item}, t.id, t.created_at, t.due_date, t.priority
FROM tasks t
LEFT JOIN categories c ON c.id = t.category_id
WHERE t.user_id = :user_id
  AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = :user_id AND a.is_active)
  {filters} {after}
ORDER BY {order}
LIMIT {limit};

-- name: list-tasks-window
-- As list-tasks, for filters that may match many or few tasks (status, category, q): reads at most
-- {window} of the user's tasks in the sort's order from its index (from the cursor on, and within the
-- due date {bounds} when sorting by due date), and returns those that match (`hit`), up to {fetch} rows,
-- with the {window}-th row whatever it is (`last`, which also tells how many rows `passed` the filters
-- other than q): that one tells that the window was used up before a page was found (listing.py says
-- what comes next). Stops reading once {fetch} rows are found. The window's rows come from {source};
-- those returned are then read by id.
SELECT {task_item}, t.id, t.created_at, t.due_date, t.priority, w.hit, w.n = {window} AS last, w.passed
FROM (
    SELECT s.id, s.key, s.hit, row_number() OVER win AS n, {passed} OVER win AS passed
    FROM ({source}) s
    -- ROWS: the running count need not look for rows of equal order (there are none: id is in it), which
    -- the default RANGE frame does, row by row (~0.15 us a row, a sixth of a window's cost).
    WINDOW win AS (ORDER BY {window_order} ROWS UNBOUNDED PRECEDING)
) w
JOIN tasks t ON t.id = w.id
LEFT JOIN categories c ON c.id = t.category_id
WHERE (w.hit OR w.n = {window})
  AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = :user_id AND a.is_active)
ORDER BY {page_order}
LIMIT {fetch};

-- name: read-in-index-order
-- Run before list-tasks-window, in its transaction: the planner may not sort nor gather rows by bitmap,
-- so it reads a window in the order of the sort's index, as it must to stop early. Its estimates of a
-- user's tasks (how many, how many after a cursor) can be 1000x off, and for one with fewer tasks than
-- the window it would read them all and sort them: for a user with a million, a million.
SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;

-- name: collect-in-one-process
-- Run before list-tasks-matches, in its transaction. Planned for a share of the user's tasks that it
-- cannot know (a word prefix is guessed at 2% without statistics of it), the collection may be given
-- parallel workers, whose start costs more than collecting a rare word's matches (~6 ms against ~1 ms
-- for 20 matches of 1M tasks), or, when a guess is large, JIT compilation (tens of ms).
SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off;

-- name: window-in-index
-- The rows of a window, tested from the sort's index alone (it includes status, category and due date).
SELECT t.id, {key} AS key, (true {filters}) AS hit, true AS passed
FROM tasks t
WHERE t.user_id = :user_id {bounds} {after}
ORDER BY {order}
LIMIT {window}

-- name: window-in-table
-- The rows of a window, tested on the table for the words of q ({words}): read from the sort's index and
-- the table as they come.
SELECT t.id, {key} AS key, (true {words}) AS hit, true AS passed
FROM tasks t
WHERE t.user_id = :user_id {bounds} {after}
ORDER BY {order}
LIMIT {window}

-- name: window-in-index-then-table
-- The rows of a window, tested on the index for the other filters, then on the table for the words of q
-- ({words}): ids, keys and the other filters are read in order from the sort's index alone, and only a
-- row that passes those is read from the table, by id (a subquery run row by row, as the AND stops at
-- a false). A window of a search in a small category thus reads few rows of the table; one of a search
-- alone reads them as they come (window-in-table), saving the lookup by id.
SELECT r.id, r.key, r.passed AND (SELECT true {words} FROM tasks t WHERE t.id = r.id) AS hit, r.passed
FROM (
    -- IS TRUE: a filter on a task without category is NULL, and NULL AND x would read the table for x.
    SELECT t.id, {key} AS key, (true {filters}) IS TRUE AS passed
    FROM tasks t
    WHERE t.user_id = :user_id {bounds} {after}
    ORDER BY {order}
    LIMIT {window}
) r

-- name: list-tasks-matches
-- As list-tasks, for a search that list-tasks-window found rare: collects every task of the user that
-- matches, through the search index (tasks_user_title_words: owner and words, exact) unless another filter's
-- index keeps fewer, then sorts those after the cursor to take the page. Materialised, and the cursor
-- applied after, so that no guess of the planner leads it to the sort's index: its guess for a word
-- prefix can be 20x off, that of the tasks after a cursor 1000x, and reading the sort's index for a
-- rare word reads most of the user's tasks.
WITH matches AS MATERIALIZED (
    SELECT t.id, {key} AS key
    FROM tasks t
    WHERE t.user_id = :user_id {filters}
)
SELECT {task_item}, t.id, t.created_at, t.due_date, t.priority
FROM (SELECT m.id, m.key FROM matches m WHERE true {after} ORDER BY {page_order} LIMIT {limit}) m
JOIN tasks t ON t.id = m.id
LEFT JOIN categories c ON c.id = t.category_id
WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = :user_id AND a.is_active)
ORDER BY {page_order};

-- name: list-tasks-by-keys
-- As list-tasks, for a category sorted by due date: the page's ids and keys are read first, in order,
-- from the category's index alone (tasks_category_tasks, migration 0011: keyed by category and due date,
-- with what the other filters test), then only the page's rows from the table. A category of a few tasks
-- is thus read without a window of the sort's index, and a large one as fast as through that index.
SELECT {task_item}, t.id, t.created_at, t.due_date, t.priority
FROM (
    SELECT t.id, {key} AS key
    FROM tasks t
    WHERE t.user_id = :user_id {filters} {after}
    ORDER BY {order}
    LIMIT {limit}
) m
JOIN tasks t ON t.id = m.id
LEFT JOIN categories c ON c.id = t.category_id
WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = :user_id AND a.is_active)
ORDER BY {page_order};

-- name: task-item
-- Task `t` (category `c`) as its JSON object, the fields and format of a task everywhere else, rendered
-- by PostgreSQL in C: decoding ten typed columns per row into Python objects and serialising them
-- again took ~35 us of the web process's CPU per page of 20. Timestamps are written as orjson writes
-- them elsewhere, UTC with 6 fractional digits (PostgreSQL's own JSON would drop trailing zeros; orjson
-- drops a fraction of exactly zero, the same instant either way).
(SELECT row_to_json(item) FROM (
    SELECT t.id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
           to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS created_at,
           to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS updated_at,
           -- Only while the import exists (migration 0007); tasks created by hand skip the lookup.
           CASE WHEN t.import_id IS NOT NULL THEN (SELECT j.id FROM import_jobs j WHERE j.id = t.import_id)
           END AS import_id
) item)::text AS item

-- name: account-is-active
-- Returns true when the account exists and is active (after list-tasks returned no row).
SELECT EXISTS (SELECT 1 FROM accounts WHERE id = :user_id AND is_active);

-- name: search-words
-- The words of :q as the search index holds them (tasklane_words: lower case, accents removed) as a
-- query for tasks with a word beginning with each of them (`query`, NULL when :q has no word), and as
-- ILIKE patterns finding each of them anywhere in a text (`patterns`, for filter-q); and each word apart
-- (`word_queries`) with the share of tasks that have a word beginning with it (`shares`), as ANALYZE last
-- found it among the most common words of the search index (0 for a word that is not among them; all
-- NULL when there are no such statistics): what tells a search to collect its matches from the start
-- (search.py).
SELECT string_agg(w.query, ' & ') AS query,
       coalesce(array_agg(w.pattern), '{}') AS patterns,
       coalesce(array_agg(w.query), '{}') AS word_queries,
       coalesce(array_agg(w.share), '{}') AS shares
FROM (
    SELECT '''' || replace(replace(l.lexeme, '\', '\\'), '''', '''''') || ''':*' AS query,
           '%' || replace(replace(replace(l.lexeme, '\', '\\'), '%', '\%'), '_', '\_') || '%' AS pattern,
           -- The chance that a task has one of the common words beginning with it (taken as independent).
           CASE WHEN s.elems IS NOT NULL THEN coalesce(
               (SELECT 1 - exp(sum(ln(1 - least(e.freq, 0.999999))))
                FROM unnest(s.elems, s.freqs) AS e (elem, freq)  -- 3 more freqs (min, max, nulls): elem NULL
                WHERE starts_with(e.elem, l.lexeme)),
               0) END AS share
    FROM unnest(to_tsvector('tasklane_words', :q)) AS l
    LEFT JOIN (
        SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs
        FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'tasks_user_title_words'
    ) s ON true
) w;

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
-- Keyset: rows after the cursor's (key, id) in ascending order. Written as >= and <>, which is the same,
-- for the planner's sake: it estimates a row comparison by its first column alone, and `key > k` for the
-- greatest key (priority 5) is "no row" where `key >= k` is a fifth of the user's tasks.
AND ({key}, t.id) >= (:after_key, :after_id) AND ({key}, t.id) <> (:after_key, :after_id)

-- name: after-desc
-- Keyset: rows after the cursor's (key, id) in descending order (<= and <>: see after-asc).
AND ({key}, t.id) <= (:after_key, :after_id) AND ({key}, t.id) <> (:after_key, :after_id)

-- name: after-asc-matches
-- Keyset: matches (list-tasks-matches) after the cursor's (key, id) in ascending order.
AND (m.key, m.id) > (:after_key, :after_id)

-- name: after-desc-matches
-- Keyset: matches (list-tasks-matches) after the cursor's (key, id) in descending order.
AND (m.key, m.id) < (:after_key, :after_id)

-- name: filter-status
-- Filter: one status.
AND t.status = :status

-- name: filter-statuses
-- Filter: any of several statuses.
AND t.status = ANY(:statuses::text[])

-- name: filter-category
-- Filter: the category of that name, case-insensitively (none when the user has no such category).
AND t.category_id = (SELECT id FROM categories WHERE user_id = :user_id AND lower(name) = lower(:category))

-- name: filter-category-id
-- Filter: the category :category_id (as found by category-id), so planned knowing its size.
AND t.category_id = :category_id

-- name: category-id
-- Returns the id of the user's category of that name (case-insensitively), if any.
SELECT id FROM categories WHERE user_id = :user_id AND lower(name) = lower(:category);

-- name: filter-q
-- Filter: a task with a word beginning with each word of q (:words, from search-words), tested row by row
-- (list-tasks-window). A row's words cost ~15 us to compute, so they are computed only for a row that
-- contains every word of q somewhere ({words_anywhere}, ~1 us): no matching row fails that test.
AND CASE WHEN {words_anywhere} THEN {words_match} ELSE false END

-- name: filter-q-indexed
-- Filter: as filter-q, in the form the search index can answer (tasks_user_title_words, migration 0012) when
-- the planner finds it best. Through the index, only the rarest word of q (:indexed_words, by
-- search-words' shares; all of them when there are no statistics): the index finds rows with several
-- words by reading every one's entries, and a common word's are many (~100 ms for a word in 15% of 2M
-- tasks and one in 5%, where testing the 7,500 tasks with both one by one costs ~15 ms). The other words
-- (:other_words, NULL when none) are tested on each row found; IS NOT FALSE keeps that test out of the
-- index, and with no other word the planner reduces it to true. words-anywhere costs ~1 us a row, but
-- spares ~15 us to each row found through another index (a small category's, a narrow due date
-- range's) when the planner prefers that one.
AND {words_anywhere}
AND to_tsvector('tasklane_words', t.title) @@ :indexed_words::tsquery
AND (to_tsvector('tasklane_words', t.title) @@ :other_words::tsquery)
    IS NOT FALSE

-- name: words-match
-- A task's title has a word beginning with each word of q.
to_tsvector('tasklane_words', t.title) @@ :words::tsquery

-- name: words-anywhere
-- A task contains each word of q somewhere in its title (:patterns, from search-words):
-- true for every task that words-match finds, as a word of an ASCII text is a piece of it in another
-- case, and a word of any other text a piece of it without accents (what the index holds).
CASE WHEN octet_length(t.title) = char_length(t.title)
     THEN t.title COLLATE "C" ILIKE ALL (:patterns::text[])
     ELSE unaccent('unaccent', t.title) ILIKE ALL (:patterns::text[])
END

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

-- name: bound-overdue
-- The due date range of filter-overdue (where list-tasks-window starts reading when sorting by due date).
AND coalesce(t.due_date, 'infinity'::date) < (now() AT TIME ZONE 'UTC')::date
