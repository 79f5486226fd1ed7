"""Bulk import of tasks from CSV and Excel files, in the background.

- `routes`: the HTTP endpoints (thin); `schemas`: their query strings and bodies; `uploads`: streaming a
  multipart upload to disk.
- `service`: a job's life (created from an upload, read, cancelled, deleted, ended); `intake`: what happens
  to an upload before it is a job (its kind, the checks, the preview, the upload store); `listing`: the
  jobs and a job's errors in keyset pages, and errors.csv; `events`: a job's progress as a stream.
- `pipeline`: the worker's loop over a job's file, resumable after any stop; `chunks`: one chunk and the
  transaction that commits it with its checkpoint; `threads`: the reader's daemon threads.
- `files/`: the file side, pure (no database, HTTP or broker): sniffing, the CSV and Excel readers and
  their guards, header matching, value and date rules, errors.csv lines.
"""
