-- name: import-jobs-exist
-- Whether the import_jobs table exists (it arrives with the imports migration).
SELECT to_regclass('import_jobs') IS NOT NULL;

-- name: count-processing-imports
-- Import jobs a worker is processing right now.
SELECT count(*) FROM import_jobs WHERE status = 'processing';
