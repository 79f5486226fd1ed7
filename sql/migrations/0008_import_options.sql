-- Imports from other tools: the client's column mapping and format preset travel with the job, so every
-- attempt at it (a resume after a crash included) reads the file the same way; and the running count of
-- rows a chunk skipped or imported with a warning (a Todoist date in words), kept with each checkpoint.
ALTER TABLE import_jobs
    ADD COLUMN mapping jsonb,
    ADD COLUMN preset text;

ALTER TABLE import_chunks
    ADD COLUMN rows_skipped integer NOT NULL DEFAULT 0,
    ADD COLUMN rows_warned integer NOT NULL DEFAULT 0,
    ADD COLUMN row_warnings jsonb NOT NULL DEFAULT '[]';
