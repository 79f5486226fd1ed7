-- migrate: no-transaction
-- A category's tasks, listed from an index alone. Since 0010 a list filtered by category reads a window of
-- the sort's index (which includes each task's category) and, when the window holds too few of the page,
-- collects the category's tasks through tasks_category and sorts them. That index held ids only, so the
-- collection read every one of those tasks from the table, at random: ~13-130 us a row when the table is
-- larger than shared buffers, 69-91 ms p99 for a category of 0.1% of a million tasks (with a due date
-- range), where the three (user_id, category_id, key, id) b-trees dropped in 0010 took 9-37 ms.
-- This index carries what such a list needs (the owner, id and sort keys, and what the status and due
-- date filters test), so the category's tasks are filtered and sorted from the index, and only the page's
-- rows are read from the table:
-- - keyed by due date within the category, as the due date filters (before, after, overdue) are ranges of
--   it: with one, only that range is read (a category of 27,600 tasks: ~7 ms read whole);
-- - sorted by due date, a category's list is read in the index's order (list-tasks-by-keys; id is in the
--   key, as in the sort indexes, for the many tasks of one due date, or of none);
-- - due_date is there by name too, for the same reason as in 0010's tasks_list_due.
-- One index instead of those three: ~2.3 us a row written against ~5.7 (bench_task_writes, README), and
-- GET /categories still counts from it alone.
-- Built CONCURRENTLY, as 0010 (a live table keeps taking writes; a cancelled build is rebuilt on rerun).
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_category_tasks ON tasks (category_id, (coalesce(due_date, 'infinity'::date)), id)
    INCLUDE (user_id, created_at, due_date, priority, status) WHERE category_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS tasks_category;
