-- A task's import_id and category_id are references the API follows only while their row exists: a task
-- whose import was deleted shows no import_id, one whose category was deleted no category (every read
-- joins categories; get, update and list look the import up, sql/queries/tasks.sql). Ids are random
-- UUIDs and never reused, so an id whose row is gone can only mean deleted.
-- They were foreign keys ON DELETE SET NULL, which made deleting an import or a category rewrite each
-- of its tasks inside the DELETE request (an import of 200,000 tasks: 21.6 s, and the table grew by a
-- third until vacuumed; a category of 20,000 tasks: 1.7 s), and whose per-row checks cost every import
-- ~17 us a row, a fifth of its database time. Category ids are only ever taken from the owner's own
-- categories, looked up by (user_id, name) in the statement that writes them.
ALTER TABLE tasks DROP CONSTRAINT tasks_import_fk;
ALTER TABLE tasks DROP CONSTRAINT tasks_user_id_category_id_fkey;
-- No route looks tasks up by import; the index served the cascade. (user_id, id) was the composite key's target.
DROP INDEX tasks_import;
ALTER TABLE categories DROP CONSTRAINT categories_user_id_id_key;
