-- Cheaper task rows, part 1 of 2 (part 2, 0010, builds and drops indexes without locking writes).
-- Measured with tests/perf/bench_task_writes (CPU of the PostgreSQL backend per COPY'd row, 200,000 rows
-- of its short rows, this schema against 0008's in the same run; figures in README.md, Benchmarks):
-- 0008 cost ~25 us a row: the trigram index ~8, the owner's foreign key ~3, the four status/category
-- b-trees ~6, the three sort b-trees ~3.4, the primary key 0.5, the bare heap 0.8, and ~2.5 more in
-- all together than apart (WAL, cache). 0010 brings it to ~14 (0.56 x): words ~6.5, the three sort
-- indexes ~3.5, a category index 0.6. Halving it (the goal of issue 16) would take leaving the word
-- index (~6.5 of the 14) or the descriptions out of it: on these rows ("Task number 7", "Description
-- of task 7") PostgreSQL's word parser and a GIN insert cost what they cost, ~2.5 + ~4 us.
--
-- Search (`q`) becomes word-prefix search: every word of q must begin a word of the title or
-- description, case- and accent-insensitively ("plumb" finds "Plumber", "resume" and "résumé" find
-- "Résumé"). Trigrams over title and description (~150 per row of real text) gave arbitrary substrings
-- at ~8 us a row and a 308 MB index per 2M tasks; words (~20 per row) cost ~6.5 us (less than trigrams
-- the longer the text) and 43 MB, and unlike trigrams they are exact, so a row the index gives is never
-- read again to check it. The configuration below is `simple` (lower case, no stemming, no stop words)
-- with accents removed from words that have any (ASCII words skip the unaccent dictionary).
-- to_tsvector(regconfig, text) is immutable, so it is indexed directly: no wrapper around unaccent().
CREATE EXTENSION IF NOT EXISTS unaccent;
-- For the owner (a uuid) next to the words in one GIN index (0010).
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE TEXT SEARCH CONFIGURATION tasklane_words (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION tasklane_words ALTER MAPPING FOR word, hword, hword_part WITH unaccent, simple;

-- The owner's foreign key cost ~4 us a row (a lookup and a key-share lock of the account per row,
-- ~15% of a row's cost). What it gave, and what gives it now:
-- - No task of an account that does not exist: every writer already checks the account in the
--   statement that writes. POST /tasks inserts only through `SELECT ... FROM accounts WHERE id = ...
--   AND is_active FOR KEY SHARE` (sql/queries/tasks.sql, create-task); an import COPYs in a transaction
--   that then inserts its checkpoint row, whose foreign key to the job (itself cascading from the
--   account) fails if the account went meanwhile, rolling the chunk back.
-- - ON DELETE CASCADE: this trigger. It runs after the DELETE statement, once, with a snapshot taken
--   after the statement waited for the rows it deleted: a POST holding the account's key-share lock,
--   or an import chunk holding its job's, has committed by then, and its tasks are deleted too; a
--   writer that comes later finds no account (or no job) and writes nothing.
CREATE FUNCTION delete_tasks_of_deleted_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasks t USING deleted_accounts d WHERE t.user_id = d.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_delete_tasks AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS deleted_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION delete_tasks_of_deleted_accounts();

-- Metadata only, but it needs an exclusive lock on tasks for a moment: rather fail (and be run again)
-- than queue every request behind a long transaction while waiting for it.
SET LOCAL lock_timeout = '10s';
ALTER TABLE tasks DROP CONSTRAINT tasks_user_id_fkey;
