-- A task's import_id names the import that created it, and the API shows it only while that import
-- exists (sql/queries/tasks.sql): import ids are never reused, so an id whose job is gone means deleted.
-- It was a foreign key ON DELETE SET NULL, which made deleting an import rewrite every task it had
-- created inside the DELETE request (a job of 200,000 tasks: 21.6 s, and the table grew by a third
-- until vacuumed), and whose per-row check cost every import ~9 us a row, a tenth of its database time.
-- No route looks tasks up by import, so the index that served that cascade goes too.
ALTER TABLE tasks DROP CONSTRAINT tasks_import_fk;
DROP INDEX tasks_import;
