"""Bulk import of tasks from CSV and Excel files, in the background.

- `routes`: the HTTP endpoints (thin); `schemas`: their query strings and bodies; `uploads`: streaming a
  multipart upload to disk.
- `service`: what the endpoints call (create from an upload, read, list, cancel, delete, errors, events).
- `pipeline`: the worker's loop over a job's file, chunk by chunk, resumable after any stop.
- `files/`: the file side, pure (no database, HTTP or broker): sniffing, the CSV and Excel readers and
  their guards, header matching, row rules, errors.csv lines.
"""
