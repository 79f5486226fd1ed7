-- migrate: no-transaction
-- Half the PostgreSQL cost of a task row, part 2 of 2 (see 0009). Run outside a transaction so that each
-- index is built and dropped CONCURRENTLY: writes to tasks go on throughout (a build waits for the
-- transactions already running, then reads the table twice without blocking them). A run cut short is
-- simply run again: the migrator drops an index a cancelled build left INVALID and builds it anew.
--
-- Every list query is `user_id = $1 AND <filters> ORDER BY <key>, id LIMIT n`. What answers it now:
-- - One index per sort, (user_id, key, id) as since 0003, now carrying each task's status, category and
--   due date (INCLUDE: ~0.1-0.3 us a row more, measured): a list filtered by them reads the sort's index
--   in order and tests the filters there, without reading the table, over a window of rows bounded per
--   page (service/tasks/listing.py).
-- - When the window holds too few matches for the page, the matches are collected from tasks_category
--   or tasks_user_words and sorted: the filter keeps so few tasks then that this is cheap.
-- - q (word-prefix search, 0009): a GIN index of the owner and the words of each task, so a rare word is
--   found among its owner's tasks only. Common words are found reading the sort's index (and the
--   table, for the words) over a window too.
-- This replaces four b-trees that each gave one filter in one order (status by creation; category by
-- creation, due date and priority: ~6 us a row together) and the trigram index (~8 us a row).
-- Each carries what the filters of a list test (status, category, due date), so that a window is read
-- from the index alone. due_date is needed by name even in tasks_list_due: PostgreSQL reads an
-- expression's value from an index only when the expression's columns are there too.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_list_created ON tasks (user_id, created_at, id)
    INCLUDE (status, category_id, due_date);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_list_due ON tasks (user_id, (coalesce(due_date, 'infinity'::date)), id)
    INCLUDE (status, category_id, due_date);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_list_priority ON tasks (user_id, priority, id)
    INCLUDE (status, category_id, due_date);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_user_words ON tasks USING gin
    (user_id, to_tsvector('tasklane_words'::regconfig, title || ' ' || coalesce(description, '')));
-- Also counts a category's tasks for GET /categories from the index alone (deduplicated: ~11 MB per 1.6M
-- categorised tasks). Category ids are only ever the owner's (0007), so user_id need not be in it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_category ON tasks (category_id) WHERE category_id IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS tasks_user_created;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_due;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_priority;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_status_created;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_category_created;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_category_due;
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_category_priority;
DROP INDEX CONCURRENTLY IF EXISTS tasks_search;
-- Statistics of the indexed words, so that the planner tells rare words from common ones from the start.
ANALYZE tasks;
