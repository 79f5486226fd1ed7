-- migrate: no-transaction
-- Search (`q`) looks in titles only: every word of q must begin a word of the task's title. The word
-- index of 0010 held the words of title and description, and was half of what a task row cost PostgreSQL
-- (bench_task_writes: 11.0 of 22.7 us a row, against 39.5 before issue 16, whose goal is half of that).
-- Its cost grows with the text: ~0.1 us a character to parse, ~1 us a distinct word to index. Measured by
-- INSERT ... SELECT of 100,000 seeded tasks (136 characters of title and description on average), the
-- index cost 26.8 us a row over title and description and 8.5 over titles alone. A description is where
-- the long text is (notes, pasted mails); a title is the few words a person looks a task up by.
-- What changes for users (README, Tasks; the OpenAPI description of q): a word found only in a
-- description no longer finds the task. Case, accents and word prefixes are matched as before.
-- Built and dropped CONCURRENTLY, as 0010 and 0011: a live table keeps taking writes. Between the build
-- and the drop both indexes are kept up; code of before 0012 still searching descriptions seq-scans
-- after the drop until it is replaced, so deploy this migration with the code that comes with it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_user_title_words ON tasks USING gin
    (user_id, to_tsvector('tasklane_words'::regconfig, title));
DROP INDEX CONCURRENTLY IF EXISTS tasks_user_words;
-- Statistics of the title words (search-words reads them to tell rare words from common ones).
ANALYZE tasks;
