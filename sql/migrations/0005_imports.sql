-- Bulk import jobs, the rows they could not import, and their committed chunks.
CREATE TABLE import_jobs (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    filename         text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('csv', 'xlsx', 'xls')),
    stored_path      text NOT NULL,
    size_bytes       bigint NOT NULL,
    dry_run          boolean NOT NULL DEFAULT false,
    webhook_url      text,
    -- Counters and progress as last written by the worker (at most about once a second).
    rows_processed   integer NOT NULL DEFAULT 0,
    rows_imported    integer NOT NULL DEFAULT 0,
    rows_failed      integer NOT NULL DEFAULT 0,
    progress         real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    warnings         jsonb NOT NULL DEFAULT '[]',
    -- The file's header cells as they were, to write errors.csv in the user's own columns.
    header           jsonb,
    error            text,
    cancel_requested boolean NOT NULL DEFAULT false,
    -- The worker run that owns the job while it is processing, and when it last showed signs of life.
    lease_id         uuid,
    heartbeat_at     timestamptz,
    -- When the relay last re-enqueued the job, so it does so at most once per grace period.
    redriven_at      timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    file_removed_at  timestamptz
);
CREATE INDEX import_jobs_user ON import_jobs (user_id, created_at, id);
CREATE INDEX import_jobs_live ON import_jobs (created_at) WHERE status IN ('queued', 'processing');
CREATE INDEX import_jobs_files ON import_jobs (finished_at) WHERE file_removed_at IS NULL AND finished_at IS NOT NULL;

-- One row per committed chunk, written in the chunk's own transaction together with its tasks and
-- errors: the last one is the checkpoint a resumed job continues from, and its primary key stops two
-- workers from ever committing the same chunk.
CREATE TABLE import_chunks (
    job_id          uuid NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    rows_consumed   integer NOT NULL,
    rows_imported   integer NOT NULL,
    rows_failed     integer NOT NULL,
    progress        real NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);

-- A field that failed validation. A row with several bad fields has several errors (seq 0, 1, ...);
-- the row's original cells are kept once, on seq 0, for errors.csv.
CREATE TABLE import_errors (
    job_id      uuid NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    row_number  integer NOT NULL,
    seq         smallint NOT NULL,
    column_name text,
    message     text NOT NULL,
    value       text,
    raw         jsonb,
    PRIMARY KEY (job_id, row_number, seq)
);

ALTER TABLE tasks
    ADD CONSTRAINT tasks_import_fk FOREIGN KEY (import_id) REFERENCES import_jobs (id) ON DELETE SET NULL;
ALTER TABLE webhook_events
    ADD CONSTRAINT webhook_events_subject_fk FOREIGN KEY (subject_id) REFERENCES import_jobs (id) ON DELETE CASCADE;
