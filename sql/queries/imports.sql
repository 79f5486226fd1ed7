-- name: create-job
-- Records an uploaded file as a queued import; returns the job.
INSERT INTO import_jobs (id, user_id, filename, kind, stored_path, size_bytes, dry_run, webhook_url, request_id,
                         mapping, preset)
VALUES (:id, :user_id, :filename, :kind, :stored_path, :size_bytes, :dry_run, :webhook_url, :request_id,
        :mapping, :preset)
RETURNING *;

-- name: get-job
-- Returns one job of one user.
SELECT * FROM import_jobs WHERE id = :id AND user_id = :user_id;

-- name: list-jobs-first
-- Returns a user's newest jobs, newest first.
SELECT * FROM import_jobs WHERE user_id = :user_id
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: list-jobs-after
-- Returns the user's jobs older than the cursor position, newest first.
SELECT * FROM import_jobs WHERE user_id = :user_id AND (created_at, id) < (:created_at, :id)
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: request-cancel
-- Asks a live job to stop: a queued one is cancelled at once, a processing one at its next chunk.
-- Returns the job as it now is, or nothing when it does not exist.
UPDATE import_jobs
SET cancel_requested = true,
    status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
    finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
WHERE id = :id AND user_id = :user_id AND status IN ('queued', 'processing')
RETURNING *;

-- name: delete-job
-- Deletes a job (its errors and chunks by cascade; its tasks keep existing, unlinked). Returns the file.
DELETE FROM import_jobs WHERE id = :id AND user_id = :user_id RETURNING stored_path, file_removed_at;

-- name: claim-job
-- Takes a job for processing: a queued one, or a processing one whose worker stopped beating.
-- Returns the job, or nothing when it is finished, gone, or owned by a live worker.
UPDATE import_jobs
SET status = 'processing', lease_id = :lease_id, heartbeat_at = now(),
    started_at = coalesce(started_at, now()), attempts = attempts + 1
WHERE id = :id
  AND (status = 'queued' OR (status = 'processing' AND heartbeat_at < now() - make_interval(secs => :stale)))
RETURNING *;

-- name: last-chunk
-- Returns the checkpoint: the last committed chunk of a job, if any. (import_chunks.rows_consumed is
-- the job's rows_processed once the chunk committed: the rows read from the file, blank ones included.)
SELECT seq, rows_consumed AS rows_processed, rows_imported, rows_failed, rows_skipped, rows_warned, row_warnings
FROM import_chunks WHERE job_id = :job_id ORDER BY seq DESC LIMIT 1;

-- name: chunk-guard
-- Returns whether the job is still ours and whether a cancel was asked, for the chunk about to commit.
SELECT lease_id = :lease_id AS owned, cancel_requested FROM import_jobs WHERE id = :id;

-- name: insert-chunk
-- Records a committed chunk (the checkpoint); a duplicate seq means another worker got there first.
INSERT INTO import_chunks (job_id, seq, rows_consumed, rows_imported, rows_failed, progress, rows_skipped,
                           rows_warned, row_warnings)
VALUES (:job_id, :seq, :rows_processed, :rows_imported, :rows_failed, :progress, :rows_skipped, :rows_warned,
        :row_warnings);

-- name: set-header
-- Stores the file's header cells and warnings once the reader has opened it.
UPDATE import_jobs SET header = :header, warnings = :warnings WHERE id = :id AND lease_id = :lease_id;

-- name: write-progress
-- Publishes counters and progress and beats the heart; returns cancel_requested, or nothing if the
-- lease was lost.
UPDATE import_jobs
SET rows_processed = :rows_processed, rows_imported = :rows_imported, rows_failed = :rows_failed,
    progress = :progress, heartbeat_at = now()
WHERE id = :id AND lease_id = :lease_id
RETURNING cancel_requested;

-- name: heartbeat
-- Shows the worker is alive; returns the id, or nothing if the lease was lost.
UPDATE import_jobs SET heartbeat_at = now() WHERE id = :id AND lease_id = :lease_id RETURNING id;

-- name: release-job
-- Hands a job back to the queue (worker shutting down); the next claim resumes from the checkpoint.
UPDATE import_jobs SET status = 'queued', lease_id = NULL, heartbeat_at = now()
WHERE id = :id AND lease_id = :lease_id;

-- name: finish-job
-- Ends a job with its final state and counters, adding the warnings only known at the end (rows read
-- leniently, no data rows); returns it, or nothing if the lease was lost.
UPDATE import_jobs
SET status = :status, error = :error, finished_at = now(), lease_id = NULL, warnings = warnings || :warnings,
    rows_processed = :rows_processed, rows_imported = :rows_imported, rows_failed = :rows_failed,
    progress = CASE WHEN :status = 'completed' THEN 1 ELSE progress END
WHERE id = :id AND (lease_id = :lease_id OR (:lease_id::uuid IS NULL AND lease_id IS NULL))
RETURNING *;

-- name: mark-file-removed
-- Records that a job's stored upload was deleted from disk.
UPDATE import_jobs SET file_removed_at = now() WHERE id = :id;

-- name: files-to-remove
-- Finished jobs whose upload outlived the retention period; returns their files.
SELECT id, stored_path FROM import_jobs
WHERE file_removed_at IS NULL AND finished_at < now() - make_interval(secs => :retention)
LIMIT :limit;

-- name: due-imports
-- Jobs whose broker message looks lost: queued with no worker for :grace seconds, or processing with
-- no heartbeat for :stale seconds; at most once per :grace seconds each. Marks them re-driven now and
-- returns their ids. (The heartbeat is left alone: a claim needs it stale to take the job over.)
UPDATE import_jobs SET redriven_at = now()
WHERE id IN (
    SELECT id FROM import_jobs
    WHERE status IN ('queued', 'processing')
      AND coalesce(redriven_at, created_at) < now() - make_interval(secs => :grace)
      AND ((status = 'queued' AND coalesce(heartbeat_at, created_at) < now() - make_interval(secs => :grace))
           OR (status = 'processing' AND heartbeat_at < now() - make_interval(secs => :stale)))
    ORDER BY created_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- name: errors-first
-- Returns a job's first row errors in row order.
SELECT row_number, seq, column_name, message, value FROM import_errors
WHERE job_id = :job_id ORDER BY row_number, seq LIMIT :limit;

-- name: errors-after
-- Returns a job's row errors after the cursor position, in row order.
SELECT row_number, seq, column_name, message, value FROM import_errors
WHERE job_id = :job_id AND (row_number, seq) > (:row_number, :seq) ORDER BY row_number, seq LIMIT :limit;

-- name: failed-rows-after
-- Returns failed rows after :row_number, each with its original cells and its errors joined, for errors.csv.
SELECT row_number,
       (array_agg(raw ORDER BY seq))[1] AS raw,
       string_agg(message, '; ' ORDER BY seq) AS error
FROM import_errors
WHERE job_id = :job_id AND row_number > :row_number
GROUP BY row_number ORDER BY row_number LIMIT :limit;
